//! One lifecycle operation at a time per VM, and how a forced one gets past a hung one.
//!
//! `start`, `stop`, `rm` and the exit watcher take the VM's lock. An operation can wait a long
//! time while holding it (a boot waits for the agent, a graceful stop for the guest), so a
//! forced `stop --force` or `rm -f` does not queue behind it: it raises the VM's cancel
//! counter first, which makes the holder abandon its waits (a boot kills the VMM it started
//! and fails; a graceful stop goes straight to the kill), release the lock, and let the forced
//! operation run.

use std::future::Future;

use banger_store::VmRecord;
use tokio::sync::{OwnedMutexGuard, watch};

use super::lookup;
use crate::error::Result;
use crate::state::Daemon;

/// The VM's lock, held for one operation, with that operation's view of cancellation.
pub struct VmLock {
    _guard: OwnedMutexGuard<()>,
    cancel: watch::Receiver<u64>,
}

impl VmLock {
    /// Run `work` unless a forced operation on the same VM cancels it first (`None`).
    pub async fn unless_cancelled<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let cancel = &mut self.cancel;
        tokio::select! {
            done = work => Some(done),
            _ = cancel.changed() => None,
        }
    }
}

/// Look up VM `name` (or id), take its lifecycle lock, and read it again under the lock:
/// another operation may have changed it while we waited.
pub async fn lock_vm(daemon: &Daemon, name: &str) -> Result<(VmLock, VmRecord)> {
    lock(daemon, name, false).await
}

/// [`lock_vm`] for a forced operation: whoever holds the lock is told to give up first.
pub async fn lock_vm_forced(daemon: &Daemon, name: &str) -> Result<(VmLock, VmRecord)> {
    lock(daemon, name, true).await
}

async fn lock(daemon: &Daemon, name: &str, force: bool) -> Result<(VmLock, VmRecord)> {
    let vm = lookup(daemon, name)?;
    let slot = daemon.slot(&vm.id);
    if force {
        slot.cancel.send_modify(|generation| *generation += 1);
    }
    let guard = slot.op.clone().lock_owned().await;
    // Subscribed under the lock: only cancellations from now on concern this operation.
    let mut cancel = slot.cancel.subscribe();
    cancel.mark_unchanged();
    Ok((
        VmLock {
            _guard: guard,
            cancel,
        },
        lookup(daemon, &vm.id)?,
    ))
}
