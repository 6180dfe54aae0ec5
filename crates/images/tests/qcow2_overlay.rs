//! The native qcow2 overlay writer, checked by QEMU's own tools: `qemu-img check` finds no
//! error or leak, `qemu-img info` reads the header as written, and `qemu-io` reads the
//! backing file through the overlay and writes into it without touching the backing file.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use banger_images::vmdisk;

fn tool(name: &str, args: &[&str]) -> std::process::Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is missing ({e}): run scripts/install-deps (qemu-utils)")
    })
}

fn ok(name: &str, args: &[&str]) -> String {
    let out = tool(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn info(path: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(
        "qemu-img",
        &["info", "--output=json", path.to_str().unwrap()],
    ))
    .unwrap()
}

fn check(path: &Path) {
    let out = ok(
        "qemu-img",
        &["check", "--output=json", path.to_str().unwrap()],
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report.get("corruptions").is_none(), "{report}");
    assert!(report.get("leaks").is_none(), "{report}");
    assert_eq!(report["check-errors"], 0, "{report}");
}

fn io(image: &Path, format: &str, command: &str) -> String {
    let out = ok(
        "qemu-io",
        &["-f", format, "-c", command, image.to_str().unwrap()],
    );
    assert!(
        !out.contains("Pattern verification failed"),
        "{command}: {out}"
    );
    out
}

#[test]
fn an_overlay_on_a_raw_file_reads_through_and_takes_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.raw");
    let f = std::fs::File::create(&base).unwrap();
    f.set_len(4 << 20).unwrap();
    f.write_all_at(&[0x11; 1 << 20], 0).unwrap();
    let overlay = tmp.path().join("vm.qcow2");
    vmdisk::write_overlay(&overlay, &base, "raw", 1 << 30).unwrap();

    check(&overlay);
    let info = info(&overlay);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["virtual-size"], 1u64 << 30, "{info}");
    assert_eq!(info["cluster-size"], 65536, "{info}");
    assert_eq!(info["backing-filename"], base.to_str().unwrap(), "{info}");
    assert_eq!(info["backing-filename-format"], "raw", "{info}");
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1", "{info}");
    assert_eq!(
        info["format-specific"]["data"]["refcount-bits"], 16,
        "{info}"
    );
    // Small: header, refcount table and block, L1.
    assert!(std::fs::metadata(&overlay).unwrap().len() <= 4 << 16);

    // Reads come from the backing file (and zeros past its end) until written.
    io(&overlay, "qcow2", "read -P 0x11 0 1M");
    io(&overlay, "qcow2", "read -P 0 8M 1M");
    io(&overlay, "qcow2", "write -P 0x5a 64k 128k");
    io(&overlay, "qcow2", "write -P 0x6b 900M 64k");
    check(&overlay);
    io(&overlay, "qcow2", "read -P 0x11 0 64k");
    io(&overlay, "qcow2", "read -P 0x5a 64k 128k");
    io(&overlay, "qcow2", "read -P 0x6b 900M 64k");
    io(&base, "raw", "read -P 0x11 0 1M");
}

#[test]
fn overlays_chain_on_qcow2_and_large_sizes_get_a_larger_l1() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.raw");
    std::fs::File::create(&base)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    // 5 TiB: 10240 L1 entries, two clusters of L1 table.
    let big = tmp.path().join("big.qcow2");
    vmdisk::write_overlay(&big, &base, "raw", 5 << 40).unwrap();
    check(&big);
    assert_eq!(info(&big)["virtual-size"], 5u64 << 40);
    io(&big, "qcow2", "write -P 0x22 4T 64k");
    check(&big);
    io(&big, "qcow2", "read -P 0x22 4T 64k");

    // An overlay on a qcow2 gets its virtual size, and reads through the chain.
    let top = tmp.path().join("top.qcow2");
    let size = vmdisk::virtual_size(&big).unwrap();
    assert_eq!(size, 5 << 40);
    assert_eq!(vmdisk::virtual_size(&base).unwrap(), 1 << 20);
    vmdisk::write_overlay(&top, &big, "qcow2", size).unwrap();
    check(&top);
    let info = info(&top);
    assert_eq!(info["backing-filename-format"], "qcow2", "{info}");
    io(&top, "qcow2", "read -P 0x22 4T 64k");
    io(&top, "qcow2", "write -P 0x33 4T 4k");
    io(&big, "qcow2", "read -P 0x22 4T 64k");
}

#[test]
fn bad_requests_are_refused_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.qcow2");
    let long = tmp.path().join("b".repeat(1100));
    for (backing, format, size, words) in [
        (long.as_path(), "raw", 1u64 << 30, "backing file's name"),
        (
            Path::new("/b.img"),
            "vmdk",
            1 << 30,
            "neither raw nor qcow2",
        ),
        (Path::new("/b.img"), "raw", 1000, "multiple of 512"),
        (Path::new("/b.img"), "raw", 0, "multiple of 512"),
    ] {
        let e = vmdisk::write_overlay(&out, backing, format, size).unwrap_err();
        assert!(e.to_string().contains(words), "{e}");
        assert!(e.to_string().contains("x.qcow2"), "{e}");
    }
    // A refused request leaves no file, not even a temp one.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
