//! Packing: a file or directory (not followed when it is a symlink) as a tar stream with
//! one top-level entry.
//!
//! A regular file's header carries its length, written before its bytes; a file whose
//! size is not its length would break the stream (the reader takes the next header from
//! the middle of the data). So a small file (procfs says 0 bytes, sysfs 4096, whatever
//! they hold) is read whole first and packed as read; a larger one is packed at the length
//! it had when it was looked at: cut there if it grew meanwhile (a log being written), an
//! error naming it if it shrank. A file with holes is packed as a GNU sparse entry, its
//! data only (`sparse.rs`). Sockets inside a directory are left out (`tar` does the
//! same); other special files are packed, for the receiver to refuse.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::CopyError;
use crate::sparse::Runs;

/// Files said to be shorter than this are read whole before they are packed.
const READ_WHOLE_BELOW: u64 = 64 * 1024;
/// The most read from such a file (procfs files can be several MiB: `/proc/kallsyms`).
const READ_WHOLE_MAX: u64 = 64 * 1024 * 1024;

/// Write `path` (a file, directory or symlink, not followed) to `out` as a tar stream whose
/// one top-level entry is named after `path`'s last component: a path ending in `.` or
/// `..` (which has none) is refused, `/` (however spelt) with its own reason.
pub fn pack(path: &Path, out: impl Write) -> Result<(), CopyError> {
    let meta = fs::symlink_metadata(path).map_err(|source| CopyError::Source {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.file_name().ok_or_else(|| {
        let path = path.to_path_buf();
        match path.canonicalize() {
            Ok(real) if real.parent().is_none() => CopyError::Root { path },
            _ => CopyError::NoName { path },
        }
    })?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    append(&mut builder, path, Path::new(name), &meta)?;
    if meta.is_dir() {
        // Depth first, as `tar` walks: (path on disk, name in the stream).
        let mut stack = vec![(path.to_path_buf(), PathBuf::from(name))];
        while let Some((dir, named)) = stack.pop() {
            let read = |source| CopyError::Source {
                path: dir.clone(),
                source,
            };
            for entry in fs::read_dir(&dir).map_err(read)? {
                let entry = entry.map_err(read)?;
                let (from, to) = (entry.path(), named.join(entry.file_name()));
                let meta = fs::symlink_metadata(&from).map_err(|source| CopyError::Source {
                    path: from.clone(),
                    source,
                })?;
                if meta.file_type().is_socket() {
                    continue;
                }
                append(&mut builder, &from, &to, &meta)?;
                if meta.is_dir() {
                    stack.push((from, to));
                }
            }
        }
    }
    builder.into_inner().map_err(CopyError::Pack)?;
    Ok(())
}

/// One entry, not recursing: a regular file as described in the module's comment, a
/// directory or symlink as `tar` packs it, a FIFO or device as a header of its kind.
fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    meta: &fs::Metadata,
) -> Result<(), CopyError> {
    if is_special(meta) {
        return special(builder, name, meta);
    }
    if !meta.is_file() {
        return builder
            .append_path_with_name(path, name)
            .map_err(CopyError::Pack);
    }
    let source = |source| CopyError::Source {
        path: path.to_path_buf(),
        source,
    };
    // Not through a symlink, and never blocking on a FIFO put there since it was listed.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(source)?;
    let meta = file.metadata().map_err(source)?;
    if is_special(&meta) {
        return special(builder, name, &meta);
    }
    if !meta.is_file() {
        return builder
            .append_path_with_name(path, name)
            .map_err(CopyError::Pack);
    }
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    let said = meta.len();
    if said < READ_WHOLE_BELOW {
        let mut data = Vec::new();
        (&file)
            .take(READ_WHOLE_MAX + 1)
            .read_to_end(&mut data)
            .map_err(source)?;
        if data.len() as u64 > READ_WHOLE_MAX {
            return Err(CopyError::Endless {
                path: path.to_path_buf(),
                size: said,
                max: READ_WHOLE_MAX,
            });
        }
        header.set_size(data.len() as u64);
        return builder
            .append_data(&mut header, name, &data[..])
            .map_err(CopyError::Pack);
    }
    if let Some(runs) = Runs::of(&file, &meta, said) {
        // Holes stay holes: only the data crosses (see `sparse.rs`).
        let extensions = runs.describe(&mut header, said).map_err(CopyError::Pack)?;
        let data = (&extensions[..]).chain(runs.reader(&file, path));
        return builder
            .append_data(&mut header, name, data)
            .map_err(CopyError::Pack);
    }
    header.set_size(said);
    builder
        .append_data(&mut header, name, Exact::new(file, said, path))
        .map_err(CopyError::Pack)
}

fn is_special(meta: &fs::Metadata) -> bool {
    let kind = meta.file_type();
    kind.is_fifo() || kind.is_char_device() || kind.is_block_device()
}

/// A FIFO or device under `name`. (`tar`'s own `append_path_with_name` names these by
/// their path on disk, not the name given: an absolute path it then refuses.)
fn special<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &Path,
    meta: &fs::Metadata,
) -> Result<(), CopyError> {
    use std::os::unix::fs::MetadataExt;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    let kind = meta.file_type();
    header.set_entry_type(if kind.is_fifo() {
        tar::EntryType::Fifo
    } else if kind.is_char_device() {
        tar::EntryType::Char
    } else {
        tar::EntryType::Block
    });
    header.set_size(0);
    let dev = meta.rdev();
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    let numbers = header
        .set_device_major(major as u32)
        .and_then(|()| header.set_device_minor(minor as u32));
    numbers.map_err(CopyError::Pack)?;
    builder
        .append_data(&mut header, name, io::empty())
        .map_err(CopyError::Pack)
}

/// Exactly `left` bytes of `inner`: cut there if it has more, an error naming `path` if it
/// ends before.
pub(crate) struct Exact<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<'a, R: Read> Exact<'a, R> {
    pub(crate) fn new(inner: R, left: u64, path: &'a Path) -> Exact<'a, R> {
        Exact { inner, left, path }
    }
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank by {} bytes while it was copied: copy it again once nothing writes it",
                    self.path.display(),
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
