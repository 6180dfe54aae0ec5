//! Turning an x86 `bzImage` into the uncompressed ELF `vmlinux` that Firecracker
//! (and QEMU's fast PVH path) boot.
//!
//! A bzImage is real-mode setup code followed by a small decompressor; the kernel
//! proper is the compressed *payload* the setup header points at. The kernel build
//! appends the uncompressed size (u32, little endian) to every payload, which we
//! use both to bound decompression and to check the result.

use std::io::Read;

use crate::elf;

/// Offsets in the x86 boot protocol's setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS: usize = 0x1f1;
const HEADER_MAGIC_AT: usize = 0x202;
const PROTOCOL_VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
const HEADER_END: usize = 0x250;
/// payload_offset/payload_length exist since boot protocol 2.08.
const MIN_PROTOCOL: u16 = 0x0208;
/// A sanity cap for the decompressed kernel.
const MAX_VMLINUX: usize = 1 << 30;
/// Each chunk of the lz4 "legacy" frame decompresses to at most 8 MiB.
const LZ4_LEGACY_CHUNK: usize = 8 << 20;
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The file does not carry an x86 boot setup header.
    #[error("not an x86 bzImage: {0}")]
    NotBzImage(String),
    /// The payload is compressed with something we do not decode.
    #[error(
        "the bzImage payload is compressed with {0}, which banger cannot decompress (supported: gzip, xz, lz4, zstd); use a kernel built with one of those"
    )]
    UnsupportedCodec(&'static str),
    /// The payload's first bytes match no known compressor.
    #[error(
        "the bzImage payload starts with unknown bytes {0}; it is not a compressed kernel banger recognises"
    )]
    UnknownCodec(String),
    /// Decompression failed.
    #[error("cannot decompress the {codec} bzImage payload: {reason}")]
    Decompress { codec: &'static str, reason: String },
    /// The decompressed size differs from what the build recorded.
    #[error(
        "the {codec} bzImage payload decompressed to {got} bytes, but the kernel build recorded {expected}; the bzImage is damaged"
    )]
    SizeMismatch {
        codec: &'static str,
        expected: u64,
        got: u64,
    },
    /// The decompressed payload is not an ELF file.
    #[error("the decompressed bzImage payload is not an ELF vmlinux: {0}")]
    NotElf(String),
}

/// Payload compression, detected from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Xz,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Xz => "xz",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// The result of [`extract_vmlinux`].
#[derive(Debug)]
pub struct Vmlinux {
    /// The ELF image, exactly as the kernel build compressed it.
    pub elf: Vec<u8>,
    pub codec: Codec,
    /// Whether the ELF carries the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY).
    pub has_pvh: bool,
}

/// Extract the uncompressed ELF kernel from a bzImage.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vmlinux, KernelError> {
    let payload = payload(bzimage)?;
    // The last four bytes are the uncompressed size appended by the kernel build.
    let (compressed, trailer) = payload.split_at(payload.len() - 4);
    let expected = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
    if expected == 0 || expected > MAX_VMLINUX {
        return Err(KernelError::NotBzImage(format!(
            "the recorded uncompressed size {expected} is implausible"
        )));
    }
    let codec = detect(compressed)?;
    let decompressed = decompress(codec, compressed, expected)?;
    // gzip's own trailer stores the size modulo 2^32 — the same number here.
    if decompressed.len() != expected {
        return Err(KernelError::SizeMismatch {
            codec: codec.name(),
            expected: expected as u64,
            got: decompressed.len() as u64,
        });
    }
    let has_pvh = elf::has_pvh_note(&decompressed).map_err(KernelError::NotElf)?;
    Ok(Vmlinux {
        elf: decompressed,
        codec,
        has_pvh,
    })
}

/// The compressed payload slice (including the 4-byte size trailer).
fn payload(image: &[u8]) -> Result<&[u8], KernelError> {
    if image.len() < HEADER_END {
        return Err(KernelError::NotBzImage(format!(
            "it is only {} bytes long",
            image.len()
        )));
    }
    if &image[HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4] != b"HdrS" {
        return Err(KernelError::NotBzImage(
            "the setup header signature \"HdrS\" is missing at 0x202".into(),
        ));
    }
    let version = u16::from_le_bytes([image[PROTOCOL_VERSION], image[PROTOCOL_VERSION + 1]]);
    if version < MIN_PROTOCOL {
        return Err(KernelError::NotBzImage(format!(
            "boot protocol {}.{:02} predates payload offsets (2.08)",
            version >> 8,
            version & 0xff
        )));
    }
    // By convention a setup_sects of 0 means 4.
    let setup_sects = match image[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let pm_start = (setup_sects + 1) * 512;
    let offset = read_u32(image, PAYLOAD_OFFSET);
    let length = read_u32(image, PAYLOAD_LENGTH);
    let start = pm_start.checked_add(offset);
    let end = start.and_then(|s| s.checked_add(length));
    match (start, end) {
        (Some(start), Some(end)) if end <= image.len() && length > 4 => Ok(&image[start..end]),
        _ => Err(KernelError::NotBzImage(format!(
            "the payload (offset {offset:#x}, length {length}) lies outside the {}-byte file",
            image.len()
        ))),
    }
}

fn read_u32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

fn detect(data: &[u8]) -> Result<Codec, KernelError> {
    let starts = |magic: &[u8]| data.starts_with(magic);
    if starts(&[0x1f, 0x8b]) {
        Ok(Codec::Gzip)
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Ok(Codec::Xz)
    } else if starts(&LZ4_LEGACY_MAGIC) {
        Ok(Codec::Lz4)
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Codec::Zstd)
    } else if starts(b"BZh") {
        Err(KernelError::UnsupportedCodec("bzip2"))
    } else if starts(&[0x5d, 0x00, 0x00]) {
        Err(KernelError::UnsupportedCodec("lzma"))
    } else if starts(&[0x89, b'L', b'Z', b'O']) {
        Err(KernelError::UnsupportedCodec("lzo"))
    } else {
        let head: Vec<String> = data.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Err(KernelError::UnknownCodec(head.join(" ")))
    }
}

fn decompress(codec: Codec, data: &[u8], expected: usize) -> Result<Vec<u8>, KernelError> {
    let fail = |reason: String| KernelError::Decompress {
        codec: codec.name(),
        reason,
    };
    // Read at most one byte beyond the expected size: enough to detect a mismatch
    // without letting a hostile payload expand without bound.
    let limit = expected as u64 + 1;
    let mut out = Vec::with_capacity(expected);
    let result = match codec {
        Codec::Gzip => flate2::read::GzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Xz => liblzma::read::XzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Zstd => match ruzstd::StreamingDecoder::new(data) {
            Ok(decoder) => decoder.take(limit).read_to_end(&mut out),
            Err(e) => return Err(fail(e.to_string())),
        },
        Codec::Lz4 => return lz4_legacy(data, expected).map_err(fail),
    };
    result.map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// The lz4 "legacy" frame (`lz4 -l`): magic, then chunks of
/// `u32-LE compressed length` + raw lz4 block, each at most 8 MiB uncompressed.
/// The magic may reappear between chunks (concatenated frames).
fn lz4_legacy(data: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(expected);
    let mut chunk = vec![0u8; LZ4_LEGACY_CHUNK];
    let mut rest = &data[LZ4_LEGACY_MAGIC.len()..];
    while !rest.is_empty() {
        let Some((len_bytes, tail)) = rest.split_first_chunk::<4>() else {
            return Err(format!("{} stray bytes at the end", rest.len()));
        };
        if *len_bytes == LZ4_LEGACY_MAGIC {
            rest = tail;
            continue;
        }
        let len = u32::from_le_bytes(*len_bytes) as usize;
        if len > tail.len() {
            return Err(format!(
                "a chunk claims {len} bytes but only {} remain (truncated)",
                tail.len()
            ));
        }
        let (block, tail) = tail.split_at(len);
        let n = lz4_flex::block::decompress_into(block, &mut chunk).map_err(|e| e.to_string())?;
        if out.len() + n > expected {
            return Err(format!("output exceeds the recorded {expected} bytes"));
        }
        out.extend_from_slice(&chunk[..n]);
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_unsigned_inputs_are_rejected() {
        assert!(matches!(
            extract_vmlinux(&[]),
            Err(KernelError::NotBzImage(_))
        ));
        assert!(matches!(
            extract_vmlinux(&[0u8; 4096]),
            Err(KernelError::NotBzImage(_))
        ));
    }

    #[test]
    fn codecs_are_detected_by_magic() {
        assert_eq!(detect(&[0x02, 0x21, 0x4c, 0x18, 0]).unwrap(), Codec::Lz4);
        assert!(matches!(
            detect(b"BZh91AY"),
            Err(KernelError::UnsupportedCodec("bzip2"))
        ));
        assert!(matches!(
            detect(b"\0\0\0\0"),
            Err(KernelError::UnknownCodec(_))
        ));
    }
}
