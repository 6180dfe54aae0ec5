//! Persistent TAP devices owned by a uid.
//!
//! The kernel cannot create TUN/TAP devices over rtnetlink, so this is the one place
//! that uses the `/dev/net/tun` ioctls: `TUNSETIFF` (create), `TUNSETOWNER` (the owner may
//! attach without privileges) and `TUNSETPERSIST` (the device outlives this fd, until it
//! is deleted). Attaching to the bridge and bringing it up is netlink's job.
//!
//! [`open_queue`] attaches to an existing TAP and returns the descriptor, for a VMM that
//! cannot open it itself (a sandboxed QEMU: no `CAP_NET_ADMIN`, a uid that is not the
//! TAP's owner, no `/dev/net/tun` in its jail) — the way libvirt hands QEMU `fd=N`.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::NetError;

const TUN_PATH: &str = "/dev/net/tun";
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_PERSIST: libc::c_short = 0x0800;

nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, 4),
    libc::ifreq
);
// TUNGETIFF is declared _IOR('T', 210, unsigned int) but fills a whole ifreq.
nix::ioctl_read_bad!(
    tungetiff,
    nix::request_code_read!(b'T', 210, 4),
    libc::ifreq
);
nix::ioctl_write_int_bad!(tunsetpersist, nix::request_code_write!(b'T', 203, 4));
nix::ioctl_write_int_bad!(tunsetowner, nix::request_code_write!(b'T', 204, 4));

/// Create (or take over, if it exists with the same flags) the persistent TAP `name`,
/// owned by `owner_uid`. The caller validated `name` (at most 15 bytes).
pub fn create_persistent(name: &str, owner_uid: u32) -> Result<(), NetError> {
    let err = tap_error(name);
    let file = attach(name, "TUNSETIFF (create)")?;
    let fd = file.as_raw_fd();
    let uid = libc::c_int::try_from(owner_uid)
        .map_err(|_| err("TUNSETOWNER")(std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: fd is attached to the device just created; the argument is a plain integer.
    unsafe { tunsetowner(fd, uid) }.map_err(|e| err("TUNSETOWNER")(e.into()))?;
    // SAFETY: as above.
    unsafe { tunsetpersist(fd, 1) }.map_err(|e| err("TUNSETPERSIST")(e.into()))?;
    Ok(())
}

/// Attach to the existing TAP `name` and return its queue: the descriptor a VMM reads and
/// writes frames on (close-on-exec; the launcher decides which child inherits it). Needs
/// `CAP_NET_ADMIN` or to be the TAP's owner. Opened with the flags the TAP was created with
/// (`IFF_VNET_HDR` included, which QEMU detects on the descriptor). Fails if no such
/// device exists: a persistent TAP is only taken over, never created here — the helper
/// or the in-process owner made it, and only it removes it.
pub fn open_queue(name: &str) -> Result<OwnedFd, NetError> {
    let file = attach(name, "TUNSETIFF (attach)")?;
    // TUNSETIFF creates a missing device: one that is not persistent was just made here
    // (not by the network step, or removed since), is on no bridge, and goes with `file`.
    // Asking after the attach, not before, leaves no window for a removal to slip in.
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is attached to a TAP; TUNGETIFF writes one ifreq into `req`, which
    // lives across the call.
    unsafe { tungetiff(file.as_raw_fd(), &mut req) }
        .map_err(|e| tap_error(name)("TUNGETIFF")(e.into()))?;
    // SAFETY: TUNGETIFF filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & IFF_PERSIST == 0 {
        return Err(tap_error(name)("finding the device")(
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    Ok(file.into())
}

/// Give the existing persistent TAP `name` to `owner_uid`: a VMM that opens its TAP by name
/// itself (Firecracker) and runs as its own unprivileged uid may then attach to it, and no
/// other uid but root may. Needs `CAP_NET_ADMIN` or to be the TAP's current owner.
pub fn give_to(name: &str, owner_uid: u32) -> Result<(), NetError> {
    let queue = open_queue(name)?;
    let uid = libc::c_int::try_from(owner_uid)
        .map_err(|_| tap_error(name)("TUNSETOWNER")(std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: the fd is attached to the TAP `name`; the argument is a plain integer.
    unsafe { tunsetowner(queue.as_raw_fd(), uid) }
        .map_err(|e| tap_error(name)("TUNSETOWNER")(e.into()))?;
    Ok(())
}

/// `err(step)(io_error)`: the [`NetError::Tap`] for `step` on the TAP `name`.
fn tap_error(name: &str) -> impl Fn(&'static str) -> Box<dyn FnOnce(std::io::Error) -> NetError> {
    let name = name.to_string();
    move |what| {
        let name = name.clone();
        Box::new(move |source| NetError::Tap { name, what, source })
    }
}

/// Open `/dev/net/tun` and `TUNSETIFF` it to `name` as a TAP without packet information,
/// with virtio-net headers: the flags banger's TAPs are created with, so a VMM attaches.
fn attach(name: &str, step: &'static str) -> Result<std::fs::File, NetError> {
    let err = tap_error(name);
    // std opens with O_CLOEXEC.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_PATH)
        .map_err(err("opening /dev/net/tun"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(err("naming")(std::io::ErrorKind::InvalidInput.into()));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // Same flags Firecracker and QEMU open with, so they can attach to it.
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    // SAFETY: the fd is an open /dev/net/tun; req is a valid, NUL-terminated ifreq that
    // lives across the call.
    unsafe { tunsetiff(file.as_raw_fd(), &req) }.map_err(|e| err(step)(e.into()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// In a network namespace of its own (root only, as CI runs): the host is never touched.
    fn in_own_netns(f: impl FnOnce() + Send + 'static) {
        assert!(
            nix::unistd::geteuid().is_root(),
            "TAP tests create devices in a private network namespace: run them as root (CI does)"
        );
        std::thread::spawn(move || {
            // Only this thread moves to the new namespace; it ends with the test.
            // SAFETY: unshare has no memory preconditions; it moves only this thread.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare a network namespace: {}",
                std::io::Error::last_os_error()
            );
            f();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn open_queue_attaches_to_a_persistent_tap_and_never_creates_one() {
        in_own_netns(|| {
            let missing = open_queue("bgtmissing").unwrap_err();
            assert!(matches!(
                &missing,
                NetError::Tap {
                    what: "finding the device",
                    ..
                }
            ));
            // The refused attach took nothing with it and left nothing behind.
            // SAFETY: the name is a NUL-terminated literal.
            assert_eq!(unsafe { libc::if_nametoindex(c"bgtmissing".as_ptr()) }, 0);

            create_persistent("bgtq0", 4242).unwrap();
            let fd = open_queue("bgtq0").unwrap();
            // SAFETY: F_GETFD on an open descriptor only reads its flags.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_ne!(
                flags & libc::FD_CLOEXEC,
                0,
                "only the VMM's launch inherits it"
            );
            drop(fd);
            // Closing the queue leaves the persistent device.
            // SAFETY: as above.
            assert_ne!(unsafe { libc::if_nametoindex(c"bgtq0".as_ptr()) }, 0);
            assert!(open_queue("bad/name").is_err());
        });
    }
}
