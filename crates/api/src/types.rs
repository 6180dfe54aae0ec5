//! Request and response bodies.

use serde::{Deserialize, Serialize};

/// Every non-2xx response carries this body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// Machine-readable kind: `not_found`, `conflict`, `invalid`, `unavailable`, `internal`.
    pub kind: String,
    /// What failed, on which object.
    pub message: String,
    /// What to do next, when there is something useful to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub version: String,
    pub pid: u32,
    /// `system`, `dev (root)` or `dev (user)`.
    pub mode: String,
    pub state_dir: String,
    /// The VMM driver this daemon uses and why.
    pub driver: String,
    pub driver_reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVmRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub vcpu: Option<u32>,
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Work disk size as a size string ("8G") or bytes.
    #[serde(default)]
    pub disk: Option<String>,
    /// Start the VM and wait until its agent is ready before answering.
    #[serde(default)]
    pub start: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopVmRequest {
    /// Seconds to wait for a graceful shutdown before killing the VMM.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Skip the graceful steps and kill at once.
    #[serde(default)]
    pub force: bool,
}

/// Boot phases, in milliseconds since the start request reached the daemon.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub accel: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    pub dir: String,
    pub console_log: String,
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub boot: Option<BootTimings>,
    /// The VM's disks (filled by `GET /v1/vms/{name}`; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskView>,
}

/// One disk of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageView {
    pub name: String,
    pub source: String,
    pub kernel_path: String,
    pub kernel_format: String,
    #[serde(default)]
    pub initrd_path: Option<String>,
    #[serde(default)]
    pub rootfs_path: Option<String>,
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// The kernel carries the PVH entry note (direct ELF boot on QEMU microvm and Firecracker).
    #[serde(default)]
    pub kernel_pvh: Option<bool>,
    pub size_bytes: u64,
    pub created_at: String,
    /// How the guest starts: `initramfs`, `agent` (the lean init) or `systemd`.
    #[serde(default)]
    pub init: Option<String>,
    /// `sha256:…` of the image's manifest, when it came from one.
    #[serde(default)]
    pub digest: Option<String>,
    /// An imported image's Entrypoint/Cmd/Env/WorkingDir: what `vm run` runs when it is
    /// given no command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ImageRunConfig>,
}

/// How `vm run IMAGE` with no command runs an imported image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRunConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `KEY=VALUE` strings.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullImageRequest {
    /// A catalog entry (`banger image ls --catalog`… or the catalog docs).
    pub name: String,
    /// Fetch again even if the image is registered.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKernelRequest {
    /// Absolute path of an ELF vmlinux or a bzImage, readable by the daemon.
    pub path: String,
    /// Register under this name (default: `kernel-<file name>`).
    #[serde(default)]
    pub name: Option<String>,
    /// An initrd to boot with it (default: one holding only the agent; the kernel then
    /// needs its virtio drivers built in).
    #[serde(default)]
    pub initrd: Option<String>,
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportImageRequest {
    /// skopeo transport syntax: `docker://REGISTRY/REPO:TAG`, `oci:DIR[:TAG]`,
    /// `docker-archive:FILE`.
    pub reference: String,
    /// Register under this name (default: derived from the reference).
    #[serde(default)]
    pub name: Option<String>,
    /// The image whose kernel and initrd the new image boots (default: `minimal`).
    #[serde(default)]
    pub kernel: Option<String>,
    /// Allow plain HTTP to a registry that is not on localhost.
    #[serde(default)]
    pub insecure: bool,
    /// Replace an existing image of that name.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildImageRequest {
    /// The recipe to build: `debian` or `minimal`.
    pub recipe: String,
    /// Register under this name (default: the recipe name).
    #[serde(default)]
    pub name: Option<String>,
    /// Rebuild even if an image of that name exists.
    #[serde(default)]
    pub force: bool,
    /// Debian suite (`debian` recipe); default `bookworm`.
    #[serde(default)]
    pub suite: Option<String>,
    /// Extra packages for the root filesystem (`debian` recipe).
    #[serde(default)]
    pub packages: Vec<String>,
    /// The guest's init (`debian` recipe): `agent` (default) or `systemd`.
    #[serde(default)]
    pub init: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Forward the client's stdin.
    #[serde(default)]
    pub stdin: bool,
    /// Allocate a terminal of this size in the guest.
    #[serde(default)]
    pub tty: Option<TtySize>,
}

/// How a command in the guest ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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
