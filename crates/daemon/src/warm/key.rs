//! The key of a warm state: everything that shapes the guest at the snapshot instant. A VM
//! is restored from a warm state only when its own key is equal; the first difference is
//! what `vm inspect` gives as the reason it booted cold.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_store::ImageRecord;
use serde::{Deserialize, Serialize};

/// Bumped when what banger puts into a guest's device set or boot changes in a way a
/// saved guest cannot follow; the daemon's version is in the key as well.
/// 2: the state keeps the guest's RAM in a file of its own (`x-ignore-shared`), which
/// restores map copy-on-write; format-1 states (RAM in the stream) are retired.
pub const KEY_FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmKey {
    pub format: u32,
    /// The daemon's release: it builds the VMM's command line.
    pub banger: String,
    pub image: ImagePrint,
    /// `qemu` or `firecracker`.
    pub driver: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// What identifies the VMM's build: its `--version` and its binary's size and time.
    pub vmm: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    /// `bridge`, `user` or `none`.
    pub network: String,
}

/// What identifies an image's bytes without reading them: the digests its manifest
/// records (the agent's among them) and each boot file's size, inode and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePrint {
    pub name: String,
    /// The guest agent's sha256, from the image's manifest (absent when it has none).
    pub agent_sha256: Option<String>,
    /// `sha256:…` of an imported image's manifest.
    pub digest: Option<String>,
    /// `role size inode mtime_ns` per boot file (kernel, bzimage, initrd, rootfs).
    pub files: Vec<String>,
}

impl ImagePrint {
    pub fn of(image: &ImageRecord) -> ImagePrint {
        let agent_sha256 = banger_images::Manifest::load(&image.dir)
            .ok()
            .map(|m| m.agent.sha256);
        let files = [
            ("kernel", Some(&image.kernel_path)),
            ("bzimage", image.bzimage_path.as_ref()),
            ("initrd", image.initrd_path.as_ref()),
            ("rootfs", image.rootfs_path.as_ref()),
        ]
        .into_iter()
        .filter_map(|(role, path)| path.map(|p| format!("{role} {}", stat_print(p))))
        .collect();
        ImagePrint {
            name: image.name.clone(),
            agent_sha256,
            digest: image.digest.clone(),
            files,
        }
    }
}

/// `size inode mtime_ns`, or `missing`.
pub fn stat_print(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "{} {} {}",
            m.len(),
            m.ino(),
            m.mtime() * 1_000_000_000 + m.mtime_nsec()
        ),
        Err(_) => "missing".to_string(),
    }
}

/// Why a VM of key `wanted` cannot be restored from a warm state of key `stored`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub reason: String,
    /// The state is out of date for every VM (image, agent, VMM, banger changed), not
    /// just for this VM's resources: it is retired.
    pub stale: bool,
}

/// The first difference between `stored` and `wanted`, or `None` when they are equal.
pub fn compare(stored: &WarmKey, wanted: &WarmKey) -> Option<Mismatch> {
    let stale = |reason: String| {
        Some(Mismatch {
            reason,
            stale: true,
        })
    };
    let differs = |reason: String| {
        Some(Mismatch {
            reason,
            stale: false,
        })
    };
    let short = |s: &Option<String>| match s {
        Some(s) => s.chars().take(12).collect(),
        None => "none".to_string(),
    };
    if stored.format != wanted.format || stored.banger != wanted.banger {
        return stale(format!(
            "banger changed since the warm state was taken ({} -> {})",
            stored.banger, wanted.banger
        ));
    }
    if stored.image.agent_sha256 != wanted.image.agent_sha256 {
        return stale(format!(
            "the image's guest agent changed (sha256 {} -> {})",
            short(&stored.image.agent_sha256),
            short(&wanted.image.agent_sha256)
        ));
    }
    if stored.image != wanted.image {
        return stale(format!(
            "image {}'s files changed since the warm state was taken",
            wanted.image.name
        ));
    }
    if stored.driver != wanted.driver {
        return differs(format!(
            "the warm state is for {}, this VM runs under {}",
            stored.driver, wanted.driver
        ));
    }
    if stored.accel != wanted.accel {
        return stale(format!(
            "the warm state was taken under {}, this host now runs {}",
            stored.accel, wanted.accel
        ));
    }
    if stored.vmm != wanted.vmm {
        return stale(format!(
            "the VMM changed since the warm state was taken ({} -> {})",
            stored.vmm, wanted.vmm
        ));
    }
    if stored.network != wanted.network {
        return stale(format!(
            "the warm state has network mode {}, this VM gets {}",
            stored.network, wanted.network
        ));
    }
    for (what, s, w) in [
        ("vcpu", u64::from(stored.vcpu), u64::from(wanted.vcpu)),
        ("memory_mib", stored.memory_mib, wanted.memory_mib),
        ("disk_bytes", stored.disk_bytes, wanted.disk_bytes),
    ] {
        if s != w {
            return differs(format!(
                "{what} differs: the warm state has {s}, this VM asks for {w}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> WarmKey {
        WarmKey {
            format: KEY_FORMAT,
            banger: "0.1.0".into(),
            image: ImagePrint {
                name: "debian".into(),
                agent_sha256: Some("aaaaaaaaaaaaaaaaaaaa".into()),
                digest: None,
                files: vec!["kernel 1 2 3".into(), "rootfs 4 5 6".into()],
            },
            driver: "qemu".into(),
            accel: "tcg".into(),
            vmm: "QEMU emulator version 7.2.15".into(),
            vcpu: 1,
            memory_mib: 512,
            disk_bytes: 1 << 30,
            network: "user".into(),
        }
    }

    #[test]
    fn equal_keys_restore() {
        assert_eq!(compare(&key(), &key()), None);
    }

    #[test]
    fn each_difference_is_named_and_classed() {
        type Edit = fn(&mut WarmKey);
        let cases: &[(Edit, &str, bool)] = &[
            (|k| k.banger = "0.2.0".into(), "banger changed", true),
            (|k| k.format += 1, "banger changed", true),
            (
                |k| k.image.agent_sha256 = Some("bbbbbbbbbbbbbbbb".into()),
                "guest agent changed (sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)",
                true,
            ),
            (|k| k.image.agent_sha256 = None, "-> none", true),
            (
                |k| k.image.files[1] = "rootfs 4 5 7".into(),
                "image debian's files changed",
                true,
            ),
            (
                |k| k.image.digest = Some("sha256:x".into()),
                "files changed",
                true,
            ),
            (
                |k| k.driver = "firecracker".into(),
                "this VM runs under firecracker",
                false,
            ),
            (|k| k.accel = "kvm".into(), "this host now runs kvm", true),
            (|k| k.vmm = "QEMU 8.2".into(), "the VMM changed", true),
            (
                |k| k.network = "none".into(),
                "network mode user, this VM gets none",
                true,
            ),
            (
                |k| k.vcpu = 2,
                "vcpu differs: the warm state has 1, this VM asks for 2",
                false,
            ),
            (|k| k.memory_mib = 1024, "memory_mib differs", false),
            (|k| k.disk_bytes = 2 << 30, "disk_bytes differs", false),
        ];
        for (edit, reason, stale) in cases {
            let mut wanted = key();
            edit(&mut wanted);
            let m = compare(&key(), &wanted).expect("a difference");
            assert!(m.reason.contains(reason), "{:?} lacks {reason:?}", m.reason);
            assert_eq!(m.stale, *stale, "{}", m.reason);
        }
    }

    #[test]
    fn a_stored_key_round_trips_through_json() {
        let json = serde_json::to_string(&key()).unwrap();
        let back: WarmKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key());
    }

    #[test]
    fn stat_prints_change_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(stat_print(&path), "missing");
        std::fs::write(&path, b"one").unwrap();
        let first = stat_print(&path);
        std::fs::write(dir.path().join("g"), b"two!").unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        assert_ne!(stat_print(&path), first);
    }
}
