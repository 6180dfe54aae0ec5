//! Request and response bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod images;
pub use images::*;

/// Every non-2xx response carries this body (and a streamed operation's `error` line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ApiError {
    /// Machine-readable kind: `invalid` (400, also 413 and 415), `not_found` (404),
    /// `method_not_allowed` (405), `conflict` (409), `unavailable` (503), `internal` (500).
    /// Clients should treat a kind they do not know like `internal`.
    #[schema(example = "not_found")]
    pub kind: String,
    /// What failed, on which object, naming request fields as the API spells them.
    #[schema(example = "no VM named \"dev\"")]
    pub message: String,
    /// What to do next, when there is something useful to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "`banger vm ls` lists your VMs")]
    pub hint: Option<String>,
    /// The request field at fault, when one is (`memory_mib`, `argv[0]`), so a program
    /// can point at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "memory_mib")]
    pub field: Option<String>,
}

/// What the daemon is: its version and build, mode and VMM driver.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// The daemon's release version (semver).
    #[schema(example = "0.1.0")]
    pub version: String,
    /// Identifies the exact sources the daemon was built from; two binaries with the
    /// same `build` behave the same. Empty when the daemon predates this field.
    #[serde(default)]
    pub build: String,
    pub pid: u32,
    /// `system`, `dev (root)` or `dev (user)`.
    #[schema(example = "dev (user)")]
    pub mode: String,
    pub state_dir: String,
    /// The VMM driver this daemon uses and its accelerator.
    #[schema(example = "qemu (tcg)")]
    pub driver: String,
    /// Why that driver was chosen on this host.
    pub driver_reason: String,
}

/// A VM to create. Every field is optional; omitted ones take the daemon's defaults
/// (`banger doctor` shows them and where each comes from). Unknown fields are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVmRequest {
    /// A DNS label: 1-63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
    /// Generated (`swift-otter-3f2a`) when omitted.
    #[serde(default)]
    #[schema(example = "dev")]
    pub name: Option<String>,
    /// The image to boot; the configured default image when omitted. A catalogued
    /// image that is not built yet is built first.
    #[serde(default)]
    #[schema(example = "minimal")]
    pub image: Option<String>,
    /// Virtual CPUs: 1 to 32 (more than the host has runs, only slower).
    #[serde(default)]
    #[schema(example = 2, minimum = 1, maximum = 32)]
    pub vcpu: Option<u32>,
    /// Guest memory in MiB: 128 to 1048576, and no more than the host's physical memory
    /// (refused with a 400 naming both).
    #[serde(default)]
    #[schema(example = 1024, minimum = 128, maximum = 1048576)]
    pub memory_mib: Option<u64>,
    /// Work disk size: a size string with a binary unit (`8G`, `512M`) or plain bytes.
    #[serde(default)]
    #[schema(example = "8G")]
    pub disk: Option<String>,
    /// Start the VM and wait until its agent is ready before answering.
    #[serde(default)]
    pub start: bool,
    /// Ports to publish, each `[HOST_ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp]` (like
    /// `docker -p`); kept with the VM and forwarded whenever it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["8080:80", "127.0.0.1:5353:53/udp"]))]
    pub publish: Vec<String>,
    /// The VMM for this VM: `auto`, `qemu` or `firecracker`; default: config's `vmm`. The
    /// VM keeps the driver chosen now for its whole life.
    #[serde(default)]
    #[schema(example = "auto")]
    pub vmm: Option<String>,
    /// Make the VM a clone of this snapshot (name or id): it resumes the snapshot's guest
    /// instead of booting, with copy-on-write copies of its disks and an identity of its
    /// own. `image`, `vcpu`, `memory_mib`, `disk` and `vmm` are then the snapshot's and
    /// must be omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "dev-ready")]
    pub from: Option<String>,
    /// Host directories to share with the guest (`-v HOST:GUEST[:ro]`); kept with the VM,
    /// mounted by the guest at every boot before any command runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareRequest>,
    /// Boot the kernel even when the image has a matching warm state (`vm run --cold`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold: bool,
}

/// A host directory to share with a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// An existing directory on the host, absolute; symbolic links are resolved. It must be
    /// readable by the daemon's user and outside banger's own state.
    #[schema(example = "/home/me/src/app")]
    pub host: String,
    /// Where the guest mounts it: an absolute path.
    #[schema(example = "/src")]
    pub guest: String,
    /// The guest may read but not write; enforced on the host side.
    #[serde(default)]
    pub read_only: bool,
    /// How the directory reaches the guest: `auto` (live where the VMM can, else a copy
    /// when `[shares] fallback` allows it), `live` (virtio-fs or an error) or `copy` (copied
    /// in at every boot; `banger vm sync` copies changes back).
    #[serde(default, skip_serializing_if = "ShareMode::is_auto")]
    pub mode: ShareMode,
}

/// How a share was asked to reach the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareMode {
    /// Live where possible, else a copy when the configuration accepts one.
    #[default]
    Auto,
    /// Live (virtio-fs) or nothing.
    Live,
    /// Copied in at boot.
    Copy,
}

impl ShareMode {
    pub fn is_auto(&self) -> bool {
        *self == ShareMode::Auto
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShareMode::Auto => "auto",
            ShareMode::Live => "live",
            ShareMode::Copy => "copy",
        }
    }
}

impl std::str::FromStr for ShareMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ShareMode::Auto),
            "live" => Ok(ShareMode::Live),
            "copy" => Ok(ShareMode::Copy),
            other => Err(format!(
                "unknown share mode {other:?}; expected auto, live or copy"
            )),
        }
    }
}

/// How to stop a VM. An empty body means a graceful stop with the default timeout.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopVmRequest {
    /// Seconds the guest gets to power itself off before the VMM is killed
    /// (default 15, at most 3600).
    #[serde(default)]
    #[schema(example = 15, maximum = 3600)]
    pub timeout_secs: Option<u64>,
    /// Skip the graceful steps and kill at once.
    #[serde(default)]
    pub force: bool,
}

/// Boot phases, in milliseconds since the start request reached the daemon.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct BootTimings {
    /// The VMM process was running with its sockets in place.
    pub vmm_spawned_ms: f64,
    /// The guest kernel started executing (derived from the guest's uptime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_started_ms: Option<f64>,
    /// PID 1 (the agent) started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_started_ms: Option<f64>,
    /// The agent answered the handshake.
    pub agent_ready_ms: f64,
    /// The guest kernel's release (`uname -r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
}

/// A VM as the daemon records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VmView {
    /// Stable identifier; every `{name}` in a path also accepts it.
    pub id: String,
    pub name: String,
    /// The image it boots.
    pub image: String,
    /// `created`, `starting`, `running`, `paused`, `stopping`, `stopped` or `failed`; `removed` in
    /// the answer to a delete. Clients should expect states added by later versions.
    #[schema(example = "running")]
    pub state: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    /// The VM's disk size in bytes: its work disk's, and its root disk's (the root
    /// filesystem is grown to fill it at first boot; a root disk is never smaller than its
    /// image, see `disks`).
    pub disk_bytes: u64,
    /// The VMM driver that runs it (`qemu`, `firecracker`), chosen when it was created.
    #[serde(default)]
    pub driver: Option<String>,
    /// Why the VM got its driver (chosen when it was created).
    #[serde(default)]
    pub driver_reason: Option<String>,
    /// The accelerator of its last boot (`kvm`, `tcg`).
    #[serde(default)]
    pub accel: Option<String>,
    /// The VMM's process id while the VM is active.
    #[serde(default)]
    pub pid: Option<i32>,
    /// The VM's directory on the host (disks, console log).
    pub dir: String,
    /// Path of the serial console log on the host.
    pub console_log: String,
    /// RFC 3339 timestamps.
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    /// Why the last boot or run failed, when it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Phases of the last boot.
    #[serde(default)]
    pub boot: Option<BootTimings>,
    /// The VM's disks (filled by `GET /v1/vms/{name}`; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskView>,
    /// Its networking (filled by `GET /v1/vms/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkView>,
    /// The snapshot this VM is a clone of, and whether its first start restored it
    /// (filled by `GET /v1/vms/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::snapshots::VmOriginView>,
    /// Why this VM booted cold although its image had a warm state (filled by
    /// `GET /v1/vms/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_reason: Option<String>,
    /// The host directories it shares (filled by `GET /v1/vms/{name}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareView>,
    /// The guest paths of its live shares whose `virtiofsd` died while it runs (in lists
    /// too): they stay down until the VM restarts (`shares` says why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares_down: Vec<String>,
    /// The host resources its running VMM may take (filled by `GET /v1/vms/{name}` while
    /// the VM is active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsView>,
    /// How its running VMM is confined, read back from the kernel (filled by
    /// `GET /v1/vms/{name}` while the VMM runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxView>,
}

/// A running VMM's confinement, as `/proc` reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SandboxView {
    /// `jailer` (the root helper through Firecracker's jailer), `sandbox` (banger's own) or
    /// `none`.
    pub started_by: String,
    /// The same, in words (with the jailer's chroot).
    pub summary: String,
    /// Its uid (real and effective).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Whether a seccomp filter is installed (`Seccomp: 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_new_privs: Option<bool>,
    /// Its effective capabilities (`0x0`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<String>,
    /// Whether its root directory is not the host's (a jail or chroot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_root: Option<bool>,
}

/// A running VM's cgroup limits, read back from the kernel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct LimitsView {
    /// `v1` or `v2` when the VMM is in a cgroup of its own with limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Its cgroup directories (memory, then pids on cgroup v1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<u64>,
    /// Tasks (processes and threads) allowed, and in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
    /// Why no limits apply, when none do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlimited_because: Option<String>,
    /// Who made its groups: `the jailer`, `the root helper`, or the daemon's backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_by: Option<String>,
}

/// A host directory a VM shares, and how it reaches the guest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ShareView {
    /// The host directory (links resolved when the VM was created).
    pub host: String,
    /// Where the guest mounts it.
    pub guest: String,
    pub read_only: bool,
    /// `virtio-fs` (live, both ways), `copy` (copied in at every boot; `banger vm sync`
    /// copies the guest's changes back), or `unavailable` when this host cannot serve it now
    /// (`problem` says why and what to do).
    #[schema(example = "virtio-fs")]
    pub mode: String,
    /// Why the share cannot be served, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Why a copy was chosen where a live share was asked for (`-v` without a mode), or
    /// what a running guest reported about the share (it could not be mounted, its server
    /// died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A read-write copy the guest changed since the VM started or since its last
    /// `banger vm sync` (its filesystem journal shows new transactions): the next start
    /// replaces those changes with the host directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsynced: bool,
}

/// Copies whose guest content was just brought back to the host (`banger vm sync`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharesSyncedRequest {
    /// The guest paths of the read-write copy-in shares synced whole.
    pub guest_paths: Vec<String>,
}

/// A VM's networking.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct NetworkView {
    /// `bridge`, `user` (QEMU user-mode networking) or `none` while the VM runs; absent
    /// when it is not running.
    #[serde(default)]
    pub mode: Option<String>,
    /// The guest's address, with its prefix (`10.213.0.2/24`), while it runs.
    #[serde(default)]
    pub address: Option<String>,
    /// The guest's gateway (the host side).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Published ports, `[HOST_ADDR:]HOST_PORT:GUEST_PORT/PROTO`.
    #[serde(default)]
    pub published: Vec<String>,
}

/// One disk of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct DiskView {
    /// `root` (the image's filesystem, cloned) or `work` (mounted at `/work`).
    pub role: String,
    pub path: String,
    /// `raw` or `qcow2`.
    pub format: String,
    /// `reflink`, `qcow2` (overlay on the image), `copy` (sparse copy) or `fresh`.
    pub backend: String,
    /// What the guest sees.
    pub size_bytes: u64,
    /// What it really costs the host: allocated bytes not shared with the image.
    #[serde(default)]
    pub used_bytes: Option<u64>,
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// A command to run in a VM through its guest agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The program and its arguments; the program is looked up in the guest's `PATH`.
    #[schema(example = json!(["uname", "-a"]), min_items = 1)]
    pub argv: Vec<String>,
    /// Extra environment variables as `[name, value]` pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>, example = json!([["TERM", "xterm"]]))]
    pub env: Vec<(String, String)>,
    /// Working directory in the guest: an absolute path (`/` when absent).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Forward the client's stdin.
    #[serde(default)]
    pub stdin: bool,
    /// Allocate a terminal of this size in the guest.
    #[serde(default)]
    pub tty: Option<TtySize>,
    /// Run as this guest user: `NAME`, `UID`, `NAME:GROUP` or `UID:GID` (an OCI image
    /// config's `User` syntax, resolved in the guest's `/etc/passwd` and `/etc/group`).
    /// Root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "app")]
    pub user: Option<String>,
}

/// How a command in the guest ended: `code` when it exited, `signal` when a signal
/// killed it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ExitStatus {
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The exit code a shell would report: the code, or 128 + signal.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 255,
        }
    }
}
