//! What the daemon asks a driver to boot: [`LaunchSpec`] and its parts.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which VMM runs a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    Qemu,
    Firecracker,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Qemu => "qemu",
            DriverKind::Firecracker => "firecracker",
        }
    }
}

impl std::str::FromStr for DriverKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qemu" => Ok(DriverKind::Qemu),
            "firecracker" => Ok(DriverKind::Firecracker),
            other => Err(format!(
                "unknown VMM driver {other:?}; expected qemu or firecracker"
            )),
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How guest code executes: hardware virtualisation or QEMU's software emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kernel image format a driver boots best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelFormat {
    /// An uncompressed ELF `vmlinux` (with the PVH note for QEMU microvm).
    ElfVmlinux,
    /// A compressed x86 boot-protocol image (`vmlinuz`).
    BzImage,
}

/// Disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriveFormat {
    Raw,
    Qcow2,
}

impl DriveFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DriveFormat::Raw => "raw",
            DriveFormat::Qcow2 => "qcow2",
        }
    }
}

/// One block device of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveSpec {
    /// Identifier, unique within the VM: a letter then letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// Absolute path of the image on the host.
    pub path: PathBuf,
    pub format: DriveFormat,
    pub read_only: bool,
    /// The root filesystem. It is attached first, so the guest sees it as `/dev/vda`.
    pub root: bool,
}

/// A guest network interface backed by a host TAP device the caller created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSpec {
    /// Identifier, same rules as [`DriveSpec::id`].
    pub id: String,
    /// Name of an existing TAP device (at most 15 bytes).
    pub tap: String,
    /// Guest MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

/// A port QEMU's user-mode network forwards from the host to the guest (`hostfwd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostForward {
    /// `tcp` or `udp`.
    pub udp: bool,
    /// The host address to listen on; `None` listens on every address.
    pub host_addr: Option<std::net::Ipv4Addr>,
    pub host_port: u16,
    pub guest_port: u16,
}

/// QEMU user-mode networking (slirp): outbound NAT inside QEMU, no privileges needed.
/// The guest is `10.0.2.15/24`, its gateway (the host) `10.0.2.2`, DNS `10.0.2.3`.
/// Only the QEMU driver supports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNetSpec {
    /// Guest MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub forwards: Vec<HostForward>,
}

/// What backs the guest's RAM. [`LaunchSpec::memory_backing`] is the one place that decides
/// what a launch really gets; QEMU's argv renders only that (`qemu/argv.rs::memory`);
/// Firecracker always uses anonymous memory (and refuses shares).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestMemory {
    /// Anonymous memory private to the VMM (QEMU's default `-m`).
    #[default]
    Private,
    /// A memfd the VMM maps shared (`memory-backend-memfd,share=on`): what a vhost-user
    /// device such as virtio-fs needs, since its daemon maps guest memory too.
    SharedMemfd,
    /// A file in the VM's directory ([`RAM_FILE`]) the VMM maps shared (QEMU only). A
    /// snapshot of such a VM saves device state only and keeps the file as the guest's
    /// memory, which restores map privately: what warm states are made with, so that every
    /// VM restored from one shares its pages.
    SharedFile,
}

/// The name of the guest-RAM file of a [`GuestMemory::SharedFile`] VM, in its directory, and
/// of the same file in a snapshot's directory.
pub const RAM_FILE: &str = "ram";

/// Files a driver wrote for one snapshot of a paused VM, and reads back to restore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFiles {
    /// The device state: QEMU's migration stream (memory included), Firecracker's
    /// `snapshot_path`.
    pub state: PathBuf,
    /// The guest memory, when the driver keeps it apart: Firecracker's `mem_file_path`;
    /// under QEMU the RAM file of a [`GuestMemory::SharedFile`] VM ([`RAM_FILE`]), which the
    /// state (saved with `x-ignore-shared`) does not repeat and every restore maps
    /// copy-on-write. The file is never written after the save.
    #[serde(default)]
    pub memory: Option<PathBuf>,
}

/// Kernel arguments every driver passes to every guest, after its own and before the caller's.
///
/// `cryptomgr.notests`: the kernel skips the self-tests of its crypto algorithms at boot. Debian's
/// kernels run them (Firecracker's own guest kernels are built without them:
/// `CONFIG_CRYPTO_MANAGER_DISABLE_TESTS`); under TCG they are `crypto_algapi_init`'s ~210 ms,
/// a tenth of a boot to the agent's Ready (docs/architecture.md, *Guest kernel arguments*). A
/// kernel in FIPS mode runs them anyway; a kernel without the parameter ignores it.
pub const GUEST_KERNEL_ARGS: &[&str] = &["cryptomgr.notests"];

/// Everything a driver needs to boot one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The VM's id; names it in errors and in the VMM's process title.
    pub vm_id: String,
    /// Absolute path of the VM's private directory: control sockets and the pid file go here.
    pub vm_dir: PathBuf,
    /// Uncompressed ELF `vmlinux`.
    pub kernel: PathBuf,
    /// `kernel` carries the PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`), so QEMU's microvm
    /// (and Firecracker) can boot it directly. A fact of the image, computed once when it
    /// was built or imported and stored with it; drivers never parse the kernel again.
    #[serde(default)]
    pub kernel_pvh: bool,
    /// Compressed kernel of the same build, used when the machine type needs it (QEMU `pc`).
    pub bzimage: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// Extra kernel arguments (e.g. `banger.hostname=dev`), appended after the driver's own.
    pub kernel_args: Vec<String>,
    pub drives: Vec<DriveSpec>,
    /// Network interfaces; empty for none.
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    /// A user-mode network interface (QEMU only), after the TAP NICs.
    #[serde(default)]
    pub user_net: Option<UserNetSpec>,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// How guest RAM is backed, as asked; see [`LaunchSpec::memory_backing`].
    #[serde(default)]
    pub memory: GuestMemory,
    /// Resume a saved guest from these files instead of booting the kernel. The device set
    /// (drives, NICs, vCPUs, memory, machine) must be the one the snapshot was taken with;
    /// the files behind the drives may differ (a clone's own copies). [`crate::VmmDriver::launch`]
    /// returns the VM paused, its state loaded; `resume` runs it.
    #[serde(default)]
    pub restore: Option<SnapshotFiles>,
    /// Host directories shared with the guest over virtio-fs (QEMU only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<crate::virtiofs::ShareSpec>,
    /// The log the daemon keeps of the guest's serial console (named in errors; drivers hand
    /// the console itself over as a socket or pipe, see `VmRuntime::console`).
    pub console_log: PathBuf,
}

impl LaunchSpec {
    /// The memory backing this launch gets: as asked, except that shares need guest memory
    /// the VMM maps shared (vhost-user), so private memory becomes a shared memfd.
    pub fn memory_backing(&self) -> GuestMemory {
        match &self.memory {
            GuestMemory::Private if !self.shares.is_empty() => GuestMemory::SharedMemfd,
            other => other.clone(),
        }
    }

    /// The files a sandboxed VMM of this launch opens, as the sandbox wants them: what it
    /// only reads (`kernel` — the driver's choice of kernel file —, the initrd, read-only
    /// drives) and the drives it writes.
    pub(crate) fn sandbox_files(&self, kernel: &std::path::Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut read_only = vec![kernel.to_path_buf()];
        read_only.extend(self.initrd.iter().cloned());
        let (ro, rw): (Vec<_>, Vec<_>) = self.drives.iter().partition(|d| d.read_only);
        read_only.extend(ro.into_iter().map(|d| d.path.clone()));
        (read_only, rw.into_iter().map(|d| d.path.clone()).collect())
    }

    /// The VM's directory must exist and be a directory: drivers put sockets and records
    /// there and never create it (the daemon does, private).
    pub(crate) fn check_vm_dir(&self) -> Result<(), crate::error::VmmError> {
        use crate::error::VmmError;
        match std::fs::metadata(&self.vm_dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(VmmError::io(
                "use as VM directory",
                &self.vm_dir,
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            )),
            Err(e) => Err(VmmError::io("open VM directory", &self.vm_dir, e)),
        }
    }
}
