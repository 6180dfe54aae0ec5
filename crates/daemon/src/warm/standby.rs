//! Standbys: VMs the daemon keeps restored from an image's current warm state, resumed
//! and warmed by one command, so that `vm run` of the image (with the state's resources)
//! is handed one instead of restoring — no VMM to spawn, no snapshot to load, and a guest
//! whose emulator already translated the agent's exec path.
//!
//! A standby is an ordinary clone of the warm state (its own disks, lease, TAP, MAC and
//! address; restored and reidentified like any clone) registered as waiting
//! (`vm_standbys`), which hides it from users: not in `vm ls`, no name a user can type,
//! no `ssh_config` block. Taking one renames it and stamps it in one store transaction
//! (never two runs on one standby) and gives the guest its new name, a fresh RNG reseed
//! and the clock again (`snapshots::restore::reidentify`).
//!
//! Standbys are refilled in the background after each take, one at a time and after a
//! short delay, so the handed-over VM runs the user's first commands without a restore
//! competing for the CPU. They are only for the current warm state: a retired state's
//! standbys are removed ([`reclaim`]), and they never outlive the daemon ([`drain`] at
//! stop and, for a daemon that died, at start).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use banger_api::BootTimings;
use banger_store::{StoreError, VmRecord, VmState, WarmState};
use banger_system::progress::NoProgress;

use crate::error::{DaemonError, Result};
use crate::state::Daemon;
use crate::vms;

/// How long a refill waits after the request that asked for it: the user's next commands
/// on the VM just handed over (an exec, often a removal) come first.
const REFILL_DELAY: Duration = Duration::from_millis(300);

/// The name prefix of a waiting standby. `_` is in no name a user may give, so a standby
/// never blocks or answers to one.
const NAME_PREFIX: &str = "_standby-";

/// The daemon's standbys: one refill at a time, none once the daemon stops.
#[derive(Default)]
pub struct Pool {
    filling: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

/// A waiting standby of `state`, taken as VM `name`: renamed, reidentified, running. `None`
/// when none is ready (the caller restores instead); an error only when `name` is taken.
pub async fn take(daemon: &Daemon, state: &WarmState, name: &str) -> Result<Option<String>> {
    let t0 = Instant::now();
    for id in waiting_of(daemon, &state.snapshot.id) {
        let Ok((op, vm)) = vms::lock_vm(daemon, &id).await else {
            continue;
        };
        // Read again under the lock: it may have been taken, stopped or removed meanwhile.
        if vm.state != VmState::Running || !daemon.store().is_waiting_standby(&id)? {
            continue;
        }
        let Ok(client) = vms::agent::client_for(daemon, &vm).await else {
            continue;
        };
        let at = banger_store::now_rfc3339();
        let claimed = daemon.store().take_standby(&id, name, &at);
        match claimed {
            Ok(true) => {}
            Ok(false) => continue,
            Err(StoreError::VmExists(_)) => return Err(vms::exists(name)),
            Err(e) => return Err(e.into()),
        }
        let taken = VmRecord {
            name: name.to_string(),
            ..vm
        };
        let claimed_ms = t0.elapsed().as_millis() as u64;
        // The network identity stays: the lease, TAP and MAC are this VM's own already.
        if let Err(e) = crate::snapshots::restore::reidentify(&taken, &client, None).await {
            // A VM must never run under an identity it was not given: it goes, and the
            // caller restores a fresh one.
            tracing::warn!(vm = %name, error = %e.message, "a standby could not be given its identity; removing it");
            drop(op);
            if let Err(rm) = vms::remove(daemon, &id, true).await {
                tracing::warn!(vm = %name, error = %rm.message, "cannot remove a standby");
            }
            return Ok(None);
        }
        record_take(daemon, &taken, t0.elapsed())?;
        vms::ssh::refresh_blocks(daemon);
        tracing::info!(vm = %name, id = %id, image = %state.image_name, claimed_ms, ms = t0.elapsed().as_millis() as u64, "handed over a standby");
        return Ok(Some(id));
    }
    Ok(None)
}

/// The taken VM's start is the hand-over: `vm inspect`'s boot phases and start time say
/// what the user waited for, not the standby's restore.
fn record_take(daemon: &Daemon, vm: &VmRecord, took: Duration) -> Result<()> {
    let ms = took.as_secs_f64() * 1000.0;
    let timings = BootTimings {
        vmm_spawned_ms: 0.0,
        kernel_started_ms: None,
        init_started_ms: None,
        agent_ready_ms: ms,
        kernel_release: vm
            .boot_json
            .as_deref()
            .and_then(|j| serde_json::from_str::<BootTimings>(j).ok())
            .and_then(|t| t.kernel_release),
    };
    let store = daemon.store();
    store.set_vm_runtime(
        &vm.id,
        vm.driver.as_deref(),
        vm.runtime_json.as_deref(),
        serde_json::to_string(&timings).ok().as_deref(),
    )?;
    store.set_vm_started(&vm.id, &banger_store::now_rfc3339())?;
    Ok(())
}

/// The ids of the waiting standbys restored from snapshot `snapshot_id`.
fn waiting_of(daemon: &Daemon, snapshot_id: &str) -> Vec<String> {
    let store = daemon.store();
    let ids = store.waiting_standbys().unwrap_or_default();
    ids.into_iter()
        .filter(|id| matches!(store.vm_origin(id), Ok(Some(o)) if o.snapshot_id == snapshot_id))
        .collect()
}

/// How many standbys of snapshot `snapshot_id` are ready to be taken.
pub fn ready(daemon: &Daemon, snapshot_id: &str) -> u32 {
    let ids = waiting_of(daemon, snapshot_id);
    let running = ids.iter().filter(|id| is_running(daemon, id)).count();
    u32::try_from(running).unwrap_or(u32::MAX)
}

fn is_running(daemon: &Daemon, id: &str) -> bool {
    matches!(daemon.store().get_vm(id), Ok(Some(vm)) if vm.state == VmState::Running)
}

/// Bring image `image`'s standbys up to `[images] standbys` in the background, once the
/// current request is done. Nothing happens when the image has no current warm state, or
/// one this host would not restore (that state is then retired, as a `vm run` would).
pub fn refill(daemon: &Daemon, image: &str) {
    if daemon.config.images.standbys == 0 || daemon.standbys.closed.load(Ordering::SeqCst) {
        return;
    }
    let Some(daemon) = daemon.self_arc() else {
        return;
    };
    let image = image.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(REFILL_DELAY).await;
        let _one = daemon.standbys.filling.lock().await;
        while !daemon.standbys.closed.load(Ordering::SeqCst) {
            let Some(state) = restorable(&daemon, &image) else {
                return;
            };
            // Under the fill lock nothing is being made: a waiting standby that is not
            // running died (its VMM exited) and is of no use.
            let (live, dead): (Vec<String>, Vec<String>) = waiting_of(&daemon, &state.snapshot.id)
                .into_iter()
                .partition(|id| is_running(&daemon, id));
            remove_all(&daemon, dead, "it stopped running").await;
            if live.len() >= daemon.config.images.standbys as usize {
                return;
            }
            if let Err(e) = make_one(&daemon, &state).await {
                tracing::warn!(image = %image, error = %e.message, "cannot make a standby; the next `vm run` of the image restores");
                return;
            }
        }
    });
}

/// Image `image`'s current warm state, if a VM with its resources would restore from it
/// now (the same check as a `vm run`'s, which retires a stale state).
fn restorable(daemon: &Daemon, image: &str) -> Option<WarmState> {
    let state = daemon.store().current_warm_state(image).ok()??;
    let record = daemon.store().get_image(image).ok()??;
    let driver = state.snapshot.driver.parse().ok()?;
    let wanted = super::Wanted {
        image: &record,
        driver,
        vcpu: state.snapshot.vcpu,
        memory_mib: state.snapshot.memory_mib,
        disk_bytes: state.snapshot.disk_bytes,
        ineligible: None,
    };
    match super::choose(daemon, &wanted) {
        Ok(super::Choice::Restore(current)) => Some(*current),
        Ok(super::Choice::Cold(why)) => {
            tracing::info!(image = %image, reason = ?why, "no standby for this image");
            None
        }
        Err(e) => {
            tracing::warn!(image = %image, error = %e.message, "cannot tell whether the image's warm state still holds");
            None
        }
    }
}

/// Restore one standby of `state` and warm it: one command through its agent makes the
/// emulator translate the exec path now, not during the user's first command.
async fn make_one(daemon: &Daemon, state: &WarmState) -> Result<()> {
    let suffix = banger_store::new_vm_id()
        .map_err(|e| DaemonError::internal(format!("cannot draw a VM id: {e}")))?;
    let name = format!("{NAME_PREFIX}{suffix}");
    let reason = format!(
        "restored from image {}'s warm state ahead of time (a standby)",
        state.image_name
    );
    let id =
        crate::snapshots::clone::make_as(daemon, &state.snapshot, name, reason, true, &NoProgress)
            .await?;
    let t0 = Instant::now();
    let warmed = async {
        let vm = vms::boot(daemon, &id, &NoProgress).await?;
        let client = vms::agent::client_for(daemon, &vm).await?;
        let request = banger_agent_client::ExecRequest::new(["true"]);
        let session = client.exec(request).await.map_err(agent_error)?;
        let output = session.wait_with_output().await.map_err(agent_error)?;
        if !output.status.success() {
            return Err(DaemonError::internal(
                "the warming command `true` failed in the guest",
            ));
        }
        Ok(())
    }
    .await;
    if let Err(e) = warmed {
        if let Err(rm) = vms::remove(daemon, &id, true).await {
            tracing::warn!(vm = %id, error = %rm.message, "cannot remove a standby that failed");
        }
        return Err(e);
    }
    tracing::info!(image = %state.image_name, id = %id, ms = t0.elapsed().as_millis() as u64, "standby ready");
    Ok(())
}

fn agent_error(e: banger_agent_client::ClientError) -> DaemonError {
    DaemonError::internal(format!(
        "cannot warm a standby through its agent: {}",
        banger_system::error_chain(&e)
    ))
}

/// [`remove_stale`] in the background; the retired states then go once nothing is built
/// on them.
pub fn reclaim(daemon: &Daemon) {
    if stale(daemon).is_empty() {
        return;
    }
    let Some(daemon) = daemon.self_arc() else {
        return;
    };
    tokio::spawn(async move {
        remove_stale(&daemon).await;
        super::delete_retired(&daemon);
    });
}

/// Remove the standbys of every warm state that is no longer current.
pub async fn remove_stale(daemon: &Daemon) {
    remove_all(daemon, stale(daemon), "its warm state was retired").await;
}

/// The waiting standbys of warm states that are no longer current.
fn stale(daemon: &Daemon) -> Vec<String> {
    let current: Vec<String> = match daemon.store().warm_states() {
        Ok(states) => states
            .into_iter()
            .filter(|s| s.current)
            .map(|s| s.snapshot.id)
            .collect(),
        Err(_) => return Vec::new(),
    };
    let store = daemon.store();
    let ids = store.waiting_standbys().unwrap_or_default();
    ids.into_iter()
        .filter(
            |id| !matches!(store.vm_origin(id), Ok(Some(o)) if current.contains(&o.snapshot_id)),
        )
        .collect()
}

/// Remove image `image`'s standbys (before the image goes).
pub async fn remove_for_image(daemon: &Daemon, image: &str) {
    let ids: Vec<String> = {
        let store = daemon.store();
        let ids = store.waiting_standbys().unwrap_or_default();
        ids.into_iter()
            .filter(|id| matches!(store.get_vm(id), Ok(Some(vm)) if vm.image_name == image))
            .collect()
    };
    remove_all(daemon, ids, "its image is being removed").await;
}

/// Remove every standby; with `close`, none is made again (the daemon is stopping). At
/// start, a daemon that died leaves standbys that nobody will take: they go too.
pub async fn drain(daemon: &Daemon, close: bool) {
    if close {
        daemon.standbys.closed.store(true, Ordering::SeqCst);
    }
    let ids = daemon.store().waiting_standbys().unwrap_or_default();
    remove_all(daemon, ids, "the daemon is stopping or starting").await;
}

/// Refill every image that has a current warm state (at daemon start).
pub fn refill_all(daemon: &Daemon) {
    let images: Vec<String> = match daemon.store().warm_states() {
        Ok(states) => states
            .into_iter()
            .filter(|s| s.current)
            .map(|s| s.image_name)
            .collect(),
        Err(_) => return,
    };
    for image in images {
        refill(daemon, &image);
    }
}

/// Remove the standbys `ids` that are still waiting: checked under each VM's lock, which a
/// [`take`] holds too, so a standby handed to a user meanwhile is never removed.
async fn remove_all(daemon: &Daemon, ids: Vec<String>, why: &str) {
    for id in ids {
        let Ok((op, vm)) = vms::lock_vm_forced(daemon, &id).await else {
            continue;
        };
        if !matches!(daemon.store().is_waiting_standby(&id), Ok(true)) {
            continue;
        }
        match vms::remove_locked(daemon, op, &vm, true).await {
            Ok(_) => tracing::info!(id = %id, reason = %why, "removed a standby"),
            Err(e) => tracing::warn!(id = %id, error = %e.message, "cannot remove a standby"),
        }
    }
}
