//! Host directories shared with a guest over virtio-fs: one `virtiofsd` per share.
//!
//! `virtiofsd` (the Rust daemon) serves one directory on a vhost-user socket in the VM's
//! directory; QEMU attaches it as a `vhost-user-fs` device and the guest mounts it by its
//! tag. The daemon starts every share's `virtiofsd` before QEMU ([`spawn::start`]), as the
//! daemon's own user (the owner), sandboxed by `virtiofsd` itself into a namespace whose
//! root is the shared directory. It exits by itself when QEMU disconnects; every path that
//! ends a VM still reaps it ([`spawn::reap`]), finding it by its command line, which names
//! the VM's directory ([`spawn::find`]): no pid needs recording. They are not the driver's
//! `stray_marks` strays: a restarted daemon that adopts a running VM keeps them.
//!
//! QEMU 7.2 cannot migrate a live `vhost-user-fs` device: a VM with shares cannot be
//! snapshotted as is.

mod argv;
pub mod spawn;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use argv::render;

/// Where `virtiofsd` is looked for when the configuration names none: where
/// `cargo install --root /usr/local` (what `make deps` runs) and distributions put it.
pub const SEARCH_PATHS: &[&str] = &[
    "/usr/local/bin/virtiofsd",
    "/usr/libexec/virtiofsd",
    "/usr/lib/qemu/virtiofsd",
    "/usr/bin/virtiofsd",
];

/// How to install `virtiofsd` where none is found (Debian bookworm packages none).
pub const INSTALL_HINT: &str = "install virtiofsd: `make deps`, or `sudo apt-get install \
     libseccomp-dev libcap-ng-dev && sudo cargo install virtiofsd --locked --root /usr/local`";

/// The `virtiofsd` this host offers: the first of [`SEARCH_PATHS`] that is an executable
/// file, else the first on the host's search path (`PATH` plus the sbin directories).
pub fn find_binary() -> Option<PathBuf> {
    find_binary_in(Some(&banger_system::preflight::host_search_path()))
}

/// [`find_binary`] with `search_path` (`PATH`-style) after [`SEARCH_PATHS`]; `doctor`
/// passes the one it inspects.
pub fn find_binary_in(search_path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use banger_system::preflight::find_executable;
    SEARCH_PATHS
        .iter()
        .find_map(|p| find_executable(p, None))
        .or_else(|| find_executable("virtiofsd", search_path))
}

/// One shared directory, as the driver launches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSpec {
    /// The virtio-fs tag the guest mounts it by (`bangerfs0`, …; at most 36 bytes).
    pub tag: String,
    /// The host directory: absolute, links resolved.
    pub host_dir: PathBuf,
    /// Writes are refused by `virtiofsd` itself, whatever the guest's mount says.
    pub read_only: bool,
}

impl ShareSpec {
    /// The tag of the share at `index` of a VM.
    pub fn tag_for(index: usize) -> String {
        format!("bangerfs{index}")
    }

    /// The vhost-user socket of this share in `vm_dir`.
    pub fn socket(&self, vm_dir: &Path) -> PathBuf {
        vm_dir.join(format!("{}.sock", self.tag))
    }

    /// `virtiofsd`'s log (its stderr) in `vm_dir`.
    pub fn log(&self, vm_dir: &Path) -> PathBuf {
        vm_dir.join(format!("{}.log", self.tag))
    }
}

/// Whose files the guest's writes become: the identity `virtiofsd` runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// This process's effective ids: the daemon runs as the VMs' owner.
    pub fn of_this_process() -> Owner {
        // SAFETY: geteuid/getegid have no preconditions and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Owner { uid, gid }
    }
}
