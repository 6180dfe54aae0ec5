//! The root filesystem fills its disk. Images are built at their content size plus a
//! little slack, and each VM's root disk has the VM's size (a sparse tail, or a qcow2
//! overlay's virtual size), so the first boot of a VM grows the filesystem online with
//! `EXT4_IOC_RESIZE_FS` — what `resize2fs` does on a mounted filesystem, without needing
//! e2fsprogs in the image. Later boots find it already grown and do nothing.
//!
//! Runs in the initramfs right after the root disk is mounted, so both the lean init and
//! systemd start on the full disk, before the user's first command.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::log;

/// `_IOW('f', 16, __u64)` from `linux/ext4.h`.
const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
const EXT4_MAGIC: u16 = 0xEF53;
/// `INCOMPAT_64BIT`: the block count has a high half.
const INCOMPAT_64BIT: u32 = 0x80;
/// Growing by less than this is not worth a resize (nor its log line).
const MIN_GROWTH: u64 = 1 << 20;

/// Grow the ext4 filesystem of `device`, mounted at `mountpoint`, to the device's size.
/// Failures are logged, never fatal: a VM on an ungrown disk still boots, with the
/// image's free space.
pub fn grow(device: &str, mountpoint: &str) {
    match try_grow(device, mountpoint) {
        Ok(Some((from, to, ms))) => {
            log!("root filesystem grown from {from} to {to} MiB in {ms} ms");
        }
        Ok(None) => {}
        Err(e) => log!("growing the root filesystem on {device} failed: {e}; it keeps its size"),
    }
}

/// `Some((old MiB, new MiB, milliseconds))` when it grew.
fn try_grow(device: &str, mountpoint: &str) -> io::Result<Option<(u64, u64, u128)>> {
    let mut dev = File::open(device)?;
    let device_bytes = dev.seek(SeekFrom::End(0))?;
    dev.seek(SeekFrom::Start(1024))?;
    let mut sb = [0u8; 1024];
    dev.read_exact(&mut sb)?;
    // The superblock read through the block device is the one the mounted filesystem
    // keeps current: ext4 reads and writes it through the same page cache.
    let Some(fs) = Superblock::parse(&sb) else {
        return Err(io::Error::other("the root disk does not hold ext4"));
    };
    let target = device_bytes / fs.block_size;
    if target.saturating_sub(fs.blocks) * fs.block_size < MIN_GROWTH {
        return Ok(None);
    }
    let started = Instant::now();
    let root = File::open(mountpoint)?;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64 (the new block count) through the pointer,
    // which points at a live local for the duration of the call; the fd is open.
    let ret = unsafe { libc::ioctl(root.as_raw_fd(), EXT4_IOC_RESIZE_FS as _, &target) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some((
        (fs.blocks * fs.block_size) >> 20,
        (target * fs.block_size) >> 20,
        started.elapsed().as_millis(),
    )))
}

/// What growing needs from an ext4 superblock.
#[derive(Debug, PartialEq, Eq)]
struct Superblock {
    blocks: u64,
    block_size: u64,
}

impl Superblock {
    /// `sb` is the 1024 bytes at offset 1024 of the device.
    fn parse(sb: &[u8; 1024]) -> Option<Self> {
        let u32_at = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
        if u16::from_le_bytes([sb[0x38], sb[0x39]]) != EXT4_MAGIC {
            return None;
        }
        let log = u32_at(0x18);
        if log > 6 {
            return None;
        }
        let mut blocks = u64::from(u32_at(0x04));
        if u32_at(0x60) & INCOMPAT_64BIT != 0 {
            blocks |= u64::from(u32_at(0x150)) << 32;
        }
        Some(Superblock {
            blocks,
            block_size: 1024 << log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_ext4_superblock() {
        let mut sb = [0u8; 1024];
        sb[0x38..0x3a].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        sb[0x18..0x1c].copy_from_slice(&2u32.to_le_bytes());
        sb[0x04..0x08].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            Superblock::parse(&sb),
            Some(Superblock {
                blocks: 1000,
                block_size: 4096
            })
        );
        // The high half counts only with the 64bit feature.
        sb[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(Superblock::parse(&sb).map(|s| s.blocks), Some(1000));
        sb[0x60..0x64].copy_from_slice(&INCOMPAT_64BIT.to_le_bytes());
        assert_eq!(
            Superblock::parse(&sb).map(|s| s.blocks),
            Some(1000 | 1 << 32)
        );
        sb[0x38] = 0;
        assert_eq!(Superblock::parse(&sb), None);
    }

    /// A real filesystem made by mkfs.ext4: the fields land where we read them.
    #[test]
    fn reads_what_mkfs_writes() {
        let mkfs = ["/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("mkfs.ext4 is missing: run scripts/install-deps (package e2fsprogs)");
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        File::create(&img).unwrap().set_len(64 << 20).unwrap();
        let ok = std::process::Command::new(mkfs)
            .args(["-q", "-F", "-b", "4096"])
            .arg(&img)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let mut f = File::open(&img).unwrap();
        f.seek(SeekFrom::Start(1024)).unwrap();
        let mut sb = [0u8; 1024];
        f.read_exact(&mut sb).unwrap();
        assert_eq!(
            Superblock::parse(&sb),
            Some(Superblock {
                blocks: (64 << 20) / 4096,
                block_size: 4096
            })
        );
    }
}
