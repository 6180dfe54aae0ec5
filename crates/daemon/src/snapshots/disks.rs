//! Disk copies for snapshots and clones.
//!
//! A snapshot keeps a private copy of each disk as it was while the guest was frozen: a
//! reflink (or sparse copy) of a raw disk; for a qcow2 overlay, a copy of the overlay
//! rebased onto a hard link of its base inside the snapshot, so the snapshot never
//! depends on the VM it came from. A clone's disks are copy-on-write on those copies:
//! qcow2 overlays under QEMU (N clones share one copy), reflinks or copies under
//! Firecracker (raw files only).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use banger_images::vmdisk;
use banger_store::{DiskRole, VmDisk};
use banger_system::CommandRunner;
use banger_system::progress::Progress;
use banger_vmm::DriverKind;
use banger_vmm::sandbox::qcow2::backing_chain;
use serde::{Deserialize, Serialize};

use crate::error::{DaemonError, Result};

/// One disk of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapDisk {
    /// `root` or `work`.
    pub role: String,
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    pub size_bytes: u64,
}

/// Refuse a disk whose copy would still depend on files outside the VM and its image:
/// an overlay on an overlay (a clone's disk).
pub fn check_snapshottable(vm: &str, disk: &VmDisk) -> Result<()> {
    if disk.format != "qcow2" {
        return Ok(());
    }
    let chain = backing_chain(&disk.path).map_err(|e| {
        DaemonError::internal(format!(
            "cannot read the qcow2 header of VM {vm}'s {} disk {:?}: {e}",
            disk.role.as_str(),
            disk.path
        ))
    })?;
    if chain.len() > 1 {
        return Err(DaemonError::conflict(format!(
            "VM {vm} is a clone: its {} disk is an overlay on a snapshot's; snapshots of \
             clones are not supported yet",
            disk.role.as_str()
        ))
        .with_hint("take the snapshot of the VM the clone came from"));
    }
    Ok(())
}

/// Copy `disk` of a frozen guest into the snapshot directory `dir`.
pub fn copy_into_snapshot(
    runner: &dyn CommandRunner,
    disk: &VmDisk,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<SnapDisk> {
    let role = disk.role.as_str();
    let ext = if disk.format == "qcow2" {
        "qcow2"
    } else {
        "img"
    };
    let dest = dir.join(format!("{role}.{ext}"));
    progress.phase(&format!("copy the {role} disk"), None, None);
    vmdisk::clone_file(&disk.path, &dest, progress).map_err(|e| disk_error(role, &e))?;
    if disk.format == "qcow2" {
        let chain = backing_chain(&disk.path).map_err(|e| {
            DaemonError::internal(format!(
                "cannot read the qcow2 header of {:?}: {e}",
                disk.path
            ))
        })?;
        if let Some(base) = chain.first() {
            let link = dir.join(format!("{role}.base"));
            // A hard link keeps the base whatever happens to the VM's directory; across
            // filesystems the image's own file is named (images with snapshots are kept).
            // Named relative to the overlay (as QEMU resolves it), so the snapshot
            // directory can be renamed into place after it is complete.
            let backing = match std::fs::hard_link(base, &link) {
                Ok(()) => PathBuf::from(format!("{role}.base")),
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => base.clone(),
                Err(e) => {
                    return Err(DaemonError::internal(format!(
                        "cannot link {base:?} into the snapshot: {e}"
                    )));
                }
            };
            qemu_img(
                runner,
                &[
                    OsStr::new("rebase"),
                    OsStr::new("-u"),
                    OsStr::new("-F"),
                    OsStr::new("raw"),
                    OsStr::new("-b"),
                    backing.as_os_str(),
                    dest.as_os_str(),
                ],
            )?;
        }
    }
    Ok(SnapDisk {
        role: role.to_string(),
        path: dest,
        format: disk.format.clone(),
        size_bytes: disk.size_bytes,
    })
}

/// The disks of a clone in its directory `dir`, copy-on-write on the snapshot's `disks`.
pub fn make_clone_disks(
    driver: DriverKind,
    disks: &[SnapDisk],
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<VmDisk>> {
    let mut out = Vec::new();
    for disk in disks {
        let role = match disk.role.as_str() {
            "root" => DiskRole::Root,
            _ => DiskRole::Work,
        };
        let (path, format, backend) = match driver {
            DriverKind::Qemu => {
                let path = dir.join(format!("{}.qcow2", disk.role));
                // Written natively (no `qemu-img create` spawned on a clone's start), the
                // size the snapshot's disk has.
                vmdisk::virtual_size(&disk.path)
                    .and_then(|size| vmdisk::write_overlay(&path, &disk.path, &disk.format, size))
                    .map_err(|e| disk_error(&disk.role, &e))?;
                (path, "qcow2", "qcow2")
            }
            DriverKind::Firecracker => {
                let path = dir.join(format!("{}.img", disk.role));
                let backend = vmdisk::clone_file(&disk.path, &path, progress)
                    .map_err(|e| disk_error(&disk.role, &e))?;
                (path, "raw", backend.as_str())
            }
        };
        out.push(VmDisk {
            role,
            path,
            format: format.into(),
            backend: backend.into(),
            size_bytes: disk.size_bytes,
        });
    }
    Ok(out)
}

fn qemu_img(runner: &dyn CommandRunner, args: &[&OsStr]) -> Result<()> {
    let qemu_img = banger_system::runner::lookup_executable("qemu-img").ok_or_else(|| {
        DaemonError::unavailable("qemu-img is not installed; snapshots of QEMU VMs need it")
            .with_hint("install it: apt install qemu-utils")
    })?;
    let out = runner
        .run(&qemu_img, args)
        .map_err(|e| DaemonError::internal(format!("cannot run {}: {e}", qemu_img.display())))?;
    if !out.success() {
        return Err(DaemonError::internal(format!(
            "qemu-img {} failed: {}",
            args.first().and_then(|a| a.to_str()).unwrap_or(""),
            out.stderr_str().trim()
        )));
    }
    Ok(())
}

fn disk_error(role: &str, e: &banger_images::vmdisk::DiskError) -> DaemonError {
    DaemonError::internal(format!(
        "cannot copy the {role} disk: {}",
        banger_system::error_chain(e)
    ))
    .with_hint("check free space in banger's state directory (`banger doctor`)")
}
