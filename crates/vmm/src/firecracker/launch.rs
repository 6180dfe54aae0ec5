//! Starting one Firecracker VM: spawn the process detached, record it, wait for its API,
//! drive the boot plan. Any failure after the spawn kills the process again, so a failed
//! launch never leaves a Firecracker running unaccounted for.

use crate::sandbox::cgroup::{Placement, VmCgroup};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_firecracker::SemVer;
use banger_system::rotate::RotatingFile;

use super::api::{ApiCall, ApiClient};
use super::jailed::{self, JailLauncher};
use super::payloads::{FcPaths, PlanInput, boot_plan};
use super::relocate::{self, Layout};
use super::{FirecrackerConfig, confine};
use crate::console::VMM_LOG_MAX_BYTES;
use crate::error::{MAX_SOCKET_PATH, VmmError};
use crate::process::{self, ProcessIdentity};
use crate::runtime::{AgentEndpoint, ConsoleSource, MachineType, VmRuntime};
use crate::spec::{Accel, DriverKind, LaunchSpec};
use std::sync::Arc;

/// How often the API socket is tried while Firecracker starts.
const API_POLL: Duration = Duration::from_millis(10);

pub(super) async fn run(
    config: &FirecrackerConfig,
    spec: &LaunchSpec,
    version: &SemVer,
    cgroup: Option<&VmCgroup>,
    jailer: Option<&Arc<dyn JailLauncher>>,
) -> Result<VmRuntime, VmmError> {
    let vm_id = spec.vm_id.clone();
    let paths = FcPaths::in_dir(&spec.vm_dir);
    let invalid = |problem: String| VmmError::InvalidSpec {
        vm_id: vm_id.clone(),
        problem,
    };
    // Everything that can be refused is refused before a process exists.
    let input = PlanInput {
        spec,
        version,
        paths: &paths,
        guest_cid: config.guest_cid,
        agent_port: config.agent_port,
    };
    let (plan, overrides) = match &spec.restore {
        None => (boot_plan(&input).map_err(invalid)?, Vec::new()),
        Some(files) => {
            let failed = |reason: String| VmmError::RestoreFailed {
                vm_id: vm_id.clone(),
                state: files.state.clone(),
                reason,
            };
            let layout = Layout::read(&vm_id, files)?;
            let overrides = layout.overrides_for(spec, version).map_err(failed)?;
            let plan = relocate::restore_plan(&input, files, &overrides).map_err(failed)?;
            (plan, overrides)
        }
    };
    for socket in [&paths.api_socket, &paths.vsock] {
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(VmmError::SocketPathTooLong {
                path: socket.clone(),
                len,
            });
        }
    }
    spec.check_vm_dir()?;
    ensure_not_in_use(&vm_id, &paths)?;
    // notes: "remove a stale socket file before starting"; "`uds_path` must not exist before
    // `PUT /vsock`".
    for stale in [
        &paths.api_socket,
        &paths.vsock,
        &paths.launch_record,
        &paths.console_fifo,
        &paths.log_fifo,
    ] {
        remove_if_present(stale)?;
    }
    make_fifo(&paths.console_fifo)?;
    // Made again once the sandbox gave the directory away (`confine::spawn`).
    relocate::clear_drive_links(spec)?;
    // notes: "before 1.14.0 the files must already exist": the log pipe does, the metrics
    // file is created here.
    make_fifo(&paths.log_fifo)?;
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(&paths.metrics)
        .map_err(|e| VmmError::io("create", &paths.metrics, e))?;
    // Firecracker opens its log read-write and non-blocking (its `open_file_nonblock`), so it
    // holds a reader itself and never waits on the pipe. This reader is the launcher's: what
    // Firecracker logs while being configured lands in its capped log, failures included.
    let log_reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&paths.log_fifo)
        .map_err(|e| VmmError::io("open log pipe", &paths.log_fifo, e))?;

    let serial_out = relocate::serial_out(version, spec.restore.is_some());
    let through_jailer = match jailer {
        Some(launcher) => {
            jailed::start(config, spec, version, &paths, launcher, &overrides).await?
        }
        None => None,
    };
    let (identity, paths, plan) = match through_jailer {
        Some(started) => started,
        None => {
            let identity = confine::spawn(config, spec, &paths, serial_out, cgroup)?;
            (identity, paths, plan)
        }
    };
    let boot_id = match process::boot_id() {
        Ok(id) => id,
        Err(e) => {
            kill_now(identity);
            return Err(VmmError::io("read", "/proc/sys/kernel/random/boot_id", e));
        }
    };
    let runtime = VmRuntime {
        vm_id: vm_id.clone(),
        vm_dir: spec.vm_dir.clone(),
        driver: DriverKind::Firecracker,
        accel: Accel::Kvm,
        machine: MachineType::Firecracker,
        pid: identity.pid,
        pid_start_time: identity.start_time,
        boot_id,
        control_socket: paths.api_socket.clone(),
        agent: AgentEndpoint::HybridVsock {
            uds_path: paths.vsock.clone(),
            port: config.agent_port,
        },
        console_log: spec.console_log.clone(),
        console: Some(ConsoleSource::Fifo(paths.console_fifo.clone())),
        vmm_log: Some(ConsoleSource::Fifo(paths.log_fifo.clone())),
        vmm_version: Some(format!(
            "{}.{}.{}",
            version.major, version.minor, version.patch
        )),
        cgroup: cgroup.map(|c| c.dirs.clone()).unwrap_or_default(),
    };
    // Recorded before the API is driven: whoever finds this directory later (a restarted
    // daemon after a crash mid-launch) can tell the process is ours and stop it.
    if let Err(e) = write_launch_record(&paths.launch_record, &runtime) {
        kill_now(identity);
        return Err(e);
    }
    tracing::info!(vm = %vm_id, pid = identity.pid, %version, "launched Firecracker");

    let configured = configure(config, &runtime, &paths, &plan, &log_reader).await;
    // What Firecracker logged while being configured, kept in its capped log (the reason
    // of a failure is among it).
    drain_log(&log_reader, &paths);
    if let Err(e) = configured {
        kill_now(identity);
        let _ = runtime.wait_exit(config.kill_grace).await;
        remove_leftovers(&runtime);
        return Err(e);
    }
    Ok(runtime)
}

/// Wait for the API socket, then make every call of the plan.
async fn configure(
    config: &FirecrackerConfig,
    runtime: &VmRuntime,
    paths: &FcPaths,
    plan: &[ApiCall],
    log_reader: &File,
) -> Result<(), VmmError> {
    let api = ApiClient::new(&runtime.vm_id, &paths.api_socket, config.api_timeout);
    let deadline = Instant::now() + config.start_timeout;
    let probe = ApiCall::get("/");
    loop {
        if !runtime.is_alive() {
            return Err(exited(
                runtime,
                paths,
                log_reader,
                "before its API socket answered",
            ));
        }
        match api.call(&probe).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(API_POLL).await,
        }
    }
    for call in plan {
        tracing::debug!(vm = %runtime.vm_id, endpoint = %call.endpoint(), "Firecracker API call");
        if let Err(e) = api.call(call).await {
            // An answer is Firecracker's own reason (a failed load answers, then exits):
            // only a call that got none is explained by the process's end.
            let answered = matches!(e, VmmError::FirecrackerApi { .. });
            if !answered && !runtime.is_alive() {
                return Err(exited(
                    runtime,
                    paths,
                    log_reader,
                    &format!("during {}", call.endpoint()),
                ));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Start `firecracker` in its own session with stdio on files: it is nobody's terminal job
/// and outlives the daemon.
///
/// The console pipe is opened read-write here and handed to Firecracker, which so holds a
/// read end of its own for its whole life: its open of `serial_out_path` (write-only,
/// non-blocking, which fails with `ENXIO` on a pipe without a reader) succeeds, and its writes
/// never fail with `EPIPE` while no daemon is draining (a restart). Below 1.13 the pipe is
/// stdout, where Firecracker writes the serial. From 1.13 the serial goes to `serial_out_path`
/// (`PUT /serial`) and the pipe is stdin, which Firecracker leaves unread once an output path
/// is set (its serial then has no input); stdout joins stderr in `firecracker.stderr`.
pub(super) fn spawn(
    config: &FirecrackerConfig,
    spec: &LaunchSpec,
    paths: &FcPaths,
    serial_out: bool,
    cgroup: Option<&Placement>,
    sandbox: Option<&confine::Sandbox>,
) -> Result<ProcessIdentity, VmmError> {
    let pipe = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&paths.console_fifo)
        .map_err(|e| VmmError::io("open console pipe", &paths.console_fifo, e))?;
    let stderr =
        File::create(&paths.stderr).map_err(|e| VmmError::io("create", &paths.stderr, e))?;
    let (stdin, stdout) = if serial_out {
        let stdout = stderr
            .try_clone()
            .map_err(|e| VmmError::io("duplicate", &paths.stderr, e))?;
        (Stdio::from(pipe), Stdio::from(stdout))
    } else {
        (Stdio::null(), Stdio::from(pipe))
    };
    let binary = sandbox.map_or(config.binary.as_path(), |s| s.binary.as_path());
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("--api-sock")
        .arg(&paths.api_socket)
        .arg("--id")
        .arg(instance_id(&spec.vm_id))
        // Drives and the vsock socket are given relative to the VM's directory, so a
        // snapshot's recorded paths resolve to a clone's own files (`relocate`).
        .current_dir(&spec.vm_dir)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(false);
    // Before exec: no guest code runs outside the VM's group (the confinement enters it
    // first).
    match sandbox {
        Some(s) => crate::sandbox::spawn::confine(
            &mut command,
            std::sync::Arc::clone(&s.prepared.confinement),
            &[],
        ),
        None => crate::sandbox::cgroup::detach_into(&mut command, cgroup),
    }
    // Dropping the handle leaves the process running; tokio reaps it when it exits while
    // this daemon lives, and init does after that.
    let child = command.spawn().map_err(|source| match sandbox {
        Some(s) => {
            crate::sandbox::spawn::spawn_error(&s.prepared.confinement, binary, &spec.vm_id, source)
        }
        None => VmmError::Spawn {
            binary: config.binary.clone(),
            source,
        },
    })?;
    let pid = child.id().ok_or_else(|| VmmError::ExitedAtStart {
        vm_id: spec.vm_id.clone(),
        pid: 0,
        console_log: spec.console_log.clone(),
    })?;
    drop(child);
    let stat = process::read_stat(pid)
        .map_err(|e| VmmError::io("read process status", format!("/proc/{pid}/stat"), e))?
        .ok_or_else(|| VmmError::ExitedAtStart {
            vm_id: spec.vm_id.clone(),
            pid,
            console_log: spec.console_log.clone(),
        })?;
    Ok(ProcessIdentity {
        pid,
        start_time: stat.start_time,
    })
}

/// Firecracker's instance id: letters, digits and `-`, at most 64; banger's VM ids are hex.
fn instance_id(vm_id: &str) -> String {
    let id: String = vm_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    if id.is_empty() {
        "banger-vm".to_owned()
    } else {
        id
    }
}

/// Copy what the log pipe holds now into Firecracker's capped log, without waiting.
fn drain_log(mut reader: &File, paths: &FcPaths) {
    let mut log = match RotatingFile::open(&paths.log, VMM_LOG_MAX_BYTES) {
        Ok(log) => log,
        Err(e) => {
            tracing::warn!(path = %paths.log.display(), error = %e, "cannot open Firecracker's log");
            return;
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => log.append(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // `WouldBlock`: the pipe is empty for now.
            Err(_) => break,
        }
    }
}

fn exited(runtime: &VmRuntime, paths: &FcPaths, log_reader: &File, when: &str) -> VmmError {
    drain_log(log_reader, paths);
    let stderr = banger_system::tail::tail_lines(&paths.stderr, 5);
    let log = banger_system::tail::tail_lines(&paths.log, 5);
    let last = stderr
        .last()
        .or(log.last())
        .map(String::as_str)
        .unwrap_or("");
    let why = if last.is_empty() {
        format!("it exited {when}")
    } else {
        format!("it exited {when}, saying {last:?}")
    };
    VmmError::FirecrackerExited {
        vm_id: runtime.vm_id.clone(),
        pid: runtime.pid,
        why,
        log: paths.log.clone(),
    }
}

/// Refuse to start a second Firecracker in a directory whose Firecracker still runs: it would
/// take over the first one's sockets.
fn ensure_not_in_use(vm_id: &str, paths: &FcPaths) -> Result<(), VmmError> {
    if let Some(previous) = read_launch_record(&paths.launch_record)
        && previous.is_alive()
    {
        return Err(VmmError::AlreadyRunning {
            vm_id: vm_id.to_owned(),
            pid_file: paths.launch_record.clone(),
            pid: Some(previous.pid),
        });
    }
    Ok(())
}

/// The runtime record a launch wrote into `path`, if it is readable.
pub(super) fn read_launch_record(path: &Path) -> Option<VmRuntime> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Written to a temporary name, synced, renamed: a reader sees the whole record or none.
fn write_launch_record(path: &Path, runtime: &VmRuntime) -> Result<(), VmmError> {
    let json = serde_json::to_vec(runtime)
        .map_err(|e| VmmError::io("encode launch record", path, std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| VmmError::io("write launch record", path, e))
}

fn remove_if_present(path: &Path) -> Result<(), VmmError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VmmError::io("remove stale file", path, e)),
    }
}

/// Create the named pipe at `path`, readable and writable by its owner only.
fn make_fifo(path: &Path) -> Result<(), VmmError> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        VmmError::io(
            "create console pipe",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path holds a NUL byte",
            ),
        )
    })?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; mkfifo(3)
    // reads it and touches no other memory.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == -1 {
        return Err(VmmError::io(
            "create console pipe",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn kill_now(identity: ProcessIdentity) {
    if let Err(e) = process::signal(identity, libc::SIGKILL) {
        tracing::warn!(pid = identity.pid, error = %e, "cannot kill Firecracker after a failed launch");
    }
}

/// Remove the sockets and record a dead Firecracker leaves behind — unless the record now
/// names another live process: a newer Firecracker owns the directory.
pub(super) fn remove_leftovers(runtime: &VmRuntime) {
    let paths = FcPaths::in_dir(&runtime.vm_dir);
    let newer_owner = read_launch_record(&paths.launch_record)
        .is_some_and(|rec| rec.pid != runtime.pid && rec.is_alive());
    if newer_owner {
        return;
    }
    for path in [
        &paths.api_socket,
        &paths.vsock,
        &paths.launch_record,
        &paths.console_fifo,
        &paths.log_fifo,
    ] {
        if let Err(e) = remove_if_present(path) {
            tracing::warn!(error = %banger_system::error_chain(&e), "cannot remove a leftover file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_what_firecracker_accepts() {
        assert_eq!(instance_id("0a1b2c"), "0a1b2c");
        assert_eq!(instance_id("a b/c"), "abc");
        assert_eq!(instance_id("///"), "banger-vm");
        assert_eq!(instance_id(&"a".repeat(100)).len(), 64);
    }
}
