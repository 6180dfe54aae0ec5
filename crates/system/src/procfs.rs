//! Reading the process table from `/proc`.

use std::path::Path;

/// The pids `/proc` lists now. A process may exit between this listing and any read of its
/// files: callers skip a pid whose files are gone.
pub fn pids() -> std::io::Result<impl Iterator<Item = u32>> {
    pids_in(Path::new("/proc"))
}

/// [`pids`] of the procfs mounted at `root`.
pub fn pids_in(root: &Path) -> std::io::Result<impl Iterator<Item = u32>> {
    Ok(std::fs::read_dir(root)?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_numeric_entries() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["1", "42", "self", "sys", "7x"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let mut found: Vec<u32> = pids_in(dir.path()).unwrap().collect();
        found.sort_unstable();
        assert_eq!(found, vec![1, 42]);
    }

    #[test]
    fn this_process_is_listed() {
        assert!(pids().unwrap().any(|pid| pid == std::process::id()));
    }
}
