//! A qcow2 overlay on the image's raw root filesystem (QEMU only).
//!
//! The overlay's backing file is a hard link to the image's file inside the VM's own
//! directory, so the VM keeps working whatever happens to the image later, and an image
//! blob is unreferenced exactly when its link count drops to one.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use banger_system::CommandRunner;

use super::{DiskError, io_err};

pub fn create_overlay(
    runner: &dyn CommandRunner,
    qemu_img: &Path,
    base: &Path,
    overlay: &Path,
    vm_dir: &Path,
    size_bytes: u64,
) -> Result<(), DiskError> {
    let link = vm_dir.join("root.base");
    // Across filesystems a link is impossible: refer to the image itself (`image rm`
    // refuses while a VM uses the image, so it stays).
    let backing = match fs::hard_link(base, &link) {
        Ok(()) => link.clone(),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => base.to_path_buf(),
        Err(e) => return Err(io_err("link the image into", &link)(e)),
    };
    // The VM's size, not the backing file's: reads past the image's end are zeros.
    let size = size_bytes.to_string();
    let args: Vec<&OsStr> = vec![
        OsStr::new("create"),
        OsStr::new("-q"),
        OsStr::new("-f"),
        OsStr::new("qcow2"),
        OsStr::new("-F"),
        OsStr::new("raw"),
        OsStr::new("-b"),
        backing.as_os_str(),
        overlay.as_os_str(),
        OsStr::new(&size),
    ];
    let cleanup = || {
        let _ = fs::remove_file(overlay);
        let _ = fs::remove_file(&link);
    };
    let out = match runner.run(qemu_img, &args) {
        Ok(out) => out,
        Err(e) => {
            cleanup();
            return Err(DiskError::QemuImg {
                path: overlay.to_path_buf(),
                base: base.to_path_buf(),
                stderr: e.to_string(),
            });
        }
    };
    if !out.success() {
        cleanup();
        return Err(DiskError::QemuImg {
            path: overlay.to_path_buf(),
            base: base.to_path_buf(),
            stderr: out.stderr_str().trim().to_string(),
        });
    }
    Ok(())
}
