//! Per-VM disks.
//!
//! Every VM gets a work disk: a sparse raw file formatted ext4, mounted at `/work` in
//! the guest. A VM of an image with a root filesystem also gets a copy-on-write clone
//! of it (`banger_images::vmdisk` picks reflink, qcow2 overlay or sparse copy).

use std::ffi::OsStr;
use std::path::Path;

use banger_images::vmdisk::{self, DiskOptions};
use banger_store::{DiskRole, ImageRecord, VmDisk};
use banger_system::CommandRunner;
use banger_system::progress::Progress;
use banger_vmm::{DriveFormat, DriveSpec};

use crate::error::{DaemonError, ErrorKind, Result};

/// File name of the work disk inside a VM's directory.
pub const WORK_DISK: &str = "work.ext4";

/// Make every disk of a new VM in `dir`: the root clone (when the image has a root
/// filesystem) and the work disk, each of `disk_bytes` (the VM's `--disk`; a root disk is
/// never smaller than its image, and the guest agent grows its filesystem to fill it at
/// boot). On error the caller removes `dir`.
pub fn create_vm_disks(
    runner: &dyn CommandRunner,
    image: &ImageRecord,
    dir: &Path,
    disk_bytes: u64,
    allow_qcow2: bool,
    progress: &dyn Progress,
) -> Result<Vec<VmDisk>> {
    let mut disks = Vec::new();
    if let Some(rootfs) = &image.rootfs_path {
        let qemu_img = banger_system::runner::lookup_executable("qemu-img");
        let opts = DiskOptions {
            allow_qcow2,
            qemu_img: qemu_img.as_deref(),
            size_bytes: disk_bytes,
        };
        let root = vmdisk::create_root_disk(rootfs, dir, opts, progress).map_err(|e| {
            if let vmdisk::DiskError::Io { source, .. } = &e
                && source.kind() == std::io::ErrorKind::FileTooLarge
            {
                return too_large(disk_bytes, dir);
            }
            DaemonError::internal(format!(
                "cannot make the root disk from image {}: {}",
                image.name,
                banger_system::error_chain(&e)
            ))
            .with_hint("check free space in banger's state directory (`banger doctor`)")
        })?;
        tracing::debug!(image = %image.name, backend = root.backend.as_str(), "root disk made");
        disks.push(VmDisk {
            role: DiskRole::Root,
            path: root.path,
            format: root.backend.format().to_string(),
            backend: root.backend.as_str().to_string(),
            size_bytes: root.size_bytes,
        });
    }
    let work = dir.join(WORK_DISK);
    progress.phase(
        &format!("make the work disk ({} MiB, ext4)", disk_bytes >> 20),
        None,
        None,
    );
    create_work_disk(runner, &work, disk_bytes)?;
    disks.push(VmDisk {
        role: DiskRole::Work,
        path: work,
        format: "raw".into(),
        backend: "fresh".into(),
        size_bytes: disk_bytes,
    });
    Ok(disks)
}

/// The drives to attach, root first. VMs created before disks were recorded have just
/// their work disk.
pub fn drives(disks: &[VmDisk], vm_dir: &Path) -> Vec<DriveSpec> {
    if disks.is_empty() {
        return vec![DriveSpec {
            id: "work".into(),
            path: vm_dir.join(WORK_DISK),
            format: DriveFormat::Raw,
            read_only: false,
            root: false,
        }];
    }
    disks
        .iter()
        .map(|d| DriveSpec {
            id: d.role.as_str().into(),
            path: d.path.clone(),
            format: if d.format == "qcow2" {
                DriveFormat::Qcow2
            } else {
                DriveFormat::Raw
            },
            read_only: false,
            root: d.role == DiskRole::Root,
        })
        .collect()
}

/// `--disk` past what the filesystem holding `dir` takes in one file (EFBIG): the
/// request's fault, not the daemon's.
fn too_large(size_bytes: u64, dir: &Path) -> DaemonError {
    // The VM's own directory goes with the failed create: name the one holding it.
    let dir = dir.parent().unwrap_or(dir);
    DaemonError::invalid(format!(
        "a disk of {} is larger than the filesystem holding {} takes in one file",
        banger_config::format_size(size_bytes),
        dir.display()
    ))
    .with_field("disk")
    .with_hint("use a smaller --disk (ext4 with 4 KiB blocks takes files up to 16 TiB)")
}

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
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            return too_large(size_bytes, path.parent().unwrap_or(path));
        }
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

    #[test]
    fn a_disk_past_the_filesystems_file_size_limit_is_the_requests_fault() {
        // 64 TiB, the most `--disk` takes: more than ext4 (16 TiB files) allows. On a
        // filesystem that takes it (xfs, btrfs) the disk is simply made.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");
        let Err(e) = create_work_disk(&RealRunner, &path, banger_config::DISK_MAX_BYTES) else {
            return;
        };
        assert_eq!(e.kind, ErrorKind::Invalid, "{}", e.message);
        assert_eq!(e.field.as_deref(), Some("disk"));
        assert!(e.message.contains("64 TiB"), "{}", e.message);
        assert!(e.hint.is_some());
    }
}
