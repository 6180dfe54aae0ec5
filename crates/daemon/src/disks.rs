//! Per-VM disks.
//!
//! Today every VM gets a work disk: a sparse raw file formatted ext4, mounted at
//! `/work` in the guest. Images with a root filesystem (a later issue) get a
//! copy-on-write clone of it here too.

use std::ffi::OsStr;
use std::path::Path;

use banger_system::CommandRunner;

use crate::error::{DaemonError, ErrorKind, Result};

/// Create `path` as a sparse file of `size_bytes` and format it ext4.
pub fn create_work_disk(runner: &dyn CommandRunner, path: &Path, size_bytes: u64) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Private: the guest's files are nobody else's business on the host.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            DaemonError::caused(
                ErrorKind::Internal,
                format_args!("cannot create work disk {}", path.display()),
                &e,
            )
        })?;
    file.set_len(size_bytes).map_err(|e| {
        DaemonError::caused(
            ErrorKind::Internal,
            format_args!(
                "cannot size work disk {} to {size_bytes} bytes",
                path.display()
            ),
            &e,
        )
    })?;
    drop(file);

    let mkfs = banger_system::runner::lookup_executable("mkfs.ext4").ok_or_else(|| {
        DaemonError::unavailable("mkfs.ext4 not found: it formats VM work disks")
            .with_hint("install e2fsprogs")
    })?;
    // Lazy init keeps formatting a large sparse disk to milliseconds; the guest
    // finishes initialising inode tables in the background.
    let args: Vec<&OsStr> = [
        "-q",
        "-F",
        "-L",
        "work",
        "-m",
        "0",
        "-E",
        "lazy_itable_init=1,lazy_journal_init=1",
    ]
    .iter()
    .map(OsStr::new)
    .chain(std::iter::once(path.as_os_str()))
    .collect();
    let out = runner.run(&mkfs, &args).map_err(|e| {
        DaemonError::caused(
            ErrorKind::Internal,
            format_args!("cannot run {}", mkfs.display()),
            &e,
        )
    })?;
    if !out.success() {
        let stderr = out.stderr_str();
        let error = DaemonError::internal(format!(
            "mkfs.ext4 failed on {}: {}",
            path.display(),
            stderr.trim()
        ));
        // mkfs reports ENOSPC in words only.
        return Err(if stderr.contains("No space left on device") {
            error.with_no_space_hint()
        } else {
            error
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_system::RealRunner;

    #[test]
    fn work_disk_is_sparse_ext4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");
        create_work_disk(&RealRunner, &path, 1 << 30).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 64 << 20,
            "work disk is not sparse: {} blocks",
            meta.blocks()
        );
        // ext4 superblock magic 0xEF53 at byte 1080.
        let mut head = [0u8; 2048];
        std::io::Read::read_exact(&mut std::fs::File::open(&path).unwrap(), &mut head).unwrap();
        assert_eq!(&head[1080..1082], &[0x53, 0xEF]);
        // A second create must not clobber the existing disk.
        assert!(create_work_disk(&RealRunner, &path, 1 << 30).is_err());
    }
}
