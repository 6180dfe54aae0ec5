//! Removing VMs: their directory (disks, console log) and their store record.

use std::time::Duration;

use banger_api::VmView;
use banger_system::progress::NoProgress;

use super::stop::halt;
use super::{lock_vm, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// `DELETE /v1/vms/{name}`: refuses a running VM unless `force`, which kills it first
/// (its disks are about to be deleted, so there is nothing to shut down cleanly for).
pub async fn remove(daemon: &Daemon, name: &str, force: bool) -> Result<VmView> {
    let (_op, vm) = lock_vm(daemon, name).await?;
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
        halt(daemon, &vm, false, Duration::ZERO, &NoProgress).await?;
    }
    match std::fs::remove_dir_all(&vm.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(DaemonError::internal(format!(
                "cannot delete the directory of VM {} ({}): {e}",
                vm.name,
                vm.dir.display()
            )));
        }
    }
    daemon.store().delete_vm(&vm.id)?;
    daemon.forget_slot(&vm.id);
    tracing::info!(vm = %vm.name, "removed VM");
    let mut gone = view(&vm);
    gone.state = "removed".into();
    Ok(gone)
}
