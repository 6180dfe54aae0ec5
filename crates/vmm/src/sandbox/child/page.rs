//! The page the forked child marks its steps on, shared with the parent.

use std::io;
use std::sync::atomic::AtomicU32;

/// A page shared between the parent and the forked child: the step the child reached.
pub(super) struct StepPage(*mut AtomicU32);

// SAFETY: the page is only accessed through the AtomicU32, which is Sync.
unsafe impl Send for StepPage {}
// SAFETY: as above.
unsafe impl Sync for StepPage {}

impl StepPage {
    pub(super) fn new() -> io::Result<StepPage> {
        // SAFETY: an anonymous shared mapping of one page; the pointer is checked below and
        // unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(StepPage(p.cast()))
    }

    pub(super) fn get(&self) -> &AtomicU32 {
        // SAFETY: the mapping is page-aligned, zero-filled (a valid AtomicU32) and lives
        // as long as self.
        unsafe { &*self.0 }
    }
}

impl Drop for StepPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the page mapped in new(); no reference outlives self.
        unsafe {
            libc::munmap(self.0.cast(), 4096);
        }
    }
}
