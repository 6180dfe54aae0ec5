//! Snapshots of VMs and the clones made from them.
//!
//! * [`take`] — `POST /v1/vms/{name}/snapshot`: pause, save the VMM's state, copy the
//!   disks while the guest is frozen, resume (or stop), register the snapshot last.
//! * [`clone`] — a VM made from a snapshot: copy-on-write disks on the snapshot's, and a
//!   first start that resumes the saved guest instead of booting ([`restore`]), then gives
//!   it an identity of its own through the agent.
//! * [`disks`] — the disk copies both need.
//!
//! A snapshot's files live in `<state>/snapshots/<id>/`, written under `.<id>.tmp` and
//! renamed when complete; the store row comes last. What a crash leaves is removed by
//! [`reclaim`] at the next start.

pub mod clone;
mod disks;
pub mod restore;
mod take;
#[cfg(test)]
mod tests;

use std::path::Path;

use banger_api::{SnapshotView, VmOriginView};
use banger_store::{SnapshotRecord, StoreError, VmRecord, VmState};
use banger_vmm::{SnapshotFiles, VmRuntime};
use serde::{Deserialize, Serialize};

use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

pub use take::take;
pub(crate) use take::{Register, take_as};

/// What the daemon keeps about a snapshot besides its row (`detail_json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detail {
    /// The VMM's files.
    pub files: SnapshotFiles,
    /// Copies of the VM's disks at the instant of the snapshot, root first.
    pub disks: Vec<disks::SnapDisk>,
    /// The device set a restore must reproduce.
    pub devices: Devices,
    /// The VMM's release, when it reports one (Firecracker): its files do not move
    /// between releases.
    #[serde(default)]
    pub vmm_version: Option<String>,
}

/// The parts of a VM's device set a clone's launch must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    pub nics: usize,
    pub user_net: bool,
}

impl Detail {
    fn parse(snap: &SnapshotRecord) -> Result<Detail> {
        serde_json::from_str(&snap.detail_json).map_err(|e| {
            DaemonError::internal(format!(
                "snapshot {} has an unreadable record: {e}",
                snap.name
            ))
            .with_hint(format!(
                "remove it with `banger snapshot rm {}` and take it again",
                snap.name
            ))
        })
    }
}

/// Whether VM `vm` can be snapshotted now, and the runtime of its VMM if so. Every rule
/// is here, so the API, the CLI's errors and the docs have one place to agree with.
pub(crate) fn preconditions(daemon: &Daemon, vm: &VmRecord) -> Result<VmRuntime> {
    if !matches!(vm.state, VmState::Running | VmState::Paused) {
        return Err(
            DaemonError::conflict(format!("VM {} is {}, not running", vm.name, vm.state))
                .with_hint(format!(
                    "start it with `banger vm start {}`; a snapshot saves a running guest",
                    vm.name
                )),
        );
    }
    let runtime = crate::vms::runtime_of(vm).ok_or_else(|| {
        DaemonError::internal(format!(
            "VM {} has no runtime record; stop it and start it again",
            vm.name
        ))
    })?;
    // A bridged VM may be saved: each clone leases its own TAP, MAC and address when it
    // starts, and its agent moves the restored interface to them during Reidentify.
    // QEMU 7.2 cannot migrate a vhost-user-fs device (`migrate` answers "State blocked by
    // non-migratable device"), and a clone would need the parent's virtiofsd state too.
    if daemon.store().vm_has_shares(&vm.id)? {
        return Err(DaemonError::conflict(format!(
            "VM {} shares host directories (-v); snapshots of VMs with shared directories \
             are not supported (QEMU cannot save a virtio-fs device, and a copy-in share is \
             copied afresh at every boot)",
            vm.name
        ))
        .with_hint("snapshot a VM without -v, and copy files in with `banger vm cp`"));
    }
    for disk in daemon.store().vm_disks(&vm.id)? {
        disks::check_snapshottable(&vm.name, &disk)?;
    }
    Ok(runtime)
}

/// The user's snapshots (images' warm states are shown by `image inspect`).
pub fn list(daemon: &Daemon) -> Result<Vec<SnapshotView>> {
    Ok(user_snapshots(daemon)?.iter().map(view).collect())
}

/// Every snapshot but the images' warm states (those are the images', hidden from users).
pub(crate) fn user_snapshots(daemon: &Daemon) -> Result<Vec<SnapshotRecord>> {
    let warm: Vec<String> = daemon
        .store()
        .warm_states()?
        .into_iter()
        .map(|w| w.snapshot.id)
        .collect();
    let mut snapshots = daemon.store().list_snapshots()?;
    snapshots.retain(|s| !warm.contains(&s.id));
    Ok(snapshots)
}

/// One snapshot with the VMs made from it.
pub fn get(daemon: &Daemon, name: &str) -> Result<SnapshotView> {
    let snap = lookup(daemon, name)?;
    let mut view = view(&snap);
    view.clones = daemon.store().snapshot_clones(&snap.id)?;
    Ok(view)
}

/// Remove a snapshot no clone is built on: the row first, then its files.
pub fn remove(daemon: &Daemon, name: &str) -> Result<SnapshotView> {
    let snap = lookup(daemon, name)?;
    daemon
        .store()
        .delete_snapshot(&snap.id)
        .map_err(|e| match e {
            StoreError::SnapshotInUse { name, vms } => {
                DaemonError::conflict(format!("snapshot {name} has clones: {}", vms.join(", ")))
                    .with_hint(
                        "their disks are built on it: remove those VMs first (`banger vm rm`)",
                    )
            }
            other => other.into(),
        })?;
    // Its memory file can be as large as the VM's RAM: unlinked in the background.
    if let Err(e) = crate::trash::discard(daemon, &snap.dir) {
        tracing::warn!(snapshot = %snap.name, dir = %snap.dir.display(), error = %e, "cannot remove the snapshot's files; the next daemon start retries");
    }
    tracing::info!(snapshot = %snap.name, "snapshot removed");
    Ok(view(&snap))
}

pub fn lookup(daemon: &Daemon, name: &str) -> Result<SnapshotRecord> {
    daemon.store().get_snapshot(name)?.ok_or_else(|| {
        DaemonError::not_found(format!("no snapshot named {}", quoted(name)))
            .with_hint("`banger snapshot ls` lists your snapshots")
    })
}

/// Where VM `vm_id` came from, for `vm inspect`.
pub fn origin_view(daemon: &Daemon, vm_id: &str) -> Result<Option<VmOriginView>> {
    let Some(origin) = daemon.store().vm_origin(vm_id)? else {
        return Ok(None);
    };
    let warm_image = daemon.store().warm_image_of(&origin.snapshot_id)?;
    let snapshot = daemon
        .store()
        .get_snapshot(&origin.snapshot_id)?
        .map(|s| s.name)
        .unwrap_or(origin.snapshot_id);
    Ok(Some(VmOriginView {
        snapshot,
        restored_at: origin.restored_at,
        warm_image,
        standby_taken_at: daemon.store().standby_taken_at(vm_id)?,
    }))
}

pub fn view(snap: &SnapshotRecord) -> SnapshotView {
    SnapshotView {
        id: snap.id.clone(),
        name: snap.name.clone(),
        source_vm: snap.source_vm.clone(),
        image: snap.image_name.clone(),
        driver: snap.driver.clone(),
        vcpu: snap.vcpu,
        memory_mib: snap.memory_mib,
        disk_bytes: snap.disk_bytes,
        dir: snap.dir.display().to_string(),
        size_bytes: snap.size_bytes,
        created_at: snap.created_at.clone(),
        clones: Vec::new(),
    }
}

/// At daemon start: remove snapshot directories no row names (a snapshot whose daemon died
/// before registering it, or whose removal could not delete its files).
pub fn reclaim(daemon: &Daemon) {
    let dir = daemon.layout.snapshots_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let known: Vec<_> = match daemon.store().list_snapshots() {
        Ok(snaps) => snaps.into_iter().map(|s| s.dir).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list snapshots; leaving their directory alone");
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if known.iter().any(|k| k == &path) {
            continue;
        }
        tracing::info!(dir = %path.display(), "removing an unregistered snapshot directory");
        if let Err(e) = remove_any(&path) {
            tracing::warn!(dir = %path.display(), error = %e, "cannot remove it");
        }
    }
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
