//! Re-importing an OCI image that shares its base layers with an earlier import (the
//! root filesystem made from a copy of the earlier one, changed with debugfs, its chunked
//! SHA-256 reusing the base's digests) gives the image a fresh import gives: the same
//! paths, modes, owners, contents, link targets and hard-link groups, read from both
//! images with debugfs (no mounts), and a clean e2fsck. A cached base changed on disk
//! is caught and not used; a flipped byte in a stored image fails its digest, which
//! `split | sha256sum` computes the same way from the shell.
//!
//! Library level (`banger_images::oci::import`, as the daemon calls it) on layouts made
//! by umoci and GNU tar: no daemon or guest is needed to check a root filesystem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use banger_e2e::oci;
use banger_images::manifest::{FileRecord, Manifest};
use banger_images::oci::{ImageRef, ImportOptions};
use banger_system::RealRunner;
use banger_system::progress::{Progress, ProgressEvent};

#[path = "../../images/tests/support/ext4_listing.rs"]
mod ext4_listing;
use ext4_listing::{fsck_clean, listing};

/// Keeps the importer's notes.
#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl Progress for Notes {
    fn report(&self, event: ProgressEvent) {
        if let ProgressEvent::Note { message } = event {
            self.0.lock().unwrap().push(message);
        }
    }
}

impl Notes {
    fn take(&self) -> String {
        std::mem::take(&mut *self.0.lock().unwrap()).join("\n")
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    layout: PathBuf,
    kernel_dir: PathBuf,
    agent: PathBuf,
}

/// The e2e fixture image (busybox, a whiteout, an opaque directory, a user) as `base`,
/// and on it `v1` (a 4 MiB file) and `v2` (a 3 MiB file spanning chunks, a replaced
/// /etc/group, then a GNU tar layer with a whiteout of a lower file, a symlink, a hard
/// link into a lower layer and a directory owned by uid 1000).
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let layout = oci::build_layout(&dir, "base").unwrap();
    // v1 is the larger, so that v2 fits in a copy of its image.
    let v1: Vec<u8> = (0..4u32 << 20).map(|i| (i % 241) as u8).collect();
    oci::add_layer(&layout, "base", "v1", &[("opt/v1.bin", &v1)]).unwrap();
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    oci::add_layer(
        &layout,
        "base",
        "v2",
        &[
            ("opt/v2/big", &big),
            ("etc/group", b"root:x:0:\napp:x:1000:\nextra:x:2000:\n"),
        ],
    )
    .unwrap();
    let top = dir.join("top");
    std::fs::create_dir_all(top.join("data")).unwrap();
    std::fs::create_dir_all(top.join("srv/app")).unwrap();
    std::fs::write(top.join("data/.wh.new.txt"), "").unwrap();
    std::os::unix::fs::symlink("../data", top.join("srv/data")).unwrap();
    std::fs::write(top.join("srv/app/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    let tar = dir.join("top.tar");
    oci::tool(
        "tar",
        &[
            "-C",
            top.to_str().unwrap(),
            "--owner=0",
            "--group=0",
            "-cf",
            tar.to_str().unwrap(),
            "data",
            "srv",
        ],
    )
    .unwrap();
    oci::add_raw_layer(&layout, "v2", &tar).unwrap();

    // The kernel half is only linked into the image: any files do.
    let kernel_dir = dir.join("kernel");
    std::fs::create_dir_all(&kernel_dir).unwrap();
    banger_images::testkit::stand_in_image(&kernel_dir, "kernel", None).unwrap();
    let agent = banger_e2e::banger_bin().with_file_name("banger-agent");
    assert!(
        agent.is_file(),
        "{} is missing: run `make build` (or set BANGER_BIN)",
        agent.display()
    );
    Fixture {
        _tmp: tmp,
        dir,
        layout,
        kernel_dir,
        agent,
    }
}

impl Fixture {
    /// Import `tag` as `images/name` with the layer and base caches in `cache`.
    fn import(&self, tag: &str, name: &str, cache: &str, notes: &Notes) -> PathBuf {
        let reference = ImageRef::parse(&format!("oci:{}:{tag}", self.layout.display())).unwrap();
        let out = self.dir.join("images").join(name);
        let mut opts = ImportOptions::new(
            reference,
            out.clone(),
            self.dir.join(cache),
            self.agent.clone(),
            self.kernel_dir.clone(),
            &RealRunner,
        );
        opts.image_name = name.to_string();
        opts.progress = notes;
        banger_images::oci::import(&opts).unwrap_or_else(|e| {
            panic!(
                "importing {tag}: {}\n{}",
                banger_system::error_chain(&e),
                notes.take()
            )
        });
        out
    }
}

fn rootfs(image: &Path) -> (PathBuf, FileRecord) {
    let manifest = Manifest::load(image).unwrap();
    let record = manifest.files.rootfs.unwrap();
    (image.join(&record.path), record)
}

/// What the documented shell pipeline prints for `file`.
fn shell_digest(file: &Path) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            "split -b 1M --filter=sha256sum \"$1\" | cut -d' ' -f1 | sha256sum",
            "sh",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Flip one byte of `file` inside its data (not a hole), past the first MiB.
fn flip_a_data_byte(file: &Path) -> u64 {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    // SAFETY: lseek on an fd we own; no memory is passed.
    let data = unsafe { libc::lseek(f.as_raw_fd(), 1 << 20, libc::SEEK_DATA) };
    assert!(data > 0, "{file:?} has no data past its first MiB");
    let at = data as u64 + 100;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    f.sync_all().unwrap();
    at
}

#[test]
fn a_reimport_on_a_shared_base_equals_a_fresh_import_and_digests_catch_changes() {
    let fx = fixture();
    let notes = Notes::default();
    fx.import("v1", "first", "cache", &notes);
    notes.take();
    let incremental = fx.import("v2", "second", "cache", &notes);
    let said = notes.take();
    assert!(
        said.contains("root filesystem made from a recent import sharing"),
        "the re-import did not start from its base:\n{said}"
    );
    assert!(
        !said.contains("verifying it"),
        "an untouched base was read again:\n{said}"
    );
    let fresh = fx.import("v2", "fresh", "cache-fresh", &notes);
    let said = notes.take();
    assert!(said.contains("root filesystem in full"), "{said}");

    let (inc_file, inc_record) = rootfs(&incremental);
    let (fresh_file, fresh_record) = rootfs(&fresh);
    let scratch = fx.dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let (inc_entries, inc_links) = listing(&inc_file, &scratch);
    let (fresh_entries, fresh_links) = listing(&fresh_file, &scratch);
    for (path, entry) in &fresh_entries {
        assert_eq!(
            inc_entries.get(path),
            Some(entry),
            "{path} differs between the re-import and a fresh import"
        );
    }
    let extra: Vec<&String> = inc_entries
        .keys()
        .filter(|p| !fresh_entries.contains_key(*p))
        .collect();
    assert!(extra.is_empty(), "only in the re-import: {extra:?}");
    assert_eq!(inc_links, fresh_links, "hard-link groups differ");
    assert!(inc_entries.contains_key("opt/v2/big") && !inc_entries.contains_key("opt/v1.bin"));
    assert!(
        !inc_entries.contains_key("data/new.txt"),
        "the whiteout was lost"
    );
    fsck_clean(&inc_file);
    fsck_clean(&fresh_file);

    // Both are addressed by their chunked SHA-256, which the shell computes the same way.
    for (image, file, record) in [
        (&incremental, &inc_file, &inc_record),
        (&fresh, &fresh_file, &fresh_record),
    ] {
        let digest = record.sha256_1m.clone().expect("a chunked digest");
        assert_eq!(shell_digest(file), digest, "{file:?}");
        assert_eq!(record.verify(image).unwrap(), None, "{file:?}");
    }

    // A flipped byte in a stored image is caught by its digest.
    let at = flip_a_data_byte(&fresh_file);
    let problem = fresh_record.verify(&fresh).unwrap();
    assert!(
        problem
            .as_deref()
            .is_some_and(|p| p.contains("chunked SHA-256")),
        "a byte flipped at {at} went unseen: {problem:?}"
    );
    assert_ne!(
        shell_digest(&fresh_file),
        fresh_record.sha256_1m.clone().unwrap()
    );
}

#[test]
fn a_corrupted_cached_base_is_caught_and_not_used() {
    let fx = fixture();
    let notes = Notes::default();
    let first = fx.import("v1", "first", "cache", &notes);
    notes.take();
    // The base is a hard link to the first image's rootfs: corrupt it through the cache.
    let bases: Vec<PathBuf> = std::fs::read_dir(fx.dir.join("cache/oci/bases"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(bases.len(), 1, "{bases:?}");
    let at = flip_a_data_byte(&bases[0].join("rootfs.ext4"));
    let (_, first_record) = rootfs(&first);
    assert!(
        first_record.verify(&first).unwrap().is_some(),
        "the byte flipped at {at} went unseen"
    );

    let second = fx.import("v2", "second", "cache", &notes);
    let said = notes.take();
    assert!(
        said.contains("does not match its recorded digests"),
        "a corrupted base was not caught:\n{said}"
    );
    assert!(
        !said.contains("root filesystem made from a recent import"),
        "a corrupted base was used:\n{said}"
    );
    assert!(!bases[0].exists(), "the corrupted base was kept");
    let (file, record) = rootfs(&second);
    assert_eq!(record.verify(&second).unwrap(), None);
    fsck_clean(&file);
}
