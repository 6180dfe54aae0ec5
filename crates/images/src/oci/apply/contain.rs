//! Containment: entry names checked, parent directories resolved inside the tree (symlinks
//! followed with the tree as their root), and the filesystem calls that never follow a
//! symlink in the last component.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::{Applier, MAX_NAME};

const MAX_SYMLINK_HOPS: usize = 40;

impl Applier<'_> {
    /// The real directory for `parts` below the root, following symlinks with the tree
    /// as their root; missing directories are created when `create`.
    pub(super) fn resolve_dir(&self, parts: &[&OsStr], create: bool) -> Result<PathBuf, String> {
        let mut todo: Vec<OsString> = parts.iter().rev().map(|p| p.to_os_string()).collect();
        let mut cur = self.root.to_path_buf();
        let mut depth = 0usize;
        let mut hops = 0usize;
        while let Some(part) = todo.pop() {
            if part == ".." {
                if depth > 0 {
                    cur.pop();
                    depth -= 1;
                }
                continue;
            }
            if part == "." || part.is_empty() {
                continue;
            }
            let next = cur.join(&part);
            match fs::symlink_metadata(&next) {
                Ok(m) if m.is_dir() => {
                    cur = next;
                    depth += 1;
                }
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err("has too many levels of symlinks in its path".into());
                    }
                    let target = fs::read_link(&next).map_err(|e| e.to_string())?;
                    if target.is_absolute() {
                        cur = self.root.to_path_buf();
                        depth = 0;
                    }
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(s) => todo.push(s.to_os_string()),
                            Component::ParentDir => todo.push("..".into()),
                            _ => {}
                        }
                    }
                }
                Ok(_) => {
                    return Err(format!(
                        "has a parent {:?} that is not a directory",
                        part.to_string_lossy()
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    mkdir(&next).map_err(|e| e.to_string())?;
                    cur = next;
                    depth += 1;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(cur)
    }
}

/// The components of an entry name: `./` prefixes dropped; absolute names, `..`, NULs and
/// over-long names refused.
pub(super) fn relative_parts(name: &[u8]) -> Result<Vec<&OsStr>, String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "has a name of {} bytes (limit {MAX_NAME})",
            name.len()
        ));
    }
    if name.contains(&0) {
        return Err("has a NUL byte in its name".into());
    }
    if name.first() == Some(&b'/') {
        return Err("is an absolute path, which would escape the image root".into());
    }
    let mut parts = Vec::new();
    for c in Path::new(OsStr::from_bytes(name)).components() {
        match c {
            Component::Normal(s) => parts.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("contains '..', which would escape the image root".into());
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is an absolute path, which would escape the image root".into());
            }
        }
    }
    Ok(parts)
}

pub(super) fn mkdir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o755).create(path)
}

/// Create the regular file `path`, which must not exist (a symlink there is not followed),
/// private until its owner and mode are set.
pub(super) fn create_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Remove whatever is at `path` (never following a symlink); absent is fine.
pub(super) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) fn set_mtime(path: &Path, mtime: u64) {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let t = libc::timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: `c` is a valid C string and `times` two valid timespecs for the call;
    // AT_SYMLINK_NOFOLLOW keeps it on the entry itself.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}
