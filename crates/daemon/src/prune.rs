//! `POST /v1/images/prune`: reclaim disk space — images no VM uses, the download cache,
//! and image directories no image refers to (an interrupted build, a replaced image) —
//! and say how much.
//!
//! The default image is kept unless asked (`vm run` would rebuild it at once), and an
//! image a VM uses is never removed. The whole prune holds the image lock, so no build
//! writes into the cache or the images directory meanwhile.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use banger_api::{PruneImagesRequest, PruneItem, PruneReport};

use crate::error::{DaemonError, ErrorKind, Result};
use crate::images;
use crate::state::Daemon;

const IMAGE: &str = "image";
const CACHE: &str = "cache";
const LEFTOVER: &str = "leftover";

pub async fn prune(daemon: &Daemon, req: PruneImagesRequest) -> Result<PruneReport> {
    let _guard = daemon.image_lock.lock().await;
    let default = daemon.config.default_image_name_resolved().value;
    // `store()` is a lock guard: take it per call, never across `images::remove`.
    let registered = daemon.store().list_images()?;

    let mut items = Vec::new();
    let mut kept = Vec::new();
    for image in &registered {
        let users = daemon.store().vms_using_image(&image.name)?;
        if !users.is_empty() {
            continue;
        }
        let snapshots = crate::images::snapshots_using(daemon, &image.name)?;
        if !snapshots.is_empty() {
            kept.push(format!(
                "{}: snapshot(s) {} use it (`banger snapshot rm` first)",
                image.name,
                snapshots.join(", ")
            ));
            continue;
        }
        if image.name == default && !req.all {
            kept.push(format!(
                "{}: the default image (`image prune --all` removes it too)",
                image.name
            ));
            continue;
        }
        items.push(PruneItem {
            kind: IMAGE.into(),
            name: image.name.clone(),
            bytes: disk_usage(&image.dir),
        });
    }
    let in_use: Vec<&Path> = registered.iter().map(|i| i.dir.as_path()).collect();
    for dir in entries(&daemon.layout.images_dir())? {
        if !in_use.iter().any(|used| *used == dir) {
            items.push(file_item(LEFTOVER, &dir));
        }
    }
    for entry in entries(&daemon.layout.cache_dir())? {
        items.push(file_item(CACHE, &entry));
    }

    if !req.dry_run {
        // An unused image's standbys are the daemon's, not users: they go with it.
        for item in items.iter().filter(|i| i.kind == IMAGE) {
            crate::warm::standby::remove_for_image(daemon, &item.name).await;
        }
        items = remove(daemon, items)?;
    }
    let reclaimable_bytes = items.iter().map(|i| i.bytes).sum();
    Ok(PruneReport {
        dry_run: req.dry_run,
        items,
        kept,
        reclaimable_bytes,
    })
}

/// Remove each item; returns those actually removed. An image a VM started using
/// meanwhile is skipped (its removal refuses), as is a file that vanished.
fn remove(daemon: &Daemon, items: Vec<PruneItem>) -> Result<Vec<PruneItem>> {
    let mut removed = Vec::new();
    for item in items {
        let done = if item.kind == IMAGE {
            match images::remove(daemon, &item.name) {
                Ok(_) => true,
                Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => false,
                Err(e) => return Err(e),
            }
        } else {
            let path = PathBuf::from(&item.name);
            let result = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    return Err(DaemonError::internal(format!(
                        "cannot remove {}: {e}",
                        path.display()
                    )));
                }
            }
        };
        if done {
            removed.push(item);
        }
    }
    Ok(removed)
}

fn file_item(kind: &str, path: &Path) -> PruneItem {
    PruneItem {
        kind: kind.into(),
        name: path.display().to_string(),
        bytes: disk_usage(path),
    }
}

/// The entries of `dir`, sorted; none when it does not exist.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(DaemonError::internal(format!(
                "cannot list {}: {e}",
                dir.display()
            )));
        }
    };
    let mut paths: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

/// Bytes allocated on disk under `path` (sparse and reflinked files count what they
/// really occupy, as `du` does), without following symlinks. Unreadable parts count 0.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path)
        .map(|read| {
            read.filter_map(|e| e.ok())
                .map(|e| disk_usage(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0);
    own + children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_counts_allocated_blocks_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), vec![7u8; 256 * 1024]).unwrap();
        // A sparse file occupies (almost) nothing.
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let used = disk_usage(dir.path());
        assert!(used >= 256 * 1024, "{used}");
        assert!(
            used < 1 << 20,
            "sparse file or symlink target counted: {used}"
        );
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
    }
}
