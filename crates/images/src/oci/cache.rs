//! The layer cache: blobs by digest (`<cache>/oci/blobs/sha256/<hex>`, each verified as it
//! was written: temp file, hash, fsync, rename) and unpacked trees by chain id
//! (`<cache>/oci/trees/<chainid>/`), so an image sharing base layers with an earlier one
//! fetches and unpacks only what is new.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::spec::sha256_hex;
use crate::ext4::OwnerFix;

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

    /// The cached tree for chain id `chain`, if any, with the owners an unprivileged
    /// import recorded for it (see [`Self::keep_tree`]).
    pub fn tree(&self, chain: &str) -> Option<CachedTree> {
        let hex = sha256_hex(chain).ok()?;
        let path = self.trees().join(hex);
        if !path.is_dir() {
            return None;
        }
        let owners = fs::read(owners_file(&path))
            .ok()
            .and_then(|b| decode_owners(&b));
        Some(CachedTree { path, owners })
    }

    /// Keep a hard-linked copy of `tree` as chain `chain`. An unprivileged import passes
    /// the owners its tree could not carry (`Some`, possibly empty): they are written
    /// beside the tree before it is put in place, so such a tree is never found without
    /// them. Best effort: a cache that cannot be written only costs the next import time.
    pub fn keep_tree(&self, tree: &Path, chain: &str, owners: Option<&[OwnerFix]>) {
        let Ok(hex) = sha256_hex(chain) else { return };
        let dir = self.trees();
        let dest = dir.join(hex);
        if dest.exists() || fs::create_dir_all(&dir).is_err() {
            return;
        }
        let Ok(tmp) = tempfile::Builder::new().prefix(".new-").tempdir_in(&dir) else {
            return;
        };
        if link_tree(tree, tmp.path()).is_err() {
            return;
        }
        if let Some(owners) = owners {
            let written = tempfile::Builder::new()
                .prefix(".owners-")
                .tempfile_in(&dir)
                .and_then(|mut f| {
                    f.write_all(&encode_owners(owners))?;
                    f.as_file().sync_all()?;
                    f.persist(owners_file(&dest)).map_err(|e| e.error)
                });
            if written.is_err() {
                return;
            }
        }
        if fs::rename(tmp.path(), &dest).is_ok() {
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
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        trees.sort();
        while trees.len() > KEEP_TREES {
            let (_, old) = trees.remove(0);
            let _ = fs::remove_file(owners_file(&old));
            let _ = fs::remove_dir_all(old);
        }
    }
}

/// A cached tree and, when an unprivileged import kept it, the owners it could not carry.
#[derive(Debug, Clone)]
pub struct CachedTree {
    pub path: PathBuf,
    pub owners: Option<Vec<OwnerFix>>,
}

fn owners_file(tree: &Path) -> PathBuf {
    tree.with_extension("owners")
}

/// One entry a line: `UID GID HEX-OF-PATH` (paths may hold any byte but `/`-free NUL).
fn encode_owners(owners: &[OwnerFix]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    owners
        .iter()
        .flat_map(|f| {
            format!(
                "{} {} {}\n",
                f.uid,
                f.gid,
                hex::encode(f.path.as_os_str().as_bytes())
            )
            .into_bytes()
        })
        .collect()
}

/// `None` when the file is damaged: the tree is then not reused.
fn decode_owners(bytes: &[u8]) -> Option<Vec<OwnerFix>> {
    use std::os::unix::ffi::OsStringExt;
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let uid = words.next()?.parse().ok()?;
            let gid = words.next()?.parse().ok()?;
            let path = hex::decode(words.next()?).ok()?;
            Some(OwnerFix {
                path: PathBuf::from(std::ffi::OsString::from_vec(path)),
                uid,
                gid,
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_survive_the_sidecar_file_whatever_their_names() {
        use std::os::unix::ffi::OsStrExt;
        let owners = vec![
            OwnerFix {
                path: "home/node".into(),
                uid: 1000,
                gid: 1000,
            },
            OwnerFix {
                path: PathBuf::from(std::ffi::OsStr::from_bytes(b"a b\nc\xff")),
                uid: 7,
                gid: 8,
            },
        ];
        assert_eq!(decode_owners(&encode_owners(&owners)), Some(owners));
        assert_eq!(decode_owners(b""), Some(vec![]));
        assert_eq!(decode_owners(b"1 2 zz\n"), None, "damaged: not reused");
    }
}
