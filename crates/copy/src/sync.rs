//! `banger vm sync`: bring a guest's copy of a shared directory back into the host
//! directory. The guest is untrusted: its tar stream is first unpacked by [`crate::unpack`]
//! (no `..`, no absolute names, nothing through a symlink, no devices, no hard links, no
//! set-id bits) into a private staging directory inside the destination, within a byte
//! cap; then every symlink it holds is checked to stay inside the tree; only then is
//! anything in the destination touched. So a refused stream changes nothing.
//!
//! Applying, directory by directory: a file the host has with the same size and
//! modification time (a symlink with the same target) is left alone; any other file is moved into place by `rename` from
//! the staging directory (its temporary name, on the same filesystem, written and synced
//! first), so a reader sees the old or the new file, never half of one. Files only the
//! host has are kept, unless `delete` is set. A host directory where the guest has a file
//! (or the reverse) is replaced only with `delete`; otherwise it is skipped and reported.
//! Nothing is written through a symlink already in the destination: a link is replaced,
//! never followed.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::CopyError;
use crate::Rename;
use crate::dirs::DirModes;
use crate::staging::{self, Staging};

/// How a sync behaves.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Remove what the host has and the guest does not.
    pub delete: bool,
    /// The most bytes of tar stream accepted from the guest.
    pub max_bytes: u64,
}

/// What a sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files and symlinks written (new or changed).
    pub written: u64,
    /// Files already identical on the host (same size and modification time).
    pub unchanged: u64,
    /// Directories made.
    pub dirs_made: u64,
    /// Host entries removed (`delete`).
    pub deleted: u64,
    /// Bytes of the files written.
    pub bytes: u64,
    /// Entries left alone because the host has a different kind of entry there (without
    /// `delete`), as paths relative to the destination.
    pub skipped: Vec<PathBuf>,
}

/// The name of `vm sync`'s staging directories, before `.<pid>.<nanos>`.
pub(crate) const SYNC_STAGING: &str = ".banger-sync";

/// Name of the top entry inside the staging directory.
const TREE: &str = "tree";

/// Unpack the tar stream `input` (one top-level directory, as `vm cp` packs it) and make
/// the existing directory `dest` match it as [`SyncOptions`] say.
pub fn receive(input: impl Read, dest: &Path, opts: &SyncOptions) -> Result<SyncReport, CopyError> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(CopyError::NotADirectory {
                path: dest.to_path_buf(),
            });
        }
    }
    let staging = Staging::new(dest, SYNC_STAGING)?;
    let over = std::cell::Cell::new(false);
    let limited = Limited {
        inner: input,
        left: opts.max_bytes,
        over: &over,
    };
    // Staged directories stay the owner's to write: their entries are moved out of them.
    let rename = Rename {
        name: TREE,
        dir_only: false,
    };
    crate::unpack_with(
        limited,
        &staging.path,
        Some(rename),
        DirModes::OwnerWritable,
    )
    .map_err(|e| match over.get() {
        true => CopyError::TooLarge {
            max: opts.max_bytes,
        },
        false => e,
    })?;
    let tree = staging.path.join(TREE);
    match fs::symlink_metadata(&tree) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CopyError::Refused {
                name: TREE.to_string(),
                why: "the guest sent a file where a directory was expected",
            });
        }
        Err(source) => return Err(CopyError::Read(source)),
    }
    check_links(&tree, &tree, dest)?;
    let mut report = SyncReport::default();
    apply(&tree, dest, Path::new(""), true, opts, &mut report)?;
    Ok(report)
}

/// A reader that fails (and sets `over`) once more than `left` bytes were read from it.
struct Limited<'a, R> {
    inner: R,
    left: u64,
    over: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for Limited<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            self.over.set(true);
            io::Error::other("over the size limit")
        })?;
        Ok(n)
    }
}

/// Refuse any symlink under `dir` whose target is absolute or climbs out of `root`, unless
/// the host already has that very link at that place in `dest` (the copy carried the host's
/// own link in and back: the guest did not make it).
fn check_links(root: &Path, dir: &Path, dest: &Path) -> Result<(), CopyError> {
    let read = |source| CopyError::Read(source);
    for entry in fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        let meta = fs::symlink_metadata(&path).map_err(read)?;
        if meta.is_dir() {
            check_links(root, &path, dest)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(read)?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let from = rel.parent().unwrap_or(Path::new(""));
            let the_hosts_own = fs::read_link(dest.join(rel)).is_ok_and(|t| t == target);
            if !stays_inside(from, &target) && !the_hosts_own {
                return Err(CopyError::Refused {
                    name: rel.display().to_string(),
                    why: "a symlink pointing outside the shared directory",
                });
            }
        }
    }
    Ok(())
}

/// Whether `target`, read from directory `from` (relative to the tree's root), names a
/// path inside the tree, by its text alone.
fn stays_inside(from: &Path, target: &Path) -> bool {
    let mut depth = from.components().count();
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Make `dst` (which is `rel` under the destination) match `src`. In the destination
/// itself (`top`), `delete` spares staging directories: this sync's, and those of other
/// copies into it (a live one's would break it; a killed one's are swept by the next
/// copy of its kind).
fn apply(
    src: &Path,
    dst: &Path,
    rel: &Path,
    top: bool,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<(), CopyError> {
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CopyError::Write { path, source }
    };
    if opts.delete {
        for entry in fs::read_dir(dst).map_err(write(dst))? {
            let entry = entry.map_err(write(dst))?;
            let name = entry.file_name();
            if top && name.to_str().is_some_and(staging::is_any_staging_name) {
                continue;
            }
            if fs::symlink_metadata(src.join(&name)).is_err() {
                remove(&entry.path())?;
                report.deleted += 1;
            }
        }
    }
    for entry in fs::read_dir(src).map_err(CopyError::Read)? {
        let entry = entry.map_err(CopyError::Read)?;
        let name = entry.file_name();
        let (from, to, rel) = (src.join(&name), dst.join(&name), rel.join(&name));
        let theirs = fs::symlink_metadata(&from).map_err(CopyError::Read)?;
        let ours = fs::symlink_metadata(&to).ok();
        if theirs.is_dir() {
            match &ours {
                Some(m) if m.is_dir() => {}
                Some(_) if !opts.delete => {
                    report.skipped.push(rel);
                    continue;
                }
                Some(_) => {
                    remove(&to)?;
                    make_dir(&to, theirs.mode())?;
                    report.dirs_made += 1;
                }
                None => {
                    make_dir(&to, theirs.mode())?;
                    report.dirs_made += 1;
                }
            }
            apply(&from, &to, &rel, false, opts, report)?;
            continue;
        }
        match &ours {
            Some(m) if m.is_dir() && !opts.delete => {
                report.skipped.push(rel);
                continue;
            }
            Some(m) if m.is_dir() => remove(&to)?,
            Some(m)
                if m.is_file()
                    && theirs.is_file()
                    && m.len() == theirs.len()
                    && m.mtime() == theirs.mtime() =>
            {
                report.unchanged += 1;
                continue;
            }
            Some(m)
                if m.file_type().is_symlink()
                    && theirs.file_type().is_symlink()
                    && fs::read_link(&to).ok() == fs::read_link(&from).ok() =>
            {
                report.unchanged += 1;
                continue;
            }
            _ => {}
        }
        if theirs.is_file() {
            // On disk before it is visible under its real name.
            fs::File::open(&from)
                .and_then(|f| f.sync_all())
                .map_err(write(&from))?;
            report.bytes += theirs.len();
        }
        // Replaces a file or a symlink at `to`, never following it.
        fs::rename(&from, &to).map_err(write(&to))?;
        report.written += 1;
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<(), CopyError> {
    fs::DirBuilder::new()
        .mode(mode & 0o777)
        .create(path)
        .map_err(|source| CopyError::Write {
            path: path.to_path_buf(),
            source,
        })
}

fn remove(path: &Path) -> Result<(), CopyError> {
    let meta = fs::symlink_metadata(path).map_err(|source| CopyError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let removed = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|source| CopyError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
