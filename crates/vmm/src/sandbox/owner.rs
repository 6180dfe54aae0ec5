//! Handing a VM's files to its sandboxed VMM, and sharing read-only inputs with it.
//!
//! Only files banger made are touched, and symbolic links are never followed: a VMM owns its
//! directory while it runs, so a compromised one could plant a link there to make the root
//! daemon chown a host file at the next boot. Every change goes through a descriptor opened
//! relative to the directory with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How deep a VM directory may nest (banger makes it flat; this only bounds the walk).
const MAX_DEPTH: usize = 4;

/// Why a VM's files could not be prepared for its sandboxed VMM.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// A symbolic link where banger keeps only its own files.
    #[error(
        "{path:?} is a symbolic link; banger never makes links in a VM's files and will not \
         follow one when changing ownership; remove it and start the VM again"
    )]
    Symlink { path: PathBuf },

    /// A shared input that is not banger's own file.
    #[error(
        "{path:?} is owned by uid {owner}, not by banger's uid {expected}; banger shares only \
         its own files with sandboxed VMMs; give the file to uid {expected} or re-import it"
    )]
    NotOurs {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },

    /// A path that should be a regular file or directory is something else.
    #[error("{path:?} is not a {expected}; remove it and start the VM again")]
    WrongType {
        path: PathBuf,
        expected: &'static str,
    },

    /// A VM directory nested deeper than banger makes it.
    #[error("{path:?} nests deeper than banger makes VM directories; remove what is inside")]
    TooDeep { path: PathBuf },

    /// A system call on the file failed.
    #[error("cannot {action} {path:?}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OwnershipError {
    let path = path.to_path_buf();
    move |source| OwnershipError::Io {
        action,
        path,
        source,
    }
}

/// Give VM directory `dir` and everything in it to `uid:gid`, mode `0700` on directories
/// and owner-only access on files. Files with more than one link are shared with an image
/// (the hard link a qcow2 overlay backs onto): they are not given away but shared read-only
/// with `inputs_gid` instead, so one VM can never write another's base.
pub fn give_vm_dir(dir: &Path, uid: u32, gid: u32, inputs_gid: u32) -> Result<(), OwnershipError> {
    let fd = open_nofollow(None, dir, libc::O_DIRECTORY)?;
    give_dir(&fd, dir, uid, gid, inputs_gid, 0)
}

fn give_dir(
    dir_fd: &File,
    dir: &Path,
    uid: u32,
    gid: u32,
    inputs_gid: u32,
    depth: usize,
) -> Result<(), OwnershipError> {
    if depth > MAX_DEPTH {
        return Err(OwnershipError::TooDeep {
            path: dir.to_path_buf(),
        });
    }
    chown_fd(dir_fd, dir, uid, gid)?;
    chmod_fd(dir_fd, dir, 0o700)?;
    let entries = std::fs::read_dir(format!("/proc/self/fd/{}", dir_fd.as_raw_fd()))
        .map_err(io_err("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let path = dir.join(&name);
        let meta = fstatat_nofollow(dir_fd, &path, name.as_bytes())?;
        match meta.st_mode & libc::S_IFMT {
            libc::S_IFLNK => return Err(OwnershipError::Symlink { path }),
            libc::S_IFDIR => {
                let sub = open_nofollow(Some(dir_fd), Path::new(&name), libc::O_DIRECTORY)
                    .map_err(|e| relabel(e, &path))?;
                give_dir(&sub, &path, uid, gid, inputs_gid, depth + 1)?;
            }
            libc::S_IFREG if meta.st_nlink > 1 => {
                let file = open_nofollow(Some(dir_fd), Path::new(&name), 0)
                    .map_err(|e| relabel(e, &path))?;
                share_fd(&file, &path)?;
                chown_fd(&file, &path, u32::MAX, inputs_gid)?;
            }
            libc::S_IFREG => {
                let file = open_nofollow(Some(dir_fd), Path::new(&name), 0)
                    .map_err(|e| relabel(e, &path))?;
                chown_fd(&file, &path, uid, gid)?;
                // Owner access only, keeping whether it was executable.
                chmod_fd(&file, &path, (meta.st_mode & 0o700) | 0o600)?;
            }
            // A socket or fifo a previous VMM left: it is recreated at launch; give it too,
            // without opening it (opening a socket fails, a fifo would block).
            _ => fchownat_nofollow(dir_fd, &path, name.as_bytes(), uid, gid)?,
        }
    }
    Ok(())
}

/// Make read-only input `path` (a kernel, an initrd, a base image) readable by the
/// sandboxed VMMs' shared group `inputs_gid`, without opening it to anyone else. Refused
/// for links and for files the daemon's uid does not own.
pub fn share_input(path: &Path, inputs_gid: u32) -> Result<(), OwnershipError> {
    let file = open_nofollow(None, path, 0)?;
    share_fd(&file, path)?;
    chown_fd(&file, path, u32::MAX, inputs_gid)
}

fn share_fd(file: &File, path: &Path) -> Result<(), OwnershipError> {
    let meta = file.metadata().map_err(io_err("inspect", path))?;
    if !meta.is_file() {
        return Err(OwnershipError::WrongType {
            path: path.to_path_buf(),
            expected: "regular file",
        });
    }
    // SAFETY: geteuid has no preconditions and touches no memory.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(OwnershipError::NotOurs {
            path: path.to_path_buf(),
            owner: meta.uid(),
            expected: me,
        });
    }
    // Group read added; the owner keeps its bits; nobody gains write or execute.
    chmod_fd(file, path, (meta.mode() & 0o7777 & !0o020) | 0o040)
}

/// Open `path` (relative to `dir` when given) without following a final symbolic link.
fn open_nofollow(
    dir: Option<&File>,
    path: &Path,
    flags: libc::c_int,
) -> Result<File, OwnershipError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| OwnershipError::WrongType {
        path: path.to_path_buf(),
        expected: "path without NUL bytes",
    })?;
    let dirfd = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the returned fd
    // is owned by the File below.
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            flags | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // O_DIRECTORY on a link fails with ENOTDIR before O_NOFOLLOW's ELOOP.
        let is_link = || {
            let full = match dir {
                Some(d) => PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(path),
                None => path.to_path_buf(),
            };
            std::fs::symlink_metadata(full).is_ok_and(|m| m.file_type().is_symlink())
        };
        if e.raw_os_error() == Some(libc::ELOOP) || is_link() {
            return Err(OwnershipError::Symlink {
                path: path.to_path_buf(),
            });
        }
        if e.raw_os_error() == Some(libc::ENOTDIR) && flags & libc::O_DIRECTORY != 0 {
            return Err(OwnershipError::WrongType {
                path: path.to_path_buf(),
                expected: "directory",
            });
        }
        return Err(io_err("open", path)(e));
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// An error about a relative name gets the full path.
fn relabel(e: OwnershipError, full: &Path) -> OwnershipError {
    match e {
        OwnershipError::Symlink { .. } => OwnershipError::Symlink {
            path: full.to_path_buf(),
        },
        OwnershipError::WrongType { expected, .. } => OwnershipError::WrongType {
            path: full.to_path_buf(),
            expected,
        },
        OwnershipError::Io { action, source, .. } => OwnershipError::Io {
            action,
            path: full.to_path_buf(),
            source,
        },
        other => other,
    }
}

fn fstatat_nofollow(dir: &File, path: &Path, name: &[u8]) -> Result<libc::stat, OwnershipError> {
    let c = CString::new(name).map_err(|_| OwnershipError::WrongType {
        path: path.to_path_buf(),
        expected: "name without NUL bytes",
    })?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid, writable stat buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io_err("inspect", path)(io::Error::last_os_error()));
    }
    Ok(st)
}

fn fchownat_nofollow(
    dir: &File,
    path: &Path,
    name: &[u8],
    uid: u32,
    gid: u32,
) -> Result<(), OwnershipError> {
    let c = CString::new(name).map_err(|_| OwnershipError::WrongType {
        path: path.to_path_buf(),
        expected: "name without NUL bytes",
    })?;
    // SAFETY: `c` is NUL-terminated; AT_SYMLINK_NOFOLLOW changes the entry itself, never a
    // link's target.
    let rc = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io_err("change the owner of", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// `u32::MAX` (-1) leaves that id unchanged, as fchown(2) defines.
fn chown_fd(file: &File, path: &Path, uid: u32, gid: u32) -> Result<(), OwnershipError> {
    // SAFETY: fchown only acts on the open descriptor `file` owns.
    if unsafe { libc::fchown(file.as_raw_fd(), uid, gid) } != 0 {
        return Err(io_err("change the owner of", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn chmod_fd(file: &File, path: &Path, mode: u32) -> Result<(), OwnershipError> {
    // SAFETY: fchmod only acts on the open descriptor `file` owns.
    if unsafe { libc::fchmod(file.as_raw_fd(), mode) } != 0 {
        return Err(io_err("change the mode of", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_symlink_in_the_vm_dir_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("host-file");
        std::fs::write(&target, "x").unwrap();
        let before = std::fs::metadata(&target).unwrap();
        let vm = dir.path().join("vm");
        std::fs::create_dir(&vm).unwrap();
        std::os::unix::fs::symlink(&target, vm.join("console.log")).unwrap();
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let err = give_vm_dir(&vm, uid, gid, gid).unwrap_err();
        assert!(matches!(err, OwnershipError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("console.log"), "{err}");
        let after = std::fs::metadata(&target).unwrap();
        assert_eq!(before.mode(), after.mode());
        assert_eq!((before.uid(), before.gid()), (after.uid(), after.gid()));

        // The VM directory itself being a link is refused too.
        let link = dir.path().join("vm-link");
        std::os::unix::fs::symlink(&vm, &link).unwrap();
        let err = give_vm_dir(&link, uid, gid, gid).unwrap_err();
        assert!(matches!(err, OwnershipError::Symlink { .. }), "{err}");
        // And a shared input that is a link.
        let err = share_input(&vm.join("console.log"), gid).unwrap_err();
        assert!(matches!(err, OwnershipError::Symlink { .. }), "{err}");
    }

    #[test]
    fn vm_files_are_given_away_and_hard_linked_bases_only_shared() {
        assert!(
            is_root(),
            "this test changes file owners and must run as root (CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("rootfs.ext4");
        std::fs::write(&image, "base").unwrap();
        std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o600)).unwrap();
        let vm = dir.path().join("vm");
        std::fs::create_dir(&vm).unwrap();
        std::fs::write(vm.join("work.ext4"), "w").unwrap();
        std::fs::hard_link(&image, vm.join("root.base")).unwrap();
        std::fs::create_dir(vm.join("sub")).unwrap();
        std::fs::write(vm.join("sub/f"), "f").unwrap();
        let sock = std::os::unix::net::UnixListener::bind(vm.join("qmp.sock")).unwrap();

        give_vm_dir(&vm, 100_001, 100_002, 100_000).unwrap();
        for p in [
            vm.clone(),
            vm.join("work.ext4"),
            vm.join("sub"),
            vm.join("sub/f"),
        ] {
            let m = std::fs::symlink_metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (100_001, 100_002), "{p:?}");
            assert_eq!(m.mode() & 0o077, 0, "{p:?} is private");
        }
        let s = std::fs::symlink_metadata(vm.join("qmp.sock")).unwrap();
        assert_eq!(s.uid(), 100_001);
        drop(sock);
        // The base stays root's: the VM may read it through the inputs group, never write.
        let b = std::fs::metadata(&image).unwrap();
        assert_eq!((b.uid(), b.gid()), (0, 100_000));
        assert_eq!(b.mode() & 0o777, 0o640);
    }

    #[test]
    fn only_our_own_inputs_are_shared() {
        assert!(
            is_root(),
            "this test changes file owners and must run as root (CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, "k").unwrap();
        std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o622)).unwrap();
        share_input(&kernel, 100_000).unwrap();
        let m = std::fs::metadata(&kernel).unwrap();
        assert_eq!(m.gid(), 100_000);
        assert_eq!(
            m.mode() & 0o777,
            0o642,
            "group read added, group write removed"
        );

        std::os::unix::fs::chown(&kernel, Some(4242), None).unwrap();
        let err = share_input(&kernel, 100_000).unwrap_err();
        assert!(
            matches!(err, OwnershipError::NotOurs { owner: 4242, .. }),
            "{err}"
        );
        let err = share_input(dir.path(), 100_000).unwrap_err();
        assert!(matches!(err, OwnershipError::WrongType { .. }), "{err}");
    }
}
