//! Persistent TAP devices owned by a uid.
//!
//! The kernel cannot create TUN/TAP devices over rtnetlink, so this is the one place
//! that uses the `/dev/net/tun` ioctls: `TUNSETIFF` (create), `TUNSETOWNER` (the owner may
//! attach without privileges) and `TUNSETPERSIST` (the device outlives this fd, until it
//! is deleted). Attaching to the bridge and bringing it up is netlink's job.

use std::os::fd::AsRawFd;

use crate::NetError;

const TUN_PATH: &str = "/dev/net/tun";
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, 4),
    libc::ifreq
);
nix::ioctl_write_int_bad!(tunsetpersist, nix::request_code_write!(b'T', 203, 4));
nix::ioctl_write_int_bad!(tunsetowner, nix::request_code_write!(b'T', 204, 4));

/// Create (or take over, if it exists with the same flags) the persistent TAP `name`,
/// owned by `owner_uid`. The caller validated `name` (at most 15 bytes).
pub fn create_persistent(name: &str, owner_uid: u32) -> Result<(), NetError> {
    let err = |what: &'static str| {
        move |source: std::io::Error| NetError::Tap {
            name: name.to_string(),
            what,
            source,
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_PATH)
        .map_err(err("opening /dev/net/tun"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() {
        return Err(err("naming")(std::io::ErrorKind::InvalidInput.into()));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // Same flags Firecracker and QEMU open with, so they can attach to it.
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    let fd = file.as_raw_fd();
    // SAFETY: fd is an open /dev/net/tun; req is a valid, NUL-terminated ifreq that lives
    // across the call.
    unsafe { tunsetiff(fd, &req) }.map_err(|e| err("TUNSETIFF (create)")(e.into()))?;
    let uid = libc::c_int::try_from(owner_uid)
        .map_err(|_| err("TUNSETOWNER")(std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: fd is attached to the device just created; the argument is a plain integer.
    unsafe { tunsetowner(fd, uid) }.map_err(|e| err("TUNSETOWNER")(e.into()))?;
    // SAFETY: as above.
    unsafe { tunsetpersist(fd, 1) }.map_err(|e| err("TUNSETPERSIST")(e.into()))?;
    Ok(())
}
