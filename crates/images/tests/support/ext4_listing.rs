//! An ext4 image's content read with debugfs, no mounts: every path's mode, owner,
//! size and content (or link target), and its hard-link groups; and whether e2fsck
//! finds it clean. Shared by the tests that compare images made in different ways
//! (`images/tests/incremental_ext4.rs`, `e2e/tests/oci_reimport.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use banger_system::{CommandRunner, RealRunner};

pub fn debugfs(image: &Path, script: &str) -> String {
    let debugfs = banger_system::runner::lookup_executable("debugfs")
        .expect("debugfs is missing: run scripts/install-deps (package e2fsprogs)");
    let out = RealRunner
        .run_with_input(
            &debugfs,
            &[OsStr::new("-f"), OsStr::new("-"), image.as_os_str()],
            script.as_bytes(),
        )
        .unwrap();
    assert!(out.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Path → (mode, uid, gid, size, content or link target), and the hard-link groups.
pub type Listing = (
    BTreeMap<String, (String, String, String, String, Vec<u8>)>,
    Vec<Vec<String>>,
);

pub fn listing(image: &Path, scratch: &Path) -> Listing {
    let mut entries = BTreeMap::new();
    let mut by_ino: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dirs = vec![String::new()];
    let dump = scratch.join("dump");
    let _ = std::fs::remove_dir_all(&dump);
    std::fs::create_dir(&dump).unwrap();
    while let Some(dir) = dirs.pop() {
        let out = debugfs(image, &format!("ls -p \"/{dir}\"\n"));
        for line in out.lines().filter(|l| l.starts_with('/')) {
            // /ino/mode/uid/gid/name/size/
            let f: Vec<&str> = line.split('/').collect();
            let (ino, mode, uid, gid, name, size) = (f[1], f[2], f[3], f[4], f[5], f[6]);
            if name == "." || name == ".." || (dir.is_empty() && name == "lost+found") {
                continue;
            }
            let path = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            let content = if mode.starts_with("04") {
                dirs.push(path.clone());
                Vec::new()
            } else {
                let host = dump.join(ino);
                debugfs(image, &format!("dump \"/{path}\" \"{}\"\n", host.display()));
                by_ino
                    .entry(ino.to_string())
                    .or_default()
                    .push(path.clone());
                std::fs::read(&host).unwrap_or_default()
            };
            entries.insert(
                path,
                (
                    mode.to_string(),
                    uid.to_string(),
                    gid.to_string(),
                    size.to_string(),
                    content,
                ),
            );
        }
    }
    let mut groups: Vec<Vec<String>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    (entries, groups)
}

pub fn fsck_clean(image: &Path) {
    let e2fsck = banger_system::runner::lookup_executable("e2fsck")
        .expect("e2fsck is missing: run scripts/install-deps (package e2fsprogs)");
    let out = RealRunner
        .run(&e2fsck, &[OsStr::new("-fn"), image.as_os_str()])
        .unwrap();
    assert!(
        out.success(),
        "e2fsck finds {image:?} damaged:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        out.stderr_str()
    );
}
