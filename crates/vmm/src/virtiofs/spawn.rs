//! Starting, finding and reaping a VM's `virtiofsd` processes.
//!
//! Each is spawned in its own session with its stderr on a file in the VM's directory, like
//! the VMM itself, so it survives a daemon restart together with the VM it serves. It is
//! ready when its vhost-user socket exists (it binds before it waits for QEMU).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Owner, ShareSpec};
use crate::error::VmmError;
use crate::process::{self, ProcessIdentity};
use crate::sandbox::cgroup::Placement;

/// How often the socket is looked for while `virtiofsd` starts.
const POLL: Duration = Duration::from_millis(10);
/// At most this much of `virtiofsd`'s stderr goes into an error.
const MAX_STDERR: u64 = 2048;

/// Start one `virtiofsd` per share of the VM in `vm_dir`, in order, each ready for QEMU
/// when this returns. On any failure the ones already started are stopped again.
pub async fn start(
    binary: &Path,
    vm_id: &str,
    vm_dir: &Path,
    shares: &[ShareSpec],
    owner: Owner,
    timeout: Duration,
    cgroup: Option<&Placement>,
) -> Result<Vec<ProcessIdentity>, VmmError> {
    // One left by a daemon killed between its virtiofsd and its QEMU serves nobody.
    reap(binary, vm_dir, &[], Duration::from_secs(2)).await;
    let mut started = Vec::new();
    for share in shares {
        match start_one(binary, vm_id, vm_dir, share, owner, timeout, cgroup).await {
            Ok(id) => started.push(id),
            Err(e) => {
                reap(binary, vm_dir, &started, Duration::from_secs(2)).await;
                return Err(e);
            }
        }
    }
    Ok(started)
}

async fn start_one(
    binary: &Path,
    vm_id: &str,
    vm_dir: &Path,
    share: &ShareSpec,
    owner: Owner,
    timeout: Duration,
    cgroup: Option<&Placement>,
) -> Result<ProcessIdentity, VmmError> {
    let socket = share.socket(vm_dir);
    // A socket left by an earlier run would make it look ready at once.
    match std::fs::remove_file(&socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(VmmError::io("remove the stale socket", &socket, e));
        }
        _ => {}
    }
    let log_path = share.log(vm_dir);
    // Never through a link: the VM directory belonged to a VMM before.
    let log = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log_path)
        .map_err(|e| VmmError::io("create", &log_path, e))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(super::render(share, vm_dir, owner))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(false);
    // The VM's group bounds its file servers too: they map guest memory.
    crate::sandbox::cgroup::detach_into(&mut command, cgroup);
    let mut child = command.spawn().map_err(|source| VmmError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })?;
    let identity = ProcessIdentity::of_child(child.id().unwrap_or(0));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(VmmError::ShareRefused {
                vm_id: vm_id.to_owned(),
                dir: share.host_dir.clone(),
                status: status
                    .code()
                    .map_or("killed by a signal".to_owned(), |c| c.to_string()),
                stderr: stderr_text(&log_path),
            });
        }
        if std::fs::symlink_metadata(&socket).is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = process::signal(identity, libc::SIGKILL);
            let _ = child.wait().await;
            return Err(VmmError::ShareTimeout {
                vm_id: vm_id.to_owned(),
                dir: share.host_dir.clone(),
                waited: timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    }
    // Dropping the handle leaves it running; tokio reaps it if it exits while we live.
    drop(child);
    Ok(identity)
}

/// The `virtiofsd` processes (`binary`) serving the VM in `vm_dir`, found by their command
/// line: a sandboxed one is two processes (the launcher and its child in the new namespaces).
pub fn find(binary: &Path, vm_dir: &Path) -> std::io::Result<Vec<ProcessIdentity>> {
    process::find_using_dir(binary, vm_dir)
}

/// The `virtiofsd` processes serving `share` of the VM in `vm_dir`, found by its socket on
/// their command line (a sandboxed one is a launcher and its child).
pub fn find_serving(
    binary: &Path,
    vm_dir: &Path,
    share: &ShareSpec,
) -> std::io::Result<Vec<ProcessIdentity>> {
    process::find_using_dir(binary, &share.socket(vm_dir))
}

/// Whether `share` of the VM in `vm_dir` still has a `virtiofsd` serving it. A scan that
/// fails says yes: only a sure "gone" is news.
pub fn serving(binary: &Path, vm_dir: &Path, share: &ShareSpec) -> bool {
    find_serving(binary, vm_dir, share).map_or(true, |found| !found.is_empty())
}

/// The last lines `share`'s `virtiofsd` wrote to its log, joined on one line.
pub fn last_words(vm_dir: &Path, share: &ShareSpec) -> String {
    stderr_text(&share.log(vm_dir))
}

/// Stop the `virtiofsd` processes of the VM in `vm_dir`: those recorded (`known`) and any
/// other found by [`find`]; SIGTERM, then SIGKILL after `grace`. Best effort: a process
/// that is gone already is what was wanted.
pub async fn reap(binary: &Path, vm_dir: &Path, known: &[ProcessIdentity], grace: Duration) {
    let mut all: Vec<ProcessIdentity> = known.to_vec();
    if let Ok(found) = find(binary, vm_dir) {
        all.extend(found.into_iter().filter(|f| !known.contains(f)));
    }
    for id in &all {
        let _ = process::signal(*id, libc::SIGTERM);
    }
    for id in &all {
        if !matches!(process::wait_exit(*id, grace).await, Ok(true)) {
            tracing::warn!(pid = id.pid, "virtiofsd ignored SIGTERM; killing it");
            let _ = process::signal(*id, libc::SIGKILL);
            let _ = process::wait_exit(*id, grace).await;
        }
    }
}

/// The end of `virtiofsd`'s stderr, one line per message.
fn stderr_text(path: &Path) -> String {
    crate::fsutil::stderr_tail(path, MAX_STDERR, "virtiofsd")
}
