//! A guest restored from a snapshot becomes a machine of its own ([`Reidentify`]).
//!
//! Every clone of one snapshot wakes with the same kernel RNG state, the same wall clock
//! (frozen at save time), hostname, machine-id and SSH host keys. Our guest kernels have
//! no vmgenid, so the RNG is fixed from here: fresh host entropy is mixed in and the CRNG
//! is forced to reseed before anything (the machine-id, the host keys) is drawn from it.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

use banger_agent_proto::{MAX_REIDENTIFY_ENTROPY, Reidentify};

use crate::{clock, init};

/// `_IOW('R', 0x03, int[2])` from `<linux/random.h>`.
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `_IO('R', 0x07)` from `<linux/random.h>` (Linux 4.17+).
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Apply `req`; the error is a sentence for the host.
pub fn apply(req: &Reidentify) -> Result<(), String> {
    check(req)?;
    reseed(&req.entropy).map_err(|e| format!("reseed the kernel RNG: {e}"))?;
    clock::set_realtime(req.unix_nanos).map_err(|e| {
        format!(
            "set the clock to {} ns after the epoch: {e}",
            req.unix_nanos
        )
    })?;
    init::set_hostname(&req.hostname);
    init::identity::ensure(Path::new("/"), &req.hostname, &req.vm_id);
    // A waiting pre-started sshd loaded the host keys this machine no longer has.
    init::prestart::renew_all();
    Ok(())
}

/// The host is trusted, but a malformed request must not reach the kernel or `/etc`.
fn check(req: &Reidentify) -> Result<(), String> {
    if req.entropy.is_empty() || req.entropy.len() > MAX_REIDENTIFY_ENTROPY {
        return Err(format!(
            "{} entropy bytes: send 1 to {MAX_REIDENTIFY_ENTROPY}",
            req.entropy.len()
        ));
    }
    let name_ok = !req.hostname.is_empty()
        && req.hostname.len() <= 63
        && req
            .hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !name_ok {
        return Err(format!(
            "hostname {:?} is not a valid host name",
            req.hostname
        ));
    }
    if req.vm_id.is_empty() || !req.vm_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("VM id {:?} is not an id", req.vm_id));
    }
    Ok(())
}

/// Credit `entropy` to the input pool and force the CRNG to reseed from it.
fn reseed(entropy: &[u8]) -> std::io::Result<()> {
    let random = OpenOptions::new().write(true).open("/dev/urandom")?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let mut info: Vec<u8> = Vec::with_capacity(8 + entropy.len());
    let bits = i32::try_from(entropy.len() * 8).unwrap_or(i32::MAX);
    let len = i32::try_from(entropy.len()).unwrap_or(i32::MAX);
    info.extend_from_slice(&bits.to_ne_bytes());
    info.extend_from_slice(&len.to_ne_bytes());
    info.extend_from_slice(entropy);
    // SAFETY: `info` is a rand_pool_info header followed by `buf_size` bytes, all owned
    // and alive for the call; the kernel reads exactly that much.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: RNDRESEEDCRNG takes no argument.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDRESEEDCRNG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Reidentify {
        Reidentify {
            vm_id: "0123abcd".into(),
            hostname: "clone-1".into(),
            unix_nanos: 0,
            entropy: vec![1; 32],
        }
    }

    #[test]
    fn malformed_requests_are_refused_before_touching_the_guest() {
        assert_eq!(check(&req()), Ok(()));
        for bad in [
            Reidentify {
                entropy: vec![],
                ..req()
            },
            Reidentify {
                entropy: vec![0; MAX_REIDENTIFY_ENTROPY + 1],
                ..req()
            },
            Reidentify {
                hostname: "a b".into(),
                ..req()
            },
            Reidentify {
                hostname: "x".repeat(64),
                ..req()
            },
            Reidentify {
                vm_id: "../etc".into(),
                ..req()
            },
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
