//! The fake VMM's state: what has been configured, the instance state, Firecracker's own
//! log, and the simulated guest once started.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::guest::Guest;
use crate::personality::Version;

/// notes: "`GET /` → `{"app_name","id","state","vmm_version"}`; state is "Not started" |
/// "Running" | "Paused"."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    NotStarted,
    Running,
    Paused,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::NotStarted => "Not started",
            InstanceState::Running => "Running",
            InstanceState::Paused => "Paused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSource {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub boot_args: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    pub id: String,
    pub path: PathBuf,
    pub root: bool,
    pub read_only: bool,
    pub partuuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub vcpu_count: u32,
    pub mem_size_mib: u64,
    pub smt: bool,
    pub track_dirty_pages: bool,
    pub huge_pages: String,
}

impl Default for MachineConfig {
    /// notes: "`GET /machine-config` defaults: 1 vCPU, 128 MiB".
    fn default() -> Self {
        MachineConfig {
            vcpu_count: 1,
            mem_size_mib: 128,
            smt: false,
            track_dirty_pages: false,
            huge_pages: "None".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetIface {
    pub id: String,
    pub tap: String,
    pub mac: Option<String>,
}

/// The host side of the hybrid vsock device: a listening socket bound at `PUT /vsock`.
#[derive(Debug)]
pub struct Vsock {
    pub guest_cid: u32,
    pub uds_path: PathBuf,
    pub listener: UnixListener,
}

/// Firecracker's own log: stdout until `PUT /logger` names a file.
#[derive(Debug)]
pub struct FcLog {
    pub instance_id: String,
    file: Option<File>,
}

impl FcLog {
    pub fn new(instance_id: &str) -> FcLog {
        FcLog {
            instance_id: instance_id.to_owned(),
            file: None,
        }
    }

    /// A second handle on the same log, for the guest's serial to report lost bytes.
    pub fn try_clone(&self) -> FcLog {
        FcLog {
            instance_id: self.instance_id.clone(),
            file: self.file.as_ref().and_then(|f| f.try_clone().ok()),
        }
    }

    pub fn set_file(&mut self, file: File) {
        self.file = Some(file);
    }

    /// One line in Firecracker's format: `<timestamp> [<id>:<thread>] <message>`.
    pub fn line(&mut self, thread: &str, message: &str) {
        let line = format!(
            "{} [{}:{thread}] {message}\n",
            timestamp(),
            self.instance_id
        );
        let _ = match &mut self.file {
            Some(file) => file.write_all(line.as_bytes()),
            None => std::io::stdout().write_all(line.as_bytes()),
        };
    }
}

/// UTC with nanoseconds, as Firecracker's logger prints it.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]"
    );
    now.format(&format).unwrap_or_default()
}

/// Everything the API has configured, and the guest once started.
#[derive(Debug)]
pub struct Vmm {
    pub personality: Version,
    pub state: InstanceState,
    pub boot_source: Option<BootSource>,
    /// The root drive (if any) first, as Firecracker orders them.
    pub drives: Vec<Drive>,
    pub machine: MachineConfig,
    pub ifaces: Vec<NetIface>,
    pub vsock: Option<Vsock>,
    pub logger_configured: bool,
    pub metrics_path: Option<PathBuf>,
    pub serial_out: Option<PathBuf>,
    pub mmds: Option<serde_json::Value>,
    /// A boot-specific resource was configured: a snapshot can no longer be loaded.
    pub boot_resources_configured: bool,
    pub log: FcLog,
    /// The scratch directory the guest's agent runs in.
    pub guest_dir: PathBuf,
    pub guest: Option<Guest>,
    /// Set when the process must exit after answering (a failed snapshot load).
    pub exit_after_response: Option<i32>,
    /// The drive backing files (and a restored guest's memory file) the running VM holds
    /// open, as the real Firecracker does: what `/proc/PID/fd` shows is what it uses.
    pub held_files: Vec<File>,
}

impl Vmm {
    pub fn new(personality: Version, instance_id: &str, guest_dir: PathBuf) -> Vmm {
        Vmm {
            personality,
            state: InstanceState::NotStarted,
            boot_source: None,
            drives: Vec::new(),
            machine: MachineConfig::default(),
            ifaces: Vec::new(),
            vsock: None,
            logger_configured: false,
            metrics_path: None,
            serial_out: None,
            mmds: None,
            boot_resources_configured: false,
            log: FcLog::new(instance_id),
            guest_dir,
            guest: None,
            exit_after_response: None,
            held_files: Vec::new(),
        }
    }

    pub fn started(&self) -> bool {
        self.state != InstanceState::NotStarted
    }
}
