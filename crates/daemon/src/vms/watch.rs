//! Noticing a VMM that exits on its own (guest power-off, crash) while the daemon runs.

use std::time::Duration;

use banger_store::VmState;
use banger_vmm::VmRuntime;

use super::{lock_vm, release, runtime_of};
use crate::state::Daemon;

/// Watch the VMM of VM `id`; when it exits on its own, release the VM as stopped. Exits that
/// banger caused are released by `stop` itself: the compare-and-set from `running` then fails
/// harmlessly.
pub fn watch_exit(daemon: &Daemon, id: &str, runtime: VmRuntime) {
    let Some(daemon) = daemon.self_arc() else {
        return;
    };
    let id = id.to_string();
    tokio::spawn(async move {
        if daemon
            .driver
            .wait_exit(&runtime, Duration::MAX)
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
        let why = "the guest powered off or its VMM exited";
        let _ = release::release(&daemon, &vm, VmState::Running, VmState::Stopped, Some(why)).await;
        tracing::info!(vm = %vm.name, "VM stopped on its own");
    });
}
