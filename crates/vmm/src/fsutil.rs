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
    commit_dir(path)
}

/// [`commit`] for a file the VMM wrote in its jailer's chroot: renamed when it can be, else
/// — in a system install the chroots are another mount, read-only to the daemon — copied
/// (by the kernel, `copy_file_range`: a reflink where the file system has them) beside
/// `path` and committed from there; the original then goes with the jail. Opened without
/// following a link: what the VMM left there is copied only if it is a regular file.
pub(crate) fn commit_from_jail(scratch: &Path, path: &Path) -> Result<(), VmmError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(scratch)
        .map_err(|e| VmmError::io("open", scratch, e))?;
    if !from.metadata().is_ok_and(|m| m.is_file()) {
        return Err(VmmError::io(
            "take",
            scratch,
            std::io::Error::other("not a regular file"),
        ));
    }
    from.sync_all()
        .map_err(|e| VmmError::io("sync snapshot file", scratch, e))?;
    match std::fs::rename(scratch, path) {
        Ok(()) => return commit_dir(path),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EROFS)) => {}
        Err(e) => return Err(VmmError::io("rename snapshot file into", path, e)),
    }
    let copy = path.with_file_name(format!(
        ".{}.copy",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let copied = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&copy)
        .and_then(|mut to| std::io::copy(&mut from, &mut to))
        .map_err(|e| VmmError::io("copy snapshot file to", &copy, e));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&copy);
        return Err(e);
    }
    let _ = std::fs::remove_file(scratch);
    commit(&copy, path)
}

fn commit_dir(path: &Path) -> Result<(), VmmError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Across file systems (a system install's chroots are another mount) the file is
    /// copied beside its final name and committed; on one file system it is renamed; a
    /// link left in the scratch's place is never followed.
    #[test]
    fn a_jailed_vmms_file_is_taken_across_mounts_and_never_through_a_link() {
        let dest = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let scratch = other.path().join(".vmstate.tmp");
        std::fs::write(&scratch, b"state").unwrap();
        let path = dest.path().join("vmstate");
        commit_from_jail(&scratch, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"state");
        assert!(!scratch.exists());
        assert!(!dest.path().join(".vmstate.copy").exists());

        let same = dest.path().join(".memory.tmp");
        std::fs::write(&same, b"memory").unwrap();
        commit_from_jail(&same, &dest.path().join("memory")).unwrap();
        assert_eq!(
            std::fs::read(dest.path().join("memory")).unwrap(),
            b"memory"
        );

        let secret = dest.path().join("secret");
        std::fs::write(&secret, b"not yours").unwrap();
        std::os::unix::fs::symlink(&secret, &scratch).unwrap();
        assert!(commit_from_jail(&scratch, &dest.path().join("stolen")).is_err());
        assert!(!dest.path().join("stolen").exists());
    }
}
