//! Processes that use a VM's directory without the store knowing them: a VMM, or its
//! launcher, started by a daemon that died before it could record the pid.

use std::path::Path;
use std::time::Duration;

use banger_vmm::DriverKind;
use banger_vmm::process::{self, ProcessIdentity};

use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// How many times to look again: a launcher killed mid-fork can leave a child that shows up
/// only on the next look.
const ROUNDS: usize = 5;
/// How long a SIGKILLed process gets to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Every driver's VMM processes using `dir`, except `keep` (the recorded, live VMM). Each
/// kind's marks are looked for, since a VMM whose launch was never recorded may be of any
/// kind, all in one pass over `/proc`; a kind this host cannot build (no binary) has no
/// processes to find.
pub fn find(daemon: &Daemon, dir: &Path, keep: Option<u32>) -> Vec<ProcessIdentity> {
    let mut marks = process::Marks::default();
    for kind in [DriverKind::Qemu, DriverKind::Firecracker] {
        if let Ok(kind_marks) = daemon.driver.stray_marks(kind, dir) {
            marks.extend(kind_marks);
        }
    }
    match process::find_marked(&marks, dir) {
        Ok(mut found) => {
            found.retain(|p| Some(p.pid) != keep);
            found.sort_by_key(|p| p.pid);
            found
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot look for VMM processes");
            Vec::new()
        }
    }
}

/// Kill (SIGKILL) every process [`find`] reports and wait until each is gone — its last
/// thread, so its files are closed and its pid file unlocked; returns how many were killed.
/// They never started properly, so there is nothing to shut down gracefully. Fails, naming
/// them, if any is still there after [`KILL_WAIT`]: the caller must not declare the VM's VMM
/// gone, nor launch another one in `dir`.
pub async fn kill(daemon: &Daemon, dir: &Path, keep: Option<u32>) -> Result<usize> {
    let mut killed = 0;
    for _ in 0..ROUNDS {
        let found = find(daemon, dir, keep);
        if found.is_empty() {
            return Ok(killed);
        }
        for id in found {
            tracing::warn!(pid = id.pid, dir = %dir.display(), "killing an unrecorded VMM process");
            match process::signal(id, libc::SIGKILL) {
                Ok(true) => killed += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(pid = id.pid, error = %e, "cannot kill process"),
            }
            if !matches!(process::wait_exit(id, KILL_WAIT).await, Ok(true)) {
                tracing::warn!(pid = id.pid, "process did not exit after SIGKILL");
            }
        }
    }
    let left = find(daemon, dir, keep);
    if left.is_empty() {
        return Ok(killed);
    }
    let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
    Err(DaemonError::internal(format!(
        "VMM process {} using {} did not exit within {KILL_WAIT:?} of SIGKILL",
        pids.join(", "),
        dir.display()
    ))
    .with_hint(format!(
        "it may be stuck in the kernel (`ps -o pid,stat,wchan -p {}` shows where); try again once it is gone",
        pids.join(",")
    )))
}
