//! Small ELF questions the image build asks: does a kernel carry the PVH entry
//! note, is a program statically linked, what does a module's `.modinfo` say.

use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, LittleEndian};

/// XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point QEMU and Firecracker use.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Parse the ELF64 file header, or say why not.
fn header(data: &[u8]) -> Result<&FileHeader64<Endianness>, String> {
    if !data.starts_with(b"\x7fELF") {
        return Err("it does not start with the ELF magic".into());
    }
    FileHeader64::<Endianness>::parse(data)
        .map_err(|e| format!("it is not a valid 64-bit ELF file ({e})"))
}

/// Whether a `PT_NOTE` segment holds a `Xen` note of type 18 (PVH entry).
pub fn has_pvh_note(data: &[u8]) -> Result<bool, String> {
    let hdr = header(data)?;
    let endian = hdr.endian().map_err(|e| e.to_string())?;
    let phdrs = hdr
        .program_headers(endian, data)
        .map_err(|e| format!("its program headers are corrupt ({e})"))?;
    for phdr in phdrs {
        let Some(mut notes) = phdr
            .notes(endian, data)
            .map_err(|e| format!("a note segment is corrupt ({e})"))?
        else {
            continue;
        };
        while let Some(note) = notes
            .next()
            .map_err(|e| format!("a note is corrupt ({e})"))?
        {
            if note.name() == b"Xen" && note.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Why a program cannot run as a guest's PID 1 without a dynamic loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStatic {
    NotElf(String),
    WrongMachine(u16),
    NotExecutable(u16),
    /// The program asks for this dynamic loader (PT_INTERP).
    Interpreter(String),
}

impl std::fmt::Display for NotStatic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStatic::NotElf(why) => write!(f, "it is not an ELF program: {why}"),
            NotStatic::WrongMachine(m) => write!(f, "it is built for ELF machine {m}, not x86_64"),
            NotStatic::NotExecutable(t) => write!(f, "it is ELF type {t}, not an executable"),
            NotStatic::Interpreter(i) => {
                write!(f, "it is dynamically linked (needs the loader {i})")
            }
        }
    }
}

/// Check that `data` is an x86_64 executable without a `PT_INTERP` segment,
/// i.e. a static or static-pie binary that runs in an empty initramfs.
pub fn check_static_x86_64(data: &[u8]) -> Result<(), NotStatic> {
    let hdr = header(data).map_err(NotStatic::NotElf)?;
    let endian = hdr.endian().map_err(|e| NotStatic::NotElf(e.to_string()))?;
    let machine = hdr.e_machine(endian);
    if machine != elf::EM_X86_64 {
        return Err(NotStatic::WrongMachine(machine));
    }
    let kind = hdr.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return Err(NotStatic::NotExecutable(kind));
    }
    let phdrs = hdr
        .program_headers(endian, data)
        .map_err(|e| NotStatic::NotElf(format!("its program headers are corrupt ({e})")))?;
    for phdr in phdrs {
        if phdr.p_type(endian) == elf::PT_INTERP {
            let interp = phdr
                .data(endian, data)
                .map(|d| {
                    String::from_utf8_lossy(d)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_else(|()| "an unreadable path".into());
            return Err(NotStatic::Interpreter(interp));
        }
    }
    Ok(())
}

/// The `key=value` strings of a kernel module's `.modinfo` section, in order.
pub fn modinfo_strings(data: &[u8]) -> Result<Vec<(String, String)>, String> {
    let hdr = FileHeader64::<LittleEndian>::parse(data)
        .map_err(|e| format!("not a 64-bit little-endian ELF file ({e})"))?;
    let endian = LittleEndian;
    let sections = hdr
        .sections(endian, data)
        .map_err(|e| format!("its section table is corrupt ({e})"))?;
    let Some((_, section)) = sections.section_by_name(endian, b".modinfo") else {
        return Err("it has no .modinfo section".into());
    };
    let bytes = section
        .data(endian, data)
        .map_err(|e| format!("its .modinfo section lies outside the file ({e})"))?;
    Ok(bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect())
}
