//! Files a VMM (or its helper processes) wrote: made durable under their final name, or
//! read back for the error a user sees.

use std::fs::File;
use std::path::Path;

use crate::error::VmmError;

/// fsync `temp`, rename it to `path`, fsync the directory: a crash leaves either no file
/// or the whole one under `path`. `temp` is removed when any step fails.
pub(crate) fn commit(temp: &Path, path: &Path) -> Result<(), VmmError> {
    let done = File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| VmmError::io("sync snapshot file", temp, e))
        .and_then(|()| {
            std::fs::rename(temp, path)
                .map_err(|e| VmmError::io("rename snapshot file into", path, e))
        });
    if done.is_err() {
        let _ = std::fs::remove_file(temp);
        return done;
    }
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VmmError::io("sync directory", dir, e))?;
    }
    Ok(())
}

/// Make the file `path` the daemon's own (its effective uid and gid), as a sandboxed VMM
/// wrote it under its own uid with owner-only access: a snapshot is the daemon's, and the
/// VMM that restores it (another uid) gets it shared as an input. Never follows a link.
pub(crate) fn reclaim(path: &Path) -> Result<(), VmmError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| VmmError::io("open", path, e))?;
    // SAFETY: geteuid/getegid have no preconditions; fchown acts only on the descriptor
    // `file` owns.
    let rc = unsafe { libc::fchown(file.as_raw_fd(), libc::geteuid(), libc::getegid()) };
    if rc != 0 {
        return Err(VmmError::io(
            "take back from the VMM's uid",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The last `max` bytes of the stderr file of `program` at `path`, one message per line
/// joined with "; " (a file that keeps growing is never read whole), or a note that it
/// printed nothing.
pub(crate) fn stderr_tail(path: &Path, max: u64, program: &str) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
        let _ = f.take(max).read_to_end(&mut text);
    }
    let joined = String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        format!("({program} printed no error)")
    } else {
        joined
    }
}
