//! Mounting the host directories the VM shares, before anything runs: the host lists them
//! on the kernel command line as `banger.shares=TAG:MODE:PATH,…` (`PATH` percent-encoded;
//! written by the daemon's `shares/guest.rs`). `MODE` `rw` or `ro` is a virtio-fs device
//! the guest mounts by its tag; `copy-rw` or `copy-ro` is a drive holding a copy of the
//! directory, found by its ext4 label `TAG` (device names depend on probe order). `ro` is
//! enforced by the host (a read-only device or a `--readonly` virtiofsd), and mounted
//! read-only here too so tools see it. What cannot be mounted is reported to the host in
//! `Ready`, which fails the start with it.

use std::io::Read;
use std::path::{Path, PathBuf};
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
    /// A copy on an ext4 drive labelled `tag`, not a virtio-fs device.
    pub copy: bool,
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
            let (read_only, copy) = match mode {
                "ro" => (true, false),
                "rw" => (false, false),
                "copy-ro" => (true, true),
                "copy-rw" => (false, true),
                _ => return Err(bad("MODE must be ro, rw, copy-ro or copy-rw")),
            };
            if tag.is_empty() || tag.len() > 16 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
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
                copy,
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

/// Mount every share listed in `value`. Returns the failures, each naming its share (a
/// guest without one share still serves the rest, and the host decides).
pub fn mount_all(value: &str) -> Vec<String> {
    let shares = match parse(value) {
        Ok(shares) => shares,
        Err(why) => {
            log!("kernel command line: {why}; no share is mounted");
            return vec![format!("the host's share list: {why}")];
        }
    };
    if shares.iter().any(|s| !s.copy)
        && let Err(why) = modules::load_on_demand(&clock::kernel_release(), modules::ON_DEMAND)
    {
        log!("shared directories: {why}; mounting them anyway");
    }
    let mut failed = Vec::new();
    for share in &shares {
        let kind = if share.copy { "copy" } else { "virtio-fs" };
        if let Err(why) = mount(share) {
            log!(
                "mounting shared directory {} ({kind} {}) failed: {why}",
                share.path.display(),
                share.tag
            );
            failed.push(format!("{}: {why}", share.path.display()));
        }
    }
    failed
}

fn mount(share: &Share) -> Result<(), String> {
    std::fs::create_dir_all(&share.path).map_err(|e| format!("cannot create it: {e}"))?;
    let mut flags = nix::mount::MsFlags::MS_NODEV;
    if share.read_only {
        flags |= nix::mount::MsFlags::MS_RDONLY;
    }
    if share.copy {
        // Reading must not write: the host tells whether the guest changed a copy by the
        // journal's transactions, and an access-time update is one.
        flags |= nix::mount::MsFlags::MS_NOATIME;
    }
    let started = Instant::now();
    loop {
        let result = if share.copy {
            match find_label(&share.tag) {
                Some(device) => nix::mount::mount(
                    Some(device.as_path()),
                    &share.path,
                    Some("ext4"),
                    flags,
                    None::<&str>,
                ),
                None => Err(nix::errno::Errno::ENOENT),
            }
        } else {
            nix::mount::mount(
                Some(share.tag.as_str()),
                &share.path,
                Some("virtiofs"),
                flags,
                None::<&str>,
            )
        };
        match result {
            Ok(()) => return Ok(()),
            // The device probes after its driver loads; no udev to wait on.
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENODEV)
                if started.elapsed() < DEVICE_WAIT =>
            {
                thread::sleep(Duration::from_millis(10));
            }
            Err(nix::errno::Errno::ENOENT) if share.copy => {
                return Err(format!(
                    "no drive with the filesystem label {} appeared within {DEVICE_WAIT:?}",
                    share.tag
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The virtio block device whose ext4 filesystem is labelled `label`.
fn find_label(label: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("vd"))
        .map(|name| Path::new("/dev").join(name))
        .find(|dev| ext4_label(dev).as_deref() == Some(label))
}

/// The label of the ext4 filesystem on `device`, if it holds one.
fn ext4_label(device: &Path) -> Option<String> {
    let mut block = [0u8; 2048];
    std::fs::File::open(device)
        .ok()?
        .read_exact(&mut block)
        .ok()?;
    label_of(&block)
}

/// The volume label of the ext4 superblock at byte 1024 of `head` (`s_magic` at 0x38,
/// `s_volume_name` at 0x78, 16 bytes, NUL-padded).
fn label_of(head: &[u8; 2048]) -> Option<String> {
    let sb = &head[1024..];
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let name = &sb[0x78..0x88];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8(name[..end].to_vec()).ok()
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
                    read_only: false,
                    copy: false,
                },
                Share {
                    tag: "bangerfs1".into(),
                    path: "/my dir,1:x%é".into(),
                    read_only: true,
                    copy: false,
                },
            ]
        );
        assert_eq!(
            parse("bangercp1:copy-ro:/data").unwrap(),
            [Share {
                tag: "bangercp1".into(),
                path: "/data".into(),
                read_only: true,
                copy: true,
            }]
        );
        for bad in [
            "bangercp0:copy-rx:/a",
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

    #[test]
    fn ext4_labels_are_read_from_the_superblock() {
        let mut head = [0u8; 2048];
        assert_eq!(label_of(&head), None, "no ext4 magic");
        head[1024 + 0x38] = 0x53;
        head[1024 + 0x39] = 0xEF;
        head[1024 + 0x78..1024 + 0x78 + 9].copy_from_slice(b"bangercp0");
        assert_eq!(label_of(&head).as_deref(), Some("bangercp0"));
    }
}
