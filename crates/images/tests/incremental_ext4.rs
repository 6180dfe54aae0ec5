//! An image changed incrementally (a copy of a base image + debugfs) must be the image a
//! full `mkfs.ext4 -d` of the same tree makes: every path with the same type, mode, owner,
//! size, content or link target, the same hard-link groups, and a filesystem `e2fsck`
//! finds clean. The trees come from real layers through the real applier, with whiteouts,
//! opaque directories, hard links into lower layers, owners and replaced types; the
//! listings are read from the images with debugfs (no mounts).

use std::path::{Path, PathBuf};

use banger_images::ext4::incremental;
use banger_images::ext4::snapshot::Snapshot;
use banger_images::ext4::{self, Owners};
use banger_images::oci::apply::Applier;
use banger_images::oci::cache::link_tree;
use banger_system::RealRunner;

use crate::ext4_listing;
use ext4_listing::{fsck_clean, listing};

/// A layer: (name, kind, data or link target, mode, uid).
enum E<'a> {
    Dir(&'a str, u32, u32),
    File(&'a str, &'a str, u32, u32),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        let (name, data): (&str, &[u8]) = match e {
            E::Dir(n, mode, uid) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_uid((*uid).into());
                h.set_gid((*uid).into());
                (n, b"")
            }
            E::File(n, data, mode, uid) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid((*uid).into());
                h.set_gid((*uid).into());
                (n, data.as_bytes())
            }
            E::Link(n, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name(target).unwrap();
                (n, b"")
            }
            E::Hard(n, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_link_name(target).unwrap();
                (n, b"")
            }
        };
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn base_layers() -> Vec<Vec<u8>> {
    vec![
        layer(&[
            E::Dir("etc", 0o755, 0),
            E::File("etc/passwd", "root:x:0:0\n", 0o644, 0),
            E::File("etc/shadow", "secret\n", 0o640, 0),
            E::Dir("home", 0o755, 0),
            E::Dir("home/app", 0o700, 1000),
            E::File("home/app/.profile", "export A=1\n", 0o644, 1000),
            E::Dir("srv", 0o755, 0),
            E::File("srv/a", "aaaa", 0o644, 0),
            E::Hard("srv/a-link", "srv/a"),
            E::File("srv/b", "bbbb", 0o644, 0),
            E::Dir("cache", 0o755, 0),
            E::File("cache/one", "1", 0o644, 0),
            E::Dir("cache/sub", 0o755, 0),
            E::File("cache/sub/two", "2", 0o644, 0),
            E::Link("lib64", "usr/lib64"),
            E::File("usr/bin/sudo", "sudo", 0o4755, 0),
            E::File("with space", "spaces", 0o600, 7),
            E::File("becomes-dir", "file", 0o644, 0),
        ]),
        layer(&[E::File("etc/app.conf", "mode=base\n", 0o644, 0)]),
    ]
}

/// The top layer of the image the base image is made from.
fn top_x() -> Vec<u8> {
    layer(&[
        E::Dir("opt", 0o755, 0),
        E::File("opt/x-only", "x", 0o644, 0),
        E::File("srv/b", "bbbb from x", 0o644, 0),
    ])
}

/// The top layer of the image made incrementally: every kind of change.
fn top_y() -> Vec<u8> {
    layer(&[
        // A whiteout, an opaque directory refilled, a hard link to a lower file, a new
        // hard-link pair, a replaced type each way, a changed owner and mode, set-uid.
        E::File("etc/.wh.shadow", "", 0o644, 0),
        E::Dir("cache", 0o1777, 0),
        E::File("cache/.wh..wh..opq", "", 0o644, 0),
        E::File("cache/fresh", "fresh", 0o644, 0),
        E::Hard("srv/b-link", "srv/b"),
        E::File("srv/c", "cccc", 0o640, 33),
        E::Hard("srv/c-link", "srv/c"),
        E::File("srv/.wh.a-link", "", 0o644, 0),
        E::Dir("becomes-dir", 0o750, 5),
        E::File("becomes-dir/inside", "in", 0o644, 5),
        E::File("lib64", "now a file", 0o644, 0),
        E::Dir("home/app", 0o750, 1001),
        E::File("usr/bin/new-suid", "x", 0o2755, 0),
        E::File("another space", "x y", 0o644, 0),
    ])
}

fn apply(tree: &Path, name: &str, tar: &[u8]) {
    Applier::new(tree).apply(name, tar).unwrap();
}

fn fresh_tree(dir: &Path, name: &str, from: &Path) -> PathBuf {
    let tree = dir.join(name);
    std::fs::create_dir(&tree).unwrap();
    link_tree(from, &tree).unwrap();
    tree
}

fn mkfs(tree: &Path, image: &Path, size: u64) {
    let (_, entries) = ext4::tree_usage(tree).unwrap();
    ext4::make_image(
        &RealRunner,
        tree,
        image,
        size,
        entries,
        "root",
        &Owners::AsInTree,
    )
    .unwrap();
}

#[test]
fn an_incremental_image_equals_a_full_build_of_the_same_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The shared base layers, kept as the tree cache keeps them.
    let cached = dir.join("cached");
    std::fs::create_dir(&cached).unwrap();
    for (i, l) in base_layers().iter().enumerate() {
        apply(&cached, &format!("base{i}"), l);
    }
    // Image X: base + its own top; its image is the base of the next.
    let x = fresh_tree(dir, "x", &cached);
    apply(&x, "top-x", &top_x());
    let x_snapshot = Snapshot::of(&x).unwrap();
    let base_image = dir.join("x.ext4");
    mkfs(&x, &base_image, 64 << 20);
    // Image Y: base + another top, made both ways.
    let y = fresh_tree(dir, "y", &cached);
    apply(&y, "top-y", &top_y());
    let y_snapshot = Snapshot::of(&y).unwrap();
    let (script, written) = incremental::plan(&x_snapshot, &y_snapshot, &y, &[]).unwrap();
    assert!(
        written < y_snapshot.entries.len() / 2,
        "{written} of {} entries rewritten: unchanged files were not recognised",
        y_snapshot.entries.len()
    );
    let incr = dir.join("incr.ext4");
    std::fs::copy(&base_image, &incr).unwrap();
    incremental::apply(&RealRunner, &incr, &script).unwrap();
    let full = dir.join("full.ext4");
    mkfs(&y, &full, 64 << 20);

    fsck_clean(&incr);
    fsck_clean(&full);
    let (full_entries, full_links) = listing(&full, dir);
    let (incr_entries, incr_links) = listing(&incr, dir);
    // What the layers asked for is there (so the comparison compares something).
    assert!(!full_entries.contains_key("etc/shadow"));
    assert!(!full_entries.contains_key("cache/one"));
    assert!(!full_entries.contains_key("opt/x-only"));
    assert_eq!(full_entries["srv/b"].4, b"bbbb");
    assert_eq!(full_entries["cache"].0, "041777");
    assert_eq!(full_entries["usr/bin/sudo"].0, "104755");
    assert!(full_links.contains(&vec!["srv/c".to_string(), "srv/c-link".to_string()]));
    assert!(full_links.contains(&vec!["srv/b".to_string(), "srv/b-link".to_string()]));
    for (path, full) in &full_entries {
        assert_eq!(incr_entries.get(path), Some(full), "{path} differs");
    }
    let extra: Vec<&String> = incr_entries
        .keys()
        .filter(|p| !full_entries.contains_key(*p))
        .collect();
    assert!(extra.is_empty(), "only in the incremental image: {extra:?}");
    assert_eq!(incr_links, full_links);
}

#[test]
fn hostile_names_are_never_handed_to_debugfs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cached = dir.join("cached");
    std::fs::create_dir(&cached).unwrap();
    apply(&cached, "base", &base_layers()[0]);
    let base = Snapshot::of(&cached).unwrap();
    for name in ["evil\" ; rm \"x", "line\nbreak"] {
        let y = fresh_tree(dir, &format!("y{}", name.len()), &cached);
        std::fs::write(y.join(name), "x").unwrap();
        let new = Snapshot::of(&y).unwrap();
        let err = incremental::plan(&base, &new, &y, &[]).unwrap_err();
        assert!(err.0.contains("debugfs"), "{err:?}");
    }
}
