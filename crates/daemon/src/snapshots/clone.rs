//! A VM made from a snapshot (`vm run --from`, `vm clone`): the snapshot's image and
//! resources, disks copy-on-write on the snapshot's, and a first start that restores.

use banger_api::{CreateVmRequest, VmView};
use banger_store::{IntentOp, SnapshotRecord, StoreError, VmRecord, VmState};
use banger_system::progress::Progress;
use banger_vmm::DriverKind;

use super::{Detail, disks, lookup};
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;
use crate::vms;
use crate::vms::host_fit::Asked;

/// Create a clone of snapshot `req.from`; with `req.start`, start (restore) it too.
pub async fn create(
    daemon: &Daemon,
    req: CreateVmRequest,
    progress: &dyn Progress,
) -> Result<VmView> {
    let Some(from) = req.from.as_deref() else {
        return Err(DaemonError::internal("a clone needs a snapshot"));
    };
    // The request's own fields first: a bad one is refused before any state is read.
    for (field, given) in [
        ("image", req.image.is_some()),
        ("vcpu", req.vcpu.is_some()),
        ("memory_mib", req.memory_mib.is_some()),
        ("disk", req.disk.is_some()),
        ("vmm", req.vmm.is_some()),
        // A restore needs the snapshot's exact device set: no new virtio-fs devices.
        ("shares", !req.shares.is_empty()),
    ] {
        if given {
            return Err(DaemonError::invalid(format!(
                "{field} cannot be chosen for a clone: it is snapshot {}'s",
                quoted(from)
            ))
            .with_field(field)
            .with_hint("omit it; `banger snapshot inspect` shows the snapshot's"));
        }
    }
    if let Some(name) = &req.name {
        vms::names::validate(name)?;
    }
    let ports = crate::net::parse_ports(&req.publish)?;
    if !ports.is_empty() {
        return Err(DaemonError::invalid(
            "a clone cannot publish ports yet; publish them from a VM that boots (`vm run -p`)",
        )
        .with_field("publish"));
    }
    let snap = lookup(daemon, from)?;
    let name = vms::choose_name(daemon, req.name)?;
    let reason = format!(
        "a clone of snapshot {}, which {} wrote",
        snap.name, snap.driver
    );
    let made = make(daemon, &snap, name, reason, progress).await?;
    if req.start {
        return start_or_remove(daemon, &made, progress)
            .await
            .map_err(|e| e.0);
    }
    vms::get(daemon, &made)
}

/// Start (restore) clone `id`; a clone that could not be restored is of no use: it is
/// removed, and the error says why (the snapshot is untouched).
pub(crate) async fn start_or_remove(
    daemon: &Daemon,
    id: &str,
    progress: &dyn Progress,
) -> std::result::Result<VmView, RestoreFailed> {
    match vms::start(daemon, id, progress).await {
        Ok(vm) => Ok(vm),
        Err(e) => {
            if let Err(rm) = vms::remove(daemon, id, true).await {
                tracing::warn!(vm = %id, error = %rm.message, "cannot remove a clone whose restore failed");
            }
            Err(RestoreFailed(e))
        }
    }
}

/// A clone's first start failed; the clone is gone.
pub(crate) struct RestoreFailed(pub DaemonError);

/// Register VM `name` as a clone of `snap` (not started), with `reason` as its driver's
/// reason; its id.
pub(crate) async fn make(
    daemon: &Daemon,
    snap: &SnapshotRecord,
    name: String,
    reason: String,
    progress: &dyn Progress,
) -> Result<String> {
    make_as(daemon, snap, name, reason, false, progress).await
}

/// [`make`]; with `standby`, registered as a waiting standby (`warm::standby`), hidden
/// from users from its first moment.
pub(crate) async fn make_as(
    daemon: &Daemon,
    snap: &SnapshotRecord,
    name: String,
    reason: String,
    standby: bool,
    progress: &dyn Progress,
) -> Result<String> {
    vms::host_fit::check_memory(daemon, snap.memory_mib, Asked::Snapshot(&snap.name))?;
    let detail = Detail::parse(snap)?;
    let driver: DriverKind = snap.driver.parse().map_err(|e: String| {
        DaemonError::internal(format!("snapshot {} names a bad driver: {e}", snap.name))
    })?;
    daemon.driver.get(driver).map_err(|e| {
        DaemonError::unavailable(format!(
            "snapshot {} was taken under {driver}, which this host cannot run: {}",
            snap.name,
            banger_system::error_chain(&e)
        ))
        .with_hint("`banger doctor` checks the host")
    })?;
    let id = banger_store::new_vm_id()
        .map_err(|e| DaemonError::internal(format!("cannot draw a VM id: {e}")))?;
    let dir = daemon.layout.vm_dir(&id);
    let now = banger_store::now_rfc3339();
    let record = VmRecord {
        id: id.clone(),
        name: name.clone(),
        image_name: snap.image_name.clone(),
        state: VmState::Created,
        vcpu: snap.vcpu,
        memory_mib: snap.memory_mib,
        disk_bytes: snap.disk_bytes,
        dir: dir.clone(),
        driver: Some(snap.driver.clone()),
        driver_reason: Some(reason),
        runtime_json: None,
        boot_json: None,
        last_error: None,
        created_at: now.clone(),
        updated_at: now,
        started_at: None,
    };
    daemon.store().begin_intent(&id, IntentOp::Create, &dir)?;
    let laid_out = async {
        banger_system::fsperm::create_private_dir(&dir)
            .map_err(|e| DaemonError::internal(banger_system::error_chain(&e)))?;
        progress.phase("make copy-on-write disks on the snapshot's", None, None);
        let vm_disks = disks::make_clone_disks(driver, &detail.disks, &dir, progress)?;
        daemon
            .store()
            .insert_clone_as(&record, &vm_disks, &snap.id, standby)
            .map_err(|e| match e {
                StoreError::VmExists(_) => vms::exists(&name),
                other => other.into(),
            })
    }
    .await;
    if let Err(e) = laid_out {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = daemon.store().end_intent(&id);
        return Err(e);
    }
    tracing::info!(vm = %name, id = %id, snapshot = %snap.name, "created a clone");
    Ok(id)
}
