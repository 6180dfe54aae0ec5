//! Starting a sandboxed QEMU: spawned detached by the daemon instead of `-daemonize`.
//!
//! QEMU installs its `-sandbox` seccomp filter before `-daemonize` forks, and
//! `spawn=deny` forbids that fork (QEMU dies of SIGSYS on `clone`). So a sandboxed QEMU
//! is started the way Firecracker is: in its own session, stdio on files, confined between
//! fork and exec, and not waited for (tokio reaps it if it exits while the daemon lives,
//! init after that). It is ready when its QMP monitor greets: QEMU serves QMP from its main
//! loop, which starts only once the machine is built — the moment `-daemonize` would have
//! returned. A QEMU that exits before that failed, and its stderr file says why.

use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{QemuConfig, QemuLaunchPlan};
use crate::error::VmmError;
use crate::process::{self, ProcessIdentity};
use crate::qmp::QmpClient;
use crate::sandbox::Confinement;

/// QEMU's stderr, in the VM directory (read back when it fails to start).
pub const STDERR_FILE: &str = "qemu.err";
/// How often the QMP socket is tried while QEMU initialises.
const POLL: Duration = Duration::from_millis(10);
/// At most this much of QEMU's stderr goes into an error.
const MAX_STDERR: u64 = 4096;

/// Spawn `binary` with `plan`'s arguments, confined by `confinement`, inheriting the descriptors `inherit` at
/// their numbers, and wait until its QMP monitor answers.
pub(super) async fn launch(
    config: &QemuConfig,
    binary: &Path,
    plan: &QemuLaunchPlan,
    vm_id: &str,
    vm_dir: &Path,
    inherit: &[RawFd],
    confinement: Arc<Confinement>,
) -> Result<ProcessIdentity, VmmError> {
    let qmp_socket = &plan.paths.qmp_socket;
    let stderr_path = vm_dir.join(STDERR_FILE);
    // Never through a link: the VM directory belonged to a VMM before.
    let stderr = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&stderr_path)
        .map_err(|e| VmmError::io("create", &stderr_path, e))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(&plan.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(false);
    crate::sandbox::spawn::confine(&mut command, Arc::clone(&confinement), inherit);
    let mut child = command.spawn().map_err(|source| {
        crate::sandbox::spawn::spawn_error(&confinement, binary, vm_id, source)
    })?;
    let identity = ProcessIdentity::of_child(child.id().unwrap_or(0));

    let deadline = Instant::now() + config.launch_timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let status = match status.code() {
                Some(code) => code.to_string(),
                None => "killed by a signal".to_owned(),
            };
            return Err(VmmError::QemuRefused {
                vm_id: vm_id.to_owned(),
                status,
                stderr: stderr_text(&stderr_path),
            });
        }
        if qmp_socket.exists()
            && QmpClient::connect(qmp_socket, Duration::from_millis(200))
                .await
                .is_ok()
        {
            break;
        }
        if Instant::now() >= deadline {
            let _ = process::signal(identity, libc::SIGKILL);
            let _ = child.wait().await;
            return Err(VmmError::LaunchTimeout {
                vm_id: vm_id.to_owned(),
                waited: config.launch_timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    }
    let stderr = stderr_text(&stderr_path);
    if !stderr.starts_with('(') {
        tracing::warn!(vm = %vm_id, qemu_says = %stderr, "QEMU started with warnings");
    }
    // Dropping the handle leaves QEMU running.
    drop(child);
    Ok(identity)
}

/// The end of QEMU's stderr, one line per message.
pub(super) fn stderr_text(path: &Path) -> String {
    crate::fsutil::stderr_tail(path, MAX_STDERR, "QEMU")
}
