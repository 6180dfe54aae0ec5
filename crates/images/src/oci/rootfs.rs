//! An import's `rootfs.ext4`: from a copy of a recent import's root filesystem that
//! shares base layers with it, changed where the trees differ
//! ([`crate::ext4::incremental`]), or else by a full `mkfs.ext4 -d` of the tree.
//!
//! Incremental only when the daemon runs as root (the tree then carries the image's own
//! owners; an unprivileged import's owners are set by [`crate::ext4::owners`] after a full
//! mkfs), and only when it writes less than half the tree and fits the base's size: beyond
//! that a full build is as cheap and sized for its content.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use banger_system::CommandRunner;
use banger_system::progress::{NoProgress, Progress};

use super::OciError;
use super::bases::{Base, Bases};
use super::cache::BlobCache;
use crate::chunked::{self, Chunks};
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

/// A copy of the base an import will most likely start from, made on another thread
/// while the import fetches and unpacks its layers (for a registry, the network time of
/// its new layers): the copy is the largest step of a re-import on a filesystem without
/// reflinks. [`make`] uses it when it chooses the same base and removes it otherwise.
pub(super) struct EarlyCopy {
    base_dir: PathBuf,
    image: PathBuf,
    copying: Option<JoinHandle<Result<Duration, String>>>,
}

impl EarlyCopy {
    /// Start copying the best base for `chains` to `image`, if there is one. Only for a
    /// privileged import: only those are made incrementally.
    pub(super) fn start(
        cache_dir: &Path,
        chains: &[String],
        agent_sha256: &str,
        image: &Path,
        privileged: bool,
    ) -> Option<EarlyCopy> {
        if !privileged {
            return None;
        }
        let base = Bases::new(cache_dir).best(chains, agent_sha256)?;
        let (from, to) = (base.rootfs(), image.to_path_buf());
        let copying = std::thread::Builder::new()
            .name("import-base-copy".into())
            .spawn(move || {
                let started = Instant::now();
                // Not synced here: the copy is synced once it is final.
                crate::vmdisk::clone_file_unsynced(&from, &to, &NoProgress)
                    .map(|_| started.elapsed())
                    .map_err(|e| banger_system::error_chain(&e))
            })
            .ok()?;
        Some(EarlyCopy {
            base_dir: base.dir().to_path_buf(),
            image: image.to_path_buf(),
            copying: Some(copying),
        })
    }

    /// Wait for the copy: how long it took.
    fn finish(mut self) -> Result<Duration, String> {
        match self.copying.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            _ => Err("the thread copying the base panicked".into()),
        }
    }

    /// Wait for the copy and remove it.
    fn discard(self) {
        let image = self.image.clone();
        let _ = self.finish();
        let _ = std::fs::remove_file(image);
    }
}

impl Drop for EarlyCopy {
    /// An import that fails while the copy runs must not remove its staging directory
    /// under the copying thread: wait for it (the directory's removal takes the file).
    fn drop(&mut self) {
        if let Some(copying) = self.copying.take() {
            let _ = copying.join();
        }
    }
}

/// How the root filesystem was made, for the import's closing note.
pub(super) enum How {
    Full(OwnerReport),
    /// From the base sharing `shared` layers, writing `written` entries.
    Incremental {
        shared: usize,
        written: usize,
    },
}

/// The root filesystem made: how, and its record for the manifest (addressed by its
/// chunked SHA-256, [`crate::chunked`]).
pub(super) struct Made {
    pub how: How,
    pub record: FileRecord,
}

pub(super) fn make(job: &Job<'_>, early: Option<EarlyCopy>) -> Result<Made, OciError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| OciError::Io { op, path, source }
    };
    let snapshot = Snapshot::of(job.tree).map_err(io("read", job.tree))?;
    let (used, entries) = ext4::tree_usage(job.tree).map_err(io("measure", job.tree))?;
    let size = ext4::image_size(used, job.headroom);
    let cache = BlobCache::new(job.cache_dir);
    let bases = Bases::new(job.cache_dir);
    let mut early = early;
    let made = match (&job.owners, bases.best(job.chains, job.agent_sha256)) {
        (Owners::AsInTree, Some(base)) => {
            incremental(job, &cache, base, &snapshot, size, &mut early)
        }
        _ => None,
    };
    if let Some(unused) = early {
        unused.discard();
    }
    let (how, chunks) = match made {
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
            let started = Instant::now();
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
            let made_at = started.elapsed();
            let chunks =
                Chunks::of(job.image, chunked::all_cores()).map_err(io("hash", job.image))?;
            job.progress.note(&format!(
                "root filesystem in full: mkfs {:.1} s, chunked SHA-256 {:.1} s",
                made_at.as_secs_f64(),
                (started.elapsed() - made_at).as_secs_f64()
            ));
            (How::Full(report), chunks)
        }
    };
    if matches!(job.owners, Owners::AsInTree) {
        bases.keep(
            &cache,
            job.image,
            &chunks,
            &snapshot,
            job.chains,
            job.agent_sha256,
        );
    }
    let name = job
        .image
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    Ok(Made {
        how,
        record: FileRecord::chunked(name, &chunks),
    })
}

/// `None` when the base cannot serve (the caller builds in full); says why on progress.
fn incremental(
    job: &Job<'_>,
    cache: &BlobCache,
    base: Base,
    new: &Snapshot,
    size: u64,
    early: &mut Option<EarlyCopy>,
) -> Option<(How, Chunks)> {
    let skip = |why: String| {
        job.progress
            .note(&format!("building the root filesystem in full: {why}"));
        None
    };
    if !base.pinned(cache) {
        return skip("the cached layers of its base were evicted".into());
    }
    let Some(old) = base.snapshot() else {
        return skip("its base's tree snapshot is unreadable".into());
    };
    let rootfs = base.rootfs();
    let base_len = match std::fs::metadata(&rootfs) {
        Ok(m) => m.len(),
        Err(e) => return skip(format!("cannot read its base {rootfs:?}: {e}")),
    };
    let Some(base_chunks) = base.chunks().filter(|c| c.len == base_len) else {
        return skip("its base records no chunk digests (kept by an older banger)".into());
    };
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
    let (changed, verified) = std::thread::scope(|s| {
        // The copy keeps the digests of the chunks it did not change, which is sound only
        // if the base still holds what they describe: a base written since it was kept
        // is checked against them on another core while it is copied and changed.
        // A base untouched since it was kept (its inode's ctime) needs no reading.
        let verifying = (!base.untouched()).then(|| {
            job.progress
                .note("its base changed on disk since it was kept: verifying it");
            s.spawn(|| base_chunks.first_mismatch(&rootfs, 1))
        });
        let early = match early.take() {
            Some(e) if e.base_dir == base.dir() => Some(e),
            // Copied from another base (the cache changed meanwhile): not this one.
            Some(other) => {
                other.discard();
                None
            }
            None => None,
        };
        let changed = change_copy(job, &rootfs, &base_chunks, &script, early);
        let verified = verifying.map_or(Ok(None), |v| {
            v.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the verifying thread panicked")))
        });
        (changed, verified)
    });
    let fail = |why: String| {
        let _ = std::fs::remove_file(job.image);
        skip(why)
    };
    match verified {
        Ok(None) => {}
        Ok(Some(at)) => {
            let dir = rootfs.parent().map(Path::to_path_buf).unwrap_or_default();
            base.discard();
            return fail(format!(
                "its cached base {dir:?} does not match its recorded digests (the MiB at byte \
                 {at} changed) and was dropped; `banger image verify` the image it was \
                 imported as"
            ));
        }
        Err(e) => return fail(format!("cannot verify its base {rootfs:?}: {e}")),
    }
    let (chunks, times) = match changed {
        Ok(done) => done,
        Err(why) => return fail(why),
    };
    job.progress
        .note(&format!("root filesystem from its base: {times}"));
    Some((
        How::Incremental {
            shared: base.shared,
            written,
        },
        chunks,
    ))
}

/// Copy the base to the image, apply `script`, take the chunk digests (reusing the
/// base's for unchanged chunks) and sync. Says where the time went.
fn change_copy(
    job: &Job<'_>,
    base: &Path,
    base_chunks: &Chunks,
    script: &[u8],
    early: Option<EarlyCopy>,
) -> Result<(Chunks, String), String> {
    let started = Instant::now();
    // Not synced here: the copy is synced once, at the end.
    let copy = match early {
        Some(early) => early.finish()?,
        None => crate::vmdisk::clone_file_unsynced(base, job.image, &NoProgress)
            .map(|_| started.elapsed())
            .map_err(|e| banger_system::error_chain(&e))?,
    };
    let file =
        std::fs::File::open(job.image).map_err(|e| format!("cannot open {:?}: {e}", job.image))?;
    let copied = started.elapsed();
    let (applied, digested, chunks, hashed) = std::thread::scope(|s| {
        // The copy's data goes to disk while debugfs works and the digests are taken, so
        // the final sync has little left to wait for. Its result does not matter: the
        // final sync reports any error.
        s.spawn(|| file.sync_data());
        incremental::apply(job.runner, job.image, script)
            .map_err(|e| banger_system::error_chain(&e))?;
        let applied = started.elapsed();
        let (chunks, hashed) =
            Chunks::of_changed(job.image, base, base_chunks, chunked::all_cores())
                .map_err(|e| format!("cannot hash {:?}: {e}", job.image))?;
        Ok::<_, String>((applied, started.elapsed(), chunks, hashed))
    })?;
    // A clone is private (0600); an image file is readable like one mkfs made.
    std::fs::set_permissions(job.image, std::fs::Permissions::from_mode(0o644))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot sync {:?}: {e}", job.image))?;
    let secs = |d: std::time::Duration| d.as_secs_f64();
    Ok((
        chunks,
        format!(
            "copy {:.1} s (waited for {:.1} s), debugfs {:.1} s, chunk digests {:.1} s ({hashed} of {} MiB hashed), sync {:.1} s",
            secs(copy),
            secs(copied),
            secs(applied - copied),
            secs(digested - applied),
            base_chunks.digests.len(),
            secs(started.elapsed() - digested),
        ),
    ))
}
