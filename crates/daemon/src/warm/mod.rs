//! Warm images: an image booted once to agent-ready with default resources and kept as a
//! snapshot (its *warm state*), so that `vm run` of that image restores in a fraction of
//! a cold boot instead of booting.
//!
//! * [`make`] — `POST /v1/images/{name}/warm`: boot a helper VM, snapshot it under its
//!   [`key::WarmKey`], remove the helper.
//! * [`choose`] — at `vm create`: restore from the warm state only when the new VM's key
//!   equals the stored one; otherwise boot cold and keep the reason for `vm inspect`.
//!
//! A warm state is a snapshot row linked to its image (`image_warm`), hidden from
//! `snapshot ls`; its VMs are clones of it and get their own identity the same way
//! (`snapshots::restore::reidentify`). A stale state is retired, and deleted once no VM is
//! built on its disks ([`sweep`]).

pub mod key;
mod make;
pub mod standby;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use banger_api::ImageWarmView;
use banger_store::{ImageRecord, WarmState};
use banger_vmm::DriverKind;

use crate::error::Result;
use crate::state::Daemon;
use key::{ImagePrint, KEY_FORMAT, WarmKey};

pub use make::{guest_memory, in_background, warm};

/// What a new VM asks for, as far as its warm state is concerned.
pub struct Wanted<'a> {
    pub image: &'a ImageRecord,
    pub driver: DriverKind,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    /// Why this VM cannot be restored whatever the key (shares, published ports).
    pub ineligible: Option<String>,
}

/// How a new VM starts.
pub enum Choice {
    /// From this warm state.
    Restore(Box<WarmState>),
    /// By booting its kernel; with the reason when the image had a warm state.
    Cold(Option<String>),
}

/// Whether a VM asking for `wanted` restores from its image's warm state.
pub fn choose(daemon: &Daemon, wanted: &Wanted<'_>) -> Result<Choice> {
    let Some(state) = daemon.store().current_warm_state(&wanted.image.name)? else {
        return Ok(Choice::Cold(None));
    };
    if let Some(why) = &wanted.ineligible {
        return Ok(Choice::Cold(Some(why.clone())));
    }
    let stored: WarmKey = match serde_json::from_str(&state.key_json) {
        Ok(k) => k,
        Err(e) => {
            let why = format!("the warm state's key is unreadable ({e})");
            retire(daemon, &state, &why);
            return Ok(Choice::Cold(Some(why)));
        }
    };
    let network = match network_mode(daemon, wanted.driver) {
        Ok(mode) => mode,
        Err(e) => {
            return Ok(Choice::Cold(Some(format!(
                "its network mode cannot be told now: {}",
                e.message
            ))));
        }
    };
    let key = key_for(
        daemon,
        wanted.image,
        wanted.driver,
        (wanted.vcpu, wanted.memory_mib, wanted.disk_bytes),
        network,
    );
    match key::compare(&stored, &key) {
        None => Ok(Choice::Restore(Box::new(state))),
        Some(m) => {
            if m.stale {
                retire(daemon, &state, &m.reason);
            }
            Ok(Choice::Cold(Some(m.reason)))
        }
    }
}

/// The key of a guest of `image` under `driver` with `(vcpu, memory_mib, disk_bytes)` on
/// network `network`, as this host would run it now.
pub fn key_for(
    daemon: &Daemon,
    image: &ImageRecord,
    driver: DriverKind,
    (vcpu, memory_mib, disk_bytes): (u32, u64, u64),
    network: String,
) -> WarmKey {
    let accel = match driver {
        DriverKind::Firecracker => "kvm",
        DriverKind::Qemu if banger_vmm::probe_kvm().usable_for_guests => "kvm",
        DriverKind::Qemu => "tcg",
    };
    WarmKey {
        format: KEY_FORMAT,
        banger: env!("CARGO_PKG_VERSION").to_string(),
        image: ImagePrint::of(image),
        driver: driver.as_str().to_string(),
        accel: accel.to_string(),
        vmm: vmm_identity(daemon, driver),
        vcpu,
        memory_mib,
        disk_bytes,
        network,
    }
}

/// The network mode a VM of `driver` starting now gets (`user`, `none`, `bridge`).
pub fn network_mode(daemon: &Daemon, driver: DriverKind) -> Result<String> {
    let plumbing = daemon.net.plumbing(daemon, Some(driver))?;
    Ok(crate::net::mode_name(&plumbing.selection.networking).to_string())
}

/// The VMM binary's `--version` line with its path and stat print; asked once per build of
/// the binary (the answer is cached by its size, inode and time).
fn vmm_identity(daemon: &Daemon, driver: DriverKind) -> String {
    static SEEN: Mutex<Option<HashMap<(PathBuf, String), String>>> = Mutex::new(None);
    let Some(binary) = daemon.driver.binary(driver) else {
        return format!("no {driver} binary");
    };
    let print = key::stat_print(&binary);
    let cache_key = (binary.clone(), print.clone());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let cache = seen.get_or_insert_with(HashMap::new);
    if let Some(known) = cache.get(&cache_key) {
        return known.clone();
    }
    let version = daemon
        .runner
        .run_str(&binary.to_string_lossy(), &["--version"])
        .ok()
        .filter(|out| out.success())
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "version unknown".to_string());
    let identity = format!("{version} ({} {print})", binary.display());
    cache.insert(cache_key, identity.clone());
    identity
}

/// No new VM restores from `state` any more; it goes once no VM is built on it.
pub fn retire(daemon: &Daemon, state: &WarmState, why: &str) {
    tracing::info!(image = %state.image_name, snapshot = %state.snapshot.name, reason = %why, "retiring a warm state");
    if let Err(e) = daemon.store().retire_warm_state(&state.snapshot.id) {
        tracing::warn!(snapshot = %state.snapshot.name, error = %e, "cannot retire a warm state");
        return;
    }
    sweep(daemon);
}

/// Delete retired warm states no VM is built on, after removing their standbys (at daemon
/// start, and whenever one is retired or replaced).
pub fn sweep(daemon: &Daemon) {
    standby::reclaim(daemon);
    delete_retired(daemon);
}

/// Delete retired warm states no VM is built on.
fn delete_retired(daemon: &Daemon) {
    let states = match daemon.store().warm_states() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list warm states");
            return;
        }
    };
    for state in states.into_iter().filter(|s| !s.current) {
        match crate::snapshots::remove(daemon, &state.snapshot.id) {
            Ok(_) => tracing::info!(image = %state.image_name, "removed a retired warm state"),
            Err(e) => {
                tracing::debug!(snapshot = %state.snapshot.name, error = %e.message, "keeping a retired warm state")
            }
        }
    }
}

/// Remove every warm state of image `image` (before the image itself goes). Errors when a
/// VM is still built on one (then a VM uses the image, and its removal is refused anyway).
pub fn remove_for_image(daemon: &Daemon, image: &str) -> Result<()> {
    // Listed first: the store's lock must not be held while each is removed.
    let states = daemon.store().warm_states()?;
    for state in states {
        if state.image_name == image {
            crate::snapshots::remove(daemon, &state.snapshot.id)?;
        }
    }
    Ok(())
}

/// Image `image`'s current warm state, for `image inspect`.
pub fn view(daemon: &Daemon, image: &str) -> Result<Option<ImageWarmView>> {
    let Some(state) = daemon.store().current_warm_state(image)? else {
        return Ok(None);
    };
    let network = serde_json::from_str::<WarmKey>(&state.key_json)
        .map(|k| k.network)
        .unwrap_or_else(|_| "unknown".to_string());
    let snap = state.snapshot;
    Ok(Some(ImageWarmView {
        snapshot: snap.name,
        driver: snap.driver,
        vcpu: snap.vcpu,
        memory_mib: snap.memory_mib,
        disk_bytes: snap.disk_bytes,
        network,
        size_bytes: snap.size_bytes,
        created_at: snap.created_at,
        standbys: standby::ready(daemon, &snap.id),
    }))
}

#[cfg(test)]
mod tests;
