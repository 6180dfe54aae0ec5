use std::fs;
use std::io::Seek;
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

/// Where `file`'s data is, by `SEEK_DATA`/`SEEK_HOLE` (its own walk, not the one under
/// test); a filesystem that cannot tell reports the whole file as data.
fn data_ranges(file: &fs::File) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let len = file.metadata().unwrap().len() as libc::off_t;
    let seek = |at: libc::off_t, whence| {
        // SAFETY: lseek on a descriptor `file` owns for this call; no memory is passed.
        let got = unsafe { libc::lseek(file.as_raw_fd(), at, whence) };
        (got >= 0).then_some(got)
    };
    let (mut ranges, mut at) = (Vec::new(), 0);
    while at < len {
        // ENXIO: no data past `at`.
        let Some(start) = seek(at, libc::SEEK_DATA) else {
            break;
        };
        let end = seek(start, libc::SEEK_HOLE).unwrap_or(len);
        ranges.push((start as u64, end as u64));
        at = end;
    }
    ranges
}

/// Whether two files hold the same bytes. Both read as zeros wherever neither has data, so
/// only their data is compared, a MiB at a time: a 4 GiB hole is not read through.
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (a, b) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    if a.metadata().unwrap().len() != b.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut ranges = data_ranges(&a);
    ranges.extend(data_ranges(&b));
    for (start, end) in ranges {
        let mut at = start;
        while at < end {
            let n = (end - at).min(x.len() as u64) as usize;
            a.read_exact_at(&mut x[..n], at).unwrap();
            b.read_exact_at(&mut y[..n], at).unwrap();
            if x[..n] != y[..n] {
                return false;
            }
            at += n as u64;
        }
    }
    true
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

#[test]
fn the_comparison_sees_data_on_either_side_of_a_hole() {
    // `same_bytes` reads only data: it must still tell data from a hole, either way round.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    sparse_file(&a, 4 * GIB, &[(3 * GIB, b"x")]);
    sparse_file(&b, 4 * GIB, &[]);
    assert!(!same_bytes(&a, &b));
    assert!(!same_bytes(&b, &a));
    sparse_file(&b, 4 * GIB, &[(3 * GIB, b"y")]);
    assert!(!same_bytes(&a, &b));
    sparse_file(&b, 4 * GIB, &[(3 * GIB, b"x")]);
    assert!(same_bytes(&a, &b));
    sparse_file(&b, 4 * GIB + 1, &[(3 * GIB, b"x")]);
    assert!(!same_bytes(&a, &b));
}
