//! Host directories shared with a guest over virtio-fs: one `virtiofsd` per share.
//!
//! `virtiofsd` (the Rust daemon) serves one directory on a vhost-user socket in the VM's
//! directory; QEMU attaches it as a `vhost-user-fs` device and the guest mounts it by its
//! tag. The daemon starts every share's `virtiofsd` before QEMU ([`spawn::start`]), as the
//! daemon's own user (the owner), sandboxed by `virtiofsd` itself into a namespace whose
//! root is the shared directory. It exits by itself when QEMU disconnects; every path that
//! ends a VM still reaps it ([`spawn::reap`]), and one whose pid was never recorded is found
//! by its command line, which names the VM's directory ([`spawn::find`]).
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

/// The first `virtiofsd` of [`SEARCH_PATHS`] that is an executable file, then `PATH`'s.
pub fn find_binary() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let from_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("virtiofsd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    SEARCH_PATHS
        .iter()
        .map(PathBuf::from)
        .chain(from_path)
        .find(|p| executable(p))
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
