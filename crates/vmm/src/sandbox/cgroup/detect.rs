//! Which cgroup backend this process can use, and where: a pure function of the host's
//! cgroup mounts (read by `banger_system::cgroup`), `/proc/self/cgroup` and the files they
//! name, so it is tested on directory trees (the tests below) as well as on this host.

use std::path::{Path, PathBuf};

use banger_system::cgroup::{CgroupMount, CgroupMounts};

/// Where this process may make VM cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A cgroup v2 group with the memory and pids controllers, delegated to this process.
    V2 {
        /// The process's own group.
        group: PathBuf,
        /// The group is not the hierarchy's root: v2 forbids processes in a group whose
        /// children have controllers, so the daemon first moves itself into a leaf.
        move_self: bool,
    },
    /// cgroup v1: the process's own group in the memory and the pids hierarchies, both
    /// writable by it.
    V1 { memory: PathBuf, pids: PathBuf },
}

impl Layout {
    /// The groups daemon `instance` makes its VM groups in: `banger-<instance>` below the
    /// delegated group (v2) or below the daemon's group in each hierarchy (v1).
    pub fn parents(&self, instance: &str) -> Vec<PathBuf> {
        let name = format!("banger-{instance}");
        match self {
            Layout::V2 { group, .. } => vec![group.join(&name)],
            Layout::V1 { memory, pids } => vec![memory.join(&name), pids.join(&name)],
        }
    }
}

/// The process's group in the hierarchy `controller` (`""` for cgroup v2) from
/// `/proc/self/cgroup`.
pub(super) fn own_path<'a>(self_cgroup: &'a str, controller: &str) -> Option<&'a str> {
    self_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then_some(path)
    })
}

fn writable(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access only checks permissions.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The backend this process can use ([`detect`] on this host's mount table and this
/// process's groups), or why none is usable. Read-only: the daemon sets it up when it
/// starts ([`super::Cgroups::detect_and_setup`]); doctor asks it for its report.
pub fn detect_this_process() -> Result<Layout, String> {
    let mounts = CgroupMounts::read().map_err(|e| banger_system::error_chain(&e))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    detect(&mounts, &own, std::process::id())
}

/// The backend process `pid`, in the groups `self_cgroup` lists (its `/proc/PID/cgroup`),
/// can use on a host with cgroup `mounts`, or why none is usable. v2 is preferred; v1 is
/// used where the memory and pids controllers live on v1 hierarchies (a hybrid host).
pub fn detect(mounts: &CgroupMounts, self_cgroup: &str, pid: u32) -> Result<Layout, String> {
    let v2 = match mounts.unified() {
        None => Err("no cgroup v2 hierarchy is mounted".to_owned()),
        Some(m) => detect_v2(m, self_cgroup, pid),
    };
    let v2_reason = match v2 {
        Ok(layout) => return Ok(layout),
        Err(why) => why,
    };
    match detect_v1(mounts, self_cgroup) {
        Ok(layout) => Ok(layout),
        Err(v1_reason) => Err(format!("cgroup v2: {v2_reason}; cgroup v1: {v1_reason}")),
    }
}

fn detect_v2(mount: &CgroupMount, self_cgroup: &str, pid: u32) -> Result<Layout, String> {
    let path = own_path(self_cgroup, "").ok_or("this process is in no cgroup v2 group")?;
    let own = mount
        .dir_of(path)
        .ok_or_else(|| format!("this process's group {path} is outside the mounted hierarchy"))?;
    // Already in the leaf (systemd ≥ 254 with `DelegateSubgroup=daemon`, or an earlier
    // setup): the delegated group is its parent, and systemd starts every later daemon in
    // the leaf too.
    let in_leaf = own.file_name().is_some_and(|n| n == super::DAEMON_LEAF) && own != mount.point;
    let group = match own.parent() {
        Some(parent) if in_leaf => parent.to_path_buf(),
        _ => own.clone(),
    };
    let controllers = std::fs::read_to_string(group.join("cgroup.controllers"))
        .map_err(|e| format!("cannot read {:?}: {e}", group.join("cgroup.controllers")))?;
    let missing: Vec<&str> = ["memory", "pids"]
        .into_iter()
        .filter(|c| !controllers.split_whitespace().any(|x| x == *c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the {} controller(s) are not available in {} (on a hybrid host they are on v1 \
             hierarchies)",
            missing.join(" and "),
            group.display()
        ));
    }
    if !writable(&group) {
        return Err(format!(
            "{} is not delegated to this process (not writable); a system install delegates \
             it (Delegate=yes)",
            group.display()
        ));
    }
    let move_self = !in_leaf && group != mount.point;
    if move_self {
        // Moving the daemon into a leaf is only ours to do if the group holds nobody else.
        let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
        let others: Vec<&str> = procs
            .split_whitespace()
            .filter(|p| *p != pid.to_string())
            .collect();
        if !others.is_empty() {
            return Err(format!(
                "{} also holds other processes ({}); run the daemon in a cgroup of its own \
                 (the system install does, or `systemd-run --user -p Delegate=yes`)",
                group.display(),
                others.join(" ")
            ));
        }
    }
    if move_self && group.extension().is_some_and(|e| e == "service") {
        // systemd before 254 starts a service in its unit's own group; once that group has
        // controlled children, v2 refuses the next daemon there and the restart fails.
        return Err(format!(
            "systemd started the daemon in its unit's own group {} (systemd before 254 has \
             no DelegateSubgroup=); enabling controllers there would make the next restart \
             fail while VMs run",
            group.display()
        ));
    }
    Ok(Layout::V2 { group, move_self })
}

fn detect_v1(mounts: &CgroupMounts, self_cgroup: &str) -> Result<Layout, String> {
    let mut dirs = Vec::new();
    for controller in ["memory", "pids"] {
        let mount = mounts
            .v1(controller)
            .ok_or_else(|| format!("no {controller} hierarchy is mounted"))?;
        let path = own_path(self_cgroup, controller)
            .ok_or_else(|| format!("this process is in no {controller} group"))?;
        let dir = mount.dir_of(path).ok_or_else(|| {
            format!("this process's {controller} group {path} is outside the mounted hierarchy")
        })?;
        if !writable(&dir) {
            return Err(format!(
                "{} is not writable by this process (v1 hierarchies are root's; a root \
                 daemon can use them)",
                dir.display()
            ));
        }
        dirs.push(dir);
    }
    let pids = dirs.pop().unwrap_or_default();
    let memory = dirs.pop().unwrap_or_default();
    Ok(Layout::V1 { memory, pids })
}

#[cfg(test)]
mod tests {
    //! cgroup v2 cannot run on the hybrid (v1) hosts banger's CI uses: THESE TESTS ARE THE
    //! ONLY CHECK OF THE v2 DETECTION, run on directory trees that imitate cgroupfs. The v1
    //! backend is tested on the real hierarchies (tests/cgroup_v1.rs).
    use super::*;

    /// This host's hybrid layout, as in `banger_system::cgroup`'s tests.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A stand-in table with one cgroup2 mount, at `point`.
    fn unified_at(point: &Path) -> CgroupMounts {
        CgroupMounts::parse(&format!(
            "41 31 0:38 / {} rw - cgroup2 cgroup2 rw\n",
            point.display()
        ))
    }

    #[test]
    fn own_paths() {
        let own = "9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/u\n";
        assert_eq!(own_path(own, "memory"), Some("/a/b"));
        assert_eq!(own_path(own, "cpuacct"), Some("/c"));
        assert_eq!(own_path(own, ""), Some("/u"));
        assert_eq!(own_path(own, "pids"), None);
    }

    /// A v2 tree: the group must offer memory and pids, be writable, and hold only us.
    #[test]
    fn v2_is_detected_on_a_delegated_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let group = root.join("system.slice/bangerd.service");
        std::fs::create_dir_all(&group).unwrap();
        let info = unified_at(root);
        let own = "0::/system.slice/bangerd.service\n";
        std::fs::write(group.join("cgroup.controllers"), "cpu io pids").unwrap();
        std::fs::write(group.join("cgroup.procs"), "77\n").unwrap();
        let why = detect(&info, own, 77).unwrap_err();
        assert!(
            why.contains("memory controller(s) are not available"),
            "{why}"
        );
        assert!(why.contains("cgroup v1: no memory hierarchy"), "{why}");
        std::fs::write(group.join("cgroup.controllers"), "cpu io memory pids").unwrap();
        std::fs::write(group.join("cgroup.procs"), "77\n78\n").unwrap();
        let why = detect(&info, own, 77).unwrap_err();
        assert!(why.contains("other processes (78)"), "{why}");
        std::fs::write(group.join("cgroup.procs"), "77\n").unwrap();
        // A systemd < 254 unit's own group: refused (the restart would fail).
        let why = detect(&info, own, 77).unwrap_err();
        assert!(why.contains("DelegateSubgroup"), "{why}");
        // systemd ≥ 254 put the daemon in the leaf: its parent is the group.
        let leaf = group.join("daemon");
        std::fs::create_dir(&leaf).unwrap();
        assert_eq!(
            detect(&info, "0::/system.slice/bangerd.service/daemon\n", 77).unwrap(),
            Layout::V2 {
                group: group.clone(),
                move_self: false
            }
        );
        // A delegated scope (`systemd-run --scope -p Delegate=yes`): the daemon moves.
        let scope = root.join("user.slice/run-1.scope");
        std::fs::create_dir_all(&scope).unwrap();
        std::fs::write(scope.join("cgroup.controllers"), "memory pids").unwrap();
        std::fs::write(scope.join("cgroup.procs"), "77\n").unwrap();
        assert_eq!(
            detect(&info, "0::/user.slice/run-1.scope\n", 77).unwrap(),
            Layout::V2 {
                group: scope,
                move_self: true
            }
        );
        // The hierarchy's root may hold processes and have controlled children.
        std::fs::write(root.join("cgroup.controllers"), "memory pids").unwrap();
        assert_eq!(
            detect(&info, "0::/\n", 1).unwrap(),
            Layout::V2 {
                group: root.to_path_buf(),
                move_self: false
            }
        );
    }

    /// A hybrid tree: v2 without controllers, v1 memory and pids hierarchies.
    #[test]
    fn hybrid_hosts_use_v1() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["unified", "memory/user.slice", "pids"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
        let info =
            CgroupMounts::parse(&HYBRID.replace("/sys/fs/cgroup", &root.display().to_string()));
        let own = "4:memory:/user.slice\n8:pids:/\n0::/\n";
        // Root writes anything; under an ordinary user the tree is the user's own here.
        assert_eq!(
            detect(&info, own, 1).unwrap(),
            Layout::V1 {
                memory: root.join("memory/user.slice"),
                pids: root.join("pids"),
            }
        );
        let why = detect(&info, "4:memory:/user.slice\n0::/\n", 1).unwrap_err();
        assert!(
            why.contains("cgroup v2: the memory and pids controller(s)"),
            "{why}"
        );
        assert!(
            why.contains("cgroup v1: this process is in no pids group"),
            "{why}"
        );
    }
}
