//! A VM's cgroup on the daemon's side: given back by the VM's release, swept when the daemon
//! starts, and reported by `vm inspect`. The groups themselves are made by the driver
//! (`banger_vmm::sandbox::cgroup`), in the VMM's child before it runs guest code.

use std::path::{Path, PathBuf};

use banger_api::LimitsView;
use banger_store::VmRecord;
use banger_vmm::VmRuntime;
use banger_vmm::sandbox::cgroup::{self, CgroupPolicy};
use banger_vmm::sandbox::posture::StartedBy;

use crate::state::Daemon;

/// Remove VM `vm`'s cgroup: the directories its runtime record names (made by whichever
/// daemon launched it) and those this daemon would make for it (a launch that died before
/// it was recorded). Failures are logged: the next start sweeps an empty group.
pub async fn release(daemon: &Daemon, vm: &VmRecord) {
    // Groups the root helper made are root's: only it can remove them.
    if let CgroupPolicy::Delegated { delegate, .. } = daemon.driver.cgroups() {
        if let Err(e) = delegate.remove(&vm.id).await {
            tracing::warn!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot remove the VM's cgroup");
        }
        return;
    }
    let mut dirs = recorded(vm);
    if let CgroupPolicy::Limit { cgroups, .. } = daemon.driver.cgroups() {
        dirs.extend(cgroups.dirs(&vm.id));
    }
    dirs.sort();
    dirs.dedup();
    if dirs.is_empty() {
        return;
    }
    if let Err(e) = cgroup::remove_dirs(&vm.id, &dirs).await {
        tracing::warn!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot remove the VM's cgroup");
    }
}

/// Where this host mounts its cgroup hierarchies (`/proc/self/mountinfo`): the only places
/// a VM group can be. Empty, and logged, when the mount table cannot be read (then no
/// recorded directory is removed; the groups this daemon would make still are).
fn mount_points() -> Vec<PathBuf> {
    match banger_system::cgroup::CgroupMounts::read() {
        Ok(mounts) => mounts.all().iter().map(|m| m.point.clone()).collect(),
        Err(e) => {
            tracing::warn!(error = %banger_system::error_chain(&e), "cannot read the cgroup mounts");
            Vec::new()
        }
    }
}

/// The cgroup directories in `vm`'s runtime record that are really a VM group of `vm`
/// (`…/banger-<instance>/<vm-id>` below one of the host's cgroup mounts): the record is the
/// daemon's own, but a directory removed on its word must never be anything else. The mount
/// table is read only when the record names a group (most VMs' releases name none).
fn recorded(vm: &VmRecord) -> Vec<PathBuf> {
    let Some(rt) = vm
        .runtime_json
        .as_deref()
        .and_then(|j| serde_json::from_str::<VmRuntime>(j).ok())
    else {
        return Vec::new();
    };
    if rt.cgroup.is_empty() {
        return Vec::new();
    }
    let mounts = mount_points();
    rt.cgroup
        .into_iter()
        .filter(|d| is_vm_group(d, &vm.id, &mounts))
        .collect()
}

/// Whether `dir` is VM `vm_id`'s group: an absolute path without `..`, below one of the
/// cgroup mount points `mounts`, whose last component is the VM's id and whose parent is a
/// daemon's `banger-*` group.
fn is_vm_group(dir: &Path, vm_id: &str, mounts: &[PathBuf]) -> bool {
    dir.is_absolute()
        && !dir
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        && mounts
            .iter()
            .any(|m| m.is_absolute() && dir.starts_with(m) && dir != m.as_path())
        && dir.file_name().is_some_and(|n| n == vm_id)
        && dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n.to_string_lossy().starts_with("banger-"))
}

/// What VM `vm`'s running VMM may take, read back from its cgroups; `None` when it is not
/// running.
pub fn view(daemon: &Daemon, vm: &VmRecord) -> Option<LimitsView> {
    let rt = super::runtime_of(vm).filter(|_| vm.state.is_active())?;
    if !rt.is_alive() {
        return None;
    }
    let seen = cgroup::read::of_process(rt.pid).ok()?;
    if seen.limited() {
        // A jailed Firecracker's API socket lies in the jailer's chroot.
        let jailed = matches!(
            StartedBy::of(&rt, &Default::default()),
            StartedBy::Jailer { .. }
        );
        let made_by = match daemon.driver.cgroups() {
            _ if jailed => Some("the jailer, run by the root helper".to_owned()),
            CgroupPolicy::Delegated { delegate, .. } => Some(delegate.0.describe()),
            CgroupPolicy::Limit { cgroups, .. } => {
                Some(format!("this daemon: {}", cgroups.describe()))
            }
            CgroupPolicy::Unavailable { .. } => None,
        };
        return Some(LimitsView {
            made_by,
            cgroup: seen.version.map(str::to_owned),
            dirs: [seen.memory_dir, seen.pids_dir]
                .into_iter()
                .flatten()
                .map(|d| d.display().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            memory_max_bytes: seen.memory_max,
            memory_used_bytes: seen.memory_current,
            tasks_max: seen.pids_max,
            tasks: seen.pids_current,
            unlimited_because: None,
        });
    }
    let why = match daemon.driver.cgroups() {
        CgroupPolicy::Unavailable { reason } => reason.clone(),
        CgroupPolicy::Limit { .. } | CgroupPolicy::Delegated { .. } => {
            "its VMM was started without a cgroup of its own (by an \
             older banger or an unsandboxed launch); restart the VM to limit it"
                .to_owned()
        }
    };
    Some(LimitsView {
        unlimited_because: Some(why),
        ..LimitsView::default()
    })
}

/// At the daemon's exit: remove this daemon's parent groups when no VM is left in them (a
/// running VM keeps them; the next start uses them again).
pub fn retire(daemon: &Daemon) {
    if let CgroupPolicy::Limit { cgroups, .. } = daemon.driver.cgroups() {
        cgroups.retire();
    }
}

/// At the daemon's start: remove the empty groups of VMs that are not active (ended while
/// no daemon ran). The active ones are released, with their groups, by reconciliation.
pub fn sweep(daemon: &Daemon) {
    let CgroupPolicy::Limit { cgroups, .. } = daemon.driver.cgroups() else {
        return;
    };
    let active: Vec<String> = match daemon.store().list_vms() {
        Ok(vms) => vms
            .into_iter()
            .filter(|v| v.state.is_active())
            .map(|v| v.id)
            .collect(),
        // Without the store nothing can be proven dead.
        Err(_) => return,
    };
    let removed = cgroups.sweep(&|id| active.iter().any(|a| a == id));
    if !removed.is_empty() {
        tracing::info!(vms = ?removed, "removed the cgroups of VMs that ended while no daemon ran");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_vm_group_of_this_vm_is_removed_on_the_records_word() {
        let id = "0123456789ab";
        let host = [PathBuf::from("/sys/fs/cgroup/memory")];
        assert!(is_vm_group(
            Path::new("/sys/fs/cgroup/memory/x/banger-abc/0123456789ab"),
            id,
            &host
        ));
        for bad in [
            "/sys/fs/cgroup/memory/x/banger-abc/ffffffffffff",
            "/sys/fs/cgroup/memory/x/other/0123456789ab",
            "/etc/banger-abc/0123456789ab",
            "/sys/fs/cgroup/memory/banger-abc/../../banger-abc/0123456789ab",
            "sys/fs/cgroup/banger-abc/0123456789ab",
            // Below /sys/fs/cgroup but not below a cgroup mount.
            "/sys/fs/cgroup/pids/banger-abc/0123456789ab",
        ] {
            assert!(!is_vm_group(Path::new(bad), id, &host), "{bad}");
        }
        assert!(!is_vm_group(
            Path::new("/sys/fs/cgroup/memory/x/banger-abc/0123456789ab"),
            id,
            &[]
        ));
    }

    #[test]
    fn a_vm_group_is_found_below_a_mount_point_elsewhere() {
        let id = "0123456789ab";
        // A host (or a container's view) mounting its hierarchy away from /sys/fs/cgroup.
        let mounts = [PathBuf::from("/run/cg2"), PathBuf::from("relative/cg")];
        assert!(is_vm_group(
            Path::new("/run/cg2/user.slice/banger-abc/0123456789ab"),
            id,
            &mounts
        ));
        for bad in [
            "/sys/fs/cgroup/user.slice/banger-abc/0123456789ab",
            "/run/cg2x/banger-abc/0123456789ab",
            "/run/cg2/banger-abc/../../etc/banger-abc/0123456789ab",
            "relative/cg/banger-abc/0123456789ab",
        ] {
            assert!(!is_vm_group(Path::new(bad), id, &mounts), "{bad}");
        }
    }
}
