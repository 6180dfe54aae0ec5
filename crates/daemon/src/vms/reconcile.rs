//! Keeping the store true to the host: at daemon start (VMs that kept running, or
//! died, while no daemon watched) and while running (a guest powering itself off).

use std::sync::Arc;

use banger_store::{VmRecord, VmState};
use banger_vmm::{RunState, VmRuntime};

use super::{agent, lock_vm, record_halted, runtime_of};
use crate::state::Daemon;

/// Compare every active VM in the store with the processes on the host.
pub async fn reconcile(daemon: &Arc<Daemon>) {
    let vms = match daemon.store().list_vms() {
        Ok(vms) => vms,
        Err(e) => {
            tracing::error!(error = %e, "cannot list VMs to reconcile");
            return;
        }
    };
    for vm in vms.into_iter().filter(|vm| vm.state.is_active()) {
        let runtime = runtime_of(&vm);
        match runtime {
            Some(rt) if daemon.driver.is_alive(&rt) && vm.state == VmState::Stopping => {
                // A stop was cut short by the daemon's death: finish it.
                tracing::info!(vm = %vm.name, pid = rt.pid, "finishing an interrupted stop");
                let _ = daemon.driver.kill(&rt).await;
                let _ = record_halted(daemon, &vm, VmState::Stopping, VmState::Stopped, None);
            }
            Some(rt) if daemon.driver.is_alive(&rt) => found_alive(daemon, &vm, rt).await,
            _ => {
                if vm.state == VmState::Starting
                    && let Some(leftover) = daemon.driver.leftover(&vm.dir)
                {
                    // The daemon died between spawning the VMM and recording it.
                    tracing::info!(vm = %vm.name, pid = leftover.pid, "stopping a VMM left by an interrupted boot");
                    let _ = daemon.driver.kill(&leftover).await;
                }
                let (next, why) = if vm.state == VmState::Starting {
                    (
                        VmState::Failed,
                        "the daemon stopped while this VM was booting, and its VMM is gone",
                    )
                } else {
                    (
                        VmState::Stopped,
                        "the VMM exited while no daemon was running",
                    )
                };
                tracing::info!(vm = %vm.name, "VM no longer running");
                let _ = record_halted(daemon, &vm, vm.state, next, Some(why));
            }
        }
    }
}

/// A VM whose VMM still runs: ask the VMM what its guest is doing and record that.
async fn found_alive(daemon: &Arc<Daemon>, vm: &VmRecord, rt: VmRuntime) {
    let state = match daemon.driver.run_state(&rt).await {
        Ok(state) => state,
        Err(e) => {
            // The process lives but does not answer: keep the record's word for it.
            tracing::warn!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot ask the VMM for its state");
            if vm.state == VmState::Paused {
                RunState::Paused
            } else {
                RunState::Running
            }
        }
    };
    let store = || daemon.store();
    match state {
        RunState::NotStarted => {
            // A boot cut short before the guest started: nothing to keep.
            tracing::info!(vm = %vm.name, pid = rt.pid, "stopping a VMM whose guest never started");
            let _ = daemon.driver.kill(&rt).await;
            let why = "the daemon stopped before this VM's guest was started";
            let _ = record_halted(daemon, vm, vm.state, VmState::Failed, Some(why));
            return;
        }
        RunState::Running | RunState::Paused => {
            if vm.state == VmState::Starting {
                // A boot cut short by the daemon's death but the guest runs: call it
                // running; the agent connection is made on first use.
                let _ = store().update_vm_state(&vm.id, Some(vm.state), VmState::Running, None);
            }
            let (from, to) = match state {
                RunState::Paused => (VmState::Running, VmState::Paused),
                _ => (VmState::Paused, VmState::Running),
            };
            // A no-op compare-and-set unless the record and the VMM disagree.
            let _ = store().update_vm_state(&vm.id, Some(from), to, None);
        }
    }
    tracing::info!(vm = %vm.name, pid = rt.pid, ?state, "found running VM");
    watch_exit(daemon, &vm.id, rt);
}

/// Watch the VMM of VM `id`; when it exits on its own (guest poweroff, crash), mark
/// the VM stopped. Exits that banger caused are recorded by `stop` itself: the
/// compare-and-set from `running` fails harmlessly then.
pub fn watch_exit(daemon: &Daemon, id: &str, runtime: VmRuntime) {
    let Some(daemon) = daemon.self_arc() else {
        return;
    };
    let id = id.to_string();
    tokio::spawn(async move {
        if daemon
            .driver
            .wait_exit(&runtime, std::time::Duration::MAX)
            .await
            .is_err()
        {
            return;
        }
        let Ok((_op, vm)) = lock_vm(&daemon, &id).await else {
            return;
        };
        // Only act if the VM still refers to this very process.
        let live = matches!(vm.state, VmState::Running | VmState::Paused);
        if !live || runtime_of(&vm).map(|r| r.pid) != Some(runtime.pid) {
            return;
        }
        agent::forget(&daemon, &id).await;
        let why = "the guest powered off or its VMM exited";
        let _ = record_halted(&daemon, &vm, vm.state, VmState::Stopped, Some(why));
        tracing::info!(vm = %vm.name, "VM stopped on its own");
    });
}
