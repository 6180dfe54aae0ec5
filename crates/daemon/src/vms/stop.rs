//! Stopping VMs: agent power-off, then the ACPI power button, then kill.

use std::time::Duration;

use banger_api::{StopVmRequest, VmView};
use banger_store::{VmRecord, VmState};
use banger_system::progress::Progress;
use banger_vmm::{VmRuntime, VmmDriver, WaitOutcome};

use super::{agent, lock_vm, lookup, release, runtime_of, strays, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Default time a guest gets to power itself off.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time the VMM gets after an ACPI power-button press.
const ACPI_GRACE: Duration = Duration::from_secs(5);

/// Stop VM `name` (or id): gracefully unless `req.force`; `progress` hears each step.
pub async fn stop(
    daemon: &Daemon,
    name: &str,
    req: StopVmRequest,
    progress: &dyn Progress,
) -> Result<VmView> {
    let (_op, vm) = lock_vm(daemon, name).await?;
    let timeout = req
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    halt(daemon, &vm, !req.force, timeout, progress).await?;
    lookup(daemon, &vm.id).map(|vm| view(&vm))
}

/// Bring an active VM to `stopped`. Graceful: ask the agent to power off, then press
/// the ACPI power button, then kill. Not graceful: kill at once. The caller holds
/// the VM's op lock.
pub(super) async fn halt(
    daemon: &Daemon,
    vm: &VmRecord,
    graceful: bool,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<()> {
    if !vm.state.is_active() {
        return Ok(());
    }
    if vm.state != VmState::Stopping {
        daemon
            .store()
            .update_vm_state(&vm.id, Some(vm.state), VmState::Stopping, None)?;
    }
    fault_point!(daemon, StopMarkedStopping);
    let runtime = runtime_of(vm);
    if let Some(runtime) = &runtime {
        if graceful {
            graceful_shutdown(daemon, vm, runtime, timeout, progress).await;
        }
        if daemon.driver.is_alive(runtime) {
            progress.phase("kill the VMM", None, None);
            daemon.driver.kill(runtime).await.map_err(|e| {
                DaemonError::internal(format!(
                    "cannot kill the VMM of VM {}: {}",
                    vm.name,
                    banger_system::error_chain(&e)
                ))
            })?;
        }
    }
    // A VM stopped mid-boot may have a VMM that was never recorded.
    strays::kill(daemon, &vm.dir, None).await;
    fault_point!(daemon, StopVmmGone);
    release::release(daemon, vm, VmState::Stopping, VmState::Stopped, None).await?;
    tracing::info!(vm = %vm.name, graceful, "VM stopped");
    Ok(())
}

async fn graceful_shutdown(
    daemon: &Daemon,
    vm: &VmRecord,
    runtime: &VmRuntime,
    timeout: Duration,
    progress: &dyn Progress,
) {
    progress.phase("ask the guest agent to power off", None, None);
    if let Ok(client) = agent::client_for(daemon, vm).await
        && client.poweroff().await.is_ok()
    {
        fault_point!(daemon, StopAgentAsked);
        if matches!(
            daemon.driver.wait_exit(runtime, timeout).await,
            Ok(WaitOutcome::Exited)
        ) {
            return;
        }
    }
    progress.phase("press the ACPI power button", None, None);
    if daemon.driver.request_shutdown(runtime).await.is_ok() {
        let _ = daemon.driver.wait_exit(runtime, ACPI_GRACE).await;
    }
}
