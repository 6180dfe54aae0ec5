//! Identical image files are stored once. Before a new image is registered, each of its
//! files that is byte-for-byte (SHA-256) identical to a registered image's file is
//! replaced by a hard link to that file: every image directory stays complete on its own,
//! and the filesystem's link count is the reference count (removing one image never
//! takes a file another still names). Image files are never written after registration
//! (VM disks are clones or overlays of them), so sharing an inode is safe.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::fsutil::{fsync_dir, sha256_file};

/// Replace `new` by a hard link to the first of `candidates` with the same content.
/// Returns the bytes no longer stored twice (0 when nothing matched). Candidates on
/// another filesystem, of another size, or already the same inode are skipped; a
/// candidate that cannot be read is skipped too (it may be going away).
pub fn link_identical(new: &Path, candidates: &[&Path]) -> io::Result<u64> {
    let meta = fs::metadata(new)?;
    let mut digest = None;
    for candidate in candidates {
        let Ok(other) = fs::metadata(candidate) else {
            continue;
        };
        if !other.is_file()
            || other.len() != meta.len()
            || other.dev() != meta.dev()
            || other.ino() == meta.ino()
        {
            continue;
        }
        let ours = match &digest {
            Some(d) => d,
            None => digest.insert(sha256_file(new)?.0),
        };
        let Ok((theirs, _)) = sha256_file(candidate) else {
            continue;
        };
        if theirs != *ours {
            continue;
        }
        let dir = new.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.shared",
            new.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(candidate, &tmp).is_err() {
            // e.g. the candidate's link count is at its maximum: keep our own copy.
            continue;
        }
        fs::rename(&tmp, new)?;
        fsync_dir(dir)?;
        return Ok(meta.len());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_files_become_one_inode_and_outlive_either_image() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("vmlinux"), b"kernel bytes").unwrap();
        fs::write(b.join("vmlinux"), b"kernel bytes").unwrap();
        fs::write(a.join("initrd"), b"initrd one").unwrap();
        fs::write(b.join("initrd"), b"initrd two").unwrap();
        fs::write(a.join("short"), b"kernel").unwrap();

        let others = [
            a.join("short"),
            a.join("missing"),
            a.join("initrd"),
            a.join("vmlinux"),
        ];
        let others: Vec<&Path> = others.iter().map(|p| p.as_path()).collect();
        assert_eq!(link_identical(&b.join("vmlinux"), &others).unwrap(), 12);
        assert_eq!(link_identical(&b.join("initrd"), &others).unwrap(), 0);
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&a.join("vmlinux")), ino(&b.join("vmlinux")));
        assert_ne!(ino(&a.join("initrd")), ino(&b.join("initrd")));
        assert_eq!(fs::read(b.join("initrd")).unwrap(), b"initrd two");
        // Already shared: nothing to do.
        assert_eq!(link_identical(&b.join("vmlinux"), &others).unwrap(), 0);
        // No temp file is left behind, and removing one image keeps the other's file.
        assert!(
            fs::read_dir(&b).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
        );
        fs::remove_dir_all(&a).unwrap();
        assert_eq!(fs::read(b.join("vmlinux")).unwrap(), b"kernel bytes");
    }
}
