//! Making the store true to the host when the daemon starts: VMs that kept running (adopted),
//! died, or were half-way through an operation when a daemon was killed; directories, intents
//! and temporary files nobody owns any more.
//!
//! The decision for each VM is the pure table in [`plan`]; this module gathers its facts and
//! carries it out.

mod leftovers;
pub mod plan;

use std::collections::HashSet;
use std::sync::Arc;

use banger_store::{IntentOp, VmRecord, VmState};
use banger_vmm::RunState;

use self::plan::{Facts, Files, Then, Vmm};
use super::{console, release, remove, runtime_of, strays, watch};
use crate::disks::WORK_DISK;
use crate::state::Daemon;

/// Reconcile every VM in the store with the host, then reclaim what no VM owns. Runs before
/// the daemon serves requests, so no operation runs concurrently.
pub async fn reconcile(daemon: &Arc<Daemon>) {
    let (vms, intents) = {
        let store = daemon.store();
        match (store.list_vms(), store.list_intents()) {
            (Ok(vms), Ok(intents)) => (vms, intents),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %banger_system::error_chain(&e), "cannot read the store to reconcile");
                return;
            }
        }
    };
    let removing: HashSet<&str> = intents
        .iter()
        .filter(|i| i.op == IntentOp::Remove)
        .map(|i| i.vm_id.as_str())
        .collect();
    for vm in &vms {
        reconcile_vm(daemon, vm, removing.contains(vm.id.as_str())).await;
    }
    leftovers::reclaim(daemon, &vms, &intents).await;
}

/// The files a VM needs, as found on the host: its directory and each disk recorded for it
/// (`disks`; a VM from before disks were recorded has its work disk only).
pub fn files_of(vm: &VmRecord, disks: &[banger_store::VmDisk]) -> Files {
    let missing_disk = if disks.is_empty() {
        !vm.dir.join(WORK_DISK).is_file()
    } else {
        disks.iter().any(|d| !d.path.is_file())
    };
    if !vm.dir.is_dir() {
        Files::DirGone
    } else if missing_disk {
        Files::DiskGone
    } else {
        Files::Present
    }
}

/// What the running VMM says its guest is doing. A VMM that does not answer keeps the
/// record's word for it.
async fn guest_of(daemon: &Daemon, vm: &VmRecord, rt: &banger_vmm::VmRuntime) -> Vmm {
    match daemon.driver.run_state(rt).await {
        Ok(RunState::Running) => Vmm::Alive,
        Ok(RunState::Paused) => Vmm::Paused,
        Ok(RunState::NotStarted) => Vmm::NotStarted,
        Err(e) => {
            tracing::warn!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot ask the VMM for its state");
            if vm.state == VmState::Paused {
                Vmm::Paused
            } else {
                Vmm::Alive
            }
        }
    }
}

/// Move `vm` through `states` in order (compare-and-set from its recorded state).
fn mark(daemon: &Daemon, vm: &VmRecord, states: &[VmState]) -> crate::error::Result<()> {
    let mut from = vm.state;
    for &to in states {
        daemon
            .store()
            .update_vm_state(&vm.id, Some(from), to, None)?;
        from = to;
    }
    Ok(())
}

async fn reconcile_vm(daemon: &Daemon, vm: &VmRecord, removing: bool) {
    let runtime = runtime_of(vm);
    let vmm = match &runtime {
        None => Vmm::Unrecorded,
        Some(rt) if daemon.driver.is_alive(rt) => guest_of(daemon, vm, rt).await,
        Some(_) => Vmm::Gone,
    };
    let keep = runtime.as_ref().filter(|_| vmm.is_alive()).map(|rt| rt.pid);
    let facts = Facts {
        state: vm.state,
        vmm,
        strays: !strays::find(daemon, &vm.dir, keep).is_empty(),
        files: files_of(vm, &daemon.store().vm_disks(&vm.id).unwrap_or_default()),
        removing,
    };
    let plan = plan::plan(&facts);
    tracing::debug!(vm = %vm.name, ?facts, ?plan, "reconciling");
    if plan.kill_strays {
        match strays::kill(daemon, &vm.dir, keep).await {
            Ok(killed) => {
                tracing::info!(vm = %vm.name, killed, "stopped VMM processes the store had no record of")
            }
            // Not released while a VMM may still use its files: the next daemon tries again.
            Err(e) => {
                tracing::error!(vm = %vm.name, error = %e.message, "cannot stop a VMM the store had no record of");
                return;
            }
        }
    }
    if plan.kill_vmm
        && let Some(rt) = &runtime
        && let Err(e) = daemon.driver.kill(rt).await
    {
        tracing::error!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot stop the VMM");
        return;
    }
    let done = match plan.then {
        Then::Nothing => Ok(()),
        Then::Adopt | Then::AdoptAsRunning | Then::AdoptAsPaused => {
            let Some(rt) = runtime else {
                return;
            };
            let marked = match plan.then {
                Then::AdoptAsRunning => mark(daemon, vm, &[VmState::Running]),
                Then::AdoptAsPaused => mark(daemon, vm, &[VmState::Paused]),
                _ => Ok(()),
            };
            if marked.is_ok() {
                tracing::info!(vm = %vm.name, pid = rt.pid, "found running VM");
                console::attach(daemon, &vm.id, &rt);
                watch::watch_exit(daemon, &vm.id, rt);
                crate::shares::watch::watch(daemon, vm);
            }
            marked
        }
        Then::Release { to, why } => {
            tracing::info!(vm = %vm.name, from = %vm.state, %to, "VM no longer running");
            release::release(daemon, vm, vm.state, to, why.message()).await
        }
        Then::ForgetRuntime => release::forget_runtime(daemon, vm),
        Then::FinishRemove => {
            tracing::info!(vm = %vm.name, "finishing an interrupted removal");
            remove::finish(daemon, vm).await
        }
    };
    if let Err(e) = done {
        tracing::error!(vm = %vm.name, error = %e.message, "cannot reconcile VM");
    }
}
