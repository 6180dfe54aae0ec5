//! `POST /v1/vms/{name}/snapshot`: freeze the guest, save it, copy its disks, let it go on.

use std::path::Path;

use banger_api::{CreateSnapshotRequest, SnapshotView, StopVmRequest};
use banger_store::{SnapshotRecord, StoreError, VmState};
use banger_system::progress::Progress;

use super::{Detail, Devices, disks, preconditions};
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;
use crate::vms::{self, lock_vm, names};

/// Snapshot VM `name`: it is paused (if it runs), its VMM saves the guest into the
/// snapshot directory, its disks are copied while it is frozen, and it resumes — or,
/// with `req.stop`, is stopped. A paused VM stays paused. Nothing is registered unless
/// every file is complete.
pub async fn take(
    daemon: &Daemon,
    name: &str,
    req: CreateSnapshotRequest,
    progress: &dyn Progress,
) -> Result<SnapshotView> {
    take_as(daemon, name, req, Register::User, progress).await
}

/// How a finished snapshot is registered.
pub(crate) enum Register {
    /// A user's snapshot, named as asked.
    User,
    /// Its image's warm state (named `warm-<id>`, not listed as a user snapshot), taken
    /// under this key (JSON).
    Warm { key_json: String },
}

/// [`take`], registered as `register` says.
pub(crate) async fn take_as(
    daemon: &Daemon,
    name: &str,
    req: CreateSnapshotRequest,
    register_as: Register,
    progress: &dyn Progress,
) -> Result<SnapshotView> {
    // The request's own fields first: a bad name is refused whatever state the VM is in,
    // and without waiting for its lock.
    if let (Register::User, Some(n)) = (&register_as, &req.name) {
        names::validate_as(names::Named::Snapshot, n)?;
    }
    let (op, vm) = lock_vm(daemon, name).await?;
    let runtime = preconditions(daemon, &vm)?;
    let id = banger_store::new_vm_id()
        .map_err(|e| DaemonError::internal(format!("cannot draw a snapshot id: {e}")))?;
    let snap_name = match (&register_as, req.name) {
        (Register::Warm { .. }, _) => format!("warm-{id}"),
        (Register::User, Some(n)) => n,
        (Register::User, None) => default_name(&vm.name),
    };
    if daemon.store().get_snapshot(&snap_name)?.is_some() {
        return Err(exists(&snap_name));
    }
    let root = daemon.layout.snapshots_dir();
    std::fs::create_dir_all(&root)
        .map_err(|e| DaemonError::internal(format!("cannot create {}: {e}", root.display())))?;
    let final_dir = daemon.layout.snapshot_dir(&id);
    let temp_dir = root.join(format!(".{id}.tmp"));
    banger_system::fsperm::create_private_dir(&temp_dir)
        .map_err(|e| DaemonError::internal(banger_system::error_chain(&e)))?;

    let was_running = vm.state == VmState::Running;
    if was_running {
        progress.phase("pause the guest", None, None);
        daemon
            .driver
            .pause(&runtime)
            .await
            .map_err(|e| vmm_error(&vm.name, "pause", &e))?;
    }
    let saved = save(daemon, &vm, &runtime, &temp_dir, progress).await;
    // The guest goes on (or stays paused) whatever happened to the files.
    if was_running
        && !req.stop
        && let Err(e) = daemon.driver.resume(&runtime).await
    {
        tracing::warn!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot resume the VM after its snapshot");
    }
    let detail = match saved {
        Ok(detail) => detail,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp_dir);
            return Err(e);
        }
    };
    let registered = register(
        daemon,
        &vm,
        (&id, &snap_name),
        &temp_dir,
        &final_dir,
        &detail,
        &register_as,
    );
    if let Err(e) = registered {
        let _ = std::fs::remove_dir_all(&temp_dir);
        let _ = std::fs::remove_dir_all(&final_dir);
        return Err(e);
    }
    tracing::info!(vm = %vm.name, snapshot = %snap_name, "snapshot taken");
    drop(op);
    if req.stop {
        let stop = StopVmRequest {
            timeout_secs: None,
            force: true,
        };
        vms::stop(daemon, &vm.id, stop, progress).await?;
    }
    super::get(daemon, &id)
}

async fn save(
    daemon: &Daemon,
    vm: &banger_store::VmRecord,
    runtime: &banger_vmm::VmRuntime,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Detail> {
    progress.phase("save the guest's memory and devices", None, None);
    let files = daemon
        .driver
        .save_snapshot(runtime, dir)
        .await
        .map_err(|e| vmm_error(&vm.name, "save", &e))?;
    // The guest is frozen and its disks flushed: copy them now.
    let mut snap_disks = Vec::new();
    for disk in daemon.store().vm_disks(&vm.id)? {
        snap_disks.push(disks::copy_into_snapshot(
            daemon.runner.as_ref(),
            &disk,
            dir,
            progress,
        )?);
    }
    let network = daemon.store().vm_network(&vm.id)?;
    Ok(Detail {
        files,
        disks: snap_disks,
        devices: Devices {
            nics: usize::from(network.as_deref() == Some("bridge")),
            user_net: network.as_deref() == Some("user"),
        },
        vmm_version: runtime.vmm_version.clone(),
    })
}

/// Move the complete directory into place, then record it.
fn register(
    daemon: &Daemon,
    vm: &banger_store::VmRecord,
    (id, name): (&str, &str),
    temp_dir: &Path,
    final_dir: &Path,
    detail: &Detail,
    register_as: &Register,
) -> Result<()> {
    let mut detail = detail.clone();
    let moved = |p: &Path| final_dir.join(p.file_name().unwrap_or_default());
    detail.files.state = moved(&detail.files.state);
    detail.files.memory = detail.files.memory.as_deref().map(moved);
    for disk in &mut detail.disks {
        disk.path = moved(&disk.path);
    }
    let size_bytes = dir_bytes(temp_dir);
    std::fs::rename(temp_dir, final_dir).map_err(|e| {
        DaemonError::internal(format!(
            "cannot move the snapshot into {}: {e}",
            final_dir.display()
        ))
    })?;
    if let Some(parent) = final_dir.parent() {
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    let record = SnapshotRecord {
        id: id.to_string(),
        name: name.to_string(),
        source_vm: vm.name.clone(),
        image_name: vm.image_name.clone(),
        driver: vm.driver.clone().unwrap_or_else(|| "qemu".into()),
        vcpu: vm.vcpu,
        memory_mib: vm.memory_mib,
        disk_bytes: vm.disk_bytes,
        dir: final_dir.to_path_buf(),
        detail_json: serde_json::to_string(&detail)
            .map_err(|e| DaemonError::internal(format!("cannot encode the snapshot: {e}")))?,
        size_bytes,
        created_at: banger_store::now_rfc3339(),
    };
    let store = daemon.store();
    let inserted = match register_as {
        Register::User => store.insert_snapshot(&record),
        Register::Warm { key_json } => store.insert_warm_state(&record, key_json),
    };
    inserted.map_err(|e| match e {
        StoreError::SnapshotExists(n) => exists(&n),
        other => other.into(),
    })
}

/// Bytes the files in `dir` take on the host.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| banger_images::vmdisk::used_bytes(&e.path()).ok())
        .sum()
}

/// `<vm>-<UTC time>`, cut so it stays a DNS label.
fn default_name(vm: &str) -> String {
    let stamp: String = banger_store::now_rfc3339()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let head: String = vm.chars().take(63 - 1 - stamp.len()).collect();
    format!("{}-{stamp}", head.trim_end_matches('-'))
}

fn exists(name: &str) -> DaemonError {
    DaemonError::conflict(format!("a snapshot named {} already exists", quoted(name)))
        .with_field("name")
        .with_hint(format!(
            "pick another name, or remove it with `banger snapshot rm {name}`"
        ))
}

fn vmm_error(vm: &str, what: &str, e: &banger_vmm::VmmError) -> DaemonError {
    DaemonError::internal(format!(
        "cannot {what} VM {vm} for its snapshot: {}",
        banger_system::error_chain(e)
    ))
}
