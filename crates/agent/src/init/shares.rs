//! Mounting the host directories the VM shares, before anything runs: the host lists them
//! on the kernel command line as `banger.shares=TAG:MODE:PATH,…` (`MODE` `rw` or `ro`,
//! `PATH` percent-encoded; written by the daemon's `shares/guest.rs`). Each is a virtio-fs
//! device the guest mounts by its tag; `ro` is enforced by the host, and mounted read-only
//! here too so tools see it.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::modules;
use crate::{clock, log};

/// How long a share's device may take to appear after its driver loads.
const DEVICE_WAIT: Duration = Duration::from_secs(5);

/// One share to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
    pub read_only: bool,
}

/// Parse the value of `banger.shares`; an error names the bad entry.
pub fn parse(value: &str) -> Result<Vec<Share>, String> {
    value
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = |why: &str| format!("banger.shares entry {entry:?}: {why}");
            let mut parts = entry.splitn(3, ':');
            let (Some(tag), Some(mode), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected TAG:MODE:PATH"));
            };
            let read_only = match mode {
                "ro" => true,
                "rw" => false,
                _ => return Err(bad("MODE must be ro or rw")),
            };
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad("bad tag"));
            }
            let path = decode(path).ok_or_else(|| bad("bad percent-encoding"))?;
            if !path.starts_with('/') || path.split('/').any(|c| c == ".." || c == ".") {
                return Err(bad("the path must be absolute, without . or .."));
            }
            Ok(Share {
                tag: tag.to_string(),
                path: PathBuf::from(path),
                read_only,
            })
        })
        .collect()
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Mount every share listed in `value`; failures are logged with the share they concern
/// (a guest without one share still serves the rest). Returns how many were mounted.
pub fn mount_all(value: &str) -> usize {
    let shares = match parse(value) {
        Ok(shares) if shares.is_empty() => return 0,
        Ok(shares) => shares,
        Err(why) => {
            log!("kernel command line: {why}; no share is mounted");
            return 0;
        }
    };
    if let Err(why) = modules::load_on_demand(&clock::kernel_release(), modules::ON_DEMAND) {
        log!("shared directories: {why}; mounting them anyway");
    }
    let mut mounted = 0;
    for share in &shares {
        match mount(share) {
            Ok(()) => mounted += 1,
            Err(why) => log!(
                "mounting shared directory {} (virtio-fs {}) failed: {why}",
                share.path.display(),
                share.tag
            ),
        }
    }
    mounted
}

fn mount(share: &Share) -> Result<(), String> {
    std::fs::create_dir_all(&share.path).map_err(|e| format!("cannot create it: {e}"))?;
    let mut flags = nix::mount::MsFlags::MS_NODEV;
    if share.read_only {
        flags |= nix::mount::MsFlags::MS_RDONLY;
    }
    let started = Instant::now();
    loop {
        match nix::mount::mount(
            Some(share.tag.as_str()),
            &share.path,
            Some("virtiofs"),
            flags,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            // The device probes after its driver loads; no udev to wait on.
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENODEV)
                if started.elapsed() < DEVICE_WAIT =>
            {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_decode() {
        let shares = parse("bangerfs0:rw:/src,bangerfs1:ro:/my%20dir%2C1%3Ax%25%C3%A9").unwrap();
        assert_eq!(
            shares,
            [
                Share {
                    tag: "bangerfs0".into(),
                    path: "/src".into(),
                    read_only: false
                },
                Share {
                    tag: "bangerfs1".into(),
                    path: "/my dir,1:x%é".into(),
                    read_only: true
                },
            ]
        );
        for bad in [
            "bangerfs0:rw",
            "bangerfs0:rx:/a",
            "bad tag:rw:/a",
            "t:rw:relative",
            "t:rw:/a/../b",
            "t:rw:/a%zz",
            "t:rw:/a%2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
