//! Our `.deb` reader on packages built by the real `dpkg-deb`.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use banger_images::deb::{Compression, DebError, DebFile};

fn build(dir: &Path, compression: &str) -> std::path::PathBuf {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 255) as u8).collect();
    support::build_deb(
        &dir.join(format!("t-{compression}.deb")),
        "banger-test",
        compression,
        &[
            ("boot/vmlinuz-6.1.0-9-test", 0o644, b"kernel"),
            ("bin/busybox", 0o755, &big),
            ("lib/modules/6.1.0-9-test/kernel/a.ko", 0o644, b"module"),
        ],
        &[("bin/sh", "busybox")],
    )
}

fn check(compression: &str, expected: Compression) {
    let dir = tempfile::tempdir().unwrap();
    let deb = DebFile::open(&build(dir.path(), compression)).unwrap();
    assert_eq!(deb.compression(), expected);

    let all = dir.path().join("all");
    let unpacked = deb.extract_all(&all).unwrap();
    assert!(unpacked.contains(&"bin/busybox".into()), "{unpacked:?}");
    assert_eq!(
        std::fs::read(all.join("boot/vmlinuz-6.1.0-9-test")).unwrap(),
        b"kernel"
    );
    assert_eq!(
        std::fs::read(all.join("bin/busybox")).unwrap().len(),
        300_000
    );
    let mode = std::fs::metadata(all.join("bin/busybox"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(all.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );

    // Selective: only what is asked for lands on disk.
    let some = dir.path().join("some");
    let got = deb
        .extract_matching(&some, |p| p.starts_with("lib/modules"))
        .unwrap();
    let expected: Vec<std::path::PathBuf> = [
        "lib/modules",
        "lib/modules/6.1.0-9-test",
        "lib/modules/6.1.0-9-test/kernel",
        "lib/modules/6.1.0-9-test/kernel/a.ko",
    ]
    .iter()
    .map(Into::into)
    .collect();
    assert_eq!(got, expected);
    assert!(some.join("lib/modules/6.1.0-9-test/kernel/a.ko").is_file());
    assert!(!some.join("bin").exists());

    // Streaming: read an entry without unpacking.
    let mut seen = None;
    deb.for_each_data_entry(|p, e| {
        if p == Path::new("boot/vmlinuz-6.1.0-9-test") {
            let mut s = String::new();
            std::io::Read::read_to_string(e, &mut s)?;
            seen = Some(s);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.as_deref(), Some("kernel"));
}

#[test]
fn xz_deb() {
    check("xz", Compression::Xz);
}

#[test]
fn gzip_deb() {
    check("gzip", Compression::Gzip);
}

#[test]
fn zstd_deb() {
    check("zstd", Compression::Zstd);
}

#[test]
fn uncompressed_deb() {
    check("none", Compression::None);
}

#[test]
fn truncated_or_corrupt_debs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "xz");
    let bytes = std::fs::read(&path).unwrap();

    let cut = dir.path().join("cut.deb");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    assert!(matches!(DebFile::open(&cut), Err(DebError::NotDeb { .. })));

    // Damage the compressed data but keep the container intact.
    let mut damaged = bytes.clone();
    let data = bytes.windows(8).position(|w| w == b"data.tar").unwrap() + 60;
    for b in &mut damaged[data + 40..data + 140] {
        *b ^= 0x5a;
    }
    let bad = dir.path().join("bad.deb");
    std::fs::write(&bad, &damaged).unwrap();
    let deb = DebFile::open(&bad).unwrap();
    let err = deb.extract_all(&dir.path().join("bad")).unwrap_err();
    assert!(
        matches!(err, DebError::Data { .. } | DebError::Entry { .. }),
        "{err}"
    );

    let missing = DebFile::open(&dir.path().join("nope.deb")).unwrap_err();
    assert!(matches!(missing, DebError::Io { .. }));
}
