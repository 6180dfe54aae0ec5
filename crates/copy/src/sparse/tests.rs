use std::fs;
use std::io::{Read, Seek};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::{SyncOptions, pack, sync, unpack, unpack_to};

const GIB: u64 = 1 << 30;

/// `truncate -s SIZE path`, then `data` written at each offset.
fn sparse_file(path: &Path, size: u64, data: &[(u64, &[u8])]) {
    let f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (at, bytes) in data {
        f.write_at(bytes, *at).unwrap();
    }
}

/// Bytes the file takes on disk.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

/// Whether two files hold the same bytes (read a MiB at a time: they are large).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    if a.metadata().unwrap().len() != b.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        b.read_exact(&mut y[..n]).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
    }
}

/// Pack `path` into a file (not memory: a stream of a whole 4 GiB would not fit a test)
/// and hand back the stream, checking it is under `max` bytes.
fn packed_small(path: &Path, dir: &Path, max: u64) -> fs::File {
    let mut stream = tempfile::tempfile_in(dir).unwrap();
    pack(path, &mut stream).unwrap();
    let len = stream.metadata().unwrap().len();
    assert!(len < max, "{}: a {len}-byte stream", path.display());
    stream.rewind().unwrap();
    stream
}

#[test]
fn a_file_with_holes_crosses_as_its_data_and_lands_with_its_holes() {
    // `truncate -s 4G f; echo x >> f`, and a file with some data inside.
    let src = tempfile::tempdir().unwrap();
    let tail = src.path().join("tail.img");
    sparse_file(&tail, 4 * GIB, &[]);
    fs::OpenOptions::new()
        .append(true)
        .open(&tail)
        .unwrap()
        .write_at(b"x\n", 4 * GIB)
        .unwrap();
    // Under a new name (`vm cp f dev:/tmp/new`, and back the other way: both ends pack
    // and unpack with these functions).
    let dst = tempfile::tempdir().unwrap();
    let copy = dst.path().join("copy");
    let got = unpack_to(packed_small(&tail, dst.path(), 64 << 10), &copy).unwrap();
    assert_eq!(got.bytes, 4 * GIB + 2);
    assert!(same_bytes(&tail, &copy));
    assert!(allocated(&copy) < 1 << 20, "{} bytes", allocated(&copy));

    // Into a directory, keeping the name.
    let inside = src.path().join("inside.img");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 + 1).collect();
    sparse_file(
        &inside,
        256 << 20,
        &[(0, b"head"), (5 << 20, &data), ((256 << 20) - 3, b"end")],
    );
    unpack(
        packed_small(&inside, dst.path(), 256 << 10),
        dst.path(),
        None,
    )
    .unwrap();
    let kept = dst.path().join("inside.img");
    assert!(same_bytes(&inside, &kept));
    assert!(allocated(&kept) < 1 << 20, "{} bytes", allocated(&kept));
}

#[test]
fn holes_only_many_runs_and_a_sync_keep_their_shape() {
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    fs::create_dir(&tree).unwrap();
    // No data at all.
    sparse_file(&tree.join("empty.img"), GIB, &[]);
    // 60 runs: more than the entry's header holds, so extension headers follow it.
    let runs: Vec<(u64, Vec<u8>)> = (0..60u64)
        .map(|i| (i * (1 << 20) + 3, vec![i as u8 + 1; 5000]))
        .collect();
    let runs: Vec<(u64, &[u8])> = runs.iter().map(|(at, d)| (*at, &d[..])).collect();
    sparse_file(&tree.join("many.img"), 64 << 20, &runs);
    // Ends in data that is not a whole block.
    sparse_file(
        &tree.join("odd.img"),
        (8 << 20) + 77,
        &[((8 << 20) + 70, b"7 bytes")],
    );

    let dst = tempfile::tempdir().unwrap();
    // 60 runs of 5000 bytes, each across two 4 KiB blocks of data on disk.
    let max = 60 * 8192 + (64 << 10);
    unpack(packed_small(&tree, dst.path(), max), dst.path(), None).unwrap();
    // And as `vm sync` applies a guest's tree.
    let synced = tempfile::tempdir().unwrap();
    let opts = SyncOptions {
        delete: false,
        max_bytes: 1 << 20,
    };
    sync::receive(packed_small(&tree, dst.path(), max), synced.path(), &opts).unwrap();
    for name in ["empty.img", "many.img", "odd.img"] {
        for copy in [dst.path().join("tree").join(name), synced.path().join(name)] {
            assert!(same_bytes(&tree.join(name), &copy), "{}", copy.display());
            assert!(allocated(&copy) < 2 << 20, "{}", copy.display());
        }
    }
}

#[test]
fn gnu_tar_reads_the_sparse_entries() {
    // `vm cp dev:/disk.img - | tar -x`: the stream is GNU tar's own sparse format.
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("disk.img");
    let runs: Vec<(u64, &[u8])> = (0..30u64).map(|i| (i << 20, &b"data"[..])).collect();
    sparse_file(&file, 40 << 20, &runs);
    let dst = tempfile::tempdir().unwrap();
    let stream = packed_small(&file, dst.path(), 256 << 10);
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(dst.path())
        .arg("-xf")
        .arg("-")
        .stdin(stream)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let copy = dst.path().join("disk.img");
    assert!(same_bytes(&file, &copy));
    assert!(allocated(&copy) < 1 << 20, "{} bytes", allocated(&copy));
}

#[test]
fn a_file_without_holes_is_packed_as_a_plain_file() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("full");
    fs::write(&file, vec![0u8; 200_000]).unwrap();
    let mut stream = Vec::new();
    pack(&file, &mut stream).unwrap();
    let mut archive = tar::Archive::new(&stream[..]);
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
    assert_eq!(entry.size(), 200_000);
}
