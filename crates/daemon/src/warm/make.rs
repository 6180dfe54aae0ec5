//! `POST /v1/images/{name}/warm`: boot the image once with default resources, snapshot the
//! agent-ready guest as the image's warm state, and remove the VM that was booted for it.

use banger_api::{CreateSnapshotRequest, CreateVmRequest, ImageView};
use banger_system::progress::{NoProgress, Progress};
use banger_vmm::DriverKind;

use super::key_for;
use crate::error::{DaemonError, Result};
use crate::snapshots::{Register, take_as};
use crate::state::Daemon;
use crate::vms;

/// One warm-up at a time: each boots a guest, which is what this host has least of.
static WARMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The name of the helper VM booting for the warm-up under way, if any.
static HELPER: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// How VM `name`'s guest RAM is backed: a warm-up's helper keeps it in a file of its VM
/// directory, mapped shared, so its snapshot saves device state only and the file becomes
/// the warm state's memory, which every VM restored from it maps copy-on-write (sharing the
/// pages). Every other VM gets anonymous memory (its snapshots keep RAM in the stream).
pub fn guest_memory(name: &str) -> banger_vmm::GuestMemory {
    let helper = HELPER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match helper.as_deref() {
        Some(h) if h == name => banger_vmm::GuestMemory::SharedFile,
        _ => banger_vmm::GuestMemory::Private,
    }
}

/// Marks the helper VM for [`guest_memory`] while it lives.
struct HelperMark;

impl HelperMark {
    fn set(name: &str) -> HelperMark {
        *HELPER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(name.to_string());
        HelperMark
    }
}

impl Drop for HelperMark {
    fn drop(&mut self) {
        *HELPER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// `[images] warm = "on-first-use"`: warm image `image` in the background, unless a
/// warm-up is already under way (it is then warmed by the next VM that finds none).
pub fn in_background(daemon: &Daemon, image: &str) {
    let Some(daemon) = daemon.self_arc() else {
        return;
    };
    let image = image.to_string();
    tokio::spawn(async move {
        // Checked again under the lock: another VM's warm-up may have finished meanwhile.
        let Ok(_one) = WARMING.try_lock() else {
            return;
        };
        if matches!(daemon.store().current_warm_state(&image), Ok(Some(_))) {
            return;
        }
        drop(_one);
        tracing::info!(image = %image, "warming the image on its first use");
        if let Err(e) = warm(&daemon, &image, &NoProgress).await {
            tracing::warn!(image = %image, error = %e.message, "cannot warm the image");
        }
    });
}

/// Make (or remake) image `image`'s warm state, replacing the current one; the image with
/// it. `progress`
/// hears the image build (a catalogued image not built yet), the boot and the save.
pub async fn warm(daemon: &Daemon, image: &str, progress: &dyn Progress) -> Result<ImageView> {
    let _one = WARMING.lock().await;
    let image = crate::images::ensure(daemon, image, progress).await?;
    let selection = daemon.driver.select_for_request(daemon.config.vmm)?;
    let id = banger_store::new_vm_id()
        .map_err(|e| DaemonError::internal(format!("cannot draw a VM id: {e}")))?;
    let helper = format!("warming-{id}");
    progress.phase(
        &format!("boot image {} once with default resources", image.name),
        None,
        None,
    );
    let req = CreateVmRequest {
        name: Some(helper.clone()),
        image: Some(image.name.clone()),
        vmm: Some(selection.driver.as_str().to_string()),
        start: true,
        cold: true,
        ..CreateVmRequest::default()
    };
    // Held under WARMING: one helper at a time.
    let _mark = HelperMark::set(&helper);
    let booted = vms::create(daemon, req, progress).await;
    let result = match booted {
        Ok(vm) => snapshot(daemon, &image, &vm, progress).await,
        Err(e) => Err(e),
    };
    // The helper goes whatever happened; a failed create left nothing behind.
    let helper_left = daemon.store().get_vm(&helper)?.is_some();
    if helper_left && let Err(e) = vms::remove(daemon, &helper, true).await {
        tracing::warn!(vm = %helper, error = %e.message, "cannot remove the VM booted to warm an image");
    }
    result?;
    // The replaced state's standbys go now, so its files can go with the sweep.
    super::standby::remove_stale(daemon).await;
    super::sweep(daemon);
    super::standby::refill(daemon, &image.name);
    tracing::info!(image = %image.name, "image warmed");
    crate::images::get(daemon, &image.name)
}

/// Save helper VM `vm` as `image`'s warm state, under the key of what it really got.
async fn snapshot(
    daemon: &Daemon,
    image: &banger_store::ImageRecord,
    vm: &banger_api::VmView,
    progress: &dyn Progress,
) -> Result<()> {
    let record = vms::lookup(daemon, &vm.name)?;
    let driver: DriverKind = record
        .driver
        .as_deref()
        .unwrap_or("qemu")
        .parse()
        .map_err(|e: String| DaemonError::internal(format!("VM {}: {e}", vm.name)))?;
    let network = daemon
        .store()
        .vm_network(&record.id)?
        .unwrap_or_else(|| "none".to_string());
    let key = key_for(
        daemon,
        image,
        driver,
        (record.vcpu, record.memory_mib, record.disk_bytes),
        network,
    );
    let key_json = serde_json::to_string(&key)
        .map_err(|e| DaemonError::internal(format!("cannot encode a warm key: {e}")))?;
    let req = CreateSnapshotRequest {
        name: None,
        stop: true,
    };
    take_as(daemon, &vm.name, req, Register::Warm { key_json }, progress).await?;
    Ok(())
}
