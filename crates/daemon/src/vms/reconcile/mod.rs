//! Keeping the store true to the host: at daemon start (VMs that kept running, or
//! died, while no daemon watched) and while running (a guest powering itself off).

use std::sync::Arc;

use banger_store::VmState;
use banger_vmm::{VmRuntime, VmmDriver};

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
            Some(rt) if daemon.driver.is_alive(&rt) => {
                if vm.state == VmState::Starting {
                    // A boot was cut short by the daemon's death but the VMM lives: call
                    // it running; the agent connection is made on first use.
                    let _ = daemon.store().update_vm_state(
                        &vm.id,
                        Some(vm.state),
                        VmState::Running,
                        None,
                    );
                }
                tracing::info!(vm = %vm.name, pid = rt.pid, "found running VM");
                watch_exit(daemon, &vm.id, rt);
            }
            _ => {
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
        if vm.state != VmState::Running || runtime_of(&vm).map(|r| r.pid) != Some(runtime.pid) {
            return;
        }
        agent::forget(&daemon, &id).await;
        let why = "the guest powered off or its VMM exited";
        let _ = record_halted(&daemon, &vm, VmState::Running, VmState::Stopped, Some(why));
        tracing::info!(vm = %vm.name, "VM stopped on its own");
    });
}
