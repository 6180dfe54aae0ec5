//! Flow control of an exec's output (protocol version 2): the host grants bytes with
//! `Credit`, the output thread reads the process's pipes only while some are left. When the
//! host stops granting (nobody reads the exec's output on the other side), the pipes fill and
//! the process blocks in `write` — the guest's writer stalls, not the host's memory.
//!
//! The output thread sleeps in `poll`; a grant wakes it through an eventfd.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use crate::util::lock;

pub struct OutputCredit {
    bytes: Mutex<u64>,
    wake: OwnedFd,
}

impl OutputCredit {
    /// Version 1: no flow control.
    pub fn unlimited() -> io::Result<Arc<OutputCredit>> {
        OutputCredit::with(u64::MAX)
    }

    /// Version 2: `window` bytes until the host grants more.
    pub fn limited(window: u64) -> io::Result<Arc<OutputCredit>> {
        OutputCredit::with(window)
    }

    fn with(bytes: u64) -> io::Result<Arc<OutputCredit>> {
        // SAFETY: eventfd takes an initial value and flags and returns a new fd or -1.
        let fd = crate::util::check(unsafe {
            libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)
        })?;
        Ok(Arc::new(OutputCredit {
            bytes: Mutex::new(bytes),
            // SAFETY: `fd` is a new eventfd that nothing else owns.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    /// Bytes the exec may still send.
    pub fn available(&self) -> u64 {
        *lock(&self.bytes)
    }

    /// `n` bytes were sent.
    pub fn take(&self, n: u64) {
        let mut bytes = lock(&self.bytes);
        *bytes = bytes.saturating_sub(n);
    }

    /// The host granted `n` more bytes.
    pub fn grant(&self, n: u64) {
        {
            let mut bytes = lock(&self.bytes);
            *bytes = bytes.saturating_add(n);
        }
        self.wake();
    }

    /// No limit any more: the session ended, and the output thread must drain and finish.
    pub fn unlimit(&self) {
        *lock(&self.bytes) = u64::MAX;
        self.wake();
    }

    /// Becomes readable after a grant; see [`Self::clear_wake`].
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    pub fn clear_wake(&self) {
        let mut value = 0u64;
        // SAFETY: reads 8 bytes into `value` from our eventfd; EAGAIN (nothing to clear) is fine.
        let _ = unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                (&raw mut value).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from `one` to our eventfd; a full counter (EAGAIN) still wakes.
        let _ = unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&raw const one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
    }

    #[test]
    fn grants_wake_the_waiter_and_add_up() {
        let credit = OutputCredit::limited(10).unwrap();
        credit.take(10);
        assert_eq!(credit.available(), 0);
        assert!(!readable(credit.wake_fd()));
        credit.grant(5);
        credit.grant(7);
        assert!(readable(credit.wake_fd()));
        credit.clear_wake();
        assert!(!readable(credit.wake_fd()));
        assert_eq!(credit.available(), 12);
        credit.take(100);
        assert_eq!(credit.available(), 0);
        credit.unlimit();
        assert_eq!(credit.available(), u64::MAX);
        assert!(readable(credit.wake_fd()));
    }
}
