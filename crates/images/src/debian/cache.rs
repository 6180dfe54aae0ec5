//! A content-addressed download cache: `<cache_dir>/sha256/<hex>`.
//!
//! A file only ever appears under its name after its digest and size were
//! checked, so a cached file can be trusted by name (we still re-hash on use,
//! which costs little next to a download and catches disk corruption).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{DebianError, FileDigest};
use crate::fsutil::{self, HashingWriter};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `<cache_dir>/sha256`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            root: cache_dir.join("sha256"),
        }
    }

    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.root.join(sha256)
    }

    /// The cached file for `digest`, if present and intact. A damaged entry is
    /// removed so it is downloaded again.
    pub fn lookup(&self, digest: &FileDigest) -> Result<Option<PathBuf>, DebianError> {
        let path = self.path_for(&digest.sha256);
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DebianError::io("inspect cached file", &path, e)),
            Ok(meta) if meta.len() != digest.size => {}
            Ok(_) => {
                let (sha, _) = fsutil::sha256_file(&path)
                    .map_err(|e| DebianError::io("read cached file", &path, e))?;
                if sha == digest.sha256 {
                    return Ok(Some(path));
                }
            }
        }
        fs::remove_file(&path)
            .map_err(|e| DebianError::io("remove damaged cached file", &path, e))?;
        Ok(None)
    }

    /// Copy `body` into the cache, checking it against `digest` as it streams.
    /// `what` names the file in errors (e.g. `main/binary-amd64/Packages.xz`).
    pub fn store(
        &self,
        digest: &FileDigest,
        what: &str,
        url: &str,
        body: impl Read,
    ) -> Result<PathBuf, DebianError> {
        fs::create_dir_all(&self.root)
            .map_err(|e| DebianError::io("create the download cache", &self.root, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(&self.root)
            .map_err(|e| DebianError::io("create a temp file in", &self.root, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let write_err = |e| DebianError::io("write to the download cache", &tmp_path, e);
        let mut writer = HashingWriter::new(io::BufWriter::new(tmp));
        // Never accept more than one byte beyond the announced size. A failed write (a full
        // disk) is ours, not the network's: tell the two apart.
        let mut body = ReadErrors::new(body.take(digest.size + 1));
        if let Err(e) = io::copy(&mut body, &mut writer) {
            return Err(if body.failed {
                DebianError::Http {
                    url: url.to_string(),
                    reason: format!("download interrupted: {e}"),
                }
            } else {
                write_err(e)
            });
        }
        writer.flush().map_err(write_err)?;
        let (buffered, sha, len) = writer.into_parts();
        let tmp = buffered
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        if len != digest.size {
            return Err(DebianError::SizeMismatch {
                what: what.to_string(),
                url: url.to_string(),
                expected: digest.size,
                got: len,
            });
        }
        if sha != digest.sha256 {
            return Err(DebianError::Checksum {
                what: what.to_string(),
                url: url.to_string(),
                expected: digest.sha256.clone(),
                got: sha,
            });
        }
        tmp.as_file().sync_all().map_err(write_err)?;
        let dest = self.path_for(&digest.sha256);
        tmp.persist(&dest)
            .map_err(|e| DebianError::io("move the download into the cache", &dest, e.error))?;
        fsutil::fsync_dir(&self.root)
            .map_err(|e| DebianError::io("sync the cache directory", &self.root, e))?;
        Ok(dest)
    }
}

/// A reader that remembers whether it failed, so a copy's error can be blamed on the right
/// side.
struct ReadErrors<R> {
    inner: R,
    failed: bool,
}

impl<R> ReadErrors<R> {
    fn new(inner: R) -> Self {
        ReadErrors {
            inner,
            failed: false,
        }
    }
}

impl<R: Read> Read for ReadErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}
