//! Per-VM root disks: a copy-on-write clone of an image's root filesystem.
//!
//! The cheapest backend the host offers wins, tried in this order:
//!
//! 1. **reflink** — `FICLONE` on filesystems that share extents (xfs, btrfs, bcachefs):
//!    instant, no bytes copied, a raw file every driver boots (Firecracker needs raw).
//! 2. **qcow2** — a `qemu-img` overlay backed by the image, when the VM's driver is QEMU:
//!    instant and a few hundred KiB, on any filesystem.
//! 3. **copy** — a sparse copy (only the image's data extents are copied; holes stay
//!    holes): works everywhere, costs the image's used bytes and their copy time.
//!
//! Every backend gives the guest a disk of the VM's size, not the image's: images are
//! built at their content size plus a little slack (`ext4::image_size`), a raw clone is
//! extended with a sparse tail (`ftruncate`) and a qcow2 overlay gets the VM's virtual size;
//! the guest agent grows the filesystem online to fill the disk at boot (agent
//! `init/grow_root.rs`). Neither costs host bytes until the guest writes.
//!
//! [`used_bytes`] reports what a disk really costs the host: for a reflink clone only the
//! extents it no longer shares.

mod fiemap;
mod qcow2;
pub use qcow2::{virtual_size, write_overlay};
mod sparse;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use banger_system::progress::Progress;

pub use fiemap::unshared_bytes;

/// How a root disk was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Reflink,
    Qcow2,
    Copy,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Reflink => "reflink",
            Backend::Qcow2 => "qcow2",
            Backend::Copy => "copy",
        }
    }

    /// The disk's format on the host.
    pub fn format(self) -> &'static str {
        match self {
            Backend::Qcow2 => "qcow2",
            Backend::Reflink | Backend::Copy => "raw",
        }
    }
}

/// A root disk made by [`create_root_disk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDisk {
    pub path: PathBuf,
    pub backend: Backend,
    /// What the guest sees.
    pub size_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot {op} {path:?} while making a VM root disk")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot make a qcow2 overlay {path:?} on {base:?}: {problem}")]
    Overlay {
        path: PathBuf,
        base: PathBuf,
        problem: String,
    },
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> DiskError + 'p {
    move |source| DiskError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`create_root_disk`] may use.
#[derive(Debug, Clone, Copy)]
pub struct DiskOptions<'a> {
    /// The VM's driver reads qcow2 (QEMU). Firecracker boots raw files only.
    pub allow_qcow2: bool,
    /// `qemu-img`, when installed: QEMU's disk tools come with QEMU, so a host without
    /// them gets raw disks (the overlay itself is written natively, `qcow2::write_overlay`).
    pub qemu_img: Option<&'a Path>,
    /// The size the guest sees. An image larger than this (one built with headroom
    /// before images were grown per VM) keeps its own size: a disk never shrinks below
    /// its filesystem.
    pub size_bytes: u64,
}

/// Make `dir/root.ext4` (or `dir/root.qcow2`) from the image's `base`, by the cheapest
/// backend that works here; `progress` hears which, and a sparse copy's bytes. Nothing
/// is left behind on failure.
pub fn create_root_disk(
    base: &Path,
    dir: &Path,
    opts: DiskOptions<'_>,
    progress: &dyn Progress,
) -> Result<RootDisk, DiskError> {
    let image_bytes = fs::metadata(base).map_err(io_err("read", base))?.len();
    let size_bytes = opts.size_bytes.max(image_bytes);
    let raw = dir.join("root.ext4");
    progress.phase("clone the image's root filesystem (reflink)", None, None);
    match try_reflink(base, &raw) {
        Ok(true) => {
            extend(&raw, size_bytes)?;
            return Ok(RootDisk {
                path: raw,
                backend: Backend::Reflink,
                size_bytes,
            });
        }
        Ok(false) => {}
        Err(e) => return Err(e),
    }
    if opts.allow_qcow2 && opts.qemu_img.is_some() {
        let path = dir.join("root.qcow2");
        progress.phase(
            "make a qcow2 overlay on the image's root filesystem",
            None,
            None,
        );
        qcow2::create_overlay(base, &path, dir, size_bytes)?;
        return Ok(RootDisk {
            path,
            backend: Backend::Qcow2,
            size_bytes,
        });
    }
    sparse::copy(base, &raw, "the image's root filesystem", progress)?;
    extend(&raw, size_bytes)?;
    Ok(RootDisk {
        path: raw,
        backend: Backend::Copy,
        size_bytes,
    })
}

/// Give the raw disk at `path` a sparse tail up to `size_bytes` (the guest's filesystem
/// is grown into it at boot). Removes the disk on failure, as its callers promise.
fn extend(path: &Path, size_bytes: u64) -> Result<(), DiskError> {
    let grow = || -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        if file.metadata()?.len() < size_bytes {
            file.set_len(size_bytes)?;
            file.sync_all()?;
        }
        Ok(())
    };
    grow().map_err(|e| {
        let _ = fs::remove_file(path);
        io_err("extend to the VM's disk size", path)(e)
    })
}

/// A private copy of `src` at `dest` (which must not exist): a reflink where the filesystem
/// shares extents, else a sparse copy. Snapshots copy a paused VM's disks this way.
pub fn clone_file(src: &Path, dest: &Path, progress: &dyn Progress) -> Result<Backend, DiskError> {
    if try_reflink(src, dest)? {
        return Ok(Backend::Reflink);
    }
    sparse::copy(src, dest, &file_name(src), progress)?;
    Ok(Backend::Copy)
}

/// [`clone_file`] for a caller that goes on writing into the copy and fsyncs it itself
/// when done: a sparse copy is not synced here (its data is written back once, by the
/// caller's sync, instead of twice).
pub fn clone_file_unsynced(
    src: &Path,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<Backend, DiskError> {
    if try_reflink(src, dest)? {
        return Ok(Backend::Reflink);
    }
    sparse::copy_unsynced(src, dest, &file_name(src), progress)?;
    Ok(Backend::Copy)
}

/// What a sparse copy of `path` is called in its progress phase: the file's own name (a
/// VM's `work.ext4`, `root.qcow2`), never "the image's root filesystem" for a disk that is not.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `Ok(false)` when this filesystem cannot share extents (the caller falls back).
fn try_reflink(base: &Path, dest: &Path) -> Result<bool, DiskError> {
    let src = File::open(base).map_err(io_err("open", base))?;
    let dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(io_err("create", dest))?;
    // SAFETY: FICLONE takes the source fd as its argument and touches no memory of ours;
    // both fds are open for the duration of the call.
    let ret = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if ret == 0 {
        dst.sync_all().map_err(io_err("sync", dest))?;
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    drop(dst);
    let _ = fs::remove_file(dest);
    match err.raw_os_error() {
        // Not supported here, across filesystems, or by this file: fall back.
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::EPERM) => {
            Ok(false)
        }
        _ => Err(io_err("clone (FICLONE) into", dest)(err)),
    }
}

/// Can `dir`'s filesystem share extents? For doctor: clones a tiny file and cleans up.
pub fn supports_reflink(dir: &Path) -> io::Result<bool> {
    let probe = tempfile::Builder::new()
        .prefix(".reflink-probe-")
        .tempfile_in(dir)?;
    io::Write::write_all(&mut probe.as_file(), &[0u8; 4096])?;
    probe.as_file().sync_all()?;
    let dest = probe.path().with_extension("clone");
    let result = try_reflink(probe.path(), &dest).map_err(|e| match e {
        DiskError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    });
    let _ = fs::remove_file(&dest);
    result
}

/// Bytes the disk at `path` costs the host: allocated blocks, less the extents a
/// reflink clone still shares with its image.
pub fn used_bytes(path: &Path) -> io::Result<u64> {
    let allocated = fs::metadata(path)?.blocks() * 512;
    match unshared_bytes(path) {
        Ok(Some(unshared)) => Ok(unshared.min(allocated)),
        _ => Ok(allocated),
    }
}

/// The filesystem holding `path` (or its nearest existing ancestor) when it is one that
/// can share extents, by name; `None` for any other. Reads only (`statfs`), for doctor:
/// xfs made without `reflink=1` (before xfsprogs 5.1) is reported but cannot clone, so
/// [`create_root_disk`] still falls back there.
pub fn reflink_filesystem(path: &Path) -> io::Result<Option<&'static str>> {
    const BTRFS: i64 = 0x9123_683E;
    const XFS: i64 = 0x5846_5342;
    const BCACHEFS: i64 = 0xCA45_1A4E;
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
    // SAFETY: statfs is plain old data, all-zero is valid, and the kernel fills it; `c`
    // is a valid C string for the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(match st.f_type as i64 {
        BTRFS => Some("btrfs"),
        XFS => Some("xfs"),
        BCACHEFS => Some("bcachefs"),
        _ => None,
    })
}
