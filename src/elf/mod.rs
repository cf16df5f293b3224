//! ELF inspection on bytes: class, endianness, type, machine, and whether the file is static or
//! names a program interpreter (`PT_INTERP`). Built on goblin; never panics on hostile input.
//!
//! Pure on bytes; `inspect_file` and `section_range` read only the ranges the headers name.
//! Writing minimal executables is `write`. Beneath every module that looks at ELF files
//! (`binfmt`, `qemu`, `inspection`, `emulation`): it imports none of them.

use std::fs::File;

use goblin::container::{Container, Ctx, Endian as GEndian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{PT_INTERP, ProgramHeader};
use serde::Serialize;

pub mod write;

/// Byte order of an ELF file (`EI_DATA`), and of an arch in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// How many bytes we read first; the ELF header and, for every real binary, the program
/// headers fit in them.
pub const PREFIX_LEN: usize = 4096;
/// Upper bound on how far we follow `e_phoff` (hostile files).
const MAX_PHDR_END: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfFacts {
    pub class: u8,
    pub endian: Endian,
    pub machine: u16,
    /// `e_type`: 1 rel, 2 exec, 3 dyn (PIE or shared object), 4 core.
    pub e_type: u16,
    /// `e_flags`: ABI details on arm, mips, riscv, ppc64, loongarch.
    pub e_flags: u32,
    /// `EI_OSABI` (0 System V, 3 GNU/Linux, ...).
    pub os_abi: u8,
    /// The `PT_INTERP` path, if the binary is dynamically linked.
    pub interp: Option<String>,
    /// The GNU build id (`NT_GNU_BUILD_ID` in a `PT_NOTE`), hex.
    pub build_id: Option<String>,
}

impl ElfFacts {
    pub fn is_static(&self) -> bool {
        self.interp.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("truncated or malformed ELF header: {0}")]
    Malformed(String),
    #[error("program headers end at byte {0}, beyond what was read")]
    NeedMore(usize),
}

impl crate::error::Classify for ElfError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// Inspects an ELF image from its first bytes. Returns `NeedMore(n)` when the program headers
/// lie beyond `bytes` (callers then read `n` bytes and call again). The interpreter path and
/// build id are taken from `bytes` when they lie inside it.
pub fn inspect(bytes: &[u8]) -> Result<ElfFacts, ElfError> {
    inspect_with(bytes, |off, len| {
        let start = usize::try_from(off).ok()?;
        bytes
            .get(start..start.checked_add(len)?)
            .map(<[u8]>::to_vec)
    })
}

/// Inspects an open file: reads the headers, then only the `PT_INTERP` and `PT_NOTE` ranges.
pub fn inspect_file(file: &File) -> Result<ElfFacts, ElfError> {
    let head = read_head(file).map_err(|e| ElfError::Malformed(e.to_string()))?;
    inspect_head(file, &head)
}

/// The first `PREFIX_LEN` bytes of a file (fewer for a shorter one), in one `pread` as a rule.
pub fn read_head(file: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; PREFIX_LEN];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

/// A reader of `len` bytes at `off` of `file`, from `head` (its first bytes) when they are in it.
fn reader<'a>(file: &'a File, head: &'a [u8]) -> impl Fn(u64, usize) -> Option<Vec<u8>> + 'a {
    use std::os::unix::fs::FileExt;
    move |off: u64, len: usize| {
        let start = usize::try_from(off).ok()?;
        if let Some(b) = start.checked_add(len).and_then(|end| head.get(start..end)) {
            return Some(b.to_vec());
        }
        let mut b = vec![0u8; len];
        file.read_exact_at(&mut b, off).ok().map(|()| b)
    }
}

/// `inspect_file` of a file whose first bytes (`read_head`) are `head`: what lies in them is
/// not read again (the notes of a typical binary are in its first page).
pub fn inspect_head(file: &File, head: &[u8]) -> Result<ElfFacts, ElfError> {
    let read_at = reader(file, head);
    match inspect_with(head, &read_at) {
        Err(ElfError::NeedMore(n)) => {
            let bytes = read_at(0, n).ok_or_else(|| ElfError::Malformed("truncated".into()))?;
            inspect_with(&bytes, &read_at)
        }
        r => r,
    }
}

/// Largest PT_INTERP / PT_NOTE we read.
const MAX_SEGMENT_READ: usize = 64 * 1024;
/// `NT_GNU_BUILD_ID`.
const NT_GNU_BUILD_ID: u32 = 3;

fn inspect_with(
    bytes: &[u8],
    read_at: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> Result<ElfFacts, ElfError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let h: Header =
        goblin::elf::Elf::parse_header(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
    let class = match h.e_ident[header::EI_CLASS] {
        header::ELFCLASS32 => 32,
        header::ELFCLASS64 => 64,
        c => return Err(ElfError::Malformed(format!("EI_CLASS {c}"))),
    };
    let (endian, gend) = match h.e_ident[header::EI_DATA] {
        header::ELFDATA2LSB => (Endian::Little, GEndian::Little),
        header::ELFDATA2MSB => (Endian::Big, GEndian::Big),
        d => return Err(ElfError::Malformed(format!("EI_DATA {d}"))),
    };
    let container = if class == 64 {
        Container::Big
    } else {
        Container::Little
    };
    let phoff = usize::try_from(h.e_phoff).map_err(|_| ElfError::Malformed("e_phoff".into()))?;
    let phnum = usize::from(h.e_phnum);
    let end = phnum
        .checked_mul(usize::from(h.e_phentsize))
        .and_then(|n| n.checked_add(phoff))
        .filter(|&e| e <= MAX_PHDR_END)
        .ok_or_else(|| ElfError::Malformed("program header table out of range".into()))?;
    if end > bytes.len() {
        return Err(ElfError::NeedMore(end));
    }
    let phdrs = ProgramHeader::parse(bytes, phoff, phnum, Ctx::new(container, gend))
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    let segment = |p: &ProgramHeader| {
        let len = usize::try_from(p.p_filesz).ok()?.min(MAX_SEGMENT_READ);
        read_at(p.p_offset, len)
    };
    let interp = phdrs.iter().find(|p| p.p_type == PT_INTERP).map(|p| {
        segment(p)
            .map(|b| {
                String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&b)).into_owned()
            })
            // Unreadable, but the binary is dynamic all the same.
            .unwrap_or_else(|| "(unreadable)".to_owned())
    });
    let build_id = phdrs
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_NOTE)
        .filter_map(segment)
        .find_map(|notes| gnu_build_id(&notes, endian));
    Ok(ElfFacts {
        class,
        endian,
        machine: h.e_machine,
        e_type: h.e_type,
        e_flags: h.e_flags,
        os_abi: h.e_ident[header::EI_OSABI],
        interp,
        build_id,
    })
}

/// Finds `NT_GNU_BUILD_ID` (name "GNU") in a note segment. Notes are 4-byte aligned in every
/// Linux ELF we handle (8-byte aligned ones use the same header and the "GNU" name fits).
fn gnu_build_id(notes: &[u8], endian: Endian) -> Option<String> {
    let rd = |o: usize| -> Option<u32> {
        let b: [u8; 4] = notes.get(o..o + 4)?.try_into().ok()?;
        Some(if endian == Endian::Big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut o = 0;
    while o + 12 <= notes.len() {
        let namesz = rd(o)? as usize;
        let descsz = rd(o + 4)? as usize;
        let typ = rd(o + 8)?;
        let name_at = o + 12;
        let desc_at = name_at.checked_add(align4(namesz)?)?;
        let next = desc_at.checked_add(align4(descsz)?)?;
        if typ == NT_GNU_BUILD_ID && notes.get(name_at..name_at + namesz) == Some(b"GNU\0") {
            let d = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
            return Some(crate::input::hex(d));
        }
        o = next;
    }
    None
}

/// Human-relevant ABI details carried in `e_flags` and the class: what decides whether a binary
/// runs on a given emulated CPU/userland.
pub fn abi_details(f: &ElfFacts) -> Vec<String> {
    let mut v = Vec::new();
    let fl = f.e_flags;
    match f.machine {
        // EM_ARM
        40 => {
            let eabi = fl >> 24;
            v.push(if eabi == 0 {
                "OABI (no EABI version)".into()
            } else {
                format!("EABI{eabi}")
            });
            if fl & 0x400 != 0 {
                v.push("hard-float".into());
            } else if fl & 0x200 != 0 {
                v.push("soft-float".into());
            }
        }
        // EM_MIPS
        8 => {
            v.push(
                match (f.class, fl & 0x20 != 0) {
                    (64, _) => "n64",
                    (_, true) => "n32",
                    (_, false) => "o32",
                }
                .into(),
            );
            let isa = [
                "mips1", "mips2", "mips3", "mips4", "mips5", "mips32", "mips64", "mips32r2",
                "mips64r2", "mips32r6", "mips64r6",
            ];
            if let Some(i) = isa.get((fl >> 28) as usize) {
                v.push((*i).into());
            }
            if fl & 0x400 != 0 {
                v.push("nan2008".into());
            }
        }
        // EM_RISCV
        243 => {
            if fl & 1 != 0 {
                v.push("RVC".into());
            }
            v.push(
                [
                    "soft-float ABI",
                    "single-float ABI",
                    "double-float ABI",
                    "quad-float ABI",
                ][((fl >> 1) & 3) as usize]
                    .into(),
            );
            if fl & 8 != 0 {
                v.push("RVE".into());
            }
        }
        // EM_PPC64
        21 => v.push(
            match fl & 3 {
                1 => "ELFv1",
                2 => "ELFv2",
                // Unmarked: the toolchain default for the byte order.
                _ if f.endian == Endian::Big => "ELFv1 (unmarked)",
                _ => "ELFv2 (unmarked)",
            }
            .into(),
        ),
        // EM_LOONGARCH
        258 => v.push(
            match fl & 7 {
                1 => "soft-float ABI",
                2 => "single-float ABI",
                3 => "double-float ABI",
                _ => "unknown float ABI",
            }
            .into(),
        ),
        _ => {}
    }
    v
}

pub fn type_name(e_type: u16) -> &'static str {
    match e_type {
        1 => "relocatable",
        2 => "executable",
        3 => "shared object or PIE",
        4 => "core dump",
        _ => "unknown type",
    }
}

pub fn os_abi_name(b: u8) -> String {
    match b {
        0 => "System V".into(),
        3 => "GNU/Linux".into(),
        6 => "Solaris".into(),
        9 => "FreeBSD".into(),
        12 => "OpenBSD".into(),
        97 => "ARM".into(),
        n => format!("OS ABI {n}"),
    }
}

/// The file range `(start, end)` of the named section, from the section headers. `None` when
/// the file has no section headers or no such section (stripped of them, or not ELF).
pub fn section_range(file: &File, name: &str) -> Option<(u64, u64)> {
    section_range_head(file, &[], name)
}

/// `section_range` of a file whose first bytes are `head` (`read_head`), not read again.
pub fn section_range_head(file: &File, head: &[u8], name: &str) -> Option<(u64, u64)> {
    section_range_with(name, reader(file, head))
}

/// `section_range` on an image in memory (used by the fuzz harness).
pub fn section_range_in(bytes: &[u8], name: &str) -> Option<(u64, u64)> {
    section_range_with(name, |off, len| {
        let start = usize::try_from(off).ok()?;
        bytes
            .get(start..start.checked_add(len)?)
            .map(<[u8]>::to_vec)
    })
}

fn section_range_with(
    name: &str,
    read_at: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> Option<(u64, u64)> {
    use goblin::elf::section_header::SectionHeader;
    let head = read_at(0, 64)?;
    let h = goblin::elf::Elf::parse_header(&head).ok()?;
    let ctx = Ctx::new(h.container().ok()?, h.endianness().ok()?);
    let count = usize::from(h.e_shnum);
    let size = count.checked_mul(usize::from(h.e_shentsize))?;
    if count == 0 || size > MAX_PHDR_END {
        return None;
    }
    let table = read_at(h.e_shoff, size)?;
    // Not SectionHeader::parse: it reads offset 0 as "no section headers".
    let entsize = usize::from(h.e_shentsize);
    let shdrs: Vec<SectionHeader> = (0..count)
        .map(|i| scroll::Pread::pread_with(&table[..], i * entsize, ctx).ok())
        .collect::<Option<_>>()?;
    let strtab = shdrs.get(usize::from(h.e_shstrndx))?;
    let strsize = usize::try_from(strtab.sh_size)
        .ok()
        .filter(|&n| n <= MAX_PHDR_END)?;
    let names = read_at(strtab.sh_offset, strsize)?;
    shdrs.iter().find_map(|s| {
        let n = names.get(s.sh_name..)?;
        let n = &n[..n.iter().position(|&b| b == 0)?];
        (n == name.as_bytes()).then_some((s.sh_offset, s.sh_offset.checked_add(s.sh_size)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inspects_this_test_binary() {
        let me = std::env::current_exe().unwrap();
        let f = inspect_file(&File::open(&me).unwrap()).unwrap();
        assert_eq!(
            f.class,
            if cfg!(target_pointer_width = "64") {
                64
            } else {
                32
            }
        );
        assert_eq!(
            f.endian,
            if cfg!(target_endian = "little") {
                Endian::Little
            } else {
                Endian::Big
            }
        );
    }

    #[test]
    fn finds_sections_of_this_test_binary() {
        let me = File::open(std::env::current_exe().unwrap()).unwrap();
        let (start, end) = section_range(&me, ".text").expect(".text exists");
        assert!(start > 0 && end > start);
        assert_eq!(section_range(&me, ".no-such-section"), None);
        let not_elf = tempfile::tempfile().unwrap();
        assert_eq!(section_range(&not_elf, ".text"), None);
    }

    #[test]
    fn build_id_and_abi_details() {
        let me = File::open(std::env::current_exe().unwrap()).unwrap();
        let f = inspect_file(&me).unwrap();
        assert!(f.build_id.as_ref().is_some_and(|b| b.len() >= 16), "{f:?}");
        let arm = |flags| ElfFacts {
            class: 32,
            endian: Endian::Little,
            machine: 40,
            e_type: 2,
            e_flags: flags,
            os_abi: 0,
            interp: None,
            build_id: None,
        };
        assert_eq!(abi_details(&arm(0x0500_0400)), ["EABI5", "hard-float"]);
        assert_eq!(abi_details(&arm(0x0500_0200)), ["EABI5", "soft-float"]);
        let mips = |class, flags| ElfFacts {
            class,
            machine: 8,
            e_flags: flags,
            ..arm(0)
        };
        assert_eq!(
            abi_details(&mips(32, 0x7000_1007))[..2],
            ["o32", "mips32r2"]
        );
        assert_eq!(abi_details(&mips(32, 0x20))[0], "n32");
        assert_eq!(
            abi_details(&mips(64, 0x8000_0007))[..2],
            ["n64", "mips64r2"]
        );
        let rv = ElfFacts {
            class: 64,
            machine: 243,
            e_flags: 5,
            ..arm(0)
        };
        assert_eq!(abi_details(&rv), ["RVC", "double-float ABI"]);
        let ppc = ElfFacts {
            class: 64,
            machine: 21,
            e_flags: 0,
            endian: Endian::Big,
            ..arm(0)
        };
        assert_eq!(abi_details(&ppc), ["ELFv1 (unmarked)"]);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(inspect(b""), Err(ElfError::NotElf));
        assert_eq!(inspect(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert!(matches!(
            inspect(b"\x7fELF\x02\x01"),
            Err(ElfError::Malformed(_))
        ));
    }

    /// Every prefix of real executables (our probes, all arches): an error or a result, never a
    /// panic; and once the program headers are in, the same answer as for the whole file.
    #[test]
    fn truncated_headers() {
        let t = crate::binfmt::arch::Table::builtin();
        for name in crate::inspection::probe::available() {
            let full = crate::inspection::probe::build(t.get(name).unwrap()).unwrap();
            let want = inspect(&full).unwrap();
            for n in 0..full.len() {
                match inspect(&full[..n]) {
                    Ok(f) => assert_eq!(
                        (f.class, f.machine),
                        (want.class, want.machine),
                        "{name} at {n}"
                    ),
                    Err(ElfError::NeedMore(_) | ElfError::Malformed(_) | ElfError::NotElf) => {}
                }
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_random_headers(tail in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut b = b"\x7fELF".to_vec();
            b.extend(tail);
            let _ = inspect(&b);
        }

        #[test]
        fn never_panics_on_mutated_real_headers(flips in prop::collection::vec((0usize..200, any::<u8>()), 1..12)) {
            let t = crate::binfmt::arch::Table::builtin();
            let mut b = crate::inspection::probe::build(t.get("aarch64").unwrap()).unwrap();
            for (i, v) in flips {
                if i < b.len() {
                    b[i] = v;
                }
            }
            let _ = inspect(&b);
            let _ = abi_details(&ElfFacts { class: 32, endian: Endian::Big, machine: 8, e_type: 2, e_flags: u32::from(b[36]) << 24, os_abi: 0, interp: None, build_id: None });
        }
    }
}
