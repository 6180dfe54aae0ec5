//! Stopping and removing VMs.

use std::time::Duration;

use banger_api::{StopVmRequest, VmView};
use banger_store::{VmRecord, VmState};
use banger_vmm::{VmRuntime, VmmDriver, WaitOutcome};

use super::{agent, lock_vm, lookup, record_halted, runtime_of, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Default time a guest gets to power itself off.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time the VMM gets after an ACPI power-button press.
const ACPI_GRACE: Duration = Duration::from_secs(5);

/// `POST /v1/vms/{name}/stop`
pub async fn stop(daemon: &Daemon, name: &str, req: StopVmRequest) -> Result<VmView> {
    let (_op, vm) = lock_vm(daemon, name).await?;
    let timeout = req
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    halt(daemon, &vm, !req.force, timeout).await?;
    lookup(daemon, &vm.id).map(|vm| view(&vm))
}

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
        halt(daemon, &vm, false, Duration::ZERO).await?;
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

/// Bring an active VM to `stopped`. Graceful: ask the agent to power off, then press
/// the ACPI power button, then kill. Not graceful: kill at once. The caller holds
/// the VM's op lock.
async fn halt(daemon: &Daemon, vm: &VmRecord, graceful: bool, timeout: Duration) -> Result<()> {
    if !vm.state.is_active() {
        return Ok(());
    }
    if vm.state != VmState::Stopping {
        daemon
            .store()
            .update_vm_state(&vm.id, Some(vm.state), VmState::Stopping, None)?;
    }
    if let Some(runtime) = runtime_of(vm) {
        if graceful {
            graceful_shutdown(daemon, vm, &runtime, timeout).await;
        }
        if daemon.driver.is_alive(&runtime) {
            daemon.driver.kill(&runtime).await.map_err(|e| {
                DaemonError::internal(format!("cannot kill the VMM of VM {}: {e}", vm.name))
            })?;
        }
    }
    agent::forget(daemon, &vm.id).await;
    record_halted(daemon, vm, VmState::Stopping, VmState::Stopped, None)?;
    tracing::info!(vm = %vm.name, graceful, "VM stopped");
    Ok(())
}

async fn graceful_shutdown(daemon: &Daemon, vm: &VmRecord, runtime: &VmRuntime, timeout: Duration) {
    if let Ok(client) = agent::client_for(daemon, vm).await
        && client.poweroff().await.is_ok()
        && matches!(
            daemon.driver.wait_exit(runtime, timeout).await,
            Ok(WaitOutcome::Exited)
        )
    {
        return;
    }
    if daemon.driver.request_shutdown(runtime).await.is_ok() {
        let _ = daemon.driver.wait_exit(runtime, ACPI_GRACE).await;
    }
}
