//! Files with holes (`truncate -s 4G f; echo x >> f`): packed as GNU sparse entries (the
//! old GNU format `tar -S` writes, which GNU tar, bsdtar and the `tar` crate read), which
//! hold only the file's data and a map of where it goes. Unpacking such an entry seeks
//! over the holes (the `tar` crate's writer does), so the copy has them too: a 4 GiB file
//! with 4 KiB of data crosses as a few KiB and lands as a few KiB.
//!
//! Where the data is comes from `SEEK_DATA`/`SEEK_HOLE`, looked at once before the file is
//! read (as `tar` does): data written into a hole meanwhile is not copied; a file that
//! shrinks meanwhile is an error naming it (see `pack.rs`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Archive blocks: every run of data but the last must fill whole ones.
const BLOCK: u64 = 512;
/// Runs listed in the entry's own header; the rest go in extension headers after it.
const IN_HEADER: usize = 4;
/// Runs per extension header.
const PER_EXTENSION: usize = 21;

/// A file's data, as `(offset, length)` runs in order, each but the last a whole number of
/// 512-byte blocks; ends with a run ending at the file's size (of length 0 when the file
/// ends in a hole).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Runs(Vec<(u64, u64)>);

impl Runs {
    /// Where `file`'s data is, for its first `size` bytes; `None` when it has no holes, or
    /// its filesystem cannot say (then it is packed whole, as before).
    pub fn of(file: &File, meta: &std::fs::Metadata, size: u64) -> Option<Runs> {
        // Fewer blocks than its length: the cheap sign of a hole, no seeking for the rest.
        if size == 0 || meta.blocks().saturating_mul(512) >= size {
            return None;
        }
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut at = 0;
        while at < size {
            let start = match seek(file, at, libc::SEEK_DATA) {
                Ok(start) => start,
                // No data after `at`: the rest is a hole.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
                Err(_) => return None,
            };
            if start >= size {
                break;
            }
            let end = seek(file, start, libc::SEEK_HOLE).ok()?.min(size);
            if end <= start {
                return None;
            }
            // Out to whole blocks: the stream's data must be.
            let (from, to) = (start / BLOCK * BLOCK, end.div_ceil(BLOCK) * BLOCK);
            let to = to.min(size);
            match runs.last_mut() {
                Some((offset, length)) if *offset + *length >= from => *length = to - *offset,
                _ => runs.push((from, to - from)),
            }
            at = end;
        }
        if runs == [(0, size)] {
            return None; // All data after all.
        }
        if runs
            .last()
            .is_none_or(|(offset, length)| offset + length < size)
        {
            runs.push((size, 0));
        }
        Some(Runs(runs))
    }

    /// Bytes of data: what the stream carries.
    pub fn data(&self) -> u64 {
        self.0.iter().map(|(_, length)| length).sum()
    }

    /// Make `header` (a GNU header with the file's metadata) a sparse entry of these runs;
    /// returns the extension headers that must follow it, before the data.
    pub fn describe(&self, header: &mut tar::Header, size: u64) -> io::Result<Vec<u8>> {
        header.set_entry_type(tar::EntryType::GNUSparse);
        header.set_size(self.data());
        let gnu = header
            .as_gnu_mut()
            .ok_or_else(|| io::Error::other("a sparse entry needs a GNU header"))?;
        gnu.set_real_size(size);
        let (first, rest) = self.0.split_at(IN_HEADER.min(self.0.len()));
        for (slot, &(offset, length)) in gnu.sparse.iter_mut().zip(first) {
            slot.set_offset(offset);
            slot.set_length(length);
        }
        gnu.set_is_extended(!rest.is_empty());
        let mut extensions = Vec::new();
        let mut chunks = rest.chunks(PER_EXTENSION).peekable();
        while let Some(chunk) = chunks.next() {
            let mut ext = tar::GnuExtSparseHeader::new();
            for (slot, &(offset, length)) in ext.sparse.iter_mut().zip(chunk) {
                slot.set_offset(offset);
                slot.set_length(length);
            }
            ext.set_is_extended(chunks.peek().is_some());
            extensions.extend_from_slice(ext.as_bytes());
        }
        Ok(extensions)
    }

    /// The data of these runs from `file`, in order: an error naming `path` if the file
    /// ends before a run does.
    pub fn reader<'a>(&'a self, file: &'a File, path: &'a Path) -> RunsReader<'a> {
        RunsReader {
            file,
            runs: &self.0,
            run: 0,
            done: 0,
            path,
        }
    }
}

/// See [`Runs::reader`].
pub(crate) struct RunsReader<'a> {
    file: &'a File,
    runs: &'a [(u64, u64)],
    /// The run being read, and how much of it was.
    run: usize,
    done: u64,
    path: &'a Path,
}

impl Read for RunsReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(&(offset, length)) = self.runs.get(self.run) else {
                return Ok(0);
            };
            if self.done == length {
                (self.run, self.done) = (self.run + 1, 0);
                continue;
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let want = buf
                .len()
                .min(usize::try_from(length - self.done).unwrap_or(usize::MAX));
            let n = self.file.read_at(&mut buf[..want], offset + self.done)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} shrank below {} bytes while it was copied: copy it again once nothing writes it",
                        self.path.display(),
                        offset + length
                    ),
                ));
            }
            self.done += n as u64;
            return Ok(n);
        }
    }
}

/// `lseek(2)` on `file` (its offset moves; [`RunsReader`] reads by position, not from it).
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<u64> {
    let offset = i64::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: lseek takes an open descriptor (`file` lives across the call) and touches no
    // memory of ours.
    let at = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    u64::try_from(at).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests;
