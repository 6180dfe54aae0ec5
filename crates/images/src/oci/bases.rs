//! Image bases: the root filesystem of each recent import, kept (a hard link to the
//! image's own `rootfs.ext4`, which is never written after registration) with the
//! [`Snapshot`] of the tree it was made from, so that a later import sharing base layers
//! copies it and changes only what differs ([`crate::ext4::incremental`]) instead of
//! formatting the whole tree again.
//!
//! A snapshot names inodes of the tree cache: the base is usable only while the cached
//! tree of its image's layers (its *pin*) is the very directory it was then; an evicted
//! tree's inodes could have been reused by new files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::BlobCache;
use crate::chunked::Chunks;
use crate::ext4::snapshot::Snapshot;

/// Bases kept; older ones are removed (an image keeps its own file, a hard link).
const KEEP_BASES: usize = 4;
const META: &str = "base.json";
const SNAPSHOT: &str = "tree.snapshot";
const ROOTFS: &str = "rootfs.ext4";
/// The rootfs's chunk digests ([`Chunks`]): what a re-import verifies the base against
/// and reuses for the chunks it does not change.
const CHUNKS: &str = "rootfs.chunks";

/// What a base was made from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    /// Chain ids of the image's layers, bottom first.
    chains: Vec<String>,
    /// SHA-256 of the agent added to it.
    agent_sha256: String,
    /// The cached tree holding the snapshot's inodes: its chain id and directory inode.
    pin_chain: String,
    pin_ino: u64,
    /// The rootfs file as it was kept; `None` in bases kept by an older banger.
    #[serde(default)]
    stamp: Option<Stamp>,
}

/// What any change to a file through the kernel changes: its inode's ctime (which no
/// program can set back), and its size. A base whose stamp still matches has not been
/// written since it was kept, so its recorded chunk digests hold without reading it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    ctime_sec: i64,
    ctime_nsec: i64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = fs::metadata(path).ok()?;
        Some(Stamp {
            ino: m.ino(),
            size: m.len(),
            ctime_sec: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        })
    }
}

/// A base an import can start from.
pub struct Base {
    dir: PathBuf,
    meta: Meta,
    /// Layers it shares with the import asking.
    pub shared: usize,
}

impl Base {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS)
    }

    pub fn snapshot(&self) -> Option<Snapshot> {
        Snapshot::decode(&fs::read(self.dir.join(SNAPSHOT)).ok()?)
    }

    /// The chunk digests recorded when the base was kept; `None` for a base kept by an
    /// older banger (which recorded none) or an unreadable record.
    pub fn chunks(&self) -> Option<Chunks> {
        Chunks::decode(&fs::read(self.dir.join(CHUNKS)).ok()?)
    }

    /// Whether the rootfs is untouched since it was kept (see [`Stamp`]). Its inode also
    /// changes when the image it links is removed (the link count is in the inode), so a
    /// changed stamp means "read it to know", not "corrupt".
    pub fn untouched(&self) -> bool {
        self.meta.stamp.is_some() && self.meta.stamp == Stamp::of(&self.rootfs())
    }

    /// Forget this base (found corrupt): the image whose file it links keeps its own.
    pub fn discard(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Whether the snapshot's inodes are still those of the tree cache (checked after the
    /// import's own tree work, which may evict trees).
    pub fn pinned(&self, cache: &BlobCache) -> bool {
        cache
            .tree(&self.meta.pin_chain)
            .and_then(|t| fs::metadata(t.path).ok())
            .is_some_and(|m| m.ino() == self.meta.pin_ino)
    }
}

pub struct Bases {
    dir: PathBuf,
}

impl Bases {
    pub fn new(cache_dir: &Path) -> Self {
        Bases {
            dir: cache_dir.join("oci/bases"),
        }
    }

    /// The base made with `agent_sha256` that shares the longest prefix of `chains` (at
    /// least one layer).
    pub fn best(&self, chains: &[String], agent_sha256: &str) -> Option<Base> {
        let mut best: Option<Base> = None;
        for entry in fs::read_dir(&self.dir).ok()?.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let dir = entry.path();
            let Some(meta) = fs::read(dir.join(META))
                .ok()
                .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
            else {
                continue;
            };
            if meta.agent_sha256 != agent_sha256 || !dir.join(ROOTFS).is_file() {
                continue;
            }
            let shared = meta
                .chains
                .iter()
                .zip(chains)
                .take_while(|(a, b)| a == b)
                .count();
            if shared > 0 && best.as_ref().is_none_or(|b| shared > b.shared) {
                best = Some(Base { dir, meta, shared });
            }
        }
        best
    }

    /// Keep `rootfs` (hard-linked, never copied), whose chunk digests are `chunks`, as the
    /// base of an image of `chains`,
    /// made from a tree `snapshot` whose inodes the cached tree of `chains`' last layer
    /// holds. Best effort: a base that cannot be kept only costs a later import time.
    pub fn keep(
        &self,
        cache: &BlobCache,
        rootfs: &Path,
        chunks: &Chunks,
        snapshot: &Snapshot,
        chains: &[String],
        agent_sha256: &str,
    ) {
        let Some(top) = chains.last() else { return };
        let Some(pin) = cache.tree(top).and_then(|t| fs::metadata(t.path).ok()) else {
            return;
        };
        let mut meta = Meta {
            chains: chains.to_vec(),
            agent_sha256: agent_sha256.to_string(),
            pin_chain: top.clone(),
            pin_ino: pin.ino(),
            stamp: None,
        };
        let key = hex::encode(Sha256::digest(format!("{top}\n{agent_sha256}")));
        let dest = self.dir.join(key);
        if fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let Ok(tmp) = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&self.dir)
        else {
            return;
        };
        let written = (|| -> std::io::Result<()> {
            fs::hard_link(rootfs, tmp.path().join(ROOTFS))?;
            // After the link, which changes the inode's ctime.
            meta.stamp = Stamp::of(&tmp.path().join(ROOTFS));
            let mut f = fs::File::create(tmp.path().join(SNAPSHOT))?;
            f.write_all(&snapshot.encode())?;
            f.sync_all()?;
            let mut f = fs::File::create(tmp.path().join(CHUNKS))?;
            f.write_all(&chunks.encode())?;
            f.sync_all()?;
            let json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
            let mut f = fs::File::create(tmp.path().join(META))?;
            f.write_all(&json)?;
            f.sync_all()
        })();
        if written.is_err() {
            return;
        }
        // A newer base for the same layers replaces the old one.
        let _ = fs::remove_dir_all(&dest);
        if fs::rename(tmp.path(), &dest).is_ok() {
            let _ = tmp.keep();
            self.prune();
        }
    }

    fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut bases: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        bases.sort();
        while bases.len() > KEEP_BASES {
            let (_, old) = bases.remove(0);
            let _ = fs::remove_dir_all(old);
        }
    }
}
