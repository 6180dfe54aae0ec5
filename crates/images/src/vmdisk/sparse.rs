//! A sparse copy: only the source's data ranges are copied (found with `SEEK_DATA` /
//! `SEEK_HOLE`), so a 4 GiB filesystem image with 300 MiB in use costs 300 MiB. The
//! fallback where neither reflinks nor qcow2 are available, so it reports its progress:
//! a large image on a slow disk takes a while.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use banger_system::progress::{Progress, Unit};

use super::{DiskError, io_err};

/// Progress is reported at least this often (in bytes copied).
const REPORT_EVERY: usize = 64 << 20;

/// Copy `src_path` to `dest` (which must not exist) and sync it; `what` names the copy in
/// the progress phase ("copy WHAT (sparse)").
pub fn copy(
    src_path: &Path,
    dest: &Path,
    what: &str,
    progress: &dyn Progress,
) -> Result<(), DiskError> {
    copy_then(src_path, dest, what, progress, true)
}

/// [`copy`] without the final fsync, for a caller that writes more into the copy and syncs
/// once when it is done (syncing twice would write the copied data back twice as early).
pub fn copy_unsynced(
    src_path: &Path,
    dest: &Path,
    what: &str,
    progress: &dyn Progress,
) -> Result<(), DiskError> {
    copy_then(src_path, dest, what, progress, false)
}

fn copy_then(
    src_path: &Path,
    dest: &Path,
    what: &str,
    progress: &dyn Progress,
    sync: bool,
) -> Result<(), DiskError> {
    let result = copy_inner(src_path, dest, what, progress, sync);
    if result.is_err() {
        let _ = fs::remove_file(dest);
    }
    result
}

fn copy_inner(
    src_path: &Path,
    dest: &Path,
    what: &str,
    progress: &dyn Progress,
    sync: bool,
) -> Result<(), DiskError> {
    let src = File::open(src_path).map_err(io_err("open", src_path))?;
    let len = src.metadata().map_err(io_err("read", src_path))?.len();
    let dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(io_err("create", dest))?;
    dst.set_len(len).map_err(io_err("size", dest))?;
    // The total is the file's length; holes count as done when they are skipped.
    progress.phase(
        &format!("copy {what} (sparse)"),
        Some(len),
        Some(Unit::Bytes),
    );
    let mut pos: i64 = 0;
    let end = i64::try_from(len).unwrap_or(i64::MAX);
    while pos < end {
        let data = match seek(&src, pos, libc::SEEK_DATA) {
            Ok(d) => d,
            // No data after `pos`: the rest is a hole.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(e) => return Err(io_err("find data in", src_path)(e)),
        };
        let hole = seek(&src, data, libc::SEEK_HOLE).map_err(io_err("find holes in", src_path))?;
        copy_range(&src, &dst, data, hole - data, progress).map_err(io_err("copy into", dest))?;
        pos = hole;
        progress.advance(u64::try_from(pos).unwrap_or(0));
    }
    progress.advance(len);
    if !sync {
        return Ok(());
    }
    dst.sync_all().map_err(io_err("sync", dest))
}

fn seek(file: &File, offset: i64, whence: libc::c_int) -> io::Result<i64> {
    // SAFETY: lseek on an fd we own; no memory is passed.
    let ret = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `copy_file_range` the range `[at, at + len)` to the same offset in `dst`.
fn copy_range(
    src: &File,
    dst: &File,
    at: i64,
    len: i64,
    progress: &dyn Progress,
) -> io::Result<()> {
    let mut off_in = at;
    let mut off_out = at;
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(REPORT_EVERY);
        // SAFETY: both fds are open; the offsets are valid, writable i64s the kernel
        // advances; no buffers of ours are involved.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the source ended early",
            ));
        }
        left -= n as i64;
        progress.advance(u64::try_from(off_out).unwrap_or(0));
    }
    Ok(())
}
