//! Random bytes from the kernel's CSPRNG, for ids, names and the entropy a restored guest
//! is given: one source for the whole host side.

use std::io;

/// Fills `buf` from getrandom(2). With flags 0 it blocks only before the kernel's pool is
/// initialised at boot; it may return fewer bytes than asked (large requests, signals), so
/// it is called until `buf` is full.
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for `rest.len()` bytes of writes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // n >= 0 here and at most rest.len(), so the cast and the sum cannot overflow.
        done += n as usize;
    }
    Ok(())
}

/// A random `u64`.
pub fn u64() -> io::Result<u64> {
    let mut buf = [0u8; 8];
    fill(&mut buf)?;
    Ok(u64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_byte_of_a_large_buffer() {
        // Larger than one getrandom call returns at once (32 MiB - 1 on Linux is the cap;
        // a few MiB still crosses page and chunk boundaries).
        let mut buf = vec![0u8; 4 << 20];
        fill(&mut buf).unwrap();
        let zeros = buf.iter().filter(|b| **b == 0).count();
        // Uniform bytes: ~1/256 are zero; an unfilled tail would make far more.
        assert!(
            zeros < buf.len() / 128,
            "{zeros} zero bytes of {}",
            buf.len()
        );
        assert_ne!(u64().unwrap(), u64().unwrap());
    }
}
