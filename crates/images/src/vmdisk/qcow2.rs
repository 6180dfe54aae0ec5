//! A qcow2 overlay on the image's raw root filesystem (QEMU only).
//!
//! The overlay's backing file is a hard link to the image's file inside the VM's own
//! directory, so the VM keeps working whatever happens to the image later, and an image
//! blob is unreferenced exactly when its link count drops to one.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{DiskError, io_err};

/// A qcow2 overlay `overlay` of `size_bytes` on the image's raw `base`, through a hard link
/// `root.base` in `vm_dir`.
pub fn create_overlay(
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
    write_overlay(overlay, &backing, "raw", size_bytes).inspect_err(|_| {
        let _ = fs::remove_file(&link);
    })
}

/// qcow2's magic, `QFI\xfb`.
const MAGIC: u32 = 0x5146_49fb;
/// 64 KiB clusters, as `qemu-img create` makes them.
const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// 16-bit refcounts (qcow2 v3's default).
const REFCOUNT_ORDER: u32 = 4;
/// The version-3 header without optional fields.
const HEADER_LEN: u32 = 104;
/// Header extension: the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// QEMU refuses backing file names longer than this.
const MAX_BACKING_NAME: usize = 1023;

/// Write a qcow2 (v3) image at `path` of `size` bytes whose every unwritten cluster reads
/// from `backing` (in `backing_format`: `raw` or `qcow2`), what `qemu-img create -f qcow2
/// -F FORMAT -b BACKING PATH SIZE` makes, without spawning it: cluster 0 holds the header,
/// its extensions and the backing file's name; then one cluster of refcount table, one
/// refcount block, and the (empty) L1 table. Written to a temp name, synced and renamed.
pub fn write_overlay(
    path: &Path,
    backing: &Path,
    backing_format: &str,
    size: u64,
) -> Result<(), DiskError> {
    let image =
        overlay_bytes(backing, backing_format, size).map_err(|problem| DiskError::Overlay {
            path: path.to_path_buf(),
            base: backing.to_path_buf(),
            problem,
        })?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        f.write_all(&image)?;
        f.sync_all()?;
        fs::rename(&temp, path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&temp);
        io_err("write the qcow2 overlay", path)(e)
    })
}

/// The bytes of [`write_overlay`]'s image.
fn overlay_bytes(backing: &Path, format: &str, size: u64) -> Result<Vec<u8>, String> {
    let name = backing.as_os_str().as_bytes();
    if name.is_empty() || name.len() > MAX_BACKING_NAME {
        return Err(format!(
            "the backing file's name is {} bytes; QEMU takes 1 to {MAX_BACKING_NAME}",
            name.len()
        ));
    }
    if !matches!(format, "raw" | "qcow2") {
        return Err(format!(
            "backing format {format:?} is neither raw nor qcow2"
        ));
    }
    if size == 0 || !size.is_multiple_of(512) {
        return Err(format!(
            "size {size} is not a positive multiple of 512 bytes"
        ));
    }
    // One L1 entry maps one L2 table: CLUSTER/8 clusters of data.
    let per_l1 = CLUSTER * (CLUSTER / 8);
    let l1_entries = size.div_ceil(per_l1);
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER);
    // Header, refcount table, refcount block, L1: one refcount block covers
    // CLUSTER*8/16 clusters, far more than this ever uses.
    let clusters = 3 + l1_clusters;
    if clusters > CLUSTER * 8 / (1 << REFCOUNT_ORDER) {
        return Err(format!(
            "size {size} needs an L1 table larger than this writer makes"
        ));
    }
    let l1_entries = u32::try_from(l1_entries).map_err(|_| format!("size {size} is too large"))?;
    let (reftable, refblock, l1) = (CLUSTER, 2 * CLUSTER, 3 * CLUSTER);

    let mut h: Vec<u8> = Vec::with_capacity(512);
    let u32_ = |h: &mut Vec<u8>, v: u32| h.extend_from_slice(&v.to_be_bytes());
    let u64_ = |h: &mut Vec<u8>, v: u64| h.extend_from_slice(&v.to_be_bytes());
    let ext_len = 8 + format.len().next_multiple_of(8) + 8;
    let backing_offset = u64::from(HEADER_LEN) + ext_len as u64;
    u32_(&mut h, MAGIC);
    u32_(&mut h, 3);
    u64_(&mut h, backing_offset);
    u32_(&mut h, name.len() as u32);
    u32_(&mut h, CLUSTER_BITS);
    u64_(&mut h, size);
    u32_(&mut h, 0); // no encryption
    u32_(&mut h, l1_entries);
    u64_(&mut h, l1);
    u64_(&mut h, reftable);
    u32_(&mut h, 1); // refcount table clusters
    u32_(&mut h, 0); // snapshots
    u64_(&mut h, 0);
    u64_(&mut h, 0); // incompatible features
    u64_(&mut h, 0); // compatible features
    u64_(&mut h, 0); // autoclear features
    u32_(&mut h, REFCOUNT_ORDER);
    u32_(&mut h, HEADER_LEN);
    u32_(&mut h, EXT_BACKING_FORMAT);
    u32_(&mut h, format.len() as u32);
    h.extend_from_slice(format.as_bytes());
    h.resize(h.len().next_multiple_of(8), 0);
    u32_(&mut h, 0); // end of extensions
    u32_(&mut h, 0);
    h.extend_from_slice(name);

    let total = usize::try_from(l1 + l1_clusters * CLUSTER).map_err(|e| e.to_string())?;
    let mut image = vec![0u8; total];
    image[..h.len()].copy_from_slice(&h);
    let at = |o: u64| o as usize;
    image[at(reftable)..at(reftable) + 8].copy_from_slice(&refblock.to_be_bytes());
    for cluster in 0..clusters {
        let entry = at(refblock) + 2 * cluster as usize;
        image[entry..entry + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    Ok(image)
}

/// The size a guest sees of disk `path`: a qcow2 image's virtual size, else the file's
/// length (what `qemu-img create` gives an overlay made without a size).
pub fn virtual_size(path: &Path) -> Result<u64, DiskError> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let mut header = [0u8; 32];
    let len = f.metadata().map_err(io_err("read", path))?.len();
    match f.read_exact(&mut header) {
        Ok(()) if header[..4] == MAGIC.to_be_bytes() => {
            let mut size = [0u8; 8];
            size.copy_from_slice(&header[24..32]);
            Ok(u64::from_be_bytes(size))
        }
        Ok(()) => Ok(len),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(len),
        Err(e) => Err(io_err("read", path)(e)),
    }
}
