//! Test support: the smallest kernel QEMU will boot.
//!
//! Tests of the driver (here and in the daemon) need a VM that really starts, but the real
//! guest kernel is large and built elsewhere. [`minimal_pvh_kernel`] is a ~200-byte ELF64 with
//! one `PT_LOAD` segment of code (`cli; hlt; jmp $-1` at 1 MiB) and a `PT_NOTE` segment holding
//! the Xen PVH entry note, which is what QEMU's `-M microvm` and `-M pc` need to boot an ELF
//! directly. The vCPU halts forever with interrupts off: QMP reports the VM as "running", and
//! nothing is ever written to the console.

/// The ELF note type of the 32-bit PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Guest-physical load and entry address.
pub const LOAD_ADDRESS: u64 = 0x10_0000;

/// Build the kernel image.
pub fn minimal_pvh_kernel() -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const PHNUM: usize = 2;
    // cli; hlt; jmp back to the hlt (an NMI would resume after hlt).
    let code: &[u8] = &[0xfa, 0xf4, 0xeb, 0xfd];

    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes()); // namesz
    note.extend_from_slice(&4u32.to_le_bytes()); // descsz: 32-bit entry
    note.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(LOAD_ADDRESS as u32).to_le_bytes());

    let note_off = EHDR + PHDR * PHNUM;
    let code_off = (note_off + note.len()).div_ceil(16) * 16;

    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF");
    elf.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, SysV ABI
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&LOAD_ADDRESS.to_le_bytes()); // e_entry
    elf.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [EHDR, PHDR, PHNUM, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend_from_slice(&(half as u16).to_le_bytes());
    }
    let phdr = |kind: u32, flags: u32, off: usize, addr: u64, size: usize, align: u64| {
        let mut p = Vec::with_capacity(PHDR);
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&(off as u64).to_le_bytes());
        p.extend_from_slice(&addr.to_le_bytes()); // p_vaddr
        p.extend_from_slice(&addr.to_le_bytes()); // p_paddr
        p.extend_from_slice(&(size as u64).to_le_bytes()); // p_filesz
        p.extend_from_slice(&(size as u64).to_le_bytes()); // p_memsz
        p.extend_from_slice(&align.to_le_bytes());
        p
    };
    elf.extend(phdr(1, 5, code_off, LOAD_ADDRESS, code.len(), 0x1000)); // PT_LOAD, R+X
    elf.extend(phdr(4, 4, note_off, 0, note.len(), 4)); // PT_NOTE
    elf.extend_from_slice(&note);
    elf.resize(code_off, 0);
    elf.extend_from_slice(code);
    elf
}
