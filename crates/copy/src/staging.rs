//! A private directory beside a destination, where a stream is unpacked before anything
//! of it takes a real name: removed with whatever is left in it however the copy ends —
//! by the copy itself when it returns, by the next copy into that directory when it was
//! killed.
//!
//! A copy holds an `flock` on its staging directory while it runs (the kernel drops it
//! when the process dies, whatever killed it, so a reused pid means nothing). Before
//! making its own (and `vm cp` into that directory, which needs none), a copy removes
//! every staging directory of its kind in the destination whose lock it can take: one
//! made by banger (`<prefix>.<pid>.<nanos>` exactly, a real directory, the same owner)
//! whose copy is gone. A copy whose staging directory was
//! removed between its `mkdir` and its lock sees so (the directory it locked has no link
//! left) and makes another. On a filesystem without `flock` nothing is locked and nothing
//! is removed.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::CopyError;

/// Tries at a staging directory before giving up (each lost only to a sweep that found
/// it between its `mkdir` and its lock).
const ATTEMPTS: usize = 5;

pub(crate) struct Staging {
    /// `<dest>/<prefix>.<pid>.<nanos>`, with `dest` canonical.
    pub path: PathBuf,
    /// The directory, open and locked while the copy runs (`None` where the filesystem
    /// has no `flock`).
    _lock: Option<fs::File>,
}

impl Staging {
    /// Make the staging directory (0700) in the existing directory `dest`, after removing
    /// the ones killed copies left there (see the module's comment).
    pub fn new(dest: &Path, prefix: &str) -> Result<Staging, CopyError> {
        let write = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CopyError::Write { path, source }
        };
        let dest = dest.canonicalize().map_err(write(dest))?;
        sweep(&dest, prefix);
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let path = dest.join(format!("{prefix}.{}.{nanos}", std::process::id()));
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(write(&path))?;
            match lock(&path) {
                Ok(Some(file)) if still_there(&file, &path) => {
                    return Ok(Staging {
                        path,
                        _lock: Some(file),
                    });
                }
                Ok(Some(_)) => last = Some(path), // Swept away meanwhile: another name.
                Ok(None) => return Ok(Staging { path, _lock: None }),
                Err(source) => {
                    let _ = fs::remove_dir(&path);
                    return Err(CopyError::Write { path, source });
                }
            }
        }
        Err(CopyError::Write {
            path: last.unwrap_or(dest),
            source: io::Error::other(
                "staging directories kept being removed as they were made: is another program cleaning this directory?",
            ),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // `remove_dir_all` does not follow symlinks. The lock goes after (field order).
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Open the directory `path` and wait for its lock; `None` when its filesystem has no
/// `flock`.
fn lock(path: &Path) -> io::Result<Option<fs::File>> {
    let file = open_dir(path)?;
    loop {
        // SAFETY: flock takes an open descriptor (`file` lives across the call) and
        // touches no memory of ours.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Some(file));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::EINVAL) => return Ok(None),
            _ => return Err(e),
        }
    }
}

fn open_dir(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
}

/// Whether the directory open as `file` is still the one named `path` (a removed
/// directory has no links left).
fn still_there(file: &fs::File, path: &Path) -> bool {
    let (Ok(open), Ok(named)) = (file.metadata(), fs::symlink_metadata(path)) else {
        return false;
    };
    open.nlink() > 0 && open.dev() == named.dev() && open.ino() == named.ino()
}

/// Remove the staging directories of `prefix` in `dest` that no running copy holds (done
/// before making one, and by a copy into `dest` that needs none; best effort: what cannot
/// be looked at or removed stays, for a later copy).
pub(crate) fn sweep(dest: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dest) else {
        return;
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| is_staging_name(n, prefix)) {
            continue;
        }
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && m.uid() == me => {}
            _ => continue,
        }
        let Ok(file) = open_dir(&path) else {
            continue;
        };
        // SAFETY: as in `lock`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // A live copy's (or no `flock` here: cannot tell, so keep it).
        }
        // Removed while locked, and only the directory that was opened and locked.
        if still_there(&file, &path) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Whether `name` is a staging directory's name, of `vm cp` or of `vm sync`.
pub(crate) fn is_any_staging_name(name: &str) -> bool {
    [crate::CP_STAGING, crate::sync::SYNC_STAGING]
        .iter()
        .any(|prefix| is_staging_name(name, prefix))
}

/// `<prefix>.<digits>.<digits>`: the names [`Staging::new`] gives, and only those.
fn is_staging_name(name: &str, prefix: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(pid, nanos)| digits(pid) && digits(nanos))
}

#[cfg(test)]
mod tests;
