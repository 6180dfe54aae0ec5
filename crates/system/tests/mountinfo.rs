//! The cgroup mount reader on tables the kernel writes: in a private mount namespace
//! (`unshare --mount --propagation private`, so the host's mounts are never touched), the
//! unified hierarchy mounted again at a path with a space and a tab, and a group of this
//! process's bind-mounted at a path with a backslash (a mount whose root is not `/`). The
//! namespace, and its mounts, end with the shell that made them.
//!
//! Needs root (CI runs as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use banger_system::cgroup::{CgroupMount, CgroupMounts};

/// What the kernel writes for `path` in a mount table (proc(5)): space, tab, newline and
/// backslash as octal escapes.
fn escaped(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_str().unwrap().chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// This process's group in the hierarchy of `mount`, from `/proc/self/cgroup`.
fn own_group(mount: &CgroupMount, self_cgroup: &str) -> Option<String> {
    self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match &mount.controllers {
            None => controllers.is_empty(),
            Some(held) => held
                .first()
                .is_some_and(|c| controllers.split(',').any(|x| x == c)),
        };
        hit.then(|| path.to_owned())
    })
}

/// A group of this process's to bind-mount: the deepest one it has (`/` on a host that
/// puts it at every hierarchy's root), with its hierarchy's mount.
fn deepest_own_group(mounts: &CgroupMounts) -> (CgroupMount, String) {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    mounts
        .all()
        .iter()
        .filter_map(|m| Some((m.clone(), own_group(m, &own)?)))
        .max_by_key(|(_, path)| path.len())
        .expect("this process is in no group of a mounted hierarchy")
}

#[test]
fn the_kernels_own_tables_are_read_as_written() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "mounting in a private mount namespace needs root; run these tests as root (CI does)"
    );
    let host = CgroupMounts::read().unwrap();
    let (hierarchy, group) = deepest_own_group(&host);
    let source = hierarchy.dir_of(&group).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unified = dir.path().join("cg v2\tx");
    let subtree = dir.path().join("own\\group");
    std::fs::create_dir(&unified).unwrap();
    std::fs::create_dir(&subtree).unwrap();
    // A fixed script; the paths are its arguments, never part of it.
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(
            "mount -t cgroup2 none \"$1\"; mount --bind \"$2\" \"$3\"; \
             cat /proc/self/mountinfo; echo ===; cat /proc/self/mounts",
        )
        .arg("sh")
        .args([&unified, &source, &subtree])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mountinfo, proc_mounts) = stdout.split_once("===\n").unwrap();
    assert!(
        mountinfo.contains(&escaped(&unified)),
        "the kernel escapes the path:\n{mountinfo}"
    );
    let seen = CgroupMounts::parse(mountinfo);

    // The unified hierarchy mounted again: the host's cgroup2 mount (when there is one)
    // stays the one used, the new one is read whole.
    let again = seen.all().iter().find(|m| m.point == unified).unwrap();
    assert_eq!(
        (again.root.as_path(), &again.controllers),
        (Path::new("/"), &None)
    );
    assert_eq!(
        seen.unified().map(|m| m.point.clone()),
        Some(host.unified_mount().unwrap_or_else(|| unified.clone()))
    );

    // The bind mount shows the hierarchy from this process's group down.
    let bound = seen.all().iter().find(|m| m.point == subtree).unwrap();
    assert_eq!(bound.root, PathBuf::from(&group));
    assert_eq!(bound.controllers, hierarchy.controllers);
    assert_eq!(bound.dir_of(&group), Some(subtree.clone()));
    assert_eq!(
        bound.dir_of(&format!("{}/x", group.trim_end_matches('/'))),
        Some(subtree.join("x"))
    );

    // /proc/self/mounts (what the real jailer reads) lists the same cgroup mounts, in the
    // same order.
    let from_mounts: Vec<&str> = proc_mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            matches!(f.get(2), Some(&"cgroup" | &"cgroup2")).then(|| f[1])
        })
        .collect();
    let from_mountinfo: Vec<String> = seen.all().iter().map(|m| escaped(&m.point)).collect();
    assert_eq!(from_mounts, from_mountinfo);
}
