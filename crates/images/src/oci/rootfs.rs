//! An import's `rootfs.ext4`: from a copy of a recent import's root filesystem that
//! shares base layers with it, changed where the trees differ
//! ([`crate::ext4::incremental`]), or else by a full `mkfs.ext4 -d` of the tree.
//!
//! Incremental only when the daemon runs as root (the tree then carries the image's own
//! owners; an unprivileged import's owners are set by [`crate::ext4::owners`] after a full
//! mkfs), and only when it writes less than half the tree and fits the base's size: beyond
//! that a full build is as cheap and sized for its content.

use std::path::Path;
use std::time::Instant;

use banger_system::CommandRunner;
use banger_system::progress::{NoProgress, Progress};

use super::OciError;
use super::bases::{Base, Bases};
use super::cache::BlobCache;
use crate::ext4::incremental;
use crate::ext4::snapshot::Snapshot;
use crate::ext4::{self, OwnerReport, Owners};
use crate::manifest::FileRecord;

/// What [`make`] needs.
pub(super) struct Job<'a> {
    pub runner: &'a dyn CommandRunner,
    pub cache_dir: &'a Path,
    pub tree: &'a Path,
    /// The image file to make (must not exist).
    pub image: &'a Path,
    /// Chain ids of the image's layers, bottom first.
    pub chains: &'a [String],
    pub agent_sha256: &'a str,
    pub headroom: u64,
    pub owners: Owners,
    /// Paths banger wrote after unpacking (their inode numbers say nothing).
    pub added: &'a [&'a [u8]],
    pub progress: &'a dyn Progress,
}

/// How the root filesystem was made, for the import's closing note.
pub(super) enum Made {
    Full(OwnerReport),
    /// From the base sharing `shared` layers, writing `written` entries.
    Incremental {
        shared: usize,
        written: usize,
        /// The image file described (its SHA-256 taken while it was being synced).
        record: FileRecord,
    },
}

pub(super) fn make(job: &Job<'_>) -> Result<Made, OciError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| OciError::Io { op, path, source }
    };
    let snapshot = Snapshot::of(job.tree).map_err(io("read", job.tree))?;
    let (used, entries) = ext4::tree_usage(job.tree).map_err(io("measure", job.tree))?;
    let size = ext4::image_size(used, job.headroom);
    let cache = BlobCache::new(job.cache_dir);
    let bases = Bases::new(job.cache_dir);
    let made = match (&job.owners, bases.best(job.chains, job.agent_sha256)) {
        (Owners::AsInTree, Some(base)) => incremental(job, &cache, &base, &snapshot, size),
        _ => None,
    };
    let made = match made {
        Some(made) => made,
        None => {
            job.progress.phase(
                &format!(
                    "making the root filesystem: {entries} files, {} MiB used, {} MiB image",
                    used >> 20,
                    size >> 20
                ),
                None,
                None,
            );
            let report = ext4::make_image(
                job.runner,
                job.tree,
                job.image,
                size,
                entries,
                "root",
                &job.owners,
            )
            .map_err(|e| OciError::Rootfs(Box::new(e)))?;
            Made::Full(report)
        }
    };
    if matches!(job.owners, Owners::AsInTree) {
        bases.keep(&cache, job.image, &snapshot, job.chains, job.agent_sha256);
    }
    Ok(made)
}

/// `None` when the base cannot serve (the caller builds in full); says why on progress.
fn incremental(
    job: &Job<'_>,
    cache: &BlobCache,
    base: &Base,
    new: &Snapshot,
    size: u64,
) -> Option<Made> {
    let skip = |why: String| {
        job.progress
            .note(&format!("building the root filesystem in full: {why}"));
        None
    };
    if !base.pinned(cache) {
        return skip("the cached layers of its base were evicted".into());
    }
    let old = base.snapshot()?;
    let base_len = std::fs::metadata(base.rootfs()).ok()?.len();
    if size > base_len {
        return skip(format!(
            "it needs {} MiB, more than its base's {} MiB",
            size >> 20,
            base_len >> 20
        ));
    }
    let (script, written) = match incremental::plan(&old, new, job.tree, job.added) {
        Ok(plan) => plan,
        Err(incremental::Unsupported(why)) => return skip(why),
    };
    if written > new.entries.len() / 2 {
        return skip(format!(
            "{written} of {} entries changed",
            new.entries.len()
        ));
    }
    job.progress.phase(
        &format!(
            "making the root filesystem from a base sharing {} layers: {written} entries changed",
            base.shared
        ),
        None,
        None,
    );
    // Not synced here: the copy is synced once, after debugfs, below.
    let started = Instant::now();
    let mut copied = None;
    let applied = crate::vmdisk::clone_file_unsynced(&base.rootfs(), job.image, &NoProgress)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            copied = Some(started.elapsed());
            incremental::apply(job.runner, job.image, &script)
                .map_err(|e| banger_system::error_chain(&e))
        });
    let applied_at = started.elapsed();
    if let Err(why) = applied {
        let _ = std::fs::remove_file(job.image);
        return skip(why);
    }
    // A clone is private (0600); an image file is readable like one mkfs made.
    // The file is final now: its SHA-256 (CPU, from the page cache) is taken while its
    // data is written back (the disk), instead of after.
    let name = job
        .image
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let dir = job.image.parent().unwrap_or(Path::new("."));
    let (sync, record) = std::thread::scope(|s| {
        let hashing = s.spawn(|| FileRecord::of(dir, name));
        let sync = std::fs::set_permissions(
            job.image,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .and_then(|()| std::fs::File::open(job.image))
        .and_then(|f| f.sync_all());
        let record = hashing
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the hashing thread panicked")));
        (sync, record)
    });
    let record = match sync.and(record) {
        Ok(record) => record,
        Err(e) => {
            let _ = std::fs::remove_file(job.image);
            return skip(format!("cannot sync and hash {:?}: {e}", job.image));
        }
    };
    let copy = copied.unwrap_or_default();
    job.progress.note(&format!(
        "root filesystem from its base: copy {:.1} s, debugfs {:.1} s, SHA-256 while syncing {:.1} s",
        copy.as_secs_f64(),
        (applied_at - copy).as_secs_f64(),
        (started.elapsed() - applied_at).as_secs_f64()
    ));
    Some(Made::Incremental {
        shared: base.shared,
        written,
        record,
    })
}
