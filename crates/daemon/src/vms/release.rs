//! The one way out of the running world. Every path that ends with no VMM — `stop`, `rm`, the
//! exit watcher, a failed boot, reconciliation — goes through [`release`], so whatever a
//! running VM holds on the host is given back exactly once per path and none can forget a
//! piece.
//!
//! A VM holds its agent connection, its runtime record, its networking (TAP, address
//! lease, published ports; NAT and the bridge with the last bridged VM — see
//! `net/release.rs`), the `virtiofsd` serving each of its shared directories and its cgroup
//! (`cgroup.rs`). All are released here, before the state changes, and each release is
//! idempotent: a daemon that dies half-way through releases again on reconciliation, since
//! the VM is still recorded active (and `net::release::sweep` finishes a network release
//! that could not be done).

use banger_store::{VmRecord, VmState};

use super::agent;
use crate::error::Result;
use crate::state::Daemon;

/// How long a `virtiofsd` gets after SIGTERM (and again after SIGKILL).
const FILE_SERVER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Give back what VM `vm` holds and move it from `from` to `to` (compare-and-set: if someone
/// else changed the state meanwhile, the store refuses and nothing is recorded), with `why`
/// as its `last_error`. The caller has made sure the VMM is gone.
pub async fn release(
    daemon: &Daemon,
    vm: &VmRecord,
    from: VmState,
    to: VmState,
    why: Option<&str>,
) -> Result<()> {
    agent::forget(daemon, &vm.id).await;
    if let Err(e) = crate::net::release::release(daemon, &vm.id, &vm.name).await {
        // The VMM is gone either way; what could not be given back stays recorded and is
        // given back by the next release or the daemon's next start.
        tracing::warn!(vm = %vm.name, error = %e.message, "network not fully released");
    }
    // Each virtiofsd quits when its QEMU disconnects; one that did not (its QEMU never
    // connected, or it hangs) must not outlive the VM.
    if daemon.store().vm_has_shares(&vm.id).unwrap_or(true)
        && let Some(binary) = banger_vmm::virtiofs::find_binary()
    {
        banger_vmm::virtiofs::spawn::reap(&binary, &vm.dir, &[], FILE_SERVER_GRACE).await;
    }
    // Last of the processes' things: the group is empty only once they are all gone.
    super::cgroup::release(daemon, vm).await;
    // The runtime record goes with the state change, in one transaction.
    daemon.store().mark_ended(
        &vm.id,
        from,
        to,
        why,
        vm.driver.as_deref(),
        vm.boot_json.as_deref(),
    )?;
    Ok(())
}

/// Drop the VM's runtime record (its VMM is gone), keeping its driver and boot timings.
pub fn forget_runtime(daemon: &Daemon, vm: &VmRecord) -> Result<()> {
    daemon
        .store()
        .set_vm_runtime(&vm.id, vm.driver.as_deref(), None, vm.boot_json.as_deref())?;
    Ok(())
}
