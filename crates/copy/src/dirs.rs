//! The directories of an unpacked stream: made owner-writable while their contents are
//! written, given their own mode and modification time only once everything in them is
//! there (as `tar` does). Applied at once, a read-only directory (a Go module cache's
//! 0555) would refuse its own files to anyone but root, and every file written into a
//! directory would move the modification time just set on it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::CopyError;

/// Which mode an unpacked directory ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirModes {
    /// The stream's (set-id bits dropped).
    AsPacked,
    /// The stream's plus the owner's `rwx`: for a staging tree whose entries are moved
    /// out of it afterwards (`vm sync`).
    OwnerWritable,
}

/// A directory entry of the stream, to finish after the last entry.
#[derive(Debug)]
pub(crate) struct PendingDir {
    pub path: PathBuf,
    pub mode: u32,
    pub mtime: Option<u64>,
}

/// Make the directory `path` (owner-only until [`finish`]), or take the one already there;
/// anything else at `path` is an error.
pub(crate) fn make(path: &Path) -> Result<(), CopyError> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(CopyError::Write {
                path: path.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file is there where the copy has a directory",
                ),
            }),
        },
        Err(source) => Err(CopyError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Give every directory its mode and modification time, the deepest first (a parent made
/// read-only before its children would refuse their changes). A directory is opened
/// without following a symlink, and changed through that descriptor.
pub(crate) fn finish(mut dirs: Vec<PendingDir>, modes: DirModes) -> Result<(), CopyError> {
    dirs.sort_by(|a, b| b.path.cmp(&a.path));
    for dir in dirs {
        let failed = |source| CopyError::Write {
            path: dir.path.clone(),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&dir.path)
            .map_err(failed)?;
        if let Some(secs) = dir.mtime {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            file.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
                .map_err(failed)?;
        }
        let mode = match modes {
            DirModes::AsPacked => dir.mode,
            DirModes::OwnerWritable => dir.mode | 0o700,
        };
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(failed)?;
    }
    Ok(())
}
