//! The reader on mount tables of the layouts banger meets: each written as real mountinfo
//! lines, the hybrid one verbatim from the host banger's CI runs on.

use super::*;

/// This CI host's cgroup lines, verbatim (`grep cgroup /proc/self/mountinfo`): systemd's
/// hybrid layout, every controller on a v1 hierarchy and an empty cgroup2 beside them.
const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// A pure v1 host (CentOS 7): no cgroup2 at all, controllers sharing hierarchies, and the
/// propagation fields systemd's shared mounts carry.
const V1: &str = "\
18 62 0:18 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuacct,cpu
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
";

/// A pure v2 host (Debian 12, Ubuntu 22.04).
const V2: &str = "\
22 29 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

/// A table's cgroup mounts as `(point, root, controllers)`, for comparing whole.
fn listed(mountinfo: &str) -> Vec<(String, String, Option<String>)> {
    CgroupMounts::parse(mountinfo)
        .all()
        .iter()
        .map(|m| {
            (
                m.point.display().to_string(),
                m.root.display().to_string(),
                m.controllers.as_ref().map(|c| c.join(",")),
            )
        })
        .collect()
}

#[test]
fn each_layout_is_read_whole() {
    let hybrid = listed(HYBRID);
    assert_eq!(hybrid.len(), 10, "the tmpfs is not a cgroup mount");
    assert_eq!(
        hybrid[3],
        (
            "/sys/fs/cgroup/memory".into(),
            "/".into(),
            Some("memory".into())
        )
    );
    // `name=systemd` names a hierarchy without controllers.
    assert_eq!(hybrid[8].2, Some(String::new()));
    assert_eq!(
        hybrid[9],
        ("/sys/fs/cgroup/unified".into(), "/".into(), None)
    );
    assert_eq!(
        listed(V1),
        [
            (
                "/sys/fs/cgroup/systemd".into(),
                "/".into(),
                Some(String::new())
            ),
            (
                "/sys/fs/cgroup/cpu,cpuacct".into(),
                "/".into(),
                Some("cpuacct,cpu".into())
            ),
            (
                "/sys/fs/cgroup/memory".into(),
                "/".into(),
                Some("memory".into())
            ),
            (
                "/sys/fs/cgroup/pids".into(),
                "/".into(),
                Some("pids".into())
            ),
        ]
    );
    assert_eq!(listed(V2), [("/sys/fs/cgroup".into(), "/".into(), None)]);
}

/// What each caller asks of a table: the v1 memory and pids hierarchies, the unified one,
/// and the layout a jailing helper's unit is made for.
#[test]
fn the_questions_callers_ask_per_layout() {
    // Memory on v1 but pids only on the unified hierarchy (a controller moved to v2 with
    // `cgroup_no_v1=pids`): not a v1 layout; the helper then looks to v2 and refuses the
    // launch there, naming pids, unless the unified hierarchy has both.
    let split = format!(
        "{V2}30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory\n"
    );
    type Expect = (
        Option<(&'static str, &'static str)>,
        Option<&'static str>,
        Option<CgroupLayout>,
    );
    let table: [(&str, &str, Expect); 5] = [
        (
            "hybrid",
            HYBRID,
            (
                Some(("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids")),
                Some("/sys/fs/cgroup/unified"),
                Some(CgroupLayout::V1),
            ),
        ),
        (
            "v1",
            V1,
            (
                Some(("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids")),
                None,
                Some(CgroupLayout::V1),
            ),
        ),
        (
            "v2",
            V2,
            (None, Some("/sys/fs/cgroup"), Some(CgroupLayout::V2)),
        ),
        (
            "memory on v1 only",
            &split,
            (None, Some("/sys/fs/cgroup"), Some(CgroupLayout::V2)),
        ),
        (
            "no cgroup",
            "22 1 0:21 / /proc rw,nosuid - proc proc rw\n",
            (None, None, None),
        ),
    ];
    for (name, text, (v1, unified, layout)) in table {
        let mounts = CgroupMounts::parse(text);
        assert_eq!(
            mounts.v1_memory_pids(),
            v1.map(|(m, p)| (PathBuf::from(m), PathBuf::from(p))),
            "{name}"
        );
        assert_eq!(mounts.unified_mount(), unified.map(PathBuf::from), "{name}");
        assert_eq!(CgroupLayout::of(&mounts), layout, "{name}");
        let limits = match (v1, unified) {
            (Some((memory, pids)), _) => Some(LimitHierarchy::V1 {
                memory: memory.into(),
                pids: pids.into(),
            }),
            (None, Some(root)) => Some(LimitHierarchy::V2 { root: root.into() }),
            (None, None) => None,
        };
        assert_eq!(LimitHierarchy::of(&mounts), limits, "{name}");
    }
    // Controllers sharing a hierarchy are found in it.
    let v1 = CgroupMounts::parse(V1);
    assert_eq!(
        v1.v1("cpu").map(|m| m.point.clone()),
        Some("/sys/fs/cgroup/cpu,cpuacct".into())
    );
    assert!(v1.v1("name=systemd").is_none() && v1.v1("rw").is_none());
}

#[test]
fn escaped_paths_and_optional_fields() {
    // A space and a tab in the mount point, a space in the root; several optional fields,
    // and none.
    let text = "\
90 25 0:40 /my\\040group /mnt/cg\\040v2\\011x rw shared:5 master:1 propagate_from:1 unbindable - cgroup2 cgroup2 rw
91 25 0:41 / /mnt/mem\\134ory rw - cgroup none rw,memory
";
    let mounts = CgroupMounts::parse(text);
    let unified = mounts.unified().unwrap();
    assert_eq!(unified.point, PathBuf::from("/mnt/cg v2\tx"));
    assert_eq!(unified.root, PathBuf::from("/my group"));
    assert_eq!(
        unified.dir_of("/my group/vm"),
        Some(PathBuf::from("/mnt/cg v2\tx/vm"))
    );
    assert_eq!(
        mounts.v1("memory").unwrap().point,
        PathBuf::from("/mnt/mem\\ory")
    );
}

/// A hierarchy mounted twice (the host's mount and a container's bind mount of its own
/// subtree): the first in the table is the one used, as before, whichever it is.
#[test]
fn a_hierarchy_mounted_twice_is_taken_where_listed_first() {
    let host = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
    let view = "1201 1100 0:32 /docker/c1 /var/lib/c1/sys/fs/cgroup/memory ro,relatime master:13 - cgroup cgroup rw,memory\n";
    let first = CgroupMounts::parse(&format!("{host}{view}"));
    assert_eq!(first.all().len(), 2);
    assert_eq!(
        first.v1("memory").unwrap().point,
        PathBuf::from("/sys/fs/cgroup/memory")
    );
    let second = CgroupMounts::parse(&format!("{view}{host}"));
    assert_eq!(
        second.v1("memory").unwrap().root,
        PathBuf::from("/docker/c1")
    );
}

/// A bind mount of a subtree shows groups below its root only, at paths relative to it.
#[test]
fn a_subtree_mount_shows_only_its_groups() {
    let text = "1201 1100 0:32 /lxc/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let inner = CgroupMounts::parse(text).v1("memory").cloned().unwrap();
    assert_eq!(
        inner.dir_of("/lxc/c1/x"),
        Some(PathBuf::from("/sys/fs/cgroup/memory/x"))
    );
    assert_eq!(
        inner.dir_of("/lxc/c1"),
        Some(PathBuf::from("/sys/fs/cgroup/memory"))
    );
    assert_eq!(inner.dir_of("/other"), None);
    // A sibling whose name starts alike is not below the root.
    assert_eq!(inner.dir_of("/lxc/c10/x"), None);
    assert_eq!(inner.dir_of("/lxc/c1/../../x"), None);
    let whole = CgroupMounts::parse(V2).unified().cloned().unwrap();
    assert_eq!(whole.dir_of("/"), Some(PathBuf::from("/sys/fs/cgroup")));
    assert_eq!(
        whole.dir_of("/user.slice/a.scope"),
        Some(PathBuf::from("/sys/fs/cgroup/user.slice/a.scope"))
    );
}

#[test]
fn a_table_that_cannot_be_read_names_its_path() {
    let e = CgroupMounts::read_from(Path::new("/nonexistent/mountinfo")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read the mount table /nonexistent/mountinfo"
    );
    // This process's own table is readable and, on any Linux host banger runs on, has
    // a cgroup hierarchy.
    assert!(!CgroupMounts::read().unwrap().all().is_empty());
}

#[test]
fn the_layout_is_recorded_as_v1_or_v2() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct R {
        cgroup: CgroupLayout,
    }
    let text = serde_json::to_string(&R {
        cgroup: CgroupLayout::V2,
    })
    .unwrap();
    assert_eq!(text, r#"{"cgroup":"v2"}"#);
    let back: R = serde_json::from_str(r#"{"cgroup":"v1"}"#).unwrap();
    assert_eq!(back.cgroup, CgroupLayout::V1);
}
