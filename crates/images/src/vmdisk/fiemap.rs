//! `FS_IOC_FIEMAP`: which of a file's extents are still shared with another file.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
const BATCH: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Extent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Request {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [Extent; BATCH],
}

/// Bytes of `path`'s data extents not shared with any other file, or `None` when the
/// filesystem cannot tell (no FIEMAP).
pub fn unshared_bytes(path: &Path) -> io::Result<Option<u64>> {
    let file = File::open(path)?;
    let mut unshared = 0u64;
    let mut start = 0u64;
    loop {
        let mut req = Request {
            start,
            length: u64::MAX - start,
            flags: FIEMAP_FLAG_SYNC,
            mapped_extents: 0,
            extent_count: BATCH as u32,
            reserved: 0,
            extents: [Extent::default(); BATCH],
        };
        // SAFETY: `req` is a valid, writable `struct fiemap` followed by room for exactly
        // `extent_count` extents, which is all the kernel writes.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &mut req) };
        if ret != 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::ENOTTY) => Ok(None),
                _ => Err(err),
            };
        }
        let mapped = (req.mapped_extents as usize).min(BATCH);
        if mapped == 0 {
            return Ok(Some(unshared));
        }
        for e in &req.extents[..mapped] {
            if e.flags & FIEMAP_EXTENT_SHARED == 0 {
                unshared += e.length;
            }
            if e.flags & FIEMAP_EXTENT_LAST != 0 {
                return Ok(Some(unshared));
            }
        }
        let last = &req.extents[mapped - 1];
        start = last.logical + last.length;
    }
}
