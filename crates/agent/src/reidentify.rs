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
    let network = req.network.as_ref().map(guest_net).transpose()?;
    reseed(&req.entropy).map_err(|e| format!("reseed the kernel RNG: {e}"))?;
    clock::set_realtime(req.unix_nanos).map_err(|e| {
        format!(
            "set the clock to {} ns after the epoch: {e}",
            req.unix_nanos
        )
    })?;
    init::set_hostname(&req.hostname);
    init::identity::ensure(Path::new("/"), &req.hostname, &req.vm_id);
    if let Some((net, mac)) = network {
        let name = init::net::reconfigure(&net, mac)
            .map_err(|e| format!("give the interface {}/{}: {e}", net.address, net.prefix))?;
        crate::log!("{name}: now {}/{} as a clone", net.address, net.prefix);
    }
    // A waiting pre-started sshd loaded the host keys this machine no longer has.
    init::prestart::renew_all();
    Ok(())
}

/// What an agent run by a test harness on a host (the fake Firecracker's simulated
/// guest) does instead: the identity files are made under `root`, the network identity is
/// recorded in `root/network`, and nothing of the host (RNG, clock, hostname, interfaces)
/// is touched. The request is checked exactly as in a guest.
pub fn apply_simulated(req: &Reidentify, root: &Path) -> Result<(), String> {
    check(req)?;
    let network = req.network.as_ref().map(guest_net).transpose()?;
    std::fs::create_dir_all(root.join("etc"))
        .map_err(|e| format!("create {}/etc: {e}", root.display()))?;
    init::identity::ensure(root, &req.hostname, &req.vm_id);
    let text = match network {
        Some((net, _)) => format!(
            "{} {}/{} {}\n",
            req.network.as_ref().map_or("", |n| n.mac.as_str()),
            net.address,
            net.prefix,
            net.gateway.map(|g| g.to_string()).unwrap_or_default()
        ),
        None => String::new(),
    };
    std::fs::write(root.join("network"), text)
        .map_err(|e| format!("write {}/network: {e}", root.display()))
}

/// The interface configuration and MAC of `net`, refused when malformed.
fn guest_net(
    net: &banger_agent_proto::NetIdentity,
) -> Result<(init::net::GuestNet, [u8; 6]), String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = net.mac.split(':').collect();
    let parsed = parts.len() == 6
        && parts.iter().zip(mac.iter_mut()).all(|(part, byte)| {
            part.len() == 2 && u8::from_str_radix(part, 16).map(|b| *byte = b).is_ok()
        });
    if !parsed || mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(format!("MAC {:?} is not a unicast MAC address", net.mac));
    }
    if !(1..=30).contains(&net.prefix) {
        return Err(format!("prefix /{} must be 1 to 30", net.prefix));
    }
    Ok((
        init::net::GuestNet {
            address: net.address,
            prefix: net.prefix,
            gateway: net.gateway,
            dns: net.dns.clone(),
        },
        mac,
    ))
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
            network: None,
        }
    }

    fn net(mac: &str, prefix: u8) -> banger_agent_proto::NetIdentity {
        banger_agent_proto::NetIdentity {
            mac: mac.into(),
            address: "10.0.0.7".parse().unwrap(),
            prefix,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: vec![],
        }
    }

    #[test]
    fn network_identities_are_checked() {
        let (guest, mac) = guest_net(&net("06:00:0a:00:00:07", 24)).unwrap();
        assert_eq!(mac, [6, 0, 10, 0, 0, 7]);
        assert_eq!(guest.prefix, 24);
        for (bad_mac, prefix) in [
            ("07:00:0a:00:00:07", 24), // multicast
            ("00:00:00:00:00:00", 24),
            ("06:00:0a:00:00", 24),
            ("06:00:0a:00:00:7", 24),
            ("06:00:0a:00:00:zz", 24),
            ("06:00:0a:00:00:07", 0),
            ("06:00:0a:00:00:07", 31),
        ] {
            assert!(
                guest_net(&net(bad_mac, prefix)).is_err(),
                "{bad_mac}/{prefix}"
            );
        }
    }

    #[test]
    fn a_simulated_guest_gets_its_identity_under_its_root_only() {
        let root = tempfile::tempdir().unwrap();
        let request = Reidentify {
            network: Some(net("06:00:0a:00:00:07", 24)),
            ..req()
        };
        apply_simulated(&request, root.path()).unwrap();
        let hostname = std::fs::read_to_string(root.path().join("etc/hostname")).unwrap();
        assert_eq!(hostname.trim(), "clone-1");
        assert_eq!(
            std::fs::read_to_string(root.path().join("network")).unwrap(),
            "06:00:0a:00:00:07 10.0.0.7/24 10.0.0.1\n"
        );
        let bad = Reidentify {
            network: Some(net("ff:ff:ff:ff:ff:ff", 24)),
            ..req()
        };
        assert!(apply_simulated(&bad, root.path()).is_err());
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
