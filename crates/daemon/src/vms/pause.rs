//! `POST /v1/vms/{name}/pause` and `/resume`: freeze a running VM's vCPUs and let them run
//! again. The VMM keeps running (and its memory stays allocated) while the VM is paused;
//! the agent connection is kept and answers again after the resume.

use banger_api::VmView;
use banger_store::VmState;

use super::{lock_vm, lookup, runtime_of, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// `POST /v1/vms/{name}/pause`: a paused VM is returned as it is.
pub async fn pause(daemon: &Daemon, name: &str) -> Result<VmView> {
    let (_op, vm) = lock_vm(daemon, name).await?;
    match vm.state {
        VmState::Paused => return Ok(view(&vm)),
        VmState::Running => {}
        other => {
            return Err(
                DaemonError::conflict(format!("VM {} is {other}, not running", vm.name))
                    .with_hint("only a running VM can be paused"),
            );
        }
    }
    let runtime = runtime_of(&vm).ok_or_else(|| no_runtime(&vm.name))?;
    daemon.driver.pause(&runtime).await.map_err(|e| {
        DaemonError::internal(format!(
            "cannot pause VM {}: {}",
            vm.name,
            banger_system::error_chain(&e)
        ))
    })?;
    daemon
        .store()
        .update_vm_state(&vm.id, Some(VmState::Running), VmState::Paused, None)?;
    tracing::info!(vm = %vm.name, "VM paused");
    lookup(daemon, &vm.id).map(|vm| view(&vm))
}

/// `POST /v1/vms/{name}/resume`: a running VM is returned as it is.
pub async fn resume(daemon: &Daemon, name: &str) -> Result<VmView> {
    let (_op, vm) = lock_vm(daemon, name).await?;
    match vm.state {
        VmState::Running => return Ok(view(&vm)),
        VmState::Paused => {}
        other => {
            return Err(
                DaemonError::conflict(format!("VM {} is {other}, not paused", vm.name)).with_hint(
                    format!("start a stopped VM with `banger vm start {}`", vm.name),
                ),
            );
        }
    }
    let runtime = runtime_of(&vm).ok_or_else(|| no_runtime(&vm.name))?;
    resume_runtime(daemon, &vm.name, &runtime).await?;
    daemon
        .store()
        .update_vm_state(&vm.id, Some(VmState::Paused), VmState::Running, None)?;
    tracing::info!(vm = %vm.name, "VM resumed");
    lookup(daemon, &vm.id).map(|vm| view(&vm))
}

/// Let the vCPUs of `runtime` run again (also the first step of stopping a paused VM).
pub async fn resume_runtime(
    daemon: &Daemon,
    name: &str,
    runtime: &banger_vmm::VmRuntime,
) -> Result<()> {
    daemon.driver.resume(runtime).await.map_err(|e| {
        DaemonError::internal(format!(
            "cannot resume VM {name}: {}",
            banger_system::error_chain(&e)
        ))
    })
}

fn no_runtime(name: &str) -> DaemonError {
    DaemonError::internal(format!(
        "VM {name} has no runtime record; stop it and start it again"
    ))
}
