//! ELF inspection on bytes: class, endianness, type, machine, and whether the file is static or
//! names a program interpreter (`PT_INTERP`). Built on goblin; never panics on hostile input.
//!
//! Pure: callers read the bytes (`read_prefix` is the one helper that does I/O, reading only
//! what the header says is needed).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use goblin::container::{Container, Ctx, Endian as GEndian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{PT_INTERP, ProgramHeader};
use serde::Serialize;

use crate::arch::Endian;

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
    /// The `PT_INTERP` path, if the binary is dynamically linked.
    pub interp: Option<String>,
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

/// Inspects an ELF image from its first bytes. Returns `NeedMore(n)` when the program headers
/// lie beyond `bytes` (callers then read `n` bytes and call again).
pub fn inspect(bytes: &[u8]) -> Result<ElfFacts, ElfError> {
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
    let interp = phdrs.iter().find(|p| p.p_type == PT_INTERP).map(|p| {
        let start = usize::try_from(p.p_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(p.p_filesz).unwrap_or(0);
        bytes
            .get(start..start.saturating_add(len))
            .map(|b| String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(b)).into_owned())
            // The path lies beyond the prefix: the binary is dynamic all the same.
            .unwrap_or_else(|| "(beyond the bytes read)".to_owned())
    });
    Ok(ElfFacts {
        class,
        endian,
        machine: h.e_machine,
        e_type: h.e_type,
        interp,
    })
}

/// The file range `(start, end)` of the named section, from the section headers. `None` when
/// the file has no section headers or no such section (stripped of them, or not ELF).
pub fn section_range(file: &File, name: &str) -> Option<(u64, u64)> {
    use goblin::elf::section_header::SectionHeader;
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; 64];
    file.read_exact_at(&mut head, 0).ok()?;
    let h = goblin::elf::Elf::parse_header(&head).ok()?;
    let ctx = Ctx::new(h.container().ok()?, h.endianness().ok()?);
    let count = usize::from(h.e_shnum);
    let size = count.checked_mul(usize::from(h.e_shentsize))?;
    if count == 0 || size > MAX_PHDR_END {
        return None;
    }
    let mut table = vec![0u8; size];
    file.read_exact_at(&mut table, h.e_shoff).ok()?;
    // Not SectionHeader::parse: it reads offset 0 as "no section headers".
    let entsize = usize::from(h.e_shentsize);
    let shdrs: Vec<SectionHeader> = (0..count)
        .map(|i| scroll::Pread::pread_with(&table[..], i * entsize, ctx).ok())
        .collect::<Option<_>>()?;
    let strtab = shdrs.get(usize::from(h.e_shstrndx))?;
    let strsize = usize::try_from(strtab.sh_size)
        .ok()
        .filter(|&n| n <= MAX_PHDR_END)?;
    let mut names = vec![0u8; strsize];
    file.read_exact_at(&mut names, strtab.sh_offset).ok()?;
    shdrs.iter().find_map(|s| {
        let n = names.get(s.sh_name..)?;
        let n = &n[..n.iter().position(|&b| b == 0)?];
        (n == name.as_bytes()).then_some((s.sh_offset, s.sh_offset.checked_add(s.sh_size)?))
    })
}

/// Reads the first `PREFIX_LEN` bytes of a file, or more when its program headers need it.
pub fn read_prefix(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut buf = Vec::with_capacity(PREFIX_LEN);
    f.take(PREFIX_LEN as u64).read_to_end(&mut buf)?;
    if let Err(ElfError::NeedMore(n)) = inspect(&buf) {
        buf.clear();
        File::open(path)?.take(n as u64).read_to_end(&mut buf)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inspects_this_test_binary() {
        let me = std::env::current_exe().unwrap();
        let f = inspect(&read_prefix(&me).unwrap()).unwrap();
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
    fn rejects_garbage() {
        assert_eq!(inspect(b""), Err(ElfError::NotElf));
        assert_eq!(inspect(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert!(matches!(
            inspect(b"\x7fELF\x02\x01"),
            Err(ElfError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_random_headers(tail in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut b = b"\x7fELF".to_vec();
            b.extend(tail);
            let _ = inspect(&b);
        }
    }
}
