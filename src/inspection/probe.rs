//! Emulation probes: tiny static ELF programs, one per architecture, built here at run time from
//! a few dozen bytes of machine code (`probe_code`, generated from `probes/*.S`) — no toolchain
//! at build time and no downloaded binaries.
//!
//! Every probe does three system calls: `uname` into a stack buffer, `write(1, machine, 65)`
//! (the `machine` field of `struct new_utsname`, NUL-padded), and `exit(argv[0][0])`. So one run
//! shows that the program executed, which machine the kernel (or QEMU) reports, and — through
//! the exit status — whether argv[0] arrived intact (binfmt_misc's P flag).
//!
//! Pure: builds bytes; the caller writes them to a file.

use crate::binfmt::arch::Arch;
use crate::elf::write::elf_exec;
use crate::inspection::probe_code::PROBES;

/// loongarch64: Debian 12 has no cross binutils for it, so this is encoded by hand (LoongArch
/// reference manual v1.10, formats 2RI12 and 3R), and proven under qemu-loongarch64 by the
/// tests like every other probe. Syscalls: uname 160, write 64, exit 93; $s0 is callee-saved.
const LOONGARCH64: [u32; 14] = [
    0x28c0_2077, // ld.d   $s0, $sp, 8        argv[0]
    0x2a00_02f7, // ld.bu  $s0, $s0, 0        its first byte
    0x02f8_0063, // addi.d $sp, $sp, -512
    0x0015_0064, // or     $a0, $sp, $zero    (move)
    0x0382_800b, // ori    $a7, $zero, 160    uname
    0x002b_0000, // syscall 0
    0x0380_0404, // ori    $a0, $zero, 1
    0x02c4_1065, // addi.d $a1, $sp, 260      utsname.machine
    0x0381_0406, // ori    $a2, $zero, 65
    0x0381_000b, // ori    $a7, $zero, 64     write
    0x002b_0000, // syscall 0
    0x0015_02e4, // or     $a0, $s0, $zero    (move)
    0x0381_740b, // ori    $a7, $zero, 93     exit
    0x002b_0000, // syscall 0
];
/// EF_LOONGARCH_ABI_DOUBLE_FLOAT | EF_LOONGARCH_OBJABI_V1, as GCC emits.
const LOONGARCH64_FLAGS: u32 = 0x43;

/// The exit status a probe returns when argv[0] starts with this byte.
pub const ARGV0: &str = "binfmtctl-probe";

/// The arches we have a probe for.
pub fn available() -> Vec<&'static str> {
    PROBES
        .iter()
        .map(|(a, _, _)| *a)
        .chain(["loongarch64", "i486"])
        .collect()
}

/// The machine code and e_flags for an arch.
fn code(arch: &str) -> Option<(u32, Vec<u8>)> {
    match arch {
        "loongarch64" => {
            let bytes = LOONGARCH64.iter().flat_map(|w| w.to_le_bytes()).collect();
            return Some((LOONGARCH64_FLAGS, bytes));
        }
        // EM_486 binaries are i386 code with another e_machine (QEMU and Linux accept both).
        "i486" => return code("i386"),
        _ => {}
    }
    PROBES
        .iter()
        .find(|(a, _, _)| *a == arch)
        .map(|(_, flags, code)| (*flags, code.to_vec()))
}

/// A complete static ELF executable running the arch's probe, or `None` if we have none.
pub fn build(arch: &Arch) -> Option<Vec<u8>> {
    let (flags, code) = code(&arch.name)?;
    Some(elf_exec(
        arch.class,
        arch.endian,
        arch.machine,
        flags,
        &code,
    ))
}

/// A file header of this arch as binfmt_misc sees it, to ask which entry would take the arch's
/// programs: our probe where we have one, else the registration pattern's own magic (which the
/// pattern accepts by construction).
pub fn representative_header(arch: &Arch) -> Vec<u8> {
    build(arch).unwrap_or_else(|| arch.magic.clone())
}

/// The machine name in a probe's output: the bytes up to the first NUL.
pub fn reported_machine(stdout: &[u8]) -> String {
    let end = stdout.iter().position(|&b| b == 0).unwrap_or(stdout.len());
    String::from_utf8_lossy(&stdout[..end]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;

    /// Every probe is a well-formed static executable that our own table (and so the kernel)
    /// recognises as its arch.
    #[test]
    fn probes_are_static_executables_of_their_arch() {
        let t = Table::builtin();
        for name in available() {
            let arch = t
                .get(name)
                .unwrap_or_else(|| panic!("{name} is in the table"));
            let elf = build(arch).unwrap();
            let facts = crate::elf::inspect(&elf).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (facts.class, facts.endian, facts.machine),
                (arch.class, arch.endian, arch.machine),
                "{name}"
            );
            assert!(facts.is_static(), "{name}");
            assert_eq!(
                t.arch_of_header(&elf).map(|a| a.name.as_str()),
                Some(name),
                "{name}"
            );
        }
    }

    #[test]
    fn issue_required_probes_exist() {
        let have = available();
        for a in [
            "aarch64",
            "arm",
            "riscv64",
            "ppc64le",
            "s390x",
            "mips64el",
            "mipsel",
            "i386",
            "x86_64",
            "loongarch64",
        ] {
            assert!(have.contains(&a), "{a}");
        }
    }

    #[test]
    fn machine_from_output() {
        assert_eq!(reported_machine(b"aarch64\0\0\0\0"), "aarch64");
        assert_eq!(reported_machine(b""), "");
    }
}
