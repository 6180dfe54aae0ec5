//! Where a jailed Firecracker's limits go: the jailer's `--cgroup` arguments for this host's
//! hierarchy, and the groups it makes, found again to remove them.
//!
//! The helper picks what the real jailer can do here, read from the mount table (through
//! `banger_system::cgroup`, the one reader of it that `banger system install`, doctor and
//! the daemon share) and the files it names (so it is tested on stand-in trees below as
//! well as on this host):
//!
//! * **v1** when the memory and pids controllers each have a v1 hierarchy (a v1 or hybrid
//!   host): `--cgroup-version 1`, `memory.limit_in_bytes` and `pids.max`, in
//!   `<hierarchy>/banger-<uid>/<id>` of each;
//! * **v2** otherwise, when the first cgroup2 mount (the one the jailer takes) lists both
//!   controllers in its `cgroup.controllers`: `--cgroup-version 2`, `memory.max` and
//!   `pids.max` in `<mount>/banger-<uid>/<id>`; the jailer enables the controllers in the
//!   `cgroup.subtree_control` of the mount's root and of `banger-<uid>` itself;
//! * neither: the launch is refused, naming what is missing, rather than run unlimited.

use std::path::{Path, PathBuf};

use banger_helper_proto::{Failure, FailureKind, JailId, JailLimits};
use banger_system::cgroup::{CgroupMounts, LimitHierarchy};

use super::{fail, system};

/// The controllers a jailed Firecracker's limits need.
const CONTROLLERS: [&str; 2] = ["memory", "pids"];

/// Where the jailer makes a jailed Firecracker's groups on a host with cgroup `mounts`
/// ([`LimitHierarchy::of`], the rule install and doctor name too), checked against the
/// `cgroup.controllers` file of the cgroup2 mount it names (v2: both controllers available
/// below its root); or why there is none, in words that say what to do.
pub(in crate::executor) fn hierarchy(mounts: &CgroupMounts) -> Result<LimitHierarchy, String> {
    let root = match LimitHierarchy::of(mounts) {
        Some(LimitHierarchy::V2 { root }) => root,
        Some(v1) => return Ok(v1),
        None => {
            return Err(
                "this host mounts neither cgroup v1 memory and pids hierarchies nor a \
                    cgroup v2 hierarchy: mount cgroup2 on /sys/fs/cgroup (or start the \
                    daemon without the jailing helper)"
                    .to_owned(),
            );
        }
    };
    let file = root.join("cgroup.controllers");
    let listed = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let missing: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| !listed.split_whitespace().any(|l| l == *c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the {} controller{} not available in the cgroup v2 hierarchy at {} (its \
             cgroup.controllers lists {:?}) nor on a cgroup v1 hierarchy: the jailer could \
             not limit Firecracker; free the controller for v2 (boot with \
             systemd.unified_cgroup_hierarchy=1) or mount it as a v1 hierarchy",
            missing.join(" and "),
            if missing.len() == 1 { " is" } else { "s are" },
            root.display(),
            listed.trim()
        ));
    }
    Ok(LimitHierarchy::V2 { root })
}

/// This host's hierarchy, read from its mount table.
pub(in crate::executor) fn host_hierarchy() -> Result<LimitHierarchy, String> {
    let mounts = CgroupMounts::read().map_err(|e| banger_system::error_chain(&e))?;
    hierarchy(&mounts)
}

/// The v1 memory and pids hierarchies' mount points, when this host has both.
pub(in crate::executor) fn v1_mounts() -> Option<(PathBuf, PathBuf)> {
    CgroupMounts::read().ok()?.v1_memory_pids()
}

/// The parent group of the owner's jailed VMMs in each hierarchy.
pub fn jail_parent_cgroup(owner_uid: u32) -> String {
    format!("banger-{owner_uid}")
}

/// VM `id`'s groups in `hierarchy`, below the owner's parent group.
fn group_dirs(hierarchy: &LimitHierarchy, owner_uid: u32, id: &JailId) -> Vec<PathBuf> {
    let parent = jail_parent_cgroup(owner_uid);
    let roots = match hierarchy {
        LimitHierarchy::V1 { memory, pids } => vec![memory, pids],
        LimitHierarchy::V2 { root } => vec![root],
    };
    roots
        .into_iter()
        .map(|r| r.join(&parent).join(id.as_str()))
        .collect()
}

/// The jailer's cgroup arguments for `limits` in `hierarchy`, and the groups it will make.
pub(super) fn jailer_args(
    hierarchy: &LimitHierarchy,
    owner_uid: u32,
    id: &JailId,
    limits: JailLimits,
    argv: &mut Vec<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let (version, memory_file) = match hierarchy {
        LimitHierarchy::V1 { .. } => ("1", "memory.limit_in_bytes"),
        LimitHierarchy::V2 { .. } => ("2", "memory.max"),
    };
    for arg in [
        "--cgroup-version".to_owned(),
        version.to_owned(),
        "--parent-cgroup".to_owned(),
        jail_parent_cgroup(owner_uid),
        "--cgroup".to_owned(),
        format!("{memory_file}={}", limits.memory_bytes()),
        "--cgroup".to_owned(),
        format!("pids.max={}", limits.pids_max()),
    ] {
        argv.push(arg.into());
    }
    group_dirs(hierarchy, owner_uid, id)
}

/// The jailer's cgroup arguments for `limits` on this host, and the groups it will make;
/// refused (naming what is missing) where no hierarchy can hold them.
pub(super) fn cgroup_args(
    owner_uid: u32,
    id: &JailId,
    limits: JailLimits,
    argv: &mut Vec<std::ffi::OsString>,
) -> Result<Vec<PathBuf>, Failure> {
    let hierarchy = host_hierarchy().map_err(|why| unlimited(id, &why))?;
    Ok(jailer_args(&hierarchy, owner_uid, id, limits, argv))
}

/// The refusal of a launch whose limits this host cannot hold. A host failure, never
/// `Unsupported`: to the daemon that means "this helper does not jail", and it would then
/// start Firecracker itself, outside the jailer.
fn unlimited(id: &JailId, why: &str) -> Failure {
    fail(
        FailureKind::System,
        format!(
            "refusing to run VM {}'s Firecracker without its memory and task limits: {why}",
            id.as_str()
        ),
    )
}

pub(in crate::executor) fn v1_dirs(owner_uid: u32, id: &JailId) -> Option<[PathBuf; 2]> {
    let (memory, pids) = v1_mounts()?;
    let dirs = group_dirs(&LimitHierarchy::V1 { memory, pids }, owner_uid, id);
    Some([dirs[0].clone(), dirs[1].clone()])
}

/// Every group the jailer may have made for VM `id` on this host: v1 and v2 alike (a
/// hierarchy that is not there has none).
pub(super) fn jail_dirs(owner_uid: u32, id: &JailId) -> Vec<PathBuf> {
    let mounts = CgroupMounts::read().unwrap_or_default();
    let mut dirs = Vec::new();
    if let Some((memory, pids)) = mounts.v1_memory_pids() {
        dirs.extend(group_dirs(
            &LimitHierarchy::V1 { memory, pids },
            owner_uid,
            id,
        ));
    }
    if let Some(root) = mounts.unified_mount() {
        dirs.extend(group_dirs(&LimitHierarchy::V2 { root }, owner_uid, id));
    }
    dirs
}

/// Remove `dirs`, each parent group with its last child; a group that still has tasks is
/// refused as a conflict, in the words `busy` gives for that group.
pub(in crate::executor) fn remove_dirs(
    dirs: &[PathBuf],
    busy: impl Fn(&Path) -> String,
) -> Result<(), Failure> {
    for dir in dirs {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(fail(FailureKind::Conflict, busy(dir)));
            }
            Err(e) => return Err(system(format!("cannot remove {}", dir.display()), e)),
        }
        // The owner's parent group goes with its last VM (busy while others exist).
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// Remove VM `id`'s v1 groups (see [`remove_dirs`]).
pub(in crate::executor) fn remove_v1_dirs(
    owner_uid: u32,
    id: &JailId,
    busy: impl Fn(&Path) -> String,
) -> Result<(), Failure> {
    let dirs = v1_dirs(owner_uid, id).map(Vec::from).unwrap_or_default();
    remove_dirs(&dirs, busy)
}

#[cfg(test)]
#[path = "cgroups_tests.rs"]
mod tests;
