//! `DELETE /v1/vms/{name}`: stop (with `force`), then delete the files and the row.
//!
//! A `remove` intent is recorded before anything is deleted and ends with the row, in one
//! transaction: a daemon killed half-way leaves the intent, and reconciliation finishes the
//! removal instead of showing a VM whose directory is half gone.

use banger_api::VmView;
use banger_store::{IntentOp, VmRecord};
use banger_system::progress::NoProgress;

use super::{VmLock, lock_vm, lock_vm_forced, stop, strays, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Refuses a running VM unless `force`, which kills it first (its disks are about to be
/// deleted, so there is nothing to shut down cleanly for).
pub async fn remove(daemon: &Daemon, name: &str, force: bool) -> Result<VmView> {
    let (op, vm) = if force {
        lock_vm_forced(daemon, name).await?
    } else {
        lock_vm(daemon, name).await?
    };
    remove_locked(daemon, op, &vm, force).await
}

/// [`remove`] of VM `vm`, whose lock `op` the caller took (and checked what it needed
/// under it).
pub(crate) async fn remove_locked(
    daemon: &Daemon,
    mut op: VmLock,
    vm: &VmRecord,
    force: bool,
) -> Result<VmView> {
    if vm.state.is_active() {
        if !force {
            return Err(
                DaemonError::conflict(format!("VM {} is {}", vm.name, vm.state)).with_hint(
                    format!(
                        "stop it first with `banger vm stop {0}`, or use `banger vm rm -f {0}`",
                        vm.name
                    ),
                ),
            );
        }
        stop::halt(daemon, &mut op, vm, stop::Halt::Discard, &NoProgress).await?;
    }
    daemon
        .store()
        .begin_intent(&vm.id, IntentOp::Remove, &vm.dir)?;
    fault_point!(daemon, RemoveIntentRecorded);
    finish(daemon, vm).await?;
    tracing::info!(vm = %vm.name, "removed VM");
    let mut gone = view(vm);
    gone.state = "removed".into();
    Ok(gone)
}

/// Delete VM `vm`'s files and then its row (ending its `remove` intent). Its VMM is gone;
/// anything else still using its directory is killed first. Also used by reconciliation to
/// finish an interrupted removal.
pub async fn finish(daemon: &Daemon, vm: &VmRecord) -> Result<()> {
    strays::kill(daemon, &vm.dir, None).await?;
    fault_point!(daemon, RemoveVmmGone);
    if vm.dir.parent() != Some(daemon.layout.vms_dir().as_path()) {
        return Err(DaemonError::internal(format!(
            "VM {} records its directory as {}, outside {}; refusing to delete it",
            vm.name,
            vm.dir.display(),
            daemon.layout.vms_dir().display()
        )));
    }
    // Moved out of `vms/` now, its disks unlinked in the background (`trash.rs`).
    match crate::trash::discard(daemon, &vm.dir) {
        Ok(()) => {}
        Err(e) => {
            return Err(DaemonError::internal(format!(
                "cannot delete the directory of VM {} ({}): {e}",
                vm.name,
                vm.dir.display()
            )));
        }
    }
    fault_point!(daemon, RemoveDirDeleted);
    // Normally released when the VMM went; a release that could not finish then is
    // retried before the row (and with it the record of what to release) goes.
    if let Err(e) = crate::net::release::release(daemon, &vm.id, &vm.name).await {
        tracing::warn!(vm = %vm.name, error = %e.message, "network not fully released; the daemon's next start sweeps it");
    }
    daemon.store().delete_vm(&vm.id)?;
    daemon.forget_slot(&vm.id);
    super::ssh::forget(daemon, vm);
    Ok(())
}
