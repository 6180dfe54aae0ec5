//! Stopping VMs: agent power-off, then the ACPI power button, then kill — all within the
//! stop timeout, whatever the guest does (a frozen or paused guest answers nothing).

use std::time::{Duration, Instant};

use banger_api::{StopVmRequest, VmView};
use banger_store::{VmRecord, VmState};
use banger_system::progress::Progress;
use banger_vmm::{VmRuntime, WaitOutcome};

use super::{VmLock, agent, lock_vm, lock_vm_forced, lookup, release, runtime_of, strays, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Default time a guest gets to power itself off.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest stop timeout a request may ask for. Bounded so a deadline computed from it
/// cannot overflow (`Instant + u64::MAX seconds` panics).
const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);
/// The ACPI power button's share of the stop timeout (at most a third of it): pressed when
/// the agent has not brought the guest down by then.
const ACPI_GRACE: Duration = Duration::from_secs(5);

/// Stop VM `name` (or id): gracefully unless `req.force`; `progress` hears each step.
pub async fn stop(
    daemon: &Daemon,
    name: &str,
    req: StopVmRequest,
    progress: &dyn Progress,
) -> Result<VmView> {
    // The request's own fields first, before the VM's lock (which a boot may hold a while).
    let timeout = match req.timeout_secs {
        None => DEFAULT_STOP_TIMEOUT,
        Some(secs) if secs <= MAX_STOP_TIMEOUT.as_secs() => Duration::from_secs(secs),
        Some(secs) => {
            return Err(DaemonError::invalid(format!(
                "timeout_secs {secs} is out of range: use 0 to {}",
                MAX_STOP_TIMEOUT.as_secs()
            ))
            .with_field("timeout_secs")
            .with_hint("a guest that has not powered off within an hour will not: use force"));
        }
    };
    let (mut op, vm) = if req.force {
        lock_vm_forced(daemon, name).await?
    } else {
        lock_vm(daemon, name).await?
    };
    let how = match req.force {
        true => Halt::Kill,
        false => Halt::Graceful(timeout),
    };
    halt(daemon, &mut op, &vm, how, progress).await?;
    lookup(daemon, &vm.id).map(|vm| view(&vm))
}

/// How [`halt`] ends a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Halt {
    /// Agent power-off, then the ACPI power button, within this time; then kill.
    Graceful(Duration),
    /// Kill at once, through the driver (QEMU is asked to quit first, flushing its disks).
    Kill,
    /// The VM is being removed: SIGKILL its VMM at once (its disks are deleted next, there
    /// is nothing to flush), and leave the search for unrecorded VMMs to the removal.
    Discard,
}

/// How long a SIGKILLed VMM gets to disappear before the driver's own kill takes over.
const DISCARD_WAIT: Duration = Duration::from_secs(5);

/// Bring an active VM to `stopped`. Graceful: ask the agent to power off, then press the ACPI
/// power button (Firecracker: Ctrl-Alt-Del), both within `timeout`; then kill. A paused VM is
/// resumed first. Not graceful: kill at once. A forced operation cancels the graceful part.
/// The caller holds the VM's lock (`op`).
pub(super) async fn halt(
    daemon: &Daemon,
    op: &mut VmLock,
    vm: &VmRecord,
    how: Halt,
    progress: &dyn Progress,
) -> Result<()> {
    let graceful = matches!(how, Halt::Graceful(_));
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
        // A paused guest cannot shut itself down: let it run first. If that fails, the
        // kill below still ends it.
        let can_run = vm.state != VmState::Paused
            || (graceful
                && super::pause::resume_runtime(daemon, &vm.name, runtime)
                    .await
                    .is_ok());
        if let Halt::Graceful(timeout) = how
            && can_run
        {
            let deadline = Instant::now() + timeout;
            let shutdown = graceful_shutdown(daemon, vm, runtime, timeout, deadline, progress);
            if op.unless_cancelled(shutdown).await.is_none() {
                tracing::info!(vm = %vm.name, "a forced operation cut the graceful stop short");
            }
        }
        if how == Halt::Discard && daemon.driver.is_alive(runtime) {
            progress.phase("kill the VMM", None, None);
            match runtime.signal(libc::SIGKILL) {
                Ok(_) => {
                    let _ = runtime.wait_exit(DISCARD_WAIT).await;
                }
                Err(e) => tracing::warn!(vm = %vm.name, error = %e, "cannot SIGKILL the VMM"),
            }
        }
        // After a discard too: the driver removes what its VMM leaves behind (helpers such as
        // virtiofsd, sockets), and kills it its own way if the SIGKILL did not.
        if how == Halt::Discard || daemon.driver.is_alive(runtime) {
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
    // A VM stopped mid-boot may have a VMM that was never recorded (a removal looks for
    // one itself, right after).
    if how != Halt::Discard {
        strays::kill(daemon, &vm.dir, None).await?;
    }
    fault_point!(daemon, StopVmmGone);
    release::release(daemon, vm, VmState::Stopping, VmState::Stopped, None).await?;
    tracing::info!(vm = %vm.name, graceful, "VM stopped");
    Ok(())
}

/// Agent power-off, then the ACPI button; returns by `deadline` whatever the guest does.
async fn graceful_shutdown(
    daemon: &Daemon,
    vm: &VmRecord,
    runtime: &VmRuntime,
    timeout: Duration,
    deadline: Instant,
    progress: &dyn Progress,
) {
    progress.phase("ask the guest agent to power off", None, None);
    let acpi_at = deadline - ACPI_GRACE.min(timeout / 3);
    let asked = tokio::time::timeout_at(acpi_at.into(), async {
        let client = agent::client_for(daemon, vm).await?;
        client.poweroff().await.map_err(|e| {
            crate::error::DaemonError::from_error(crate::error::ErrorKind::Unavailable, &e)
        })
    })
    .await;
    match asked {
        Ok(Ok(())) => {
            fault_point!(daemon, StopAgentAsked);
            let left = acpi_at.saturating_duration_since(Instant::now());
            if matches!(
                daemon.driver.wait_exit(runtime, left).await,
                Ok(WaitOutcome::Exited)
            ) {
                return;
            }
            tracing::info!(vm = %vm.name, "the guest acknowledged the power-off but is still running; pressing the power button");
        }
        Ok(Err(e)) => {
            tracing::info!(vm = %vm.name, error = %e.message, "the agent cannot power the guest off; pressing the power button");
        }
        Err(_) => {
            tracing::info!(vm = %vm.name, "the agent did not answer the power-off in time; pressing the power button");
        }
    }
    progress.phase("press the ACPI power button", None, None);
    let pressed = tokio::time::timeout_at(deadline.into(), daemon.driver.request_shutdown(runtime));
    if matches!(pressed.await, Ok(Ok(()))) {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = daemon.driver.wait_exit(runtime, left).await;
    }
}
