//! Fixtures shared by the integration tests: tiny ELF files, bzImages, kernel
//! modules, real `.deb`s (dpkg-deb), a signing key (gpg) and an HTTP server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod archive;
pub mod http;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run a program, panicking with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A minimal x86_64 ELF executable: one PT_LOAD over the whole file, optional
/// PT_INTERP and PT_NOTE, followed by `body` bytes.
pub fn tiny_elf(
    e_type: u16,
    interp: Option<&str>,
    notes: &[(&[u8], u32, &[u8])],
    body: &[u8],
) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let mut note_bytes = Vec::new();
    for (name, n_type, desc) in notes {
        let mut n = name.to_vec();
        n.push(0);
        note_bytes.extend_from_slice(&(n.len() as u32).to_le_bytes());
        note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note_bytes.extend_from_slice(&n_type.to_le_bytes());
        note_bytes.extend_from_slice(&n);
        note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
        note_bytes.extend_from_slice(desc);
        note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
    }
    let interp_bytes = interp.map(|i| {
        let mut v = i.as_bytes().to_vec();
        v.push(0);
        v
    });
    let phnum = 1 + usize::from(interp.is_some()) + usize::from(!notes.is_empty());
    let mut offset = EHDR + phnum * PHDR;
    let interp_off = offset;
    offset += interp_bytes.as_ref().map_or(0, Vec::len);
    offset = offset.next_multiple_of(4);
    let note_off = offset;
    offset += note_bytes.len();
    let body_off = offset;
    let total = body_off + body.len();

    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&e_type.to_le_bytes());
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&0x100_0000u64.to_le_bytes()); // entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes());
    f.extend_from_slice(&(PHDR as u16).to_le_bytes());
    f.extend_from_slice(&(phnum as u16).to_le_bytes());
    f.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    f.extend_from_slice(&0u16.to_le_bytes()); // shnum
    f.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
    let mut phdr = |p_type: u32, off: usize, size: usize, align: u64| {
        f.extend_from_slice(&p_type.to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes()); // R+X
        f.extend_from_slice(&(off as u64).to_le_bytes());
        f.extend_from_slice(&(0x100_0000 + off as u64).to_le_bytes());
        f.extend_from_slice(&(0x100_0000 + off as u64).to_le_bytes());
        f.extend_from_slice(&(size as u64).to_le_bytes());
        f.extend_from_slice(&(size as u64).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
    };
    phdr(1, 0, total, 0x1000); // PT_LOAD
    if let Some(i) = &interp_bytes {
        phdr(3, interp_off, i.len(), 1); // PT_INTERP
    }
    if !notes.is_empty() {
        phdr(4, note_off, note_bytes.len(), 4); // PT_NOTE
    }
    if let Some(i) = &interp_bytes {
        f.extend_from_slice(i);
    }
    f.resize(note_off, 0);
    f.extend_from_slice(&note_bytes);
    f.extend_from_slice(body);
    assert_eq!(f.len(), total);
    f
}

/// A vmlinux-like ELF with (or without) the PVH note and a body of `size` bytes
/// of compressible but not trivial data.
pub fn fake_vmlinux(pvh: bool, size: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..size).map(|i| ((i * 7) ^ (i >> 9)) as u8).collect();
    let entry = 0x100_0000u32.to_le_bytes();
    let notes: Vec<(&[u8], u32, &[u8])> = if pvh {
        vec![(b"Linux", 6, b"6.1.0"), (b"Xen", 18, &entry)]
    } else {
        vec![(b"Linux", 6, b"6.1.0")]
    };
    tiny_elf(2, None, &notes, &body)
}

/// Wrap an already compressed payload in a bzImage: setup sectors, the `HdrS`
/// header with boot protocol 2.15, a stub before the payload, and the 4-byte
/// uncompressed size the kernel build appends to every payload.
pub fn bzimage(compressed: &[u8], uncompressed_len: usize, setup_sects: u8) -> Vec<u8> {
    let sects = if setup_sects == 0 {
        4
    } else {
        usize::from(setup_sects)
    };
    let pm_start = (sects + 1) * 512;
    let stub = 0x3c0;
    let payload_len = compressed.len() + 4;
    let mut img = vec![0u8; pm_start + stub];
    img[0x1f1] = setup_sects;
    img[0x1fe] = 0x55;
    img[0x1ff] = 0xaa;
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&(stub as u32).to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload_len as u32).to_le_bytes());
    img.extend_from_slice(compressed);
    img.extend_from_slice(&(uncompressed_len as u32).to_le_bytes());
    img.extend_from_slice(&[0xcc; 100]); // the rest of the decompressor
    img
}

pub fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02, 0x21, 0x4c, 0x18];
    for chunk in data.chunks(8 << 20) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// zstd with the real `zstd` tool when it is installed. ruzstd (our decoder)
/// cannot compress, so without the tool we write a valid zstd frame of raw
/// (stored) blocks by hand; it still exercises the frame and block decoder.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    if banger_system::runner::lookup_executable("zstd").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::write(&input, data).unwrap();
        run("zstd", &["-q", "-19", input.to_str().unwrap()]);
        return std::fs::read(dir.path().join("in.zst")).unwrap();
    }
    zstd_raw_frame(data)
}

/// A zstd frame with a 128 KiB window and raw blocks only.
pub fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 128 << 10;
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    out.push(0x00); // frame header descriptor: no checksum, window descriptor present
    out.push(7 << 3); // window = 2^(10+7) = 128 KiB
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(BLOCK).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let header = last | ((chunk.len() as u32) << 3); // block type 0 = raw
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out
}

/// A relocatable x86_64 ELF with a `.modinfo` section, like a kernel module.
pub fn fake_module(name: &str, depends: &[&str]) -> Vec<u8> {
    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let sec = obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    let info = format!(
        "license=GPL\0depends={}\0retpoline=Y\0intree=Y\0name={name}\0vermagic=6.1.0 SMP mod_unload\0",
        depends.join(",")
    );
    obj.append_section_data(sec, info.as_bytes(), 1);
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0xc3], 1);
    obj.write().unwrap()
}

/// Build a real `.deb` with `dpkg-deb` from `files` (relative path, mode, contents)
/// and `symlinks` (path, target). `compression` is dpkg-deb's `-Z` value.
pub fn build_deb(
    out: &Path,
    package: &str,
    compression: &str,
    files: &[(&str, u32, &[u8])],
    symlinks: &[(&str, &str)],
) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("DEBIAN")).unwrap();
    std::fs::write(
        root.path().join("DEBIAN/control"),
        format!("Package: {package}\nVersion: 1.0\nArchitecture: amd64\nMaintainer: banger tests <t@banger.invalid>\nDescription: test package\n"),
    )
    .unwrap();
    for (path, mode, contents) in files {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for (path, target) in symlinks {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &p).unwrap();
    }
    let z = format!("-Z{compression}");
    run(
        "dpkg-deb",
        &[
            "--root-owner-group",
            &z,
            "--build",
            root.path().to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    out.to_path_buf()
}

/// A static x86_64 program that prints busybox-style `--list` output: the host's
/// busybox (Debian package `busybox-static`).
pub fn static_busybox() -> PathBuf {
    for candidate in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(candidate);
        if p.is_file()
            && banger_images::elf::check_static_x86_64(&std::fs::read(p).unwrap()).is_ok()
        {
            return p.to_path_buf();
        }
    }
    panic!("these tests need a static busybox: apt-get install busybox-static");
}

/// A dynamically linked program from the host.
pub fn dynamic_program() -> PathBuf {
    let ls = Path::new("/bin/ls");
    assert!(banger_images::elf::check_static_x86_64(&std::fs::read(ls).unwrap()).is_err());
    ls.to_path_buf()
}
