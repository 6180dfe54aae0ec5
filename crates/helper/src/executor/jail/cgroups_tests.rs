#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A stand-in mount table (mountinfo lines, as a hybrid host has them): v1 hierarchies for
/// `v1` controllers below `dir`, then a cgroup2 mount at `dir/unified` whose
/// `cgroup.controllers` lists `v2`.
fn stand_in(dir: &Path, v1: &[&str], v2: &str) -> CgroupMounts {
    let mut mounts = format!(
        "31 23 0:28 / {} rw,relatime - tmpfs tmpfs rw,mode=755\n",
        dir.display()
    );
    for (i, c) in v1.iter().enumerate() {
        let point = dir.join(c);
        std::fs::create_dir_all(&point).unwrap();
        mounts += &format!(
            "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{c}\n",
            32 + i,
            29 + i,
            point.display()
        );
    }
    let unified = dir.join("unified");
    std::fs::create_dir_all(&unified).unwrap();
    std::fs::write(unified.join("cgroup.controllers"), format!("{v2}\n")).unwrap();
    mounts += &format!(
        "41 31 0:38 / {} rw,relatime - cgroup2 cgroup2 rw\n",
        unified.display()
    );
    CgroupMounts::parse(&mounts)
}

fn strings(argv: &[std::ffi::OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn id() -> JailId {
    JailId::new("abc").unwrap()
}

fn limits() -> JailLimits {
    JailLimits::new(512 << 20, 256).unwrap()
}

#[test]
fn a_hybrid_host_limits_through_its_v1_hierarchies() {
    let dir = tempfile::tempdir().unwrap();
    let mounts = stand_in(dir.path(), &["cpu", "memory", "pids"], "hugetlb");
    let h = hierarchy(&mounts).unwrap();
    assert_eq!(
        h,
        LimitHierarchy::V1 {
            memory: dir.path().join("memory"),
            pids: dir.path().join("pids"),
        }
    );
    let mut argv = Vec::new();
    let dirs = jailer_args(&h, 1000, &id(), limits(), &mut argv);
    assert_eq!(
        strings(&argv),
        [
            "--cgroup-version",
            "1",
            "--parent-cgroup",
            "banger-1000",
            "--cgroup",
            &format!("memory.limit_in_bytes={}", 512u64 << 20),
            "--cgroup",
            "pids.max=256",
        ]
    );
    assert_eq!(
        dirs,
        [
            dir.path().join("memory/banger-1000/abc"),
            dir.path().join("pids/banger-1000/abc")
        ]
    );
}

#[test]
fn a_unified_host_with_both_controllers_limits_through_v2() {
    let dir = tempfile::tempdir().unwrap();
    let mounts = stand_in(dir.path(), &[], "cpuset cpu io memory hugetlb pids rdma");
    let h = hierarchy(&mounts).unwrap();
    let root = dir.path().join("unified");
    assert_eq!(h, LimitHierarchy::V2 { root: root.clone() });
    let mut argv = Vec::new();
    let dirs = jailer_args(&h, 1000, &id(), limits(), &mut argv);
    assert_eq!(
        strings(&argv),
        [
            "--cgroup-version",
            "2",
            "--parent-cgroup",
            "banger-1000",
            "--cgroup",
            &format!("memory.max={}", 512u64 << 20),
            "--cgroup",
            "pids.max=256",
        ]
    );
    assert_eq!(dirs, [root.join("banger-1000/abc")]);
}

/// v1 memory alone (pids on v2) is not a v1 layout: both controllers must be on one side.
#[test]
fn a_split_host_uses_v2_when_it_has_both_there() {
    let dir = tempfile::tempdir().unwrap();
    let mounts = stand_in(dir.path(), &["memory"], "memory pids");
    assert!(matches!(
        hierarchy(&mounts).unwrap(),
        LimitHierarchy::V2 { .. }
    ));
}

#[test]
fn a_missing_controller_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mounts = stand_in(dir.path(), &["memory"], "cpu io memory");
    let e = hierarchy(&mounts).unwrap_err();
    assert!(e.contains("the pids controller is not available"), "{e}");
    assert!(
        e.contains(&dir.path().join("unified").display().to_string()),
        "{e}"
    );
    assert!(e.contains("systemd.unified_cgroup_hierarchy=1"), "{e}");
    let e = hierarchy(&stand_in(dir.path(), &[], "hugetlb")).unwrap_err();
    assert!(
        e.contains("the memory and pids controllers are not available"),
        "{e}"
    );
}

/// A host without the controllers fails the launch; it is not "unsupported", which the
/// daemon takes for a helper without a jailer (and would launch outside the jailer).
#[test]
fn the_refusal_is_a_failure_not_a_missing_jailer() {
    let e = unlimited(&id(), "the pids controller is not available");
    assert_eq!(e.kind, FailureKind::System);
    assert!(
        e.message.contains("refusing to run VM abc's Firecracker"),
        "{e}"
    );
    assert!(e.message.contains("the pids controller"), "{e}");
}

#[test]
fn no_cgroup_mount_at_all_is_refused() {
    let proc_only = CgroupMounts::parse("22 1 0:21 / /proc rw,nosuid - proc proc rw\n");
    let e = hierarchy(&proc_only).unwrap_err();
    assert!(e.contains("neither cgroup v1"), "{e}");
    // A cgroup2 mount whose controllers file cannot be read says which file.
    let absent = CgroupMounts::parse("41 31 0:38 / /nonexistent/cg rw - cgroup2 cgroup2 rw\n");
    let e = hierarchy(&absent).unwrap_err();
    assert!(e.contains("/nonexistent/cg/cgroup.controllers"), "{e}");
}

/// This host, as the helper sees it: whichever hierarchy it picks holds both controllers.
#[test]
fn this_hosts_hierarchy_is_usable_or_refused_in_words() {
    match host_hierarchy() {
        Ok(LimitHierarchy::V1 { memory, pids }) => {
            assert!(memory.join("memory.limit_in_bytes").exists());
            assert!(pids.join("pids.max").exists() || pids.join("tasks").exists());
        }
        Ok(LimitHierarchy::V2 { root }) => {
            let listed = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap();
            assert!(
                listed.contains("memory") && listed.contains("pids"),
                "{listed}"
            );
        }
        Err(e) => assert!(e.contains("not available") || e.contains("neither"), "{e}"),
    }
}

/// The jail's removal looks in every hierarchy present, and removes the owner's parent
/// with its last group.
#[test]
fn removal_takes_the_parent_with_its_last_group() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("banger-1000/a");
    let b = dir.path().join("banger-1000/b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    remove_dirs(std::slice::from_ref(&a), |d| d.display().to_string()).unwrap();
    assert!(!a.exists() && b.exists());
    remove_dirs(&[b.clone(), dir.path().join("absent/x")], |d| {
        d.display().to_string()
    })
    .unwrap();
    assert!(!dir.path().join("banger-1000").exists());
}
