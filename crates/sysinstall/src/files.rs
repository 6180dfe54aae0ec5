//! Writing root's files so that a crash never leaves half a file, a second run changes
//! nothing, and nothing another user controls is followed.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use banger_system::fsperm::{FileFacts, FileKind};

use crate::SysInstallError;

/// What happened to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Removed,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Removed => "removed",
        })
    }
}

/// One changed path, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: PathBuf,
    pub change: Change,
}

/// Put `bytes` at `path` with this mode and owner, unless it is already exactly that:
/// written to a temporary name beside it, synced, renamed over it, and the directory
/// synced. A running program keeps the inode it has (binaries are replaced, never
/// rewritten in place).
pub fn put_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<Option<Change>, SysInstallError> {
    let existing = match std::fs::symlink_metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(SysInstallError::io("inspect", path, e)),
    };
    if let Some(meta) = &existing
        && meta.file_type().is_file()
        && meta.mode() & 0o7777 == mode
        && meta.uid() == uid
        && meta.gid() == gid
        && meta.len() == bytes.len() as u64
        && std::fs::read(path).map_err(|e| SysInstallError::io("read", path, e))? == bytes
    {
        return Ok(None);
    }
    let dir = path.parent().ok_or_else(|| {
        SysInstallError::io("write", path, std::io::Error::other("no parent directory"))
    })?;
    create_root_dirs(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    // A leftover of a crashed run with the same pid: ours, in a root-owned directory.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(bytes)?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        // After the chown, which clears set-id bits.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(SysInstallError::io("write", path, e));
    }
    sync_dir(dir)?;
    Ok(Some(if existing.is_some() {
        Change::Updated
    } else {
        Change::Created
    }))
}

fn sync_dir(dir: &Path) -> Result<(), SysInstallError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SysInstallError::io("sync", dir, e))
}

/// Make `dir` (and missing parents, root-owned 0755) a directory with this owner and mode.
/// An existing directory gets the owner and mode set; a symlink or file there is refused.
pub fn ensure_dir(
    dir: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<Option<Change>, SysInstallError> {
    let created = match FileFacts::lstat(dir) {
        Ok(facts) if facts.kind == FileKind::Directory => {
            if facts.mode == mode && facts.uid == uid && facts.gid == gid {
                return Ok(None);
            }
            false
        }
        Ok(facts) => {
            return Err(SysInstallError::Unsafe {
                path: dir.to_path_buf(),
                problem: format!("is {}, not a directory", facts.kind),
                fix: "remove it and install again".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                create_root_dirs(parent)?;
            }
            std::fs::create_dir(dir).map_err(|e| SysInstallError::io("create", dir, e))?;
            true
        }
        Err(e) => return Err(SysInstallError::io("inspect", dir, e)),
    };
    // lchown: a directory swapped for a symlink meanwhile is not followed.
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| SysInstallError::io("set owner and mode of", dir, e))?;
    Ok(Some(if created {
        Change::Created
    } else {
        Change::Updated
    }))
}

/// Missing directories on the way to `dir`, created root-owned 0755.
fn create_root_dirs(dir: &Path) -> Result<(), SysInstallError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| SysInstallError::io("create", dir, e))
}

/// Remove a file if present.
pub fn remove_file(path: &Path) -> Result<Option<Change>, SysInstallError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(Change::Removed)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysInstallError::io("remove", path, e)),
    }
}

/// Remove a directory tree if present (`--purge`); a symlink is removed, not followed.
pub fn remove_tree(path: &Path) -> Result<Option<Change>, SysInstallError> {
    match FileFacts::lstat(path) {
        Ok(facts) if facts.kind == FileKind::Directory => std::fs::remove_dir_all(path)
            .map(|()| Some(Change::Removed))
            .map_err(|e| SysInstallError::io("remove", path, e)),
        Ok(_) => remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysInstallError::io("inspect", path, e)),
    }
}

/// Remove `dir` if it is empty (the install's own directories after uninstall).
pub fn remove_empty_dir(dir: &Path) -> Option<Change> {
    std::fs::remove_dir(dir).ok().map(|()| Change::Removed)
}

/// Root runs what lies at `path`, so nobody but root may be able to replace it: every
/// directory above it must be owned by root and not writable by group or others — or,
/// like `/tmp`, sticky, so that nobody can rename or remove what they do not own.
pub fn check_root_chain(path: &Path) -> Result<(), SysInstallError> {
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let facts = FileFacts::lstat(dir).map_err(|e| SysInstallError::io("inspect", dir, e))?;
        let problem = if facts.kind == FileKind::Symlink {
            // A symlinked /usr/local, say, is fine when its target passes; check that.
            let target = dir
                .canonicalize()
                .map_err(|e| SysInstallError::io("resolve", dir, e))?;
            check_root_chain(&target.join("x"))?;
            continue;
        } else if facts.uid != 0 {
            Some(format!("is owned by uid {}, not root", facts.uid))
        } else if facts.mode & 0o022 != 0 && facts.mode & 0o1000 == 0 {
            Some(format!(
                "is writable by group or others (mode {:#o})",
                facts.mode
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(SysInstallError::Unsafe {
                path: dir.to_path_buf(),
                problem,
                fix: format!(
                    "install into a root-owned prefix (--prefix), or run `sudo chown root: {0} && sudo chmod go-w {0}`",
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (u32, u32) {
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        unsafe { (libc::getuid(), libc::getgid()) }
    }

    #[test]
    fn put_file_is_idempotent_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.service");
        let (uid, gid) = ids();
        assert_eq!(
            put_file(&path, b"one", 0o644, uid, gid).unwrap(),
            Some(Change::Created)
        );
        assert_eq!(put_file(&path, b"one", 0o644, uid, gid).unwrap(), None);
        assert_eq!(
            put_file(&path, b"two", 0o644, uid, gid).unwrap(),
            Some(Change::Updated)
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            put_file(&path, b"two", 0o644, uid, gid).unwrap(),
            Some(Change::Updated)
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.service"], "no temporary file is left behind");
    }

    #[test]
    fn ensure_dir_fixes_mode_and_refuses_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (uid, gid) = ids();
        let d = dir.path().join("x/y");
        assert_eq!(
            ensure_dir(&d, 0o700, uid, gid).unwrap(),
            Some(Change::Created)
        );
        assert_eq!(ensure_dir(&d, 0o700, uid, gid).unwrap(), None);
        assert_eq!(
            ensure_dir(&d, 0o755, uid, gid).unwrap(),
            Some(Change::Updated)
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(ensure_dir(&link, 0o755, uid, gid).is_err());
    }

    #[test]
    fn a_writable_directory_above_a_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_root_chain(&bin.join("banger"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("writable by group or others") || err.contains("not root"),
            "{err}"
        );
        if ids().0 == 0 {
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            // /tmp above is sticky: allowed.
            check_root_chain(&bin.join("banger")).unwrap();
        }
    }
}
