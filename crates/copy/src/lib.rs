//! The tar streams of `banger vm cp`, shared by the guest agent (which packs and unpacks
//! in the guest) and the CLI (which does the same on the host).
//!
//! A stream holds one top-level entry: the file or directory copied, under its own name.
//! [`unpack`] treats every stream as hostile — the host's copy of a guest's files is
//! written by whatever runs in the guest: entry names with `..`, absolute names, and
//! paths through a symlink (one already in the destination, or one the stream itself
//! made) are refused; only regular files, directories and symlinks are made; set-id bits
//! are dropped; ownership is not applied. Modes and modification times are kept. [`pack`]
//! writes each file as it reads (see `pack.rs`).

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

mod dirs;
mod pack;
mod sparse;
mod staging;
pub mod sync;

use dirs::{DirModes, PendingDir};
pub use pack::pack;
use staging::Staging;
pub use sync::{SyncOptions, SyncReport};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{} does not exist or cannot be read", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} ends in . or .. and so has no name of its own to copy under: name it by its own name (../proj rather than ., /srv/app rather than /srv/app/..)", path.display())]
    NoName { path: PathBuf },
    #[error("{} is the whole filesystem, which vm cp does not copy (/proc, /sys and /dev hold files that never end or are not files): copy the directories you need, e.g. /etc or /root", path.display())]
    Root { path: PathBuf },
    #[error("the destination {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("the directory {} does not exist: make it first (missing parents are not made)", path.display())]
    Missing { path: PathBuf },
    #[error("{}/ does not exist: a destination ending in / names an existing directory (drop the / to copy under that name)", path.display())]
    NoDirectory { path: PathBuf },
    #[error("writing the archive failed")]
    Pack(#[source] io::Error),
    #[error("{} grows as it is read (more than {max} bytes from a file that said {size}): not copied", path.display())]
    Endless { path: PathBuf, size: u64, max: u64 },
    #[error("reading the archive failed")]
    Read(#[source] io::Error),
    #[error("the guest's tree is larger than {max} bytes, the most a sync takes")]
    TooLarge { max: u64 },
    #[error("refused archive entry {name:?}: {why}")]
    Refused { name: String, why: &'static str },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The name of `vm cp`'s staging directories, before `.<pid>.<nanos>`.
const CP_STAGING: &str = ".banger-cp";

/// What [`unpack`] made.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

/// Extract the tar stream `input` inside the existing directory `dest`; with `rename`, the
/// stream's top-level entry (and everything under it) is written under that name instead.
/// A stream of a directory's contents (`tar -C DIR -cf - .`) lands in `dest` itself: its
/// `./` entry names `dest` and is skipped, as is a pax global header (`git archive`'s).
/// Directories get their modes and modification times after their contents. Staging
/// directories killed copies left in `dest` are removed first (see `staging.rs`).
pub fn unpack(input: impl Read, dest: &Path, rename: Option<&str>) -> Result<Unpacked, CopyError> {
    // What killed copies under a new name left here (see `staging.rs`).
    staging::sweep(dest, CP_STAGING);
    let rename = rename.map(|name| Rename {
        name,
        dir_only: false,
    });
    unpack_with(input, dest, rename, DirModes::AsPacked)
}

/// The new name of a stream's top-level entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rename<'a> {
    pub name: &'a str,
    /// Refuse a top-level entry that is not a directory (the destination was `NAME/`).
    pub dir_only: bool,
}

/// [`unpack`], with the directories' final modes as `modes` says.
pub(crate) fn unpack_with(
    input: impl Read,
    dest: &Path,
    rename: Option<Rename<'_>>,
    modes: DirModes,
) -> Result<Unpacked, CopyError> {
    let (written, pending) = unpack_unfinished(input, dest, rename)?;
    // What was made keeps the stream's modes even when a later entry is refused.
    let finished = dirs::finish(pending, modes);
    let done = written?;
    finished?;
    Ok(done)
}

/// `Ok` when `dest` is an existing directory, else why not.
fn existing_dir(dest: &Path) -> Result<(), CopyError> {
    if dest.is_dir() {
        return Ok(());
    }
    if fs::metadata(dest).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
        return Err(CopyError::Missing {
            path: dest.to_path_buf(),
        });
    }
    Err(CopyError::NotADirectory {
        path: dest.to_path_buf(),
    })
}

/// Check `dest`, then write the stream's entries; the directories made come back not
/// yet finished ([`dirs::finish`]), whether writing went through or not.
type Unfinished = (Result<Unpacked, CopyError>, Vec<PendingDir>);

fn unpack_unfinished(
    input: impl Read,
    dest: &Path,
    rename: Option<Rename<'_>>,
) -> Result<Unfinished, CopyError> {
    existing_dir(dest)?;
    let root = dest.canonicalize().map_err(|source| CopyError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    if let Some(Rename { name, .. }) = rename {
        plain_name(name).ok_or(CopyError::Refused {
            name: name.to_string(),
            why: "a new name must be one plain path component",
        })?;
    }
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut pending = Vec::new();
    let written = write_entries(&mut archive, &root, rename, &mut pending);
    Ok((written, pending))
}

/// Write `archive`'s entries under `root` (see [`unpack`]); directories made are listed in
/// `pending`, for [`dirs::finish`].
fn write_entries(
    archive: &mut tar::Archive<impl Read>,
    root: &Path,
    rename: Option<Rename<'_>>,
    pending: &mut Vec<PendingDir>,
) -> Result<Unpacked, CopyError> {
    let mut done = Unpacked::default();
    let mut top: Option<std::ffi::OsString> = None;
    for entry in archive.entries().map_err(CopyError::Read)? {
        let mut entry = entry.map_err(CopyError::Read)?;
        let raw = entry.path().map_err(CopyError::Read)?.into_owned();
        let shown = raw.display().to_string();
        let refuse = |why| CopyError::Refused {
            name: shown.clone(),
            why,
        };
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Metadata for the whole stream (`git archive` puts its commit id there).
            continue;
        }
        let relative = relative(&raw, rename.map(|r| r.name))
            .ok_or_else(|| refuse("its name is absolute or has a .. component"))?;
        if relative.as_os_str().is_empty() {
            // `.` or `./`: what `tar -C DIR -cf - .` writes first, the destination itself.
            match (kind.is_dir(), rename) {
                (true, None) => continue,
                (true, Some(_)) => {
                    return Err(refuse(
                        "a renamed copy is one named entry; this stream holds a directory's contents",
                    ));
                }
                (false, _) => {
                    return Err(refuse("only a directory can name the destination itself"));
                }
            }
        }
        if let Some(rename) = rename {
            // Renaming is for a packed stream: one top-level entry, never several merged.
            let first = raw.components().find_map(|c| match c {
                Component::Normal(p) => Some(p.to_os_string()),
                _ => None,
            });
            match (&top, first) {
                (None, _) if rename.dir_only && !kind.is_dir() => {
                    return Err(CopyError::NoDirectory {
                        path: root.join(rename.name),
                    });
                }
                (None, first) => top = first,
                (Some(seen), Some(first)) if *seen == first => {}
                _ => {
                    return Err(refuse(
                        "a renamed copy holds one top-level entry; this stream has several",
                    ));
                }
            }
        }
        // A GNU sparse entry (`tar -S`) is a regular file with holes: written as one.
        if !(kind.is_file() || kind.is_gnu_sparse() || kind.is_dir() || kind.is_symlink()) {
            return Err(refuse("only files, directories and symlinks are copied"));
        }
        let target = root.join(&relative);
        // Every directory on the way must be a real directory inside `root`: a symlink
        // (already there, or made by an earlier entry) could lead anywhere.
        if let Some(parent) = relative.parent() {
            let mut at = root.to_path_buf();
            for part in parent.components() {
                at.push(part);
                match fs::symlink_metadata(&at) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(refuse("a directory on its path is a symlink or a file")),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fs::create_dir(&at).map_err(|source| CopyError::Write {
                            path: at.clone(),
                            source,
                        })?;
                    }
                    Err(source) => {
                        return Err(CopyError::Write {
                            path: at.clone(),
                            source,
                        });
                    }
                }
            }
        }
        if let Ok(m) = fs::symlink_metadata(&target)
            && m.file_type().is_symlink()
        {
            // Replace a symlink, never write through it.
            fs::remove_file(&target).map_err(|source| CopyError::Write {
                path: target.clone(),
                source,
            })?;
        }
        if kind.is_dir() {
            dirs::make(&target)?;
            let header = entry.header();
            pending.push(PendingDir {
                path: target,
                // Set-user-id and set-group-id bits are never carried over.
                mode: header.mode().map_err(CopyError::Read)? & 0o1777,
                mtime: header.mtime().ok(),
            });
            done.dirs += 1;
            continue;
        }
        entry.set_mask(0o6000);
        let size = entry.size();
        entry.unpack(&target).map_err(|source| CopyError::Write {
            path: target.clone(),
            source,
        })?;
        done.files += 1;
        done.bytes += size;
    }
    Ok(done)
}

/// `docker cp`'s rule for where a packed stream goes: into `dest` when it is an existing
/// directory (keeping the entry's name), else as `dest` itself (into its parent, under its
/// last component). A `dest` ending in `/` names a directory: a file is not copied there
/// unless it exists, and nothing replaces a file of that name.
pub fn unpack_to(input: impl Read, dest: &Path) -> Result<Unpacked, CopyError> {
    if dest.is_dir() {
        return unpack(input, dest, None);
    }
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(CopyError::NoName {
            path: dest.to_path_buf(),
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = name.to_str().ok_or_else(|| CopyError::NoName {
        path: dest.to_path_buf(),
    })?;
    let dir_only = dest.as_os_str().as_bytes().ends_with(b"/");
    if dir_only && fs::symlink_metadata(parent.join(name)).is_ok() {
        return Err(CopyError::NotADirectory {
            path: dest.to_path_buf(),
        });
    }
    let rename = Rename { name, dir_only };
    existing_dir(parent)?;
    // Staged beside it, moved into place whole: a refused or broken stream leaves no part
    // of a copy under the new name (nor replaces a file there with one).
    let staging = Staging::new(parent, CP_STAGING)?;
    let (from, to) = (staging.path.join(name), parent.join(name));
    let shown = |e| shown_at(e, &staging.path, parent);
    let (written, pending) =
        unpack_unfinished(input, &staging.path, Some(rename)).map_err(shown)?;
    // Until moved, the staged directories stay 0700: removable by `staging`'s drop.
    let done = written.map_err(shown)?;
    if fs::symlink_metadata(&from).is_err() {
        return Ok(done); // An empty stream: nothing to place.
    }
    fs::rename(&from, &to).map_err(|source| CopyError::Write {
        path: to.clone(),
        source: match source.kind() {
            io::ErrorKind::NotADirectory => io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file is there where the copy has a directory",
            ),
            _ => source,
        },
    })?;
    // Modes last: a read-only directory cannot be moved to another parent (its `..`).
    let moved = pending
        .into_iter()
        .map(|dir| PendingDir {
            path: to.join(dir.path.strip_prefix(&from).unwrap_or(&dir.path)),
            ..dir
        })
        .collect();
    dirs::finish(moved, DirModes::AsPacked)?;
    Ok(done)
}

/// `e` with a path inside `staging` named where it was going, under `dest`.
fn shown_at(e: CopyError, staging: &Path, dest: &Path) -> CopyError {
    let moved = |path: PathBuf| match path.strip_prefix(staging) {
        Ok(rest) => dest.join(rest),
        Err(_) => path,
    };
    match e {
        CopyError::Write { path, source } => CopyError::Write {
            path: moved(path),
            source,
        },
        CopyError::NoDirectory { path } => CopyError::NoDirectory { path: moved(path) },
        other => other,
    }
}

fn plain_name(name: &str) -> Option<&str> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => Some(name),
        _ => None,
    }
}

/// `name` as a path of normal components (a leading `./` is fine), its first component
/// replaced by `rename`; empty for `.` itself; `None` for a name that could climb out.
fn relative(name: &Path, rename: Option<&str>) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in name.components() {
        match part {
            Component::Normal(p) => {
                if out.as_os_str().is_empty()
                    && let Some(new) = rename
                {
                    out.push(new);
                } else {
                    out.push(p);
                }
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
