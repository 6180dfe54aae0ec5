//! bzImage → vmlinux on synthesized kernels, one per payload codec.

use crate::support;

use banger_images::kernel::{Codec, KernelError, extract_vmlinux};
use support::{bzimage, fake_vmlinux, gzip, lz4_legacy, xz, zstd, zstd_raw_frame};

fn roundtrip(codec: Codec, compress: fn(&[u8]) -> Vec<u8>, elf_size: usize) {
    for (pvh, setup_sects) in [(true, 27u8), (false, 0u8)] {
        let elf = fake_vmlinux(pvh, elf_size);
        let image = bzimage(&compress(&elf), elf.len(), setup_sects);
        let v = extract_vmlinux(&image).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!(v.codec, codec);
        assert_eq!(v.has_pvh, pvh, "{codec:?} PVH note");
        assert!(
            v.elf == elf,
            "{codec:?}: the extracted ELF differs from the original"
        );
    }
}

#[test]
fn gzip_payload() {
    roundtrip(Codec::Gzip, gzip, 200_000);
}

#[test]
fn xz_payload() {
    roundtrip(Codec::Xz, xz, 200_000);
}

#[test]
fn lz4_payload_spanning_several_legacy_chunks() {
    // More than 8 MiB: the legacy frame needs two chunks, as for a real kernel.
    roundtrip(Codec::Lz4, lz4_legacy, 9 << 20);
}

#[test]
fn zstd_payload() {
    roundtrip(Codec::Zstd, zstd, 200_000);
    roundtrip(Codec::Zstd, zstd_raw_frame, 300_000);
}

#[test]
fn unsupported_and_unknown_codecs_are_named() {
    let elf = fake_vmlinux(true, 1000);
    let bz2 = bzimage(b"BZh91AY&SY-not-really", elf.len(), 4);
    let err = extract_vmlinux(&bz2).unwrap_err();
    assert!(
        matches!(err, KernelError::UnsupportedCodec("bzip2")),
        "{err}"
    );
    assert!(err.to_string().contains("bzip2"));
    let lzma = bzimage(&[0x5d, 0, 0, 0x80, 0], elf.len(), 4);
    assert!(matches!(
        extract_vmlinux(&lzma),
        Err(KernelError::UnsupportedCodec("lzma"))
    ));
    let junk = bzimage(b"\x00\x11\x22\x33junk", elf.len(), 4);
    assert!(matches!(
        extract_vmlinux(&junk),
        Err(KernelError::UnknownCodec(_))
    ));
}

#[test]
fn truncated_and_garbage_inputs_are_errors_not_panics() {
    let elf = fake_vmlinux(true, 100_000);
    for (name, compress) in [
        ("gzip", gzip as fn(&[u8]) -> Vec<u8>),
        ("xz", xz),
        ("lz4", lz4_legacy),
        ("zstd", zstd),
    ] {
        let payload = compress(&elf);
        // The compressed stream cut short (header still consistent).
        for cut in [payload.len() / 2, payload.len() - 1, 8] {
            let image = bzimage(&payload[..cut], elf.len(), 4);
            assert!(
                extract_vmlinux(&image).is_err(),
                "{name} cut at {cut} was accepted"
            );
        }
        // The recorded size disagrees with the stream.
        let image = bzimage(&payload, elf.len() + 1, 4);
        assert!(
            extract_vmlinux(&image).is_err(),
            "{name} with a wrong size was accepted"
        );
        // Flipped bytes in the middle.
        let mut bad = payload.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 16] {
            *b ^= 0xa5;
        }
        let _ = extract_vmlinux(&bzimage(&bad, elf.len(), 4)); // must not panic
        // The whole file cut short: the header points past the end.
        let whole = bzimage(&payload, elf.len(), 4);
        for cut in [0, 100, 0x250, whole.len() / 2, whole.len() - 200] {
            assert!(
                extract_vmlinux(&whole[..cut]).is_err(),
                "{name} file cut at {cut} was accepted"
            );
        }
    }
    // Decompresses fine but is not an ELF.
    let image = bzimage(&gzip(b"just text, no ELF here"), 22, 4);
    assert!(matches!(
        extract_vmlinux(&image),
        Err(KernelError::NotElf(_))
    ));
    // A wrong header signature and an old boot protocol.
    let mut image = bzimage(&gzip(&elf), elf.len(), 4);
    image[0x206] = 0x04;
    assert!(matches!(
        extract_vmlinux(&image),
        Err(KernelError::NotBzImage(_))
    ));
    image[0x202] = b'X';
    assert!(matches!(
        extract_vmlinux(&image),
        Err(KernelError::NotBzImage(_))
    ));
    // Deterministic pseudo-random garbage of many sizes.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in (0..5000).step_by(97) {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(extract_vmlinux(&junk).is_err());
    }
}
