//! File helpers for writing things that must never be seen half-written.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Flush a directory's entries (after a rename into it) to disk.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// SHA-256 (lowercase hex) and length of a file. Holes are hashed as the zeros they
/// read as, but without reading them: a root filesystem image is mostly holes (1 GiB of
/// headroom), and reading them through the page cache doubled the cost of an import's
/// final hash.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    use std::io::{Seek, SeekFrom};
    const CHUNK: usize = 1 << 20;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let zeros = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < len {
        let (data, hole) = match data_range(&file, pos, len) {
            Ok(range) => range,
            // No SEEK_DATA here (some filesystems): treat the rest as data.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (pos, len),
            Err(e) => return Err(e),
        };
        // The hole before `data`.
        let mut zero_left = data - pos;
        while zero_left > 0 {
            let n = zero_left.min(CHUNK as u64) as usize;
            hasher.update(&zeros[..n]);
            zero_left -= n as u64;
        }
        file.seek(SeekFrom::Start(data))?;
        let mut left = hole - data;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while being hashed",
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        pos = hole;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// The next data range at or after `pos`: `(start, end)`; `(len, len)` when only a hole
/// is left.
pub(crate) fn data_range(file: &File, pos: u64, len: u64) -> io::Result<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let seek = |offset: u64, whence| {
        // SAFETY: lseek on an fd we own; no memory is passed.
        let ret = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret as u64)
        }
    };
    let data = match seek(pos, libc::SEEK_DATA) {
        Ok(d) => d.min(len),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok((len, len)),
        Err(e) => return Err(e),
    };
    let hole = seek(data, libc::SEEK_HOLE)?.min(len);
    Ok((data, hole))
}

/// Passes writes through while hashing them and counting bytes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the hex digest and the byte count.
    pub fn into_parts(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Read everything, failing once more than `limit` bytes arrive.
pub fn read_limited(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {limit} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    /// A sparse file hashes exactly as its bytes do (holes read as zeros), at every
    /// boundary: leading and trailing holes, data at odd offsets.
    #[test]
    fn sparse_files_hash_like_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for (i, layout) in [
            vec![],
            vec![(0u64, 10usize)],
            vec![(5 << 20, 4096)],
            vec![(0, 1), (3 << 20, 777), ((8 << 20) - 3, 3)],
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("f{i}"));
            let mut f = File::create(&path).unwrap();
            f.set_len(8 << 20).unwrap();
            for (at, n) in &layout {
                f.seek(SeekFrom::Start(*at)).unwrap();
                f.write_all(&vec![0xA5u8; *n]).unwrap();
            }
            drop(f);
            let bytes = std::fs::read(&path).unwrap();
            let want = hex::encode(Sha256::digest(&bytes));
            assert_eq!(
                sha256_file(&path).unwrap(),
                (want, 8 << 20),
                "layout {layout:?}"
            );
        }
    }
}
