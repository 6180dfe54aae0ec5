//! The layer cache: blobs by digest (`<cache>/oci/blobs/sha256/<hex>`, each verified as it
//! was written: temp file, hash, fsync, rename) and unpacked trees by chain id
//! (`<cache>/oci/trees/<chainid>/`), so an image sharing base layers with an earlier one
//! fetches and unpacks only what is new.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::spec::sha256_hex;

/// Unpacked trees kept; older ones are deleted when a new one is added.
const KEEP_TREES: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "blob {digest} does not match its digest (got sha256:{actual}); the source is corrupt or was tampered with"
    )]
    DigestMismatch { digest: String, actual: String },
    #[error("blob {digest} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("{0}")]
    BadDigest(String),
    #[error("cannot {op} {path:?} in the layer cache")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct BlobCache {
    root: PathBuf,
}

impl BlobCache {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            root: cache_dir.join("oci"),
        }
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub fn trees(&self) -> PathBuf {
        self.root.join("trees")
    }

    /// The cached blob for `digest`, when present with the expected size.
    pub fn get(&self, digest: &str, size: Option<u64>) -> Result<Option<PathBuf>, CacheError> {
        let hex = sha256_hex(digest).map_err(CacheError::BadDigest)?;
        let path = self.blobs().join(hex);
        match fs::metadata(&path) {
            Ok(m) if size.is_none_or(|s| s == m.len()) => Ok(Some(path)),
            _ => Ok(None),
        }
    }

    /// Store what `reader` yields under its digest, checking it is `expected` (when
    /// known) and `size` bytes. Returns the digest and the path.
    pub fn put(
        &self,
        mut reader: impl Read,
        expected: Option<&str>,
        size: Option<u64>,
        on_bytes: &dyn Fn(u64),
    ) -> Result<(String, PathBuf), CacheError> {
        let mut w = self.writer()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| CacheError::Io {
                op: "read into",
                path: w.tmp.path().to_path_buf(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(|e| CacheError::Io {
                op: "write",
                path: w.tmp.path().to_path_buf(),
                source: e,
            })?;
            on_bytes(w.total);
            if size.is_some_and(|s| w.total > s) {
                break;
            }
        }
        w.finish(expected, size)
    }

    /// A writer that becomes a cached blob on [`BlobWriter::finish`].
    pub fn writer(&self) -> Result<BlobWriter, CacheError> {
        let dir = self.blobs();
        fs::create_dir_all(&dir).map_err(|e| CacheError::Io {
            op: "create",
            path: dir.clone(),
            source: e,
        })?;
        let tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&dir)
            .map_err(|e| CacheError::Io {
                op: "create a temp file in",
                path: dir.clone(),
                source: e,
            })?;
        Ok(BlobWriter {
            tmp,
            hasher: Sha256::new(),
            total: 0,
            dir,
        })
    }

    /// The cached tree for chain id `chain`, if any.
    pub fn tree(&self, chain: &str) -> Option<PathBuf> {
        let hex = sha256_hex(chain).ok()?;
        let path = self.trees().join(hex);
        path.is_dir().then_some(path)
    }

    /// Keep a hard-linked copy of `tree` as chain `chain`. Best effort: a cache that
    /// cannot be written only costs the next import time.
    pub fn keep_tree(&self, tree: &Path, chain: &str) {
        let Ok(hex) = sha256_hex(chain) else { return };
        let dir = self.trees();
        let dest = dir.join(hex);
        if dest.exists() || fs::create_dir_all(&dir).is_err() {
            return;
        }
        let Ok(tmp) = tempfile::Builder::new().prefix(".new-").tempdir_in(&dir) else {
            return;
        };
        if link_tree(tree, tmp.path()).is_ok() && fs::rename(tmp.path(), &dest).is_ok() {
            let _ = tmp.keep();
            self.prune_trees();
        }
    }

    fn prune_trees(&self) {
        let Ok(entries) = fs::read_dir(self.trees()) else {
            return;
        };
        let mut trees: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        trees.sort();
        while trees.len() > KEEP_TREES {
            let (_, old) = trees.remove(0);
            let _ = fs::remove_dir_all(old);
        }
    }
}

/// A blob being written: hashed and counted as it goes.
pub struct BlobWriter {
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    pub total: u64,
    dir: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.total += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

impl BlobWriter {
    /// Check the digest (and size) and move the blob into place.
    pub fn finish(
        self,
        expected: Option<&str>,
        size: Option<u64>,
    ) -> Result<(String, PathBuf), CacheError> {
        let actual = hex::encode(self.hasher.finalize());
        let digest = format!("sha256:{actual}");
        if let Some(expected) = expected {
            if let Some(s) = size
                && s != self.total
            {
                return Err(CacheError::SizeMismatch {
                    digest: expected.to_string(),
                    expected: s,
                    actual: self.total,
                });
            }
            if expected != digest {
                return Err(CacheError::DigestMismatch {
                    digest: expected.to_string(),
                    actual,
                });
            }
        }
        self.tmp.as_file().sync_all().map_err(|e| CacheError::Io {
            op: "sync",
            path: self.tmp.path().to_path_buf(),
            source: e,
        })?;
        let path = self.dir.join(&actual);
        self.tmp.persist(&path).map_err(|e| CacheError::Io {
            op: "store",
            path: path.clone(),
            source: e.error,
        })?;
        Ok((digest, path))
    }
}

/// Copy the directory structure of `from` into `to` (which exists), hard-linking every
/// non-directory. Owners, modes and times of directories are copied; files share their
/// inodes (the applier never writes an existing inode in place).
pub fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    let mut dirs = Vec::new();
    while let Some((src, dst)) = stack.pop() {
        for entry in fs::read_dir(&src)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let (s, d) = (entry.path(), dst.join(entry.file_name()));
            if meta.is_dir() {
                fs::create_dir(&d)?;
                let _ = std::os::unix::fs::lchown(&d, Some(meta.uid()), Some(meta.gid()));
                dirs.push((d.clone(), meta.permissions().mode(), meta.mtime()));
                stack.push((s, d));
            } else {
                fs::hard_link(&s, &d)?;
            }
        }
    }
    for (d, mode, _) in dirs.iter().rev() {
        fs::set_permissions(d, fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

/// The image-spec chain ids of a list of diff ids.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for id in diff_ids {
        let next = match out.last() {
            None => id.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {id}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}
