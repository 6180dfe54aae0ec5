use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn file_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn dir_header(mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(mode);
    h
}

/// Writes a raw name (bypassing the builder's own checks, as a hostile guest would).
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, mut h: tar::Header, data: &[u8]) {
    let bytes = name.as_bytes();
    h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn a_directory_round_trips_with_modes_and_links() {
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("proj");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(tree.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(tree.join("sub/data"), vec![7u8; 100_000]).unwrap();
    symlink("sub/data", tree.join("link")).unwrap();
    let mut stream = Vec::new();
    pack(&tree, &mut stream).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let got = unpack(&stream[..], dst.path(), None).unwrap();
    assert_eq!((got.files, got.dirs), (3, 2));
    let out = dst.path().join("proj");
    assert_eq!(fs::read(out.join("sub/data")).unwrap(), vec![7u8; 100_000]);
    assert_eq!(
        fs::metadata(out.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    assert_eq!(
        fs::read_link(out.join("link")).unwrap(),
        Path::new("sub/data")
    );

    // Renamed on the way in.
    unpack(&stream[..], dst.path(), Some("copy")).unwrap();
    assert!(dst.path().join("copy/sub/data").is_file());
}

#[test]
fn a_single_file_is_packed_under_its_name() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("notes.txt"), "hi").unwrap();
    let mut stream = Vec::new();
    pack(&src.path().join("notes.txt"), &mut stream).unwrap();
    let dst = tempfile::tempdir().unwrap();
    unpack(&stream[..], dst.path(), Some("renamed.txt")).unwrap();
    assert_eq!(
        fs::read_to_string(dst.path().join("renamed.txt")).unwrap(),
        "hi"
    );
    assert!(matches!(
        pack(Path::new("/nonexistent/x"), Vec::new()),
        Err(CopyError::Source { .. })
    ));
}

#[test]
fn hostile_streams_cannot_leave_the_destination() {
    let outside = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let escape = |name: &str| tar_of(|b| raw_entry(b, name, file_header(3, 0o644), b"bad"));
    for name in ["../evil", "a/../../evil", "/etc/evil"] {
        let err = unpack(&escape(name)[..], dst.path(), None).unwrap_err();
        assert!(matches!(err, CopyError::Refused { .. }), "{name}: {err}");
    }
    // A symlink to the outside, then a file through it.
    let through = tar_of(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "x", outside.path()).unwrap();
        raw_entry(b, "x/evil", file_header(3, 0o644), b"bad");
    });
    let err = unpack(&through[..], dst.path(), None).unwrap_err();
    assert!(matches!(err, CopyError::Refused { .. }), "{err}");
    // A symlink already in the destination is not followed either.
    let dst2 = tempfile::tempdir().unwrap();
    symlink(outside.path(), dst2.path().join("x")).unwrap();
    assert!(unpack(&escape("x/evil")[..], dst2.path(), None).is_err());
    // A file over an existing symlink replaces the link, not its target.
    let target = outside.path().join("victim");
    fs::write(&target, "safe").unwrap();
    symlink(&target, dst2.path().join("victim")).unwrap();
    unpack(&escape("victim")[..], dst2.path(), None).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "safe");
    assert_eq!(
        fs::read_to_string(dst2.path().join("victim")).unwrap(),
        "bad"
    );
    assert!(
        fs::read_dir(outside.path()).unwrap().count() == 1,
        "nothing new outside"
    );
}

#[test]
fn devices_hard_links_and_set_id_bits_are_refused_or_dropped() {
    let dst = tempfile::tempdir().unwrap();
    let device = tar_of(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_size(0);
        raw_entry(b, "null", h, b"");
    });
    assert!(unpack(&device[..], dst.path(), None).is_err());
    let hard = tar_of(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, "passwd", "/etc/passwd").unwrap();
    });
    assert!(unpack(&hard[..], dst.path(), None).is_err());
    let setuid = tar_of(|b| raw_entry(b, "su", file_header(2, 0o4755), b"#!"));
    unpack(&setuid[..], dst.path(), None).unwrap();
    assert_eq!(
        fs::metadata(dst.path().join("su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert!(unpack(&setuid[..], dst.path(), Some("a/b")).is_err());
    assert!(matches!(
        unpack(&setuid[..], &dst.path().join("su"), None),
        Err(CopyError::NotADirectory { .. })
    ));
}

#[test]
fn docker_cp_rule_into_a_directory_or_as_a_new_name() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    fs::write(src.path().join("d/f"), "x").unwrap();
    let mut stream = Vec::new();
    pack(&src.path().join("d"), &mut stream).unwrap();
    let dst = tempfile::tempdir().unwrap();
    unpack_to(&stream[..], dst.path()).unwrap();
    assert!(dst.path().join("d/f").is_file());
    unpack_to(&stream[..], &dst.path().join("new")).unwrap();
    assert!(dst.path().join("new/f").is_file());
    assert!(unpack_to(&stream[..], &dst.path().join("missing/new")).is_err());
    let two = tar_of(|b| {
        raw_entry(b, "a", file_header(1, 0o644), b"a");
        raw_entry(b, "b", file_header(1, 0o644), b"b");
    });
    assert!(unpack_to(&two[..], &dst.path().join("merged")).is_err());
    unpack_to(&two[..], dst.path()).unwrap();
}

/// What `tar -C DIR -cf - .` (GNU tar, the documented way to feed `vm cp -`) writes: a
/// `./` entry for the directory itself, then `./name` entries.
fn real_tar_of_contents(dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[test]
fn a_stream_of_a_directorys_contents_lands_in_the_destination() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    fs::write(src.path().join("sub/f"), "x").unwrap();
    fs::write(src.path().join("top"), "y").unwrap();
    let stream = real_tar_of_contents(src.path());
    let dst = tempfile::tempdir().unwrap();
    fs::set_permissions(dst.path(), fs::Permissions::from_mode(0o750)).unwrap();
    let got = unpack(&stream[..], dst.path(), None).unwrap();
    assert_eq!((got.files, got.dirs), (2, 1));
    assert_eq!(fs::read_to_string(dst.path().join("sub/f")).unwrap(), "x");
    assert_eq!(fs::read_to_string(dst.path().join("top")).unwrap(), "y");
    // The `./` entry names the destination itself: it is left as it was.
    let mode = fs::metadata(dst.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o750);
    // A renamed copy is one packed entry: a stream of contents has no name to replace.
    let err = unpack(&stream[..], dst.path(), Some("new")).unwrap_err();
    assert!(matches!(err, CopyError::Refused { .. }), "{err}");
}

#[test]
fn a_pax_global_header_is_skipped() {
    // `git archive` starts its stream with one (the commit id, as a comment).
    let stream = tar_of(|b| {
        let record = b"52 comment=0123456789012345678901234567890123456789\n";
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XGlobalHeader);
        h.set_size(record.len() as u64);
        raw_entry(b, "pax_global_header", h, record);
        raw_entry(b, "src/main.rs", file_header(2, 0o644), b"fn");
    });
    let dst = tempfile::tempdir().unwrap();
    let got = unpack(&stream[..], dst.path(), None).unwrap();
    assert_eq!(got.files, 1);
    assert_eq!(
        fs::read_to_string(dst.path().join("src/main.rs")).unwrap(),
        "fn"
    );
    assert!(!dst.path().join("pax_global_header").exists());
}

fn mtime_of(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().mtime()
}

fn set_mtime(path: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let f = fs::File::open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

#[test]
fn directories_keep_their_modification_times() {
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("proj");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("sub/f"), "x").unwrap();
    set_mtime(&tree.join("sub/f"), 1_500_000_000);
    set_mtime(&tree.join("sub"), 1_400_000_000);
    set_mtime(&tree, 1_300_000_000);
    let mut stream = Vec::new();
    pack(&tree, &mut stream).unwrap();
    let dst = tempfile::tempdir().unwrap();
    unpack(&stream[..], dst.path(), None).unwrap();
    let out = dst.path().join("proj");
    assert_eq!(mtime_of(&out.join("sub/f")), 1_500_000_000);
    assert_eq!(mtime_of(&out.join("sub")), 1_400_000_000);
    assert_eq!(mtime_of(&out), 1_300_000_000);
}

/// Packs a tree with read-only directories (a Go module cache, say: directories 0555 with
/// files in them) inside `dir` and unpacks it there again.
fn copy_read_only_tree(dir: &Path) {
    let tree = dir.join("mod");
    fs::create_dir_all(tree.join("pkg")).unwrap();
    fs::write(tree.join("pkg/go.mod"), "module x\n").unwrap();
    fs::set_permissions(tree.join("pkg"), fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o555)).unwrap();
    let mut stream = Vec::new();
    pack(&tree, &mut stream).unwrap();
    let dst = dir.join("dst");
    fs::create_dir(&dst).unwrap();
    unpack(&stream[..], &dst, None).unwrap();
    let out = dst.join("mod");
    assert_eq!(
        fs::read_to_string(out.join("pkg/go.mod")).unwrap(),
        "module x\n"
    );
    for d in [out.join("pkg"), out.clone()] {
        let mode = fs::metadata(&d).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o555, "{}", d.display());
    }
    // Under a new name too (staged beside it, then moved into place).
    let renamed = dir.join("renamed");
    unpack_to(&stream[..], &renamed).unwrap();
    assert_eq!(
        fs::read_to_string(renamed.join("pkg/go.mod")).unwrap(),
        "module x\n"
    );
    let mode = fs::metadata(&renamed).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o555);
}

/// [`copy_read_only_tree`] re-run as an ordinary user by the test below (root writes into
/// a read-only directory anyway); does nothing without its input.
#[test]
fn read_only_directory_child() {
    if let Ok(dir) = std::env::var("BANGER_TEST_COPY_DIR") {
        copy_read_only_tree(Path::new(&dir));
        println!("COPIED-READ-ONLY");
    }
}

#[test]
fn a_read_only_directory_is_copied_with_its_contents() {
    use std::os::unix::fs::{MetadataExt, chown};
    let dir = tempfile::tempdir().unwrap();
    if fs::metadata(dir.path()).unwrap().uid() != 0 {
        return copy_read_only_tree(dir.path());
    }
    let nobody = 65534;
    chown(dir.path(), Some(nobody), Some(nobody)).unwrap();
    let out = banger_system::testkit::rerun_test_as(
        &banger_system::testkit::test_name(module_path!(), "read_only_directory_child"),
        nobody,
        &[("BANGER_TEST_COPY_DIR", &dir.path())],
    );
    assert!(out.contains("COPIED-READ-ONLY"), "{out}");
}

#[test]
fn directories_made_before_a_refused_entry_keep_their_modes() {
    let stream = tar_of(|b| {
        raw_entry(b, "d", dir_header(0o750), b"");
        raw_entry(b, "../evil", file_header(3, 0o644), b"bad");
    });
    let dst = tempfile::tempdir().unwrap();
    let err = unpack(&stream[..], dst.path(), None).unwrap_err();
    assert!(matches!(err, CopyError::Refused { .. }), "{err}");
    let mode = fs::metadata(dst.path().join("d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
}

#[test]
fn a_destination_ending_in_a_slash_is_a_directory() {
    // docker cp's rule: a file copied to a missing `dir/` is an error, not a file `dir`;
    // a directory copied there is made under that name.
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("notes"), "hi").unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    fs::write(src.path().join("d/f"), "x").unwrap();
    let (mut file, mut dir) = (Vec::new(), Vec::new());
    pack(&src.path().join("notes"), &mut file).unwrap();
    pack(&src.path().join("d"), &mut dir).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let slash = |name: &str| PathBuf::from(format!("{}/{name}/", dst.path().display()));

    let err = unpack_to(&file[..], &slash("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!dst.path().join("missing").exists());
    unpack_to(&dir[..], &slash("made")).unwrap();
    assert_eq!(fs::read_to_string(dst.path().join("made/f")).unwrap(), "x");
    // An existing file named with a slash is not a directory: left as it was.
    fs::write(dst.path().join("kept"), "mine").unwrap();
    assert!(matches!(
        unpack_to(&file[..], &slash("kept")),
        Err(CopyError::NotADirectory { .. })
    ));
    assert_eq!(fs::read_to_string(dst.path().join("kept")).unwrap(), "mine");
}

#[test]
fn files_whose_size_is_not_their_length_pack_as_read() {
    // procfs says 0 bytes and gives more: the header must say what was written, or the
    // stream's next header is read from the middle of the text.
    let dst = tempfile::tempdir().unwrap();
    for file in ["/proc/self/status", "/proc/cpuinfo"] {
        let mut stream = Vec::new();
        pack(Path::new(file), &mut stream).unwrap();
        unpack_to(&stream[..], dst.path()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = Path::new(file).file_name().unwrap();
        let got = fs::read_to_string(dst.path().join(name)).unwrap();
        assert!(got.contains(':') && got.ends_with('\n'), "{file}: {got:?}");
    }
}

#[test]
fn a_file_that_shrinks_while_packed_is_an_error_not_a_broken_stream() {
    let mut short = pack::Exact::new(&b"abc"[..], 5, Path::new("/var/log/x"));
    let mut out = Vec::new();
    let err = io::copy(&mut short, &mut out).unwrap_err();
    assert!(err.to_string().contains("/var/log/x"), "{err}");
    // A file that grew is cut at the length it had when it was looked at.
    let mut long = pack::Exact::new(&b"abcdef"[..], 3, Path::new("/x"));
    let mut out = Vec::new();
    io::copy(&mut long, &mut out).unwrap();
    assert_eq!(out, b"abc");
}

#[test]
fn a_fifo_in_a_tree_is_packed_for_the_receiver_to_refuse() {
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("run");
    fs::create_dir(&tree).unwrap();
    let fifo = tree.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut stream = Vec::new();
    pack(&tree, &mut stream).unwrap();
    let mut archive = tar::Archive::new(&stream[..]);
    let kinds: Vec<_> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("run/pipe".to_string(), tar::EntryType::Fifo)),
        "{kinds:?}"
    );
    let dst = tempfile::tempdir().unwrap();
    let err = unpack(&stream[..], dst.path(), None).unwrap_err();
    assert!(err.to_string().contains("only files"), "{err}");
}

#[test]
fn a_socket_in_a_tree_is_left_out() {
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("run");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("pidfile"), "1\n").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(tree.join("app.sock")).unwrap();
    let mut stream = Vec::new();
    pack(&tree, &mut stream).unwrap();
    let dst = tempfile::tempdir().unwrap();
    unpack(&stream[..], dst.path(), None).unwrap();
    assert!(dst.path().join("run/pidfile").is_file());
    assert!(!dst.path().join("run/app.sock").exists());
}

#[test]
fn a_gnu_sparse_file_from_tar_s_is_a_file() {
    // `tar -S` (GNU tar) writes files with holes as sparse entries.
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("disk.img");
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(&file).unwrap();
        f.write_at(b"head", 0).unwrap();
        f.write_at(b"tail", 3 << 20).unwrap();
    }
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .args(["-S", "-cf", "-", "disk.img"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dst = tempfile::tempdir().unwrap();
    let got = unpack(&out.stdout[..], dst.path(), None).unwrap();
    assert_eq!(got.files, 1);
    assert_eq!(
        fs::read(dst.path().join("disk.img")).unwrap(),
        fs::read(&file).unwrap()
    );
}

#[test]
fn a_missing_destination_directory_is_called_missing() {
    let dst = tempfile::tempdir().unwrap();
    let stream = tar_of(|b| raw_entry(b, "f", file_header(1, 0o644), b"x"));
    let err = unpack_to(&stream[..], &dst.path().join("missing/new")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("missing"), "{text}");
    let err = unpack(&stream[..], &dst.path().join("gone"), None).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_refused_copy_under_a_new_name_leaves_nothing_there() {
    // A guest sends a tree, then an entry that climbs out: the new name must not hold
    // half of the tree afterwards, and no staging is left beside it.
    let stream = tar_of(|b| {
        raw_entry(b, "tree", dir_header(0o755), b"");
        raw_entry(b, "tree/a", file_header(1, 0o644), b"a");
        raw_entry(b, "tree/../../evil", file_header(3, 0o644), b"bad");
    });
    let dst = tempfile::tempdir().unwrap();
    let err = unpack_to(&stream[..], &dst.path().join("new")).unwrap_err();
    assert!(matches!(err, CopyError::Refused { .. }), "{err}");
    let left: Vec<_> = fs::read_dir(dst.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // A file under a new name replaces an old file only once it is whole.
    fs::write(dst.path().join("notes"), "old").unwrap();
    let broken = tar_of(|b| raw_entry(b, "notes", file_header(3, 0o644), b"new"));
    let err = unpack_to(&broken[..1000], &dst.path().join("notes")).unwrap_err();
    assert!(
        matches!(err, CopyError::Write { .. } | CopyError::Read(_)),
        "{err}"
    );
    assert_eq!(fs::read_to_string(dst.path().join("notes")).unwrap(), "old");
    assert_eq!(fs::read_dir(dst.path()).unwrap().count(), 1);
    // And a whole one does, errors naming the destination, not a staging directory.
    unpack_to(&broken[..], &dst.path().join("notes")).unwrap();
    assert_eq!(fs::read_to_string(dst.path().join("notes")).unwrap(), "new");
    let tree = tar_of(|b| {
        raw_entry(b, "d", dir_header(0o755), b"");
    });
    let err = unpack_to(&tree[..], &dst.path().join("notes")).unwrap_err();
    assert!(!format!("{err:?}").contains(".banger-cp"), "{err:?}");
    assert_eq!(fs::read_dir(dst.path()).unwrap().count(), 1);
}
