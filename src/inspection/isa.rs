//! What instruction set a program says it needs beyond its arch's baseline, from the notes and
//! attributes the toolchain leaves in it: the x86-64 ISA level (`GNU_PROPERTY_X86_ISA_1_NEEDED`
//! in `.note.gnu.property`, written by GCC >= 11 / binutils >= 2.36 with `-march=x86-64-vN`),
//! AArch64 BTI/PAC (`GNU_PROPERTY_AARCH64_FEATURE_1_AND`), and the RISC-V arch string
//! (`Tag_RISCV_arch` in `.riscv.attributes`). `doctor` compares them with what the CPU that will
//! run the program offers (the host's, or QEMU's default model).
//!
//! Reads files only (bounded: program headers and two small regions). References: the x86-64
//! psABI ("Program Property"), the AArch64 ELF ABI, the RISC-V ELF psABI ("Attributes").

use std::fs::File;
use std::os::unix::fs::FileExt;

use goblin::container::{Container, Ctx, Endian as GEndian};
use goblin::elf::program_header::{PT_NOTE, ProgramHeader};
use serde::Serialize;

/// `NT_GNU_PROPERTY_TYPE_0`.
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
/// `PT_GNU_PROPERTY`.
const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;
const GNU_PROPERTY_AARCH64_FEATURE_1_AND: u32 = 0xc000_0000;
/// The most read of one note segment or of `.riscv.attributes`.
const MAX_READ: usize = 64 * 1024;

/// What a program needs beyond its arch's baseline (all empty: nothing recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IsaNeeds {
    /// x86-64 ISA level: 1 baseline, 2 v2, 3 v3, 4 v4 (the highest bit set in the property).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x86_64_level: Option<u8>,
    /// AArch64 features every object of the program was built for: "bti", "pac".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aarch64: Vec<&'static str>,
    /// The RISC-V extensions beyond rv64gc/rv32gc the arch string names (e.g. "v", "zba").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub riscv_beyond_gc: Vec<String>,
    /// The whole RISC-V arch string, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub riscv_arch: Option<String>,
}

/// Reads the notes and attributes of an open ELF file (a file that is not one gives nothing).
pub fn needs(file: &File) -> IsaNeeds {
    let read_at = |off: u64, len: usize| {
        let mut b = vec![0u8; len];
        file.read_exact_at(&mut b, off).ok().map(|()| b)
    };
    let mut out = IsaNeeds::default();
    let Some(head) = read_at(0, 64).or_else(|| read_at(0, 52)) else {
        return out;
    };
    let Ok(h) = goblin::elf::Elf::parse_header(&head) else {
        return out;
    };
    let (Ok(container), Ok(endian)) = (h.container(), h.endianness()) else {
        return out;
    };
    let big = endian == GEndian::Big;
    let phnum = usize::from(h.e_phnum);
    let size = phnum.saturating_mul(usize::from(h.e_phentsize));
    if phnum > 0 && size <= MAX_READ {
        let phdrs = read_at(h.e_phoff, size)
            .and_then(|b| ProgramHeader::parse(&b, 0, phnum, Ctx::new(container, endian)).ok());
        let align = if container == Container::Big { 8 } else { 4 };
        for p in phdrs.iter().flatten() {
            if p.p_type != PT_NOTE && p.p_type != PT_GNU_PROPERTY {
                continue;
            }
            let len = usize::try_from(p.p_filesz).unwrap_or(0).min(MAX_READ);
            if let Some(notes) = read_at(p.p_offset, len) {
                gnu_properties(&notes, big, align, h.e_machine, &mut out);
            }
        }
    }
    if h.e_machine == goblin::elf::header::EM_RISCV
        && let Some((start, end)) = crate::elf::section_range(file, ".riscv.attributes")
    {
        let len = usize::try_from(end.saturating_sub(start))
            .unwrap_or(0)
            .min(MAX_READ);
        if let Some(b) = read_at(start, len)
            && let Some(arch) = riscv_arch(&b, big)
        {
            out.riscv_beyond_gc = riscv_beyond_gc(&arch);
            out.riscv_arch = Some(arch);
        }
    }
    out
}

fn u32_at(b: &[u8], o: usize, big: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(o..o.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

/// Walks a note segment for `NT_GNU_PROPERTY_TYPE_0` ("GNU") and reads its properties, whose
/// entries are aligned to 8 bytes in ELF64 and 4 in ELF32.
fn gnu_properties(notes: &[u8], big: bool, align: usize, machine: u16, out: &mut IsaNeeds) {
    let up = |n: usize, a: usize| n.checked_add(a - 1).map(|n| n & !(a - 1));
    let mut o = 0usize;
    while o + 12 <= notes.len() {
        let (Some(namesz), Some(descsz), Some(typ)) = (
            u32_at(notes, o, big),
            u32_at(notes, o + 4, big),
            u32_at(notes, o + 8, big),
        ) else {
            return;
        };
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let name_at = o + 12;
        // GNU property notes are aligned like the properties; other notes to 4.
        let a = if typ == NT_GNU_PROPERTY_TYPE_0 {
            align
        } else {
            4
        };
        let Some(desc_at) = up(name_at.saturating_add(namesz), a) else {
            return;
        };
        let Some(next) = desc_at.checked_add(descsz).and_then(|n| up(n, a)) else {
            return;
        };
        if typ == NT_GNU_PROPERTY_TYPE_0
            && notes.get(name_at..name_at + namesz) == Some(b"GNU\0")
            && let Some(desc) = notes.get(desc_at..desc_at.saturating_add(descsz))
        {
            let mut p = 0usize;
            while p + 8 <= desc.len() {
                let (Some(pr_type), Some(datasz)) =
                    (u32_at(desc, p, big), u32_at(desc, p + 4, big))
                else {
                    break;
                };
                let data = p + 8;
                let value = u32_at(desc, data, big).unwrap_or(0);
                match pr_type {
                    GNU_PROPERTY_X86_ISA_1_NEEDED if value != 0 => {
                        let level = (32 - value.leading_zeros()) as u8;
                        out.x86_64_level = Some(out.x86_64_level.unwrap_or(0).max(level));
                    }
                    GNU_PROPERTY_AARCH64_FEATURE_1_AND
                        if machine == goblin::elf::header::EM_AARCH64 =>
                    {
                        for (bit, name) in [(1, "bti"), (2, "pac")] {
                            if value & bit != 0 && !out.aarch64.contains(&name) {
                                out.aarch64.push(name);
                            }
                        }
                    }
                    _ => {}
                }
                let Some(n) = data.checked_add(datasz as usize).and_then(|n| up(n, align)) else {
                    break;
                };
                p = n;
            }
        }
        if next <= o {
            return;
        }
        o = next;
    }
}

/// `Tag_RISCV_arch` (5, a string) from a `.riscv.attributes` section: format version 'A', then
/// subsections (u32 length, vendor "riscv\0", then a file-scope tag 1, u32 size, attributes as
/// ULEB128 tag + value: a string for odd tags, a ULEB128 integer for even ones).
pub fn riscv_arch(b: &[u8], big: bool) -> Option<String> {
    if b.first() != Some(&b'A') {
        return None;
    }
    let mut o = 1usize;
    while o + 4 <= b.len() {
        let len = u32_at(b, o, big)? as usize;
        let end = o.checked_add(len)?.min(b.len());
        let vendor_end = o + 4 + b.get(o + 4..end)?.iter().position(|&c| c == 0)?;
        if &b[o + 4..vendor_end] == b"riscv" {
            let mut p = vendor_end + 1;
            while p < end {
                let (tag, n) = uleb(b.get(p..end)?)?;
                let size = u32_at(b, p + n, big)? as usize;
                let sub_end = p.checked_add(size)?.min(end);
                let mut q = p + n + 4;
                if tag == 1 {
                    while q < sub_end {
                        let (attr, n) = uleb(b.get(q..sub_end)?)?;
                        q += n;
                        if attr % 2 == 1 {
                            let s = b.get(q..sub_end)?;
                            let z = s.iter().position(|&c| c == 0)?;
                            if attr == 5 {
                                return Some(String::from_utf8_lossy(&s[..z]).into_owned());
                            }
                            q += z + 1;
                        } else {
                            q += uleb(b.get(q..sub_end)?)?.1;
                        }
                    }
                }
                if sub_end <= p {
                    return None;
                }
                p = sub_end;
            }
        }
        if end <= o {
            return None;
        }
        o = end;
    }
    None
}

fn uleb(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &c) in b.iter().enumerate().take(10) {
        v |= u64::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The extensions of a RISC-V arch string (`rv64i2p1_m2p0_a2p1_f2p2_d2p2_c2p0_zicsr2p0_v1p0`)
/// beyond G and C (i, m, a, f, d, c, zicsr, zifencei and the always-present zmmul/zaamo/zalrsc
/// that G implies).
pub fn riscv_beyond_gc(arch: &str) -> Vec<String> {
    const GC: &[&str] = &[
        "i", "m", "a", "f", "d", "c", "g", "e", "zicsr", "zifencei", "zmmul", "zaamo", "zalrsc",
    ];
    let rest = arch
        .strip_prefix("rv64")
        .or_else(|| arch.strip_prefix("rv32"))
        .unwrap_or("");
    let mut out = Vec::new();
    for part in rest.split('_').filter(|p| !p.is_empty()) {
        // A single-letter extension carries its version (`m2p0`); the first part may hold
        // several (`imafdc`) when versions are left out.
        let name = part.trim_end_matches(|c: char| c.is_ascii_digit() || c == 'p');
        let names: Vec<String> = if name.starts_with(['z', 's', 'x']) {
            vec![name.to_owned()]
        } else {
            name.chars().map(|c| c.to_string()).collect()
        };
        for n in names {
            if !GC.contains(&n.as_str()) && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The x86-64 ISA levels and the `/proc/cpuinfo` flags each needs (on top of the level below).
const X86_64_LEVELS: &[(u8, &[&str])] = &[
    (
        2,
        &["cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"],
    ),
    (
        3,
        &[
            "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        ],
    ),
    (
        4,
        &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
    ),
];

/// The highest x86-64 ISA level a CPU with these `/proc/cpuinfo` flags supports (1 to 4).
pub fn x86_64_level_of(flags: &[&str]) -> u8 {
    let mut level = 1;
    for (l, need) in X86_64_LEVELS {
        if need.iter().all(|f| flags.contains(f)) {
            level = *l;
        } else {
            break;
        }
    }
    level
}

/// The CPU flags of the first processor (x86 `flags`, arm64 `Features`) of a `/proc/cpuinfo`
/// as `procfs` reads it.
pub fn cpu_flags(info: &procfs::CpuInfo) -> Vec<String> {
    info.get_field(0, "flags")
        .or_else(|| info.get_field(0, "Features"))
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// This machine's CPU flags (`/proc/cpuinfo`; none when it cannot be read).
pub fn host_cpu_flags() -> Vec<String> {
    use procfs::Current;
    procfs::CpuInfo::current()
        .map(|c| cpu_flags(&c))
        .unwrap_or_default()
}

/// The highest x86-64 level QEMU's TCG emulates with `-cpu max` (AVX2 since QEMU 7.2; no
/// AVX-512 in any version), and with its user-mode default CPU (`max` for x86_64 since QEMU 7.2;
/// `qemu64`, level 1, before).
pub fn qemu_x86_64_level(qemu_version: Option<&str>, cpu_max: bool) -> u8 {
    let at_least_7_2 = qemu_version.is_some_and(|v| {
        crate::qemu::version::compare_versions(crate::qemu::version::upstream(v), "7.2")
            != std::cmp::Ordering::Less
    });
    match (at_least_7_2, cpu_max) {
        (true, _) => 3,
        (false, true) => 2,
        (false, false) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_levels_from_cpu_flags() {
        assert_eq!(x86_64_level_of(&[]), 1);
        let v2 = ["cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"];
        assert_eq!(x86_64_level_of(&v2), 2);
        let mut v3 = v2.to_vec();
        v3.extend([
            "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        ]);
        assert_eq!(x86_64_level_of(&v3), 3);
        // avx512 without v3 is still v2.
        let mut odd = v2.to_vec();
        odd.extend(["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]);
        assert_eq!(x86_64_level_of(&odd), 2);
        use procfs::FromBufRead;
        let info = |text: &str| procfs::CpuInfo::from_buf_read(text.as_bytes()).unwrap();
        assert_eq!(
            cpu_flags(&info(
                "processor\t: 0\nflags\t\t: fpu sse2 avx2\n\nprocessor\t: 1\nflags\t\t: fpu\n"
            )),
            ["fpu", "sse2", "avx2"]
        );
        assert_eq!(
            cpu_flags(&info(
                "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd sve\n"
            )),
            ["fp", "asimd", "sve"]
        );
    }

    #[test]
    fn riscv_arch_strings() {
        assert!(
            riscv_beyond_gc("rv64i2p1_m2p0_a2p1_f2p2_d2p2_c2p0_zicsr2p0_zifencei2p0").is_empty()
        );
        assert!(riscv_beyond_gc("rv64imafdc").is_empty());
        assert_eq!(
            riscv_beyond_gc(
                "rv64i2p1_m2p0_a2p1_f2p2_d2p2_c2p0_v1p0_zicsr2p0_zba1p0_zbb1p0_zve32f1p0"
            ),
            ["v", "zba", "zbb", "zve32f"]
        );
        // A .riscv.attributes section as GNU as writes it.
        let arch = b"rv64i2p1_m2p0_v1p0\0";
        let mut sub = vec![1u8];
        let size = (1 + 4 + 1 + arch.len() + 2) as u32;
        sub.extend(size.to_le_bytes());
        sub.push(5);
        sub.extend(arch);
        sub.extend([4, 16]);
        let mut sec = vec![b'A'];
        sec.extend(((4 + 6 + sub.len()) as u32).to_le_bytes());
        sec.extend(b"riscv\0");
        sec.extend(&sub);
        assert_eq!(
            riscv_arch(&sec, false).as_deref(),
            Some("rv64i2p1_m2p0_v1p0")
        );
        assert_eq!(riscv_arch(b"B", false), None);
        assert_eq!(riscv_arch(&sec[..7], false), None);
    }

    #[test]
    fn gnu_property_isa_level() {
        // One NT_GNU_PROPERTY_TYPE_0 note (ELF64, 8-byte aligned) needing x86-64-v3 (bits 1|2|4).
        let mut n = Vec::new();
        n.extend(4u32.to_le_bytes());
        n.extend(16u32.to_le_bytes());
        n.extend(5u32.to_le_bytes());
        n.extend(b"GNU\0");
        n.extend(GNU_PROPERTY_X86_ISA_1_NEEDED.to_le_bytes());
        n.extend(4u32.to_le_bytes());
        n.extend(7u32.to_le_bytes());
        n.extend(0u32.to_le_bytes());
        let mut out = IsaNeeds::default();
        gnu_properties(&n, false, 8, goblin::elf::header::EM_X86_64, &mut out);
        assert_eq!(out.x86_64_level, Some(3));
        let mut none = IsaNeeds::default();
        gnu_properties(&n[..20], false, 8, 62, &mut none);
        assert_eq!(none, IsaNeeds::default());
    }

    #[test]
    fn this_test_binary_reads_without_panicking() {
        let me = std::env::current_exe().unwrap();
        let _ = needs(&File::open(me).unwrap());
    }
}
