//! Work an interrupted build or import left behind (a `kill -9`, a full disk, a power
//! cut), reclaimed when the next daemon starts. Nothing of it was registered: an image is
//! recorded in the store only after its directory is complete and renamed into place.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::state::Daemon;

/// Remove staging and work directories, image directories the store does not know, and
/// partial downloads. Runs before the daemon serves, while no build can be in progress
/// (the single-instance lock is held).
pub fn reclaim(daemon: &Daemon) {
    let known: HashSet<PathBuf> = match daemon.store().list_images() {
        Ok(images) => images.into_iter().map(|i| i.dir).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list images; leaving image directories alone");
            return;
        }
    };
    let images = daemon.layout.images_dir();
    let mut removed = 0usize;
    for entry in read(&images) {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let leftover = name.starts_with('.') || (entry.is_dir() && !known.contains(&entry));
        if leftover && remove(&entry) {
            removed += 1;
        }
    }
    removed += partials(&daemon.layout.cache_dir(), 4);
    if removed > 0 {
        tracing::info!(
            removed,
            "reclaimed work left by interrupted image builds or imports"
        );
    }
}

/// Partial downloads and half-made entries of the caches (the temporary-name convention,
/// [`banger_paths::is_temp_name`], or `.partial-`), up to `depth` levels below `dir`.
fn partials(dir: &Path, depth: usize) -> usize {
    let mut removed = 0;
    for entry in read(dir) {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(".partial-") || banger_paths::is_temp_name(&name) {
            removed += usize::from(remove(&entry));
        } else if depth > 1 && fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir()) {
            removed += partials(&entry, depth - 1);
        }
    }
    removed
}

fn read(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn remove(path: &Path) -> bool {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return false,
    };
    match result {
        Ok(()) => {
            tracing::debug!(path = %path.display(), "removed leftover");
            true
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover");
            false
        }
    }
}
