//! File ownership and permission facts, and the rules banger's trust model rests on.
//!
//! The root helper only launches a VMM binary that an unprivileged user cannot have
//! swapped or edited: a regular file (not a symlink), owned by root, executable, and
//! not writable by group or others. [`check_root_executable`] is that rule, shared by
//! the helper (which enforces it, on the opened file: [`open_root_executable`]) and
//! `doctor` (which reports it ahead of time).

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What kind of filesystem object a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Socket,
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Socket => "a socket",
            FileKind::Other => "a special file",
        })
    }
}

/// Kind, owner and permission bits of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub kind: FileKind,
    /// Permission bits only (`0o755`), without the file type.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl FileFacts {
    fn from_metadata(meta: &std::fs::Metadata) -> FileFacts {
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_file() {
            FileKind::Regular
        } else if ft.is_dir() {
            FileKind::Directory
        } else if ft.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Other
        };
        FileFacts {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    /// Facts about `path` itself; a symlink is reported as [`FileKind::Symlink`].
    pub fn lstat(path: &Path) -> std::io::Result<FileFacts> {
        std::fs::symlink_metadata(path).map(|m| FileFacts::from_metadata(&m))
    }

    /// Facts about what `path` finally points to.
    pub fn stat(path: &Path) -> std::io::Result<FileFacts> {
        std::fs::metadata(path).map(|m| FileFacts::from_metadata(&m))
    }
}

/// Why a binary is not acceptable for the root helper to launch.
#[derive(Debug, thiserror::Error)]
pub enum RootExecutableError {
    /// The path could not be inspected (missing, no permission on a parent, ...).
    #[error("cannot inspect {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is a symbolic link; the helper opens binaries without following links", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error("{} (mode {mode:#o}) is not executable", path.display())]
    NotExecutable { path: PathBuf, mode: u32 },
    #[error("{} (mode {mode:#o}) is writable by group or others", path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error("{} is owned by uid {uid}, not root", path.display())]
    NotRootOwned { path: PathBuf, uid: u32 },
}

impl RootExecutableError {
    /// What the user should do about it.
    pub fn hint(&self) -> String {
        match self {
            RootExecutableError::Inspect { .. } => {
                "check the path (firecracker_bin in config.toml) and its parent directories".into()
            }
            RootExecutableError::Symlink { path } => format!(
                "point firecracker_bin at the real file (`readlink -f {}`)",
                path.display()
            ),
            RootExecutableError::NotRegular { .. } => {
                "point firecracker_bin at the Firecracker executable itself".into()
            }
            RootExecutableError::NotExecutable { path, .. } => {
                format!("sudo chmod 0755 {}", path.display())
            }
            RootExecutableError::Writable { path, .. } => {
                format!("sudo chmod go-w {}", path.display())
            }
            RootExecutableError::NotRootOwned { path, .. } => {
                format!("sudo chown root:root {}", path.display())
            }
        }
    }
}

/// Check that `path` is a binary the root helper may launch (see the module docs).
/// The checks use `lstat`, so a symlink is refused even if its target is fine.
pub fn check_root_executable(path: &Path) -> Result<FileFacts, RootExecutableError> {
    let facts = FileFacts::lstat(path).map_err(|source| RootExecutableError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    root_executable_rule(path, facts)
}

/// Open `path` for execution by root: without following a symlink (`O_NOFOLLOW`), then
/// apply the rule to the *opened* file, so what was checked is what runs (execute it
/// through `/proc/self/fd/N`; the descriptor is close-on-exec).
pub fn open_root_executable(path: &Path) -> Result<std::fs::File, RootExecutableError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                RootExecutableError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                RootExecutableError::Inspect {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|source| RootExecutableError::Inspect {
            path: path.to_path_buf(),
            source,
        })?;
    root_executable_rule(path, FileFacts::from_metadata(&meta))?;
    Ok(file)
}

/// The rule itself, on facts already gathered.
fn root_executable_rule(path: &Path, facts: FileFacts) -> Result<FileFacts, RootExecutableError> {
    let path = path.to_path_buf();
    match facts.kind {
        FileKind::Regular => {}
        FileKind::Symlink => return Err(RootExecutableError::Symlink { path }),
        kind => return Err(RootExecutableError::NotRegular { path, kind }),
    }
    if facts.mode & 0o111 == 0 {
        return Err(RootExecutableError::NotExecutable {
            path,
            mode: facts.mode,
        });
    }
    if facts.mode & 0o022 != 0 {
        return Err(RootExecutableError::Writable {
            path,
            mode: facts.mode,
        });
    }
    if facts.uid != 0 {
        return Err(RootExecutableError::NotRootOwned {
            path,
            uid: facts.uid,
        });
    }
    Ok(facts)
}

/// Why a private directory (state, runtime, a VM's) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error("cannot create directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot inspect directory {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is {kind}, not a directory; move it aside", path.display())]
    NotADirectory { path: PathBuf, kind: FileKind },
    /// Someone else's directory: using it would let its owner read or replace banger's
    /// state, sockets and disks.
    #[error(
        "{} is owned by uid {owner}, not by this user (uid {me}); banger refuses to keep its files in another user's directory: remove it, or point banger at another directory",
        path.display()
    )]
    ForeignOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("cannot make {} private (mode 0700)", path.display())]
    Chmod {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Create `dir` (and its parents) if needed, insist that it is a directory owned by this
/// process's effective uid, and make it `0700`. A directory that already exists with another
/// owner is refused rather than adopted.
pub fn create_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // Parents made here are the user's own; only the leaf must be private.
    let created = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    // Something already at `dir` that is no directory is reported below, by kind.
    if let Err(source) = created
        && std::fs::symlink_metadata(dir).is_err()
    {
        return Err(PrivateDirError::Create {
            path: dir.to_path_buf(),
            source,
        });
    }
    let facts = FileFacts::stat(dir).map_err(|source| PrivateDirError::Inspect {
        path: dir.to_path_buf(),
        source,
    })?;
    if facts.kind != FileKind::Directory {
        return Err(PrivateDirError::NotADirectory {
            path: dir.to_path_buf(),
            kind: facts.kind,
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if facts.uid != me {
        return Err(PrivateDirError::ForeignOwner {
            path: dir.to_path_buf(),
            owner: facts.uid,
            me,
        });
    }
    if facts.mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| PrivateDirError::Chmod {
                path: dir.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn is_root() -> bool {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() == 0 }
    }

    #[test]
    fn private_dirs_are_made_0700_and_foreign_ones_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/state");
        create_private_dir(&dir).unwrap();
        assert_eq!(FileFacts::stat(&dir).unwrap().mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(FileFacts::stat(&dir).unwrap().mode, 0o700);

        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = create_private_dir(&file).unwrap_err();
        assert!(
            matches!(err, PrivateDirError::NotADirectory { .. }),
            "{err}"
        );

        // Another user's directory: only root can make one here; as anyone else, /
        // (owned by root) stands in for it.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let foreign = tmp.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let err = create_private_dir(&foreign).unwrap_err();
            assert!(
                matches!(err, PrivateDirError::ForeignOwner { owner: 65534, .. }),
                "{err}"
            );
            assert!(err.to_string().contains("uid 65534"), "{err}");
            // Not chmodded either.
            assert_ne!(FileFacts::stat(&foreign).unwrap().mode, 0o700);
        } else {
            let err = create_private_dir(Path::new("/")).unwrap_err();
            assert!(
                matches!(err, PrivateDirError::ForeignOwner { owner: 0, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn facts_distinguish_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "f", 0o640);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let sock = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();

        assert_eq!(FileFacts::lstat(&f).unwrap().kind, FileKind::Regular);
        assert_eq!(FileFacts::lstat(&f).unwrap().mode, 0o640);
        assert_eq!(FileFacts::lstat(&link).unwrap().kind, FileKind::Symlink);
        assert_eq!(FileFacts::stat(&link).unwrap().kind, FileKind::Regular);
        assert_eq!(
            FileFacts::lstat(dir.path()).unwrap().kind,
            FileKind::Directory
        );
        assert_eq!(FileFacts::lstat(&sock).unwrap().kind, FileKind::Socket);
    }

    #[test]
    fn root_executable_rules() {
        let dir = tempfile::tempdir().unwrap();
        let good = file(dir.path(), "good", 0o755);
        let missing = dir.path().join("missing");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        let noexec = file(dir.path(), "noexec", 0o644);
        let writable = file(dir.path(), "writable", 0o775);

        assert!(matches!(
            check_root_executable(&missing),
            Err(RootExecutableError::Inspect { .. })
        ));
        assert!(matches!(
            check_root_executable(&link),
            Err(RootExecutableError::Symlink { .. })
        ));
        assert!(matches!(
            check_root_executable(dir.path()),
            Err(RootExecutableError::NotRegular {
                kind: FileKind::Directory,
                ..
            })
        ));
        let err = check_root_executable(&noexec).unwrap_err();
        assert!(err.to_string().contains("0o644"), "{err}");
        assert!(err.hint().contains("chmod"), "{}", err.hint());
        assert!(matches!(
            check_root_executable(&writable),
            Err(RootExecutableError::Writable { mode: 0o775, .. })
        ));

        assert!(matches!(
            open_root_executable(&link),
            Err(RootExecutableError::Symlink { .. })
        ));
        assert!(matches!(
            open_root_executable(&writable),
            Err(RootExecutableError::Writable { .. })
        ));
        if is_root() {
            assert!(open_root_executable(&good).is_ok());
            assert_eq!(check_root_executable(&good).unwrap().uid, 0);
            std::os::unix::fs::chown(&good, Some(4242), None).unwrap();
            let err = check_root_executable(&good).unwrap_err();
            assert!(matches!(
                err,
                RootExecutableError::NotRootOwned { uid: 4242, .. }
            ));
            assert!(err.hint().contains("chown root"), "{}", err.hint());
        } else {
            assert!(matches!(
                check_root_executable(&good),
                Err(RootExecutableError::NotRootOwned { .. })
            ));
        }
    }

    #[test]
    fn private_dirs_are_0700_new_or_existing() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b");
        create_private_dir(&fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&fresh), 0o700);

        let loose = tmp.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);

        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = create_private_dir(&file).unwrap_err();
        assert!(
            matches!(err, PrivateDirError::NotADirectory { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("file"), "{err}");
    }
}
