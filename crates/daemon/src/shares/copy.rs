//! Copy-in shares: where a directory cannot be shared live (Firecracker; QEMU without
//! virtiofsd; or when asked with `mode=copy`), it is copied into an ext4 image at every
//! boot (`mkfs.ext4 -d`, no root and no loop mount needed), attached as an extra drive and
//! mounted by the guest's agent at the share's guest path. `banger vm sync` copies the
//! guest's changes back.
//!
//! Why an image rather than a stream through the agent: the copy is made before the VMM
//! starts, by a tool that reads the tree as banger's user (never with more privilege than
//! the owner's), stores symbolic links as links (nothing outside the directory is ever
//! followed into the copy), and works the same for both drivers and any guest init; the
//! guest sees a filesystem at boot, before any command runs, with no agent round trips.
//!
//! The copy is bounded: a directory whose contents exceed `[shares] copy_max` is refused,
//! naming it and its size, before anything is written.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use banger_images::ext4::{self, Owners};
use banger_store::{VmRecord, VmShare};
use banger_vmm::{DriveFormat, DriveSpec};

use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Free space a read-write copy offers the guest beyond the directory's contents (sparse:
/// it costs the host only what the guest writes).
const RW_HEADROOM: u64 = 1 << 30;

/// The filesystem label the guest finds copy `position` by (at most 16 bytes).
pub fn label(position: usize) -> String {
    format!("bangercp{position}")
}

/// Where copy `position` of a VM lives: in the VM's directory, so it goes with the VM.
pub fn image_path(vm_dir: &Path, position: usize) -> PathBuf {
    vm_dir.join(format!("share{position}.ext4"))
}

/// What `vm create`, `vm run` and `vm inspect` say about a copy of VM `vm`.
pub fn note(vm: &str, read_only: bool) -> String {
    if read_only {
        "copied in at every boot, read-only".to_string()
    } else {
        format!(
            "copied in at every boot: host edits are seen at the next start, guest changes \
             reach the host with `banger vm sync {vm}` (they are replaced at the next start)"
        )
    }
}

/// Check that `dir` can be copied within `cap` bytes: it exists, every entry in it can be
/// read by banger's user, and its contents stay under the cap. Returns (bytes, entries).
pub fn measure(dir: &Path, cap: u64) -> Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut entries = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let unreadable = |path: &Path, e: std::io::Error| {
        DaemonError::invalid(format!(
            "cannot copy shared directory {}: {} cannot be read: {e}",
            dir.display(),
            path.display()
        ))
        .with_field("shares")
        .with_hint("make it readable by banger's user, or share a directory without it")
    };
    while let Some(d) = stack.pop() {
        let listing = fs::read_dir(&d).map_err(|e| unreadable(&d, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| unreadable(&d, e))?;
            let path = entry.path();
            // Never followed: a link is copied as a link.
            let meta = path.symlink_metadata().map_err(|e| unreadable(&path, e))?;
            entries += 1;
            bytes += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                // mkfs.ext4 must open it: say which file, not "mkfs failed".
                nix::unistd::access(&path, nix::unistd::AccessFlags::R_OK)
                    .map_err(|e| unreadable(&path, e.into()))?;
            }
            if bytes > cap {
                return Err(DaemonError::invalid(format!(
                    "shared directory {} holds more than {} (stopped counting at {} entries), \
                     over the copy-in limit of {}",
                    dir.display(),
                    banger_config::format_size(bytes),
                    entries,
                    banger_config::format_size(cap)
                ))
                .with_field("shares")
                .with_hint(
                    "share a smaller directory, raise `copy_max` under [shares] in \
                     config.toml, or share it live (`--vmm qemu` with virtiofsd)",
                ));
            }
        }
    }
    Ok((bytes, entries))
}

/// Copy `share` (position `position` of VM `vm`) into a fresh image and return its drive.
/// The previous boot's copy is replaced; the new one is written under a temporary name and
/// renamed into place, so a failure never leaves a half-made image to attach.
pub fn build(
    daemon: &Daemon,
    vm: &VmRecord,
    position: usize,
    share: &VmShare,
) -> Result<DriveSpec> {
    let cap = daemon.config.shares_resolved().copy_max_bytes.value;
    let dir = &share.host_path;
    if !dir.is_dir() {
        return Err(DaemonError::invalid(format!(
            "VM {}'s shared directory {} no longer exists",
            vm.name,
            dir.display()
        ))
        .with_field("shares")
        .with_hint("recreate the directory, or remove the VM and create it again"));
    }
    let (bytes, entries) = measure(dir, cap)?;
    let headroom = if share.read_only { 0 } else { RW_HEADROOM };
    let size = ext4::image_size(bytes, headroom);
    let path = image_path(&vm.dir, position);
    let tmp = vm.dir.join(format!("share{position}.ext4.tmp"));
    let _ = fs::remove_file(&tmp);
    let made = ext4::make_image(
        daemon.runner.as_ref(),
        dir,
        &tmp,
        size,
        // Enough inodes for every entry, whatever their sizes (mkfs's default may not be).
        entries,
        &label(position),
        &Owners::AsInTree,
    );
    if let Err(e) = made {
        let _ = fs::remove_file(&tmp);
        return Err(DaemonError::internal(format!(
            "cannot copy shared directory {} into VM {}: {}",
            dir.display(),
            vm.name,
            banger_system::error_chain(&e)
        ))
        .with_hint("check free space in banger's state directory (`banger doctor`)"));
    }
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        DaemonError::internal(format!("cannot move {} into place: {e}", path.display()))
    })?;
    tracing::debug!(vm = %vm.name, dir = %dir.display(), bytes, entries, "shared directory copied in");
    Ok(DriveSpec {
        id: format!("share{position}"),
        path,
        format: DriveFormat::Raw,
        // The drive itself is read-only for a `:ro` share: enforced by the VMM, not the guest.
        read_only: share.read_only,
        root: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_without_following_links_and_stops_at_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("src");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/a"), vec![7u8; 64 * 1024]).unwrap();
        // A link to something huge outside is a link, not its target.
        std::os::unix::fs::symlink("/usr", dir.join("usr")).unwrap();
        let (bytes, entries) = measure(&dir, 1 << 30).unwrap();
        assert_eq!(entries, 3);
        assert!((64 * 1024..1 << 20).contains(&bytes), "{bytes}");
        let err = measure(&dir, 4096).unwrap_err();
        assert!(
            err.message.contains("over the copy-in limit"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains(dir.to_str().unwrap()),
            "{}",
            err.message
        );
    }
}
