//! Does an ELF kernel carry the Xen PVH entry note QEMU needs to boot it directly?
//!
//! QEMU boots an uncompressed `vmlinux` through its PVH entry point, found in a `PT_NOTE`
//! segment as a note named `Xen` of type `XEN_ELFNOTE_PHYS32_ENTRY` (18). Kernels built
//! without `CONFIG_PVH` lack it and must be booted as a bzImage on `-M pc`. Only the headers
//! and note segments are read, not the whole (50+ MB) image.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_NOTE: u32 = 4;
/// Note segments of real kernels are a few hundred bytes; bound what a bad file can make us read.
const MAX_NOTE_SEGMENT: u64 = 1 << 20;
const MAX_PHNUM: u16 = 256;

/// `Ok(true)` if `path` is an ELF file with a PVH entry note, `Ok(false)` if it is not ELF
/// or has no such note.
pub fn has_pvh_note(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let mut ident = [0u8; 64];
    let n = read_up_to(&mut file, &mut ident)?;
    if n < 52 || ident[..4] != *b"\x7fELF" || ident[5] != 1 {
        return Ok(false); // not a little-endian ELF (a bzImage, for instance)
    }
    let is64 = match ident[4] {
        1 => false,
        2 if n == 64 => true,
        _ => return Ok(false),
    };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(&ident, 32), u16_at(&ident, 54), u16_at(&ident, 56))
    } else {
        (
            u64::from(u32_at(&ident, 28)),
            u16_at(&ident, 42),
            u16_at(&ident, 44),
        )
    };
    let min_entsize = if is64 { 56 } else { 32 };
    if phnum > MAX_PHNUM || usize::from(phentsize) < min_entsize {
        return Ok(false);
    }
    for i in 0..u64::from(phnum) {
        let mut ph = vec![0u8; usize::from(phentsize)];
        file.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))?;
        if read_up_to(&mut file, &mut ph)? < ph.len() {
            return Ok(false);
        }
        if u32_at(&ph, 0) != PT_NOTE {
            continue;
        }
        let (offset, size) = if is64 {
            (u64_at(&ph, 8), u64_at(&ph, 32))
        } else {
            (u64::from(u32_at(&ph, 4)), u64::from(u32_at(&ph, 16)))
        };
        if size > MAX_NOTE_SEGMENT {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))?;
        let got = read_up_to(&mut file, &mut notes)?;
        if notes_contain_pvh(&notes[..got]) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Walk `namesz, descsz, type, name (4-aligned), desc (4-aligned)` records.
fn notes_contain_pvh(mut notes: &[u8]) -> bool {
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0) as usize;
        let descsz = u32_at(notes, 4) as usize;
        let kind = u32_at(notes, 8);
        let name_end = 12 + align4(namesz);
        let end = name_end.saturating_add(align4(descsz));
        if end > notes.len() {
            return false;
        }
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && &notes[12..12 + namesz] == b"Xen\0" {
            return true;
        }
        notes = &notes[end..];
    }
    false
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn finds_the_note_in_the_test_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("vmlinux");
        std::fs::write(&k, testkit::minimal_pvh_kernel()).unwrap();
        assert!(has_pvh_note(&k).unwrap());
    }

    #[test]
    fn rejects_files_without_the_note() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        // Same ELF with the note type changed to something else.
        let mut elf = testkit::minimal_pvh_kernel();
        let pos = elf.windows(4).position(|w| w == b"Xen\0").unwrap() - 4;
        elf[pos..pos + 4].copy_from_slice(&17u32.to_le_bytes());
        std::fs::write(&k, &elf).unwrap();
        assert!(!has_pvh_note(&k).unwrap());
        // A bzImage-like file and a truncated ELF.
        std::fs::write(&k, b"MZ\0\0 not an elf at all").unwrap();
        assert!(!has_pvh_note(&k).unwrap());
        std::fs::write(&k, &testkit::minimal_pvh_kernel()[..40]).unwrap();
        assert!(!has_pvh_note(&k).unwrap());
        assert!(has_pvh_note(&dir.path().join("missing")).is_err());
    }
}
