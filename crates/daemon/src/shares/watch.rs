//! Noticing at once that a live share's `virtiofsd` died while its VM runs.
//!
//! Each live share gets a task that waits (through a pidfd) for the processes serving it
//! — a sandboxed `virtiofsd` is a launcher and its child — to exit. When they have and the
//! VM's VMM still runs, the share is recorded as down in the store (`vm ls` and
//! `vm inspect` show it), with `virtiofsd`'s last words, and one line is logged. QEMU 7.2
//! cannot reconnect a `vhost-user-fs` device to a new `virtiofsd`: the way back is a
//! restart of the VM, which the reason says. Started with every boot and again by a
//! restarted daemon for each VM it adopts; an exit caused by banger (stop, rm, the VM
//! powering off) finds the VM no longer running and records nothing.

use std::time::Duration;

use banger_store::{Delivery, VmRecord, VmState};
use banger_vmm::process::{self, ProcessIdentity};
use banger_vmm::virtiofs::{self, ShareSpec};

use crate::state::Daemon;
use crate::vms::{lock_vm, runtime_of};

/// How long a VMM whose file server just exited gets to exit too before the share counts
/// as down: `virtiofsd` also exits when QEMU closes its socket on the way out.
const VMM_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Watch the `virtiofsd` of each live share of VM `vm` (running, its runtime recorded).
pub fn watch(daemon: &Daemon, vm: &VmRecord) {
    let Some(daemon) = daemon.self_arc() else {
        return;
    };
    let Some(binary) = virtiofs::find_binary() else {
        return;
    };
    let shares = match daemon.store().vm_shares(&vm.id) {
        Ok(shares) => shares,
        Err(e) => {
            tracing::warn!(vm = %vm.name, error = %e, "cannot read the VM's shares to watch them");
            return;
        }
    };
    let Some(runtime) = runtime_of(vm) else {
        return;
    };
    for (position, share) in shares.into_iter().enumerate() {
        if share.delivery != Delivery::VirtioFs {
            continue;
        }
        let spec = ShareSpec {
            tag: ShareSpec::tag_for(position),
            host_dir: share.host_path,
            read_only: share.read_only,
        };
        // No log: no virtiofsd was started for this VM (a driver that serves shares
        // otherwise), so there is nothing to watch.
        if !spec.log(&vm.dir).exists() {
            continue;
        }
        let servers = match virtiofs::spawn::find_serving(&binary, &vm.dir, &spec) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(vm = %vm.name, share = %share.guest_path, error = %e, "cannot find the share's virtiofsd to watch it");
                continue;
            }
        };
        let daemon = daemon.clone();
        let (id, vm_dir, guest) = (vm.id.clone(), vm.dir.clone(), share.guest_path);
        let runtime = runtime.clone();
        tokio::spawn(async move {
            wait_all(&servers).await;
            // The VMM on its way out takes its file servers with it: not a share failure.
            if !matches!(
                runtime.wait_exit(VMM_EXIT_GRACE).await,
                Ok(banger_vmm::WaitOutcome::StillRunning)
            ) {
                return;
            }
            let Ok((_op, vm)) = lock_vm(&daemon, &id).await else {
                return;
            };
            // Only this very run of the VM: a stop, rm or restart meanwhile reaped it.
            let active = matches!(vm.state, VmState::Running | VmState::Paused);
            if !active || runtime_of(&vm).map(|r| r.pid) != Some(runtime.pid) {
                return;
            }
            let last = virtiofs::spawn::last_words(&vm_dir, &spec);
            let why = super::down_reason(&vm.name, &guest, &last);
            tracing::warn!(vm = %vm.name, share = %guest, last_words = %last, "a share's virtiofsd exited while its VM runs: the share is down until the VM restarts");
            if let Err(e) = daemon.store().set_share_down(&id, position, Some(&why)) {
                tracing::warn!(vm = %vm.name, share = %guest, error = %e, "cannot record the share as down");
            }
        });
    }
}

/// Wait until every one of `servers` has exited (none: at once).
async fn wait_all(servers: &[ProcessIdentity]) {
    for server in servers {
        // An error means the process cannot be watched; its being gone is what is asked.
        let _ = process::wait_exit(*server, Duration::MAX).await;
    }
}
