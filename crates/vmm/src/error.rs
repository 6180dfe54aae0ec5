//! [`VmmError`]: every way launching or controlling a VM can fail. Messages say what failed
//! on which object; the cause is the `source`, printed once by the reporter
//! (`banger_system::error_chain`), never repeated in the message.

use std::path::PathBuf;
use std::time::Duration;

use crate::qmp::QmpError;
use crate::spec::DriverKind;

/// Longest path a Unix socket address can hold (`sun_path` is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// The launch request cannot be rendered into a valid VMM configuration.
    #[error("cannot launch VM {vm_id}: {problem}")]
    InvalidSpec { vm_id: String, problem: String },

    /// The driver configuration is incomplete or contradictory.
    #[error("invalid {driver} driver configuration: {problem}")]
    InvalidConfig { driver: DriverKind, problem: String },

    /// A socket would live at a path longer than a Unix socket address can hold.
    #[error(
        "socket path {path:?} is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of Unix \
         socket addresses; move banger's state directory to a shorter path (BANGER_STATE_DIR)"
    )]
    SocketPathTooLong { path: PathBuf, len: usize },

    /// A file operation on the host failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The VMM binary could not be executed at all.
    #[error("cannot run {} (check that it is installed and executable)", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The daemon could not open a VM's TAP for its sandboxed VMM.
    #[error(
        "cannot open TAP device {tap} for VM {vm_id}'s VMM; check that the VM's network was \
         set up (banger doctor) and that this daemon owns the TAP or runs as root"
    )]
    OpenTap {
        vm_id: String,
        tap: String,
        // Boxed: NetError is large, and VmmError is returned everywhere.
        #[source]
        source: Box<banger_net::NetError>,
    },

    /// The VM's cgroup could not be made or given its limits.
    #[error("cannot make VM {vm_id}'s cgroup with its memory and tasks limits")]
    Cgroup {
        vm_id: String,
        #[source]
        source: crate::sandbox::cgroup::CgroupError,
    },

    /// The VMM's sandbox could not be prepared (ids, file ownership, jail plan).
    #[error("cannot sandbox the VMM of VM {vm_id}")]
    Sandbox {
        vm_id: String,
        #[source]
        source: crate::sandbox::SandboxError,
    },

    /// Confining the VMM process between fork and exec failed.
    #[error("cannot start the sandboxed VMM of VM {vm_id}: the child could not {step}")]
    Confine {
        vm_id: String,
        step: String,
        #[source]
        source: std::io::Error,
    },

    /// The privileged launcher (the root helper) could not start or release a jailed
    /// Firecracker; its own reason is the cause.
    #[error("cannot {action} VM {vm_id}'s Firecracker jail through the root helper")]
    Jailer {
        vm_id: String,
        action: &'static str,
        #[source]
        source: crate::firecracker::jailed::LaunchError,
    },

    /// The VMM runs under another identity than the sandbox gave it.
    #[error(
        "VM {vm_id}: the VMM process {pid} runs as uid {found}, not the sandbox's uid {expected}; \
         it was stopped"
    )]
    SandboxEscaped {
        vm_id: String,
        pid: u32,
        expected: u32,
        found: u32,
    },

    /// `virtiofsd` exited before serving a share; `stderr` is its own explanation.
    #[error("virtiofsd refused to share {dir:?} with VM {vm_id} (exit status {status}): {stderr}")]
    ShareRefused {
        vm_id: String,
        dir: PathBuf,
        status: String,
        stderr: String,
    },

    /// `virtiofsd` did not open its socket in time.
    #[error(
        "virtiofsd did not start serving {dir:?} for VM {vm_id} within {waited:?}; the host \
         may be overloaded: try again"
    )]
    ShareTimeout {
        vm_id: String,
        dir: PathBuf,
        waited: std::time::Duration,
    },

    /// The VM shares host directories but this host has no `virtiofsd`.
    #[error(
        "VM {vm_id} shares host directories, which need virtiofsd, and none was found; {}",
        crate::virtiofs::INSTALL_HINT
    )]
    NoVirtiofsd { vm_id: String },

    /// QEMU exited with an error before the VM started; `stderr` is QEMU's own explanation.
    #[error("QEMU refused to start VM {vm_id} (exit status {status}): {stderr}")]
    QemuRefused {
        vm_id: String,
        status: String,
        stderr: String,
    },

    /// A VMM for this VM directory is still running.
    #[error(
        "VM {vm_id} is already running ({}pid file {} is locked); stop it first",
        pid.map(|p| format!("pid {p}, ")).unwrap_or_default(),
        pid_file.display()
    )]
    AlreadyRunning {
        vm_id: String,
        pid_file: PathBuf,
        pid: Option<u32>,
    },

    /// The VMM did not finish starting in time.
    #[error("VM {vm_id}: the VMM did not finish starting within {waited:?}")]
    LaunchTimeout { vm_id: String, waited: Duration },

    /// The pid file the VMM wrote is missing or malformed.
    #[error("VM {vm_id}: bad pid file {path:?}: {problem}")]
    PidFile {
        vm_id: String,
        path: PathBuf,
        problem: String,
    },

    /// The VMM process disappeared right after launch.
    #[error(
        "VM {vm_id}: the VMM process {pid} exited right after starting; its console log \
         {console_log:?} may say why"
    )]
    ExitedAtStart {
        vm_id: String,
        pid: u32,
        console_log: PathBuf,
    },

    /// Talking QMP to a QEMU process failed.
    #[error("VM {vm_id}: QMP on {}", socket.display())]
    Qmp {
        vm_id: String,
        socket: PathBuf,
        #[source]
        source: QmpError,
    },

    /// The guest agent's socket did not accept a connection.
    #[error(
        "VM {vm_id}: cannot connect to the guest agent socket {} (is the VM running?)",
        path.display()
    )]
    AgentConnect {
        vm_id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Firecracker's hybrid vsock did not complete `CONNECT <port>`.
    #[error(
        "VM {vm_id}: vsock CONNECT {port} through {path:?} failed: {problem}; the guest agent \
         may not be listening yet, retry"
    )]
    VsockHandshake {
        vm_id: String,
        path: PathBuf,
        port: u32,
        problem: String,
    },

    /// Sending a signal to the VMM process failed.
    #[error("VM {vm_id}: cannot signal VMM process {pid}")]
    Signal {
        vm_id: String,
        pid: u32,
        #[source]
        source: std::io::Error,
    },

    /// The VMM process is still running after everything was tried.
    #[error("VM {vm_id}: VMM process {pid} is still running after {waited:?} and SIGKILL")]
    Unkillable {
        vm_id: String,
        pid: u32,
        waited: Duration,
    },

    /// Firecracker answered an API call with an error.
    #[error("VM {vm_id}: Firecracker rejected {endpoint} (HTTP {status}): {fault}")]
    FirecrackerApi {
        vm_id: String,
        /// `PUT /drives/root`
        endpoint: String,
        status: u16,
        /// Firecracker's `fault_message`.
        fault: String,
    },

    /// Firecracker's API socket did not answer.
    #[error("VM {vm_id}: no answer from Firecracker's API socket {socket:?} to {endpoint}")]
    FirecrackerUnreachable {
        vm_id: String,
        socket: PathBuf,
        endpoint: String,
        #[source]
        source: std::io::Error,
    },

    /// The Firecracker binary's version could not be read.
    #[error("cannot tell which Firecracker release {binary:?} is")]
    FirecrackerVersion {
        binary: PathBuf,
        #[source]
        source: banger_firecracker::VersionError,
    },

    /// The Firecracker binary is below the supported floor.
    #[error(transparent)]
    FirecrackerTooOld(#[from] banger_firecracker::TooOld),

    /// Firecracker exited before the VM was started.
    #[error(
        "VM {vm_id}: Firecracker (pid {pid}) exited while it was being configured: {why}; its \
         log {log:?} may say more"
    )]
    FirecrackerExited {
        vm_id: String,
        pid: u32,
        why: String,
        log: PathBuf,
    },

    /// The VMM cannot do this in the VM's current state.
    #[error("VM {vm_id}: cannot {action}: {problem}")]
    WrongState {
        vm_id: String,
        action: &'static str,
        problem: String,
    },

    /// A VMM could not load a snapshot; the VM was stopped. `reason` is the VMM's own.
    #[error(
        "VM {vm_id}: cannot restore the snapshot {state:?}: {reason}; the snapshot may come \
         from another VMM version or device set: take it again"
    )]
    RestoreFailed {
        vm_id: String,
        state: PathBuf,
        reason: String,
    },

    /// A runtime record of one driver was handed to another.
    #[error("VM {vm_id} runs under the {found} driver, not {expected}")]
    WrongDriver {
        vm_id: String,
        expected: DriverKind,
        found: DriverKind,
    },
}

impl VmmError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        VmmError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
