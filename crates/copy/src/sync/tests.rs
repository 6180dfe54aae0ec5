use std::os::unix::fs::symlink;

use super::*;
use crate::pack;

const BIG: u64 = 1 << 30;

fn opts(delete: bool) -> SyncOptions {
    SyncOptions {
        delete,
        max_bytes: BIG,
    }
}

/// Everything under `dir`, sorted, as `path` or `path -> target`.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(format!(
                    "{rel} = {}",
                    fs::read_to_string(&p).unwrap_or_default()
                ));
            }
        }
    }
    out.sort();
    out
}

fn packed(tree: &Path) -> Vec<u8> {
    let mut stream = Vec::new();
    pack(tree, &mut stream).unwrap();
    stream
}

#[test]
fn changes_come_back_and_deletions_only_when_asked() {
    let guest = tempfile::tempdir().unwrap();
    let tree = guest.path().join("src");
    fs::create_dir_all(tree.join("sub/new")).unwrap();
    fs::write(tree.join("changed"), "guest").unwrap();
    fs::write(tree.join("sub/made"), "made in the guest").unwrap();
    symlink("../changed", tree.join("sub/link")).unwrap();

    let host = tempfile::tempdir().unwrap();
    fs::create_dir_all(host.path().join("sub")).unwrap();
    fs::write(host.path().join("changed"), "host").unwrap();
    fs::write(host.path().join("host-only"), "keep me").unwrap();
    // The host's own link out, copied into the guest and back, is not the guest's doing.
    symlink("/etc", host.path().join("etc-link")).unwrap();
    symlink("/etc", tree.join("etc-link")).unwrap();

    let got = receive(&packed(&tree)[..], host.path(), &opts(false)).unwrap();
    assert_eq!(
        (got.written, got.deleted, got.dirs_made),
        (3, 0, 1),
        "{got:?}"
    );
    assert_eq!(
        listing(host.path()),
        [
            "changed = guest",
            "etc-link -> /etc",
            "host-only = keep me",
            "sub/",
            "sub/link -> ../changed",
            "sub/made = made in the guest",
            "sub/new/",
        ]
    );
    // Again: nothing changed, nothing rewritten.
    let again = receive(&packed(&tree)[..], host.path(), &opts(false)).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 4), "{again:?}");

    let deleting = receive(&packed(&tree)[..], host.path(), &opts(true)).unwrap();
    assert_eq!(deleting.deleted, 1);
    assert!(!host.path().join("host-only").exists());
}

/// A stream of directory `src` and one entry of `kind` named by raw bytes (bypassing the
/// builder's own checks, as a hostile guest would).
fn src_and(kind: tar::EntryType, name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "src", io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hostile_trees_change_nothing() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "untouched").unwrap();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("a"), "host").unwrap();
    let before = listing(host.path());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("symlink out by ..", {
            let g = tempfile::tempdir().unwrap();
            let t = g.path().join("src");
            fs::create_dir(&t).unwrap();
            fs::write(t.join("a"), "guest").unwrap();
            symlink("../../etc", t.join("esc")).unwrap();
            packed(&t)
        }),
        ("absolute symlink", {
            let g = tempfile::tempdir().unwrap();
            let t = g.path().join("src");
            fs::create_dir(&t).unwrap();
            symlink(outside.path().join("secret"), t.join("abs")).unwrap();
            packed(&t)
        }),
        (
            "a .. name",
            src_and(tar::EntryType::Regular, b"src/../../escape", b"owned"),
        ),
        (
            "a device node",
            src_and(tar::EntryType::Block, b"src/sda", b""),
        ),
    ];
    for (what, stream) in cases {
        let err = receive(&stream[..], host.path(), &opts(false)).expect_err(what);
        assert!(matches!(err, CopyError::Refused { .. }), "{what}: {err:?}");
        assert_eq!(listing(host.path()), before, "{what}: nothing touched");
    }
    assert!(!outside.path().parent().unwrap().join("escape").exists());
    assert_eq!(
        fs::read_to_string(outside.path().join("secret")).unwrap(),
        "untouched"
    );

    // Over the cap.
    let g = tempfile::tempdir().unwrap();
    let t = g.path().join("src");
    fs::create_dir(&t).unwrap();
    fs::write(t.join("big"), vec![b'x'; 64 * 1024]).unwrap();
    let small = SyncOptions {
        delete: false,
        max_bytes: 16 * 1024,
    };
    let err = receive(&packed(&t)[..], host.path(), &small).unwrap_err();
    assert!(matches!(err, CopyError::TooLarge { max: 16384 }), "{err:?}");
    assert_eq!(listing(host.path()), before);
}

#[test]
fn a_host_symlink_is_replaced_never_written_through() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("target"), "outside").unwrap();
    let host = tempfile::tempdir().unwrap();
    symlink(outside.path().join("target"), host.path().join("f")).unwrap();
    symlink(outside.path(), host.path().join("d")).unwrap();
    let g = tempfile::tempdir().unwrap();
    let t = g.path().join("src");
    fs::create_dir_all(t.join("d")).unwrap();
    fs::write(t.join("f"), "guest").unwrap();
    fs::write(t.join("d/inner"), "guest").unwrap();
    let got = receive(&packed(&t)[..], host.path(), &opts(false)).unwrap();
    assert_eq!(
        fs::read_to_string(outside.path().join("target")).unwrap(),
        "outside"
    );
    assert!(!outside.path().join("inner").exists());
    assert_eq!(fs::read_to_string(host.path().join("f")).unwrap(), "guest");
    // The linked directory is a different kind of entry: skipped without --delete.
    assert_eq!(got.skipped, [PathBuf::from("d")]);
    let got = receive(&packed(&t)[..], host.path(), &opts(true)).unwrap();
    assert!(got.skipped.is_empty());
    assert_eq!(
        fs::read_to_string(host.path().join("d/inner")).unwrap(),
        "guest"
    );
    assert!(!outside.path().join("inner").exists());
}

#[test]
fn links_inside_the_tree_are_judged_by_their_text() {
    for (from, target, inside) in [
        ("", "a", true),
        ("", "./a/../b", true),
        ("sub", "../a", true),
        ("sub", "../../a", false),
        ("", "../a", false),
        ("", "/etc", false),
        ("a/b", "../../c/../..", false),
    ] {
        assert_eq!(
            stays_inside(Path::new(from), Path::new(target)),
            inside,
            "{from} {target}"
        );
    }
}
