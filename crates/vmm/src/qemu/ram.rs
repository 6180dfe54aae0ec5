//! The RAM file of a snapshot, as every sandboxed QEMU restoring from it maps it: one sealed
//! memfd per file, shared by all of them.
//!
//! QEMU 7.2 opens a `memory-backend-file` read-write even to map it privately
//! (`share=off`), so a sandboxed QEMU given the snapshot's file itself could write the pages
//! every other clone reads. Instead the driver copies the file once into a memfd sealed
//! against writes, growth and shrinking (`F_SEAL_WRITE`…): QEMU inherits it and opens it as
//! `/proc/self/fd/N` (a memfd may be reopened read-write by anyone, but a sealed one can be
//! neither written nor mapped shared-writable), then maps it copy-on-write. Every clone's
//! unwritten pages are the memfd's, once in host memory; what a clone writes is its own.
//!
//! The memfd lives as long as the daemon (or until its file is gone or replaced): it costs
//! the pages the guest had touched when saved, in shared memory charged to the daemon.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::VmmError;

/// Copy in chunks of this size (data extents only: the file is sparse).
const CHUNK: usize = 1 << 20;

/// Identifies one version of a RAM file: a replaced file is copied again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Version {
    fn of(meta: &std::fs::Metadata) -> Version {
        Version {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The sealed memfds of the RAM files restores have used, by path.
#[derive(Debug, Default)]
pub(super) struct SharedRam {
    open: Mutex<HashMap<PathBuf, (Version, Arc<OwnedFd>)>>,
}

impl SharedRam {
    /// The sealed memfd holding RAM file `path`, made on first use. Entries whose file is
    /// gone or replaced are dropped on the way (a retired snapshot's memory is given back).
    pub(super) fn sealed(&self, path: &Path) -> Result<Arc<OwnedFd>, VmmError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| VmmError::io("open the snapshot's RAM file", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| VmmError::io("read the snapshot's RAM file", path, e))?;
        let version = Version::of(&meta);
        // The lock is held across the copy: two restores of one new file copy it once.
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|p, (v, _)| std::fs::metadata(p).is_ok_and(|m| Version::of(&m) == *v));
        if let Some((v, fd)) = open.get(path)
            && *v == version
        {
            return Ok(Arc::clone(fd));
        }
        let fd = Arc::new(seal_copy(&file, meta.size()).map_err(|e| {
            VmmError::io("copy the snapshot's RAM file into sealed memory", path, e)
        })?);
        open.insert(path.to_path_buf(), (version, Arc::clone(&fd)));
        tracing::debug!(path = %path.display(), bytes = meta.size(), "sealed a copy of a snapshot's RAM file");
        Ok(fd)
    }
}

/// A memfd of `size` bytes holding `file`'s data extents (holes stay holes), sealed.
fn seal_copy(file: &File, size: u64) -> std::io::Result<OwnedFd> {
    let name = CString::new("banger-guest-ram").map_err(std::io::Error::other)?;
    // SAFETY: memfd_create with a NUL-terminated name; the result is checked and owned below.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just returned to us and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let memfd = File::from(fd);
    memfd.set_len(size)?;
    let mut buf = vec![0u8; CHUNK];
    let mut pos: u64 = 0;
    while pos < size {
        let Some(start) = seek(file, pos, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(file, start, libc::SEEK_HOLE)?
            .unwrap_or(size)
            .min(size);
        let mut at = start;
        while at < end {
            let want = usize::try_from(end - at).unwrap_or(CHUNK).min(CHUNK);
            let n = file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was copied",
                ));
            }
            memfd.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        pos = end;
    }
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OwnedFd::from(memfd))
}

/// `lseek(whence)` from `pos`: `None` past the last data (`ENXIO`).
fn seek(file: &File, pos: u64, whence: libc::c_int) -> std::io::Result<Option<u64>> {
    let off = libc::off_t::try_from(pos).map_err(std::io::Error::other)?;
    // SAFETY: lseek on a descriptor `file` owns.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse_file(dir: &Path) -> PathBuf {
        let path = dir.join("ram");
        let f = File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"first page", 0).unwrap();
        f.write_all_at(&vec![7u8; 3 << 20], 40 << 20).unwrap();
        path
    }

    #[test]
    fn the_copy_is_sealed_sparse_and_shared_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = sparse_file(dir.path());
        let ram = SharedRam::default();
        let fd = ram.sealed(&path).unwrap();
        let memfd = File::from(fd.try_clone().unwrap());
        assert_eq!(memfd.metadata().unwrap().len(), 64 << 20);
        let mut buf = [0u8; 10];
        memfd.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"first page");
        memfd.read_exact_at(&mut buf, (43 << 20) - 10).unwrap();
        assert_eq!(buf, [7u8; 10]);
        memfd.read_exact_at(&mut buf, 20 << 20).unwrap();
        assert_eq!(buf, [0u8; 10]);
        // Only the data was copied: ~3 MiB of shared memory, not 64.
        let blocks = memfd.metadata().unwrap().blocks() * 512;
        assert!(blocks < 8 << 20, "{blocks} bytes allocated");

        // Sealed: no write, no resize, no shared-writable mapping; reopening through /proc
        // for writing still works (what QEMU does), and a private mapping may be written.
        assert!(memfd.write_all_at(b"x", 0).is_err());
        assert!(memfd.set_len(1 << 20).is_err());
        let proc_path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&proc_path)
            .unwrap();
        assert!(reopened.write_all_at(b"x", 0).is_err());
        // SAFETY: mapping 4 KiB of a descriptor we own; unmapped below, never aliased.
        unsafe {
            let shared = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                reopened.as_raw_fd(),
                0,
            );
            assert_eq!(shared, libc::MAP_FAILED);
            let private = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                reopened.as_raw_fd(),
                0,
            );
            assert_ne!(private, libc::MAP_FAILED);
            *private.cast::<u8>() = b'X';
            libc::munmap(private, 4096);
        }
        memfd.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(
            &buf, b"first page",
            "a private write must not reach the memfd"
        );

        // The same file gives the same memfd; a replaced one a new copy.
        assert!(Arc::ptr_eq(&fd, &ram.sealed(&path).unwrap()));
        std::fs::remove_file(&path).unwrap();
        let path = sparse_file(dir.path());
        assert!(!Arc::ptr_eq(&fd, &ram.sealed(&path).unwrap()));
    }

    #[test]
    fn a_missing_file_is_named() {
        let ram = SharedRam::default();
        let e = ram.sealed(Path::new("/nonexistent/ram")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ram"), "{e}");
    }
}
