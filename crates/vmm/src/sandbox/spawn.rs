//! Starting a VMM process inside its sandbox, whichever driver it belongs to.
//!
//! Both drivers start their VMM the same way once it is sandboxed: resolved to the real
//! file the jail holds, spawned in its own session with the [`Confinement`] run between
//! fork and exec, inheriting only the descriptors asked for, and checked afterwards to run
//! as the uid the sandbox gave it.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Confinement;
use crate::error::VmmError;
use crate::process::{self, ProcessIdentity};

/// `binary` as the absolute path of the file itself: a bare name is looked up as a shell
/// would, then links are resolved (the jail holds the file, not a link to it such as
/// `/etc/alternatives/…`).
pub fn resolve_binary(binary: &Path) -> Result<PathBuf, VmmError> {
    let not_found = || VmmError::Spawn {
        binary: binary.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    let found = if binary.components().count() == 1 {
        banger_system::runner::lookup_executable(&binary.to_string_lossy()).ok_or_else(not_found)?
    } else {
        binary.to_path_buf()
    };
    std::fs::canonicalize(&found).map_err(|source| VmmError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })
}

/// Make `command`'s child a session leader that keeps the descriptors `inherit` at their
/// numbers and is confined by `confinement` before it executes anything.
pub fn confine(
    command: &mut tokio::process::Command,
    confinement: Arc<Confinement>,
    inherit: &[RawFd],
) {
    let inherit = inherit.to_vec();
    // SAFETY: setsid(2) and fcntl(2) are async-signal-safe and change only the child's
    // session and descriptor flags (the descriptors stay close-on-exec in the daemon, so no
    // other child gets them); `Confinement::in_child` is async-signal-safe (it only makes
    // system calls on memory prepared before the fork).
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            confinement.in_child()
        });
    }
}

/// The error of a confined spawn of `binary` that failed with `source`: the exec itself
/// (a missing or unrunnable binary) or a confinement step, named by `confinement`.
pub fn spawn_error(
    confinement: &Confinement,
    binary: &Path,
    vm_id: &str,
    source: std::io::Error,
) -> VmmError {
    let step = confinement.failed_step();
    if step.starts_with("start") {
        VmmError::Spawn {
            binary: binary.to_path_buf(),
            source,
        }
    } else {
        VmmError::Confine {
            vm_id: vm_id.to_owned(),
            step,
            source,
        }
    }
}

/// Before trusting a VMM's pid, check the process behind it runs as the uid the sandbox gave
/// it (and stop it if not).
pub fn check_identity(vm_id: &str, pid: u32, start_time: u64, uid: u32) -> Result<(), VmmError> {
    let posture = super::posture::read(pid)
        .map_err(|e| VmmError::io("read process status", format!("/proc/{pid}/status"), e))?;
    if posture.uids.iter().all(|u| *u == uid) {
        return Ok(());
    }
    let _ = process::signal(ProcessIdentity { pid, start_time }, libc::SIGKILL);
    Err(VmmError::SandboxEscaped {
        vm_id: vm_id.to_owned(),
        pid,
        expected: uid,
        found: posture.uids[1],
    })
}
