//! Snapshots under QEMU: a migration stream into a file, and a launch that loads one.
//!
//! QEMU 7.2 has no `file:` migration URI and a sandboxed QEMU may neither open files outside
//! its jail nor spawn the shell an `exec:` URI needs (`spawn=deny`). So the daemon opens the
//! file and hands QEMU the descriptor: over QMP (`getfd`, then `migrate fd:NAME`) to save,
//! inherited at launch (`-incoming fd:N`) to restore. Measured here (notes/snapshot-lab.md):
//! a restore is 0.03–0.05× a cold boot.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::QemuDriver;
use crate::driver::WaitOutcome;
use crate::error::VmmError;
use crate::runtime::VmRuntime;
use crate::spec::{LaunchSpec, RAM_FILE, SnapshotFiles};

/// Name of the migration stream in a snapshot directory.
pub const STATE_FILE: &str = "vmstate";
/// The `getfd` name the stream's descriptor goes by inside QEMU.
const FD_NAME: &str = "banger-snapshot";
/// Saving is bounded by the disk, not by QEMU's default 128 MiB/s migration cap.
const MAX_BANDWIDTH: u64 = 1 << 40;
/// Upper bound for writing or loading the stream (a few GiB at disk speed).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// Save the paused guest of `rt` into `dir` (an existing directory): the stream is written
/// to a temp name, fsynced and renamed. The guest stays paused (QEMU says `postmigrate`) and
/// its disks are flushed and quiescent, so they may be copied until it resumes.
pub(super) async fn save(
    driver: &QemuDriver,
    rt: &VmRuntime,
    dir: &Path,
) -> Result<SnapshotFiles, VmmError> {
    let mut qmp = driver.qmp(rt).await?;
    let qmp_err = |e| QemuDriver::qmp_error(rt, e);
    let status = qmp.query_status().await.map_err(qmp_err)?;
    if !matches!(status.as_str(), "paused" | "postmigrate") {
        return Err(VmmError::WrongState {
            vm_id: rt.vm_id.clone(),
            action: "save a snapshot",
            problem: format!("QEMU says the guest is {status}, not paused; pause it first"),
        });
    }
    let final_path = dir.join(STATE_FILE);
    let temp = dir.join(format!(".{STATE_FILE}.tmp"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(|e| VmmError::io("create snapshot state file", &temp, e))?;
    // A guest whose RAM is a shared file (a warm-up boot) is saved without it: the file is
    // the snapshot's memory, moved in below.
    let ram = ram_file(&mut qmp, rt).await;
    let result = async {
        qmp.execute(
            "migrate-set-parameters",
            Some(json!({ "max-bandwidth": MAX_BANDWIDTH })),
        )
        .await?;
        // Set either way: a guest restored from a RAM file has it on from its load, and
        // its own snapshots (RAM in the stream) must not carry it.
        set_ignore_shared(&mut qmp, ram.is_some()).await?;
        qmp.pass_fd(FD_NAME, file.as_fd()).await?;
        qmp.execute("migrate", Some(json!({ "uri": format!("fd:{FD_NAME}") })))
            .await?;
        qmp.wait_migration(TRANSFER_TIMEOUT).await
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(qmp_err(e));
    }
    finish(file, &temp, &final_path)?;
    let memory = match ram {
        Some(path) => Some(keep_ram_file(rt, &path, dir)?),
        None => None,
    };
    Ok(SnapshotFiles {
        state: final_path,
        memory,
    })
}

/// The RAM file QEMU maps shared for `rt`'s guest (`memory-backend-file`, `share=on`), when
/// it has one: the VM's own [`RAM_FILE`], as `GuestMemory::SharedFile` launched it. Asked of
/// QEMU, so a file merely lying in the directory never counts.
async fn ram_file(qmp: &mut crate::qmp::QmpClient, rt: &VmRuntime) -> Option<PathBuf> {
    let get = |property: &str| json!({ "path": "/objects/mem", "property": property });
    // Anonymous memory has no such object; a memfd has no `mem-path`.
    let path = qmp.execute("qom-get", Some(get("mem-path"))).await.ok()?;
    let shared = qmp.execute("qom-get", Some(get("share"))).await.ok()?;
    let ours = rt.vm_dir.join(RAM_FILE);
    (path.as_str() == ours.to_str() && shared.as_bool() == Some(true)).then_some(ours)
}

/// Whether shared RAM blocks migrate by reference, not content (on both to save and to load
/// a RAM-file snapshot; the stream records it, and a load refuses a mismatch).
async fn set_ignore_shared(
    qmp: &mut crate::qmp::QmpClient,
    on: bool,
) -> Result<(), crate::qmp::QmpError> {
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({ "capabilities": [{ "capability": "x-ignore-shared", "state": on }] })),
    )
    .await
    .map(drop)
}

/// Move the saved guest's RAM file into the snapshot directory `dir`: synced, owned by the
/// daemon and private to it (the sandboxed VMM that wrote it had its own uid, which a later
/// VM may be given). The paused guest never runs again, so the file no longer changes.
fn keep_ram_file(rt: &VmRuntime, path: &Path, dir: &Path) -> Result<PathBuf, VmmError> {
    let target = dir.join(RAM_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| VmmError::io("open the guest's RAM file", path, e))?;
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(0o600)))
        .and_then(|()| file.sync_all())
        .map_err(|e| VmmError::io("take over the guest's RAM file", path, e))?;
    std::fs::rename(path, &target).map_err(|e| {
        tracing::warn!(vm = %rt.vm_id, "cannot move the RAM file into the snapshot");
        VmmError::io("move the guest's RAM file into", &target, e)
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| VmmError::io("sync directory", dir, e))?;
    Ok(target)
}

/// fsync the file, rename it into place, fsync the directory.
fn finish(mut file: File, temp: &Path, path: &Path) -> Result<(), VmmError> {
    if let Err(e) = file.flush() {
        let _ = std::fs::remove_file(temp);
        return Err(VmmError::io("write snapshot state file", temp, e));
    }
    drop(file);
    crate::fsutil::commit(temp, path)
}

/// Open the saved state a restoring QEMU loads (read-only, close-on-exec in the daemon): the
/// whole stream, or the device state alongside a RAM file (`files.memory`).
pub(super) fn open_state(_spec: &LaunchSpec, files: &SnapshotFiles) -> Result<File, VmmError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&files.state)
        .map_err(|e| VmmError::io("open snapshot state file", &files.state, e))
}

/// Load the saved guest into the QEMU of `rt`: a QEMU waiting with `-incoming defer` is
/// handed `deferred` (the device state of a RAM-file snapshot, `x-ignore-shared` set
/// first); then wait until the state is loaded.
pub(super) async fn load(
    driver: &QemuDriver,
    rt: &VmRuntime,
    files: &SnapshotFiles,
    deferred: Option<&File>,
) -> Result<(), VmmError> {
    if let Some(state) = deferred {
        let mut qmp = driver.qmp(rt).await?;
        let started = async {
            set_ignore_shared(&mut qmp, true).await?;
            qmp.pass_fd(FD_NAME, state.as_fd()).await?;
            qmp.execute(
                "migrate-incoming",
                Some(json!({ "uri": format!("fd:{FD_NAME}") })),
            )
            .await
            .map(drop)
        }
        .await;
        started.map_err(|e| VmmError::RestoreFailed {
            vm_id: rt.vm_id.clone(),
            state: files.state.clone(),
            reason: format!("QEMU refused the saved state: {e}"),
        })?;
    }
    wait_loaded(driver, rt, files).await
}

/// Wait until the QEMU of `rt`, launched with `-incoming`, has loaded its state: the guest
/// is then paused. A QEMU that fails the load exits; its stderr is the reason.
async fn wait_loaded(
    driver: &QemuDriver,
    rt: &VmRuntime,
    files: &SnapshotFiles,
) -> Result<(), VmmError> {
    let failed = |reason: String| VmmError::RestoreFailed {
        vm_id: rt.vm_id.clone(),
        state: files.state.clone(),
        reason,
    };
    // A QEMU that fails the load closes QMP and exits: its stderr is the reason.
    let exited_or = |e: VmmError| async {
        match rt.wait_exit(Duration::from_secs(2)).await {
            Ok(WaitOutcome::Exited) => {
                tracing::debug!(vm = %rt.vm_id, error = %e, "restoring QEMU exited");
                failed(super::detached::stderr_text(
                    &rt.vm_dir.join(super::detached::STDERR_FILE),
                ))
            }
            _ => e,
        }
    };
    let deadline = tokio::time::Instant::now() + TRANSFER_TIMEOUT;
    // The launch returned once QMP greeted, so one connection serves the whole wait.
    let mut qmp = match driver.qmp(rt).await {
        Ok(qmp) => qmp,
        Err(e) => return Err(exited_or(e).await),
    };
    loop {
        match qmp.query_status().await {
            Ok(s) if s == "inmigrate" => {}
            Ok(s) if s == "paused" => return Ok(()),
            // Without `-S` QEMU runs a guest that was running when saved; we only save
            // paused ones, so anything else is a stream we did not write.
            Ok(s) => return Err(failed(format!("QEMU left the guest {s}, not paused"))),
            Err(e) => return Err(exited_or(QemuDriver::qmp_error(rt, e)).await),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(format!(
                "the state was not loaded within {TRANSFER_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
