//! Writing minimal ELF executables: one read+execute `PT_LOAD` segment covering the whole file,
//! no sections. The probes (`inspection::probe`), the representative headers `binfmt::plan`
//! checks patterns against, and `--accelerate`'s launcher are built with it.
//!
//! Pure: builds bytes; the caller writes them to a file.

use super::Endian;

/// Where the single PT_LOAD segment is mapped (above any mmap_min_addr, 64 KiB aligned).
const BASE: u64 = 0x40_0000;
/// Segment alignment: 64 KiB covers every page size Linux uses on these arches.
const ALIGN: u64 = 0x1_0000;
const ET_EXEC: u16 = 2;
const PT_LOAD: u32 = 1;
const PF_R_X: u32 = 5;

/// Writes an ELF executable with one read+execute PT_LOAD segment covering the whole file and
/// the entry point at the first byte after the headers.
pub fn elf_exec(class: u8, endian: Endian, machine: u16, flags: u32, code: &[u8]) -> Vec<u8> {
    let wide = class == 64;
    let (ehsize, phentsize, shentsize) = if wide {
        (64u16, 56u16, 64u16)
    } else {
        (52, 32, 40)
    };
    let code_off = u64::from(ehsize + phentsize);
    let total = code_off + code.len() as u64;
    let mut w = Writer {
        buf: Vec::with_capacity(total as usize),
        big: endian == Endian::Big,
        wide,
    };
    // e_ident
    w.buf.extend_from_slice(b"\x7fELF");
    w.buf.push(if wide { 2 } else { 1 });
    w.buf.push(if w.big { 2 } else { 1 });
    w.buf.push(1); // EI_VERSION
    w.buf.extend_from_slice(&[0; 9]); // EI_OSABI = SYSV, EI_ABIVERSION, padding
    w.u16(ET_EXEC);
    w.u16(machine);
    w.u32(1); // e_version
    w.addr(BASE + code_off); // e_entry
    w.addr(u64::from(ehsize)); // e_phoff
    w.addr(0); // e_shoff: no sections
    w.u32(flags);
    w.u16(ehsize);
    w.u16(phentsize);
    w.u16(1); // e_phnum
    w.u16(shentsize);
    w.u16(0); // e_shnum
    w.u16(0); // e_shstrndx
    // The one program header; field order differs between ELF32 and ELF64.
    w.u32(PT_LOAD);
    if wide {
        w.u32(PF_R_X);
    }
    w.addr(0); // p_offset
    w.addr(BASE); // p_vaddr
    w.addr(BASE); // p_paddr
    w.addr(total); // p_filesz
    w.addr(total); // p_memsz
    if !wide {
        w.u32(PF_R_X);
    }
    w.addr(ALIGN);
    debug_assert_eq!(w.buf.len() as u64, code_off);
    w.buf.extend_from_slice(code);
    w.buf
}

struct Writer {
    buf: Vec<u8>,
    big: bool,
    wide: bool,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }
    /// An address or offset: 8 bytes in ELF64, 4 in ELF32.
    fn addr(&mut self, v: u64) {
        if self.wide {
            let b = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.buf.extend_from_slice(&b);
        } else {
            self.u32(u32::try_from(v).expect("32-bit probe addresses fit"));
        }
    }
}
