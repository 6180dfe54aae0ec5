//! Our newc writer checked by the real `cpio`: list, extract, compare.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use banger_images::cpio::CpioBuilder;

fn sample(src: &std::path::Path) -> CpioBuilder {
    let mut b = CpioBuilder::new();
    b.dir("etc", 0o755).unwrap();
    b.dir("tmp", 0o1777).unwrap();
    b.dir("root", 0o700).unwrap();
    b.file_bytes("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n")
        .unwrap();
    b.file_bytes("empty", 0o600, Vec::new()).unwrap();
    // Sizes around the 4-byte padding boundary.
    for n in 1..=5 {
        b.file_bytes(format!("pad/f{n}"), 0o640, vec![b'x'; n])
            .unwrap();
    }
    b.file_from("bin/tool", 0o755, src).unwrap();
    b.symlink("bin/sh", "tool").unwrap();
    b.symlink("sbin", "bin").unwrap();
    b.symlink("etc/mtab", "/proc/mounts").unwrap();
    b.char_device("dev/console", 0o600, 5, 1).unwrap();
    b
}

#[test]
fn real_cpio_lists_and_extracts_what_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tool-src");
    let tool: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &tool).unwrap();
    let archive = dir.path().join("initrd.cpio");
    let written = sample(&src)
        .write_to(std::fs::File::create(&archive).unwrap())
        .unwrap();
    assert_eq!(written, std::fs::metadata(&archive).unwrap().len());
    assert_eq!(written % 4, 0);

    // List: parents precede children, and the kernel's format markers are right.
    let out = Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} missing from {names:?}"))
    };
    assert!(pos("bin") < pos("bin/tool") && pos("bin") < pos("bin/sh"));
    assert!(pos("dev") < pos("dev/console") && pos("pad") < pos("pad/f1"));
    assert_eq!(names.len(), 18, "{names:?}");

    // Extract with the real tool and compare contents, modes and link targets.
    let out_dir = dir.path().join("x");
    std::fs::create_dir(&out_dir).unwrap();
    let status = Command::new("cpio")
        .args(["-idmv", "--quiet", "--no-absolute-filenames"])
        .current_dir(&out_dir)
        .stdin(std::fs::File::open(&archive).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let x = |p: &str| out_dir.join(p);
    assert_eq!(std::fs::read(x("bin/tool")).unwrap(), tool);
    assert_eq!(
        std::fs::read_to_string(x("etc/passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    for n in 1..=5 {
        assert_eq!(
            std::fs::read(x(&format!("pad/f{n}"))).unwrap(),
            vec![b'x'; n]
        );
    }
    assert_eq!(std::fs::read(x("empty")).unwrap(), b"");
    let mode = |p: &str| {
        std::fs::symlink_metadata(x(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o755);
    assert_eq!(mode("etc/passwd"), 0o644);
    assert_eq!(mode("empty"), 0o600);
    assert_eq!(mode("pad/f3"), 0o640);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("root"), 0o700);
    assert_eq!(
        std::fs::read_link(x("bin/sh")).unwrap().to_str(),
        Some("tool")
    );
    assert_eq!(std::fs::read_link(x("sbin")).unwrap().to_str(), Some("bin"));
    assert_eq!(
        std::fs::read_link(x("etc/mtab")).unwrap().to_str(),
        Some("/proc/mounts")
    );
    let console = std::fs::symlink_metadata(x("dev/console")).unwrap();
    assert!(console.file_type().is_char_device());
    assert_eq!(console.rdev(), libc_makedev(5, 1));
    assert_eq!(console.uid(), 0);
}

/// Linux's dev_t encoding for small major/minor numbers.
fn libc_makedev(major: u64, minor: u64) -> u64 {
    (major << 8) | minor
}

#[test]
fn headers_carry_owner_root_inode_numbers_and_link_counts() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s");
    std::fs::write(&src, b"abc").unwrap();
    let mut out = Vec::new();
    sample(&src).write_to(&mut out).unwrap();
    // Walk the headers ourselves: magic, fields, padding, trailer.
    let mut at = 0;
    let mut inodes = Vec::new();
    loop {
        assert_eq!(&out[at..at + 6], b"070701", "bad magic at {at}");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&out[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap()
        };
        let (ino, mode, uid, gid, nlink, size, namesize) = (
            field(0),
            field(1),
            field(2),
            field(3),
            field(4),
            field(6),
            field(11),
        );
        let name = std::str::from_utf8(&out[at + 110..at + 110 + namesize as usize - 1])
            .unwrap()
            .to_string();
        assert_eq!(out[at + 110 + namesize as usize - 1], 0);
        assert_eq!((uid, gid), (0, 0), "{name}");
        at = (at + 110 + namesize as usize).next_multiple_of(4);
        at = (at + size as usize).next_multiple_of(4);
        if name == "TRAILER!!!" {
            assert_eq!((ino, mode, size), (0, 0, 0));
            break;
        }
        inodes.push(ino);
        if name == "pad" {
            assert_eq!(nlink, 2, "a directory without subdirectories");
        }
        if name == "bin/tool" {
            assert_eq!((mode & 0o170000, nlink), (0o100000, 1));
        }
    }
    assert_eq!(at, out.len());
    let mut unique = inodes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), inodes.len(), "inode numbers must be unique");
}
