//! `POST /v1/vms`: validate, lay out the VM directory and disks, register, and
//! (with `start`) boot.
//!
//! The directory is recorded as a `create` intent before it exists and the VM is registered
//! last, ending the intent in the same transaction: a daemon killed in between leaves an
//! intent that reconciliation turns into "remove that directory".

use banger_api::{CreateVmRequest, VmView};
use banger_store::{ImageRecord, IntentOp, StoreError, VmRecord, VmState};
use banger_system::progress::Progress;

use super::host_fit::{self, Asked};
use super::{names, start, view};
use crate::disks;
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

/// Create a VM; with `req.start`, boot it too. `progress` hears the image build (when
/// the image is catalogued but not built yet) and the boot phases.
pub async fn create(
    daemon: &Daemon,
    req: CreateVmRequest,
    progress: &dyn Progress,
) -> Result<VmView> {
    if req.from.is_some() {
        return crate::snapshots::clone::create(daemon, req, progress).await;
    }
    // The request's own fields first: a bad one is refused before any state is read.
    if let Some(name) = &req.name {
        names::validate(name)?;
    }
    let (vcpu, memory_mib, disk_bytes) =
        resources(daemon, req.vcpu, req.memory_mib, req.disk.as_deref())?;
    let ports = crate::net::parse_ports(&req.publish)?;
    let name = choose_name(daemon, req.name.clone())?;
    if req.start {
        // Before anything is made: a busy port leaves no VM behind.
        daemon
            .net
            .check_ports(&name, &crate::net::attach::mappings(&ports))?;
    }
    // Chosen now and kept for the VM's life: a VM never moves between VMMs.
    let preference = match req.vmm.as_deref() {
        None => daemon.config.vmm,
        // The parser's own error quotes the whole text: this one shortens it.
        Some(text) => text.parse().map_err(|_: String| {
            DaemonError::invalid(format!(
                "vmm {} is not a VMM: use auto, qemu or firecracker",
                quoted(text)
            ))
            .with_field("vmm")
        })?,
    };
    let selection = daemon.driver.select_for_request(preference)?;
    let shares = crate::shares::validate(daemon, &req.shares, selection.driver)?;
    let image_name = req
        .image
        .clone()
        .unwrap_or_else(|| daemon.config.default_image_name_resolved().value);
    let image = crate::images::ensure(daemon, &image_name, progress).await?;
    let mut warm_later = false;
    let cold_reason = match warm_or_cold(
        daemon,
        &req,
        (&image, &selection),
        (vcpu, memory_mib, disk_bytes),
        (&shares, &ports),
    )? {
        crate::warm::Choice::Cold(None) => {
            warm_later = first_use_warms(daemon, &req, &shares, &ports);
            None
        }
        crate::warm::Choice::Cold(reason) => reason,
        crate::warm::Choice::Restore(state) => {
            use crate::warm::standby;
            // A standby kept restored is handed over whole; the pool refills after.
            if req.start
                && let Some(id) = standby::take(daemon, &state, &name).await?
            {
                standby::refill(daemon, &image.name);
                return super::get(daemon, &id);
            }
            let restored =
                restore_warm(daemon, &state, &image.name, &name, req.start, progress).await;
            standby::refill(daemon, &image.name);
            match restored {
                Ok(vm) => return Ok(vm),
                Err(reason) => Some(reason),
            }
        }
    };

    let id = banger_store::new_vm_id()
        .map_err(|e| DaemonError::internal(format!("cannot draw a VM id: {e}")))?;
    let dir = daemon.layout.vm_dir(&id);
    let record = VmRecord {
        id: id.clone(),
        name: name.clone(),
        image_name: image.name.clone(),
        state: VmState::Created,
        vcpu,
        memory_mib,
        disk_bytes,
        dir: dir.clone(),
        driver: Some(selection.driver.as_str().to_string()),
        driver_reason: Some(selection.reason.clone()),
        runtime_json: None,
        boot_json: None,
        last_error: None,
        created_at: banger_store::now_rfc3339(),
        updated_at: banger_store::now_rfc3339(),
        started_at: None,
    };
    daemon.store().begin_intent(&id, IntentOp::Create, &dir)?;
    fault_point!(daemon, CreateIntentRecorded);
    // Firecracker reads only raw images; QEMU may get a qcow2 overlay of the image.
    let allow_qcow2 = selection.driver == banger_vmm::DriverKind::Qemu;
    let extras = Extras {
        ports: &ports,
        shares: &shares,
    };
    if let Err(e) = lay_out(daemon, &record, &image, allow_qcow2, &extras, progress).await {
        // Nothing refers to the directory: remove it so a failed create leaves no trace.
        let _ = std::fs::remove_dir_all(&dir);
        let _ = daemon.store().end_intent(&id);
        return Err(e);
    }
    tracing::info!(vm = %name, id = %id, image = %image.name, driver = %selection.driver, reason = %selection.reason, "created VM");
    if let Some(reason) = &cold_reason {
        tracing::info!(vm = %name, reason = %reason, "booting cold although the image is warm");
        daemon.store().set_cold_reason(&id, reason)?;
    }

    let record = match req.start {
        true => {
            let vm = start::boot(daemon, &id, progress).await;
            // After this VM's boot, never before it: the warm-up is a boot of its own.
            if warm_later {
                crate::warm::in_background(daemon, &image.name);
            }
            vm?
        }
        false => record,
    };
    // The caller says how each share reaches the guest (live, or a copy and why).
    Ok(VmView {
        cold_reason,
        shares: crate::shares::views(daemon, &record)?,
        ..view(&record)
    })
}

/// Whether this VM, booting cold because its image has no warm state, should warm the
/// image (`[images] warm = "on-first-use"`): only a VM whose key a warm state would match
/// (default resources, no shares, no published ports) does.
fn first_use_warms(
    daemon: &Daemon,
    req: &CreateVmRequest,
    shares: &[banger_store::VmShare],
    ports: &[String],
) -> bool {
    daemon.config.images.warm == banger_config::WarmPolicy::OnFirstUse
        && !req.cold
        && shares.is_empty()
        && ports.is_empty()
        && req.vcpu.is_none_or(|v| v == daemon.defaults.vcpu.value)
        && req
            .memory_mib
            .is_none_or(|m| m == daemon.defaults.memory_mib.value)
        && req.disk.is_none()
}

/// Whether a new VM restores from its image's warm state, or boots cold (with the reason
/// when the image had one).
fn warm_or_cold(
    daemon: &Daemon,
    req: &CreateVmRequest,
    (image, selection): (&ImageRecord, &banger_vmm::Selection),
    (vcpu, memory_mib, disk_bytes): (u32, u64, u64),
    (shares, ports): (&[banger_store::VmShare], &[String]),
) -> Result<crate::warm::Choice> {
    if req.cold {
        let had = daemon.store().current_warm_state(&image.name)?.is_some();
        return Ok(crate::warm::Choice::Cold(
            had.then(|| "a cold boot was asked for (--cold)".to_string()),
        ));
    }
    let ineligible = if !shares.is_empty() {
        Some("it shares host directories (-v), which a saved guest has no device for".into())
    } else if !ports.is_empty() {
        Some("it publishes ports (-p), which restored VMs cannot do yet".into())
    } else {
        None
    };
    let wanted = crate::warm::Wanted {
        image,
        driver: selection.driver,
        vcpu,
        memory_mib,
        disk_bytes,
        ineligible,
    };
    crate::warm::choose(daemon, &wanted)
}

/// VM `name` made from image `image`'s warm state (and started, with `start`). `Err` is
/// why it could not be: the state is then retired and the caller boots cold.
async fn restore_warm(
    daemon: &Daemon,
    state: &banger_store::WarmState,
    image: &str,
    name: &str,
    start: bool,
    progress: &dyn Progress,
) -> std::result::Result<VmView, String> {
    use crate::snapshots::clone;
    let reason = format!("restored from image {image}'s warm state");
    let failed = |e: DaemonError| format!("restoring the warm state failed: {}", e.message);
    let id = clone::make(daemon, &state.snapshot, name.to_string(), reason, progress)
        .await
        .map_err(failed)?;
    // The whole view, with its origin: `vm run --timings` tells a restore from a boot.
    let made = match start {
        true => clone::start_or_remove(daemon, &id, progress)
            .await
            .map_err(|e| failed(e.0))
            .and_then(|_| super::get(daemon, &id).map_err(failed)),
        false => super::get(daemon, &id).map_err(failed),
    };
    if let Err(why) = &made {
        crate::warm::retire(daemon, state, why);
    }
    made
}

/// What a VM is registered with besides its disks.
struct Extras<'a> {
    ports: &'a [String],
    shares: &'a [banger_store::VmShare],
}

/// The VM's directory and disks, then its row with its disks, published ports and shared
/// directories (which ends the `create` intent).
async fn lay_out(
    daemon: &Daemon,
    record: &VmRecord,
    image: &ImageRecord,
    allow_qcow2: bool,
    extras: &Extras<'_>,
    progress: &dyn Progress,
) -> Result<()> {
    banger_system::fsperm::create_private_dir(&record.dir)
        .map_err(|e| DaemonError::internal(banger_system::error_chain(&e)))?;
    fault_point!(daemon, CreateDirMade);
    let vm_disks = disks::create_vm_disks(
        daemon.runner.as_ref(),
        image,
        &record.dir,
        record.disk_bytes,
        allow_qcow2,
        progress,
    )?;
    fault_point!(daemon, CreateDiskMade);
    daemon
        .store()
        .insert_vm_sharing(record, &vm_disks, extras.ports, extras.shares)
        .map_err(|e| match e {
            StoreError::VmExists(_) => exists(&record.name),
            other => other.into(),
        })
}

/// The new VM's name: the one asked for, valid and free, or a generated free one.
pub(crate) fn choose_name(daemon: &Daemon, asked: Option<String>) -> Result<String> {
    match asked {
        Some(name) => {
            names::validate(&name)?;
            if daemon.store().get_vm(&name)?.is_some() {
                return Err(exists(&name));
            }
            Ok(name)
        }
        None => {
            let store = daemon.store();
            Ok(names::generate(|candidate| {
                matches!(store.get_vm(candidate), Ok(Some(_)))
            }))
        }
    }
}

/// A VM of that name is already registered.
pub(crate) fn exists(name: &str) -> DaemonError {
    DaemonError::conflict(format!("a VM named {} already exists", quoted(name)))
        .with_field("name")
        .with_hint(format!(
            "pick another name, or remove that VM with `banger vm rm -f {name}`"
        ))
}

/// Requested resources, or the resolved defaults, checked against sane bounds and, for
/// memory, against the host's.
fn resources(
    daemon: &Daemon,
    vcpu: Option<u32>,
    memory: Option<u64>,
    disk: Option<&str>,
) -> Result<(u32, u64, u64)> {
    let vcpu = vcpu.unwrap_or(daemon.defaults.vcpu.value);
    let (lo, hi) = banger_config::VCPU_RANGE;
    if !(lo..=hi).contains(&vcpu) {
        return Err(
            DaemonError::invalid(format!("vcpu {vcpu} is out of range: use {lo} to {hi}"))
                .with_field("vcpu"),
        );
    }
    let asked = match memory {
        Some(_) => Asked::Request,
        None => Asked::Default(daemon.defaults.memory_mib.source),
    };
    let memory = memory.unwrap_or(daemon.defaults.memory_mib.value);
    let (lo, hi) = banger_config::MEMORY_MIB_RANGE;
    if !(lo..=hi).contains(&memory) {
        return Err(DaemonError::invalid(format!(
            "memory_mib {memory} MiB is out of range: use {lo} to {hi} MiB"
        ))
        .with_field("memory_mib"));
    }
    host_fit::check_memory(daemon, memory, asked)?;
    let disk = match disk {
        None => daemon.defaults.disk_bytes.value,
        Some(text) => banger_config::parse_size(text).map_err(|e| {
            DaemonError::invalid(format!("disk {} {e}", quoted(text)))
                .with_field("disk")
                .with_hint("write a size like 8G or 512M, or a number of bytes")
        })?,
    };
    if !(banger_config::DISK_MIN_BYTES..=banger_config::DISK_MAX_BYTES).contains(&disk) {
        return Err(DaemonError::invalid(format!(
            "disk {} is out of range: use {} to {}",
            banger_config::format_size(disk),
            banger_config::format_size(banger_config::DISK_MIN_BYTES),
            banger_config::format_size(banger_config::DISK_MAX_BYTES)
        ))
        .with_field("disk"));
    }
    Ok((vcpu, memory, disk))
}
