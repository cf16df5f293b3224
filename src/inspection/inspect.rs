//! What is this binary, and what will the kernel do with it.
//!
//! `kernel_choice` is the kernel's own decision, reproduced exactly (`fs/binfmt_misc.c`
//! `check_file` and `search_binfmt_handler`): binfmt_misc as a whole must be enabled; entries are
//! tried newest first; the first *enabled* entry that matches wins; type M compares
//! `(buf[offset + i] ^ magic[i]) & mask[i]` over the first 256 bytes of the file (zero-filled
//! past its end); type E compares the text after the last `.` of the path as passed to exec.
//! Only when no entry matches does the native ELF loader get the file.
//!
//! `report` turns ELF facts + that choice into the verdict a person needs. Pure.

use std::path::Path;

use serde::Serialize;

use crate::binfmt::arch::Table;
use crate::binfmt::kernel::KernelEntry;
use crate::binfmt::registration::{BINPRM_BUF_SIZE, Matcher};
use crate::elf::{self, ElfFacts};

/// One arch the host runs without emulation, and why we believe it (`host` decides which).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NativeArch {
    pub arch: String,
    pub evidence: String,
}

/// The entry the kernel will hand this file to, if any.
pub fn kernel_choice<'e>(
    entries: &'e [KernelEntry],
    binfmt_enabled: bool,
    header: &[u8],
    exec_path: &str,
) -> Option<&'e KernelEntry> {
    if !binfmt_enabled {
        return None;
    }
    let buf = &header[..header.len().min(BINPRM_BUF_SIZE)];
    let ext = exec_path.rfind('.').map(|i| &exec_path[i + 1..]);
    // `entries` is newest first, the kernel's order.
    entries
        .iter()
        .filter(|k| k.entry.enabled)
        .find(|k| match &k.entry.registration.matcher {
            m @ Matcher::Magic { .. } => m.matches_header(buf),
            Matcher::Extension(x) => ext == Some(x.as_str()),
        })
}

/// What will happen when this file is executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Verdict {
    /// A binfmt_misc entry takes it.
    Emulated {
        entry: String,
        interpreter: String,
        flags: String,
    },
    /// No entry takes it and the host runs its arch.
    Native,
    /// No entry takes it and the host cannot run it.
    NoHandler {
        #[serde(skip_serializing_if = "Option::is_none")]
        fix: Option<String>,
    },
    /// Not a program (relocatable object, core dump).
    NotRunnable { reason: String },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Emulated {
                entry,
                interpreter,
                flags,
            } => write!(f, "emulated by {entry} ({interpreter}, flags {flags})"),
            Verdict::Native => write!(f, "native"),
            Verdict::NoHandler { fix: Some(fix) } => write!(f, "no handler — run: {fix}"),
            Verdict::NoHandler { fix: None } => {
                write!(
                    f,
                    "no handler, and no QEMU emulator exists for this machine"
                )
            }
            Verdict::NotRunnable { reason } => write!(f, "not runnable: {reason}"),
        }
    }
}

/// Everything `inspect` says about one ELF file.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub class: u8,
    pub endian: &'static str,
    #[serde(rename = "type")]
    pub e_type: &'static str,
    pub machine: u16,
    /// Our arch name, or null when the table has none for this header.
    pub arch: Option<String>,
    pub platform: Option<String>,
    pub debian: Vec<String>,
    pub aliases: Vec<String>,
    pub os_abi: String,
    pub abi: Vec<String>,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub interp: Option<String>,
    /// For dynamic binaries: whether the program interpreter exists on this host.
    pub interp_present: Option<bool>,
    pub build_id: Option<String>,
    pub verdict: Verdict,
    pub warnings: Vec<String>,
}

/// The arch of a header by our table; for files the registration patterns ignore on purpose
/// (relocatable objects, cores), by class, byte order and machine alone.
pub fn arch_of<'t>(
    table: &'t Table,
    header: &[u8],
    f: &ElfFacts,
) -> Option<&'t crate::binfmt::arch::Arch> {
    table.arch_of_header(header).or_else(|| {
        let candidates: Vec<_> = table
            .arches
            .iter()
            .filter(|a| (a.class, a.endian, a.machine) == (f.class, f.endian, f.machine))
            .collect();
        match candidates.as_slice() {
            [one] => Some(*one),
            // 32-bit MIPS: o32 or n32 by EF_MIPS_ABI2.
            many if f.machine == 8 => {
                let n32 = f.e_flags & 0x20 != 0;
                many.iter()
                    .find(|a| (a.abi == Some(crate::binfmt::arch::MipsAbi::N32)) == n32)
                    .copied()
            }
            _ => None,
        }
    })
}

/// What `report` needs to know about this machine.
pub struct Machine<'a> {
    pub table: &'a Table,
    pub native: &'a [NativeArch],
    /// Newest first.
    pub entries: &'a [KernelEntry],
    pub binfmt_enabled: bool,
    /// Whether a path exists on this host (for PT_INTERP).
    pub interp_exists: &'a dyn Fn(&str) -> bool,
}

/// Builds the report for one file, as executed by the path `exec_path`.
pub fn report(m: &Machine, exec_path: &str, header: &[u8], f: &ElfFacts) -> Report {
    let Machine {
        table,
        native,
        entries,
        binfmt_enabled,
        interp_exists,
    } = *m;
    let arch = arch_of(table, header, f);
    let is_native = arch.is_some_and(|a| native.iter().any(|n| n.arch == a.name));
    let choice = kernel_choice(entries, binfmt_enabled, header, exec_path);
    let mut warnings = Vec::new();
    let verdict = if f.e_type != goblin::elf::header::ET_EXEC
        && f.e_type != goblin::elf::header::ET_DYN
    {
        Verdict::NotRunnable {
            reason: format!("ELF {}", elf::type_name(f.e_type)),
        }
    } else if let Some(k) = choice {
        let r = &k.entry.registration;
        if is_native {
            warnings.push(format!(
                "{} captures binaries the host runs natively: remove it with `binfmtctl uninstall {}`",
                r.name, r.name
            ));
        }
        if !r.flags.fix_binary {
            warnings.push(format!(
                "{} lacks the F flag: the interpreter is looked up at exec time, so this fails inside chroots and containers that lack {}",
                r.name, r.interpreter
            ));
        }
        Verdict::Emulated {
            entry: r.name.clone(),
            interpreter: r.interpreter.clone(),
            flags: r.flags.to_string(),
        }
    } else if is_native {
        Verdict::Native
    } else if !binfmt_enabled && arch.is_some() {
        // Installing changes nothing then (the entries are kept, exit 0): the fix is to
        // switch binfmt_misc back on (issue 21).
        Verdict::NoHandler {
            fix: Some(
                "echo 1 > /proc/sys/fs/binfmt_misc/status (binfmt_misc is disabled as a whole)"
                    .into(),
            ),
        }
    } else {
        Verdict::NoHandler {
            fix: arch.map(|a| format!("binfmtctl install {}", a.platform().unwrap_or(&a.name))),
        }
    };
    let interp_present = f.interp.as_deref().map(interp_exists);
    if let (Some(false), Some(i)) = (interp_present, &f.interp)
        && !matches!(verdict, Verdict::NotRunnable { .. })
    {
        warnings.push(format!(
            "dynamically linked against {i}, which is not on this host: run it inside a rootfs of its arch (binfmtctl run) or point QEMU_LD_PREFIX at one"
        ));
    }
    Report {
        class: f.class,
        endian: if f.endian == crate::binfmt::arch::Endian::Little {
            "little"
        } else {
            "big"
        },
        e_type: elf::type_name(f.e_type),
        machine: f.machine,
        arch: arch.map(|a| a.name.clone()),
        platform: arch.and_then(|a| a.platform().map(str::to_owned)),
        debian: arch.map(|a| a.debian.clone()).unwrap_or_default(),
        aliases: arch.map(|a| a.all_names()).unwrap_or_default(),
        os_abi: elf::os_abi_name(f.os_abi),
        abi: elf::abi_details(f),
        is_static: f.is_static(),
        interp: f.interp.clone(),
        interp_present,
        build_id: f.build_id.clone(),
        verdict,
        warnings,
    }
}

/// `interp_exists` for the real host.
pub fn path_exists(p: &str) -> bool {
    Path::new(p).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::registration::{Entry, Flags, Registration};

    fn entry(name: &str, matcher: Matcher, enabled: bool, age: u64) -> KernelEntry {
        KernelEntry {
            name: name.as_bytes().to_vec(),
            entry: Entry {
                registration: Registration {
                    name: name.into(),
                    matcher,
                    interpreter: format!("/usr/bin/{name}"),
                    flags: Flags::DEFAULT,
                },
                enabled,
            },
            age,
        }
    }

    fn aarch64() -> Matcher {
        Table::builtin().get("aarch64").unwrap().matcher()
    }

    fn header() -> Vec<u8> {
        let t = Table::builtin();
        crate::inspection::probe::build(t.get("aarch64").unwrap()).unwrap()
    }

    #[test]
    fn newest_enabled_match_wins() {
        let h = header();
        let es = [
            entry("newest-disabled", aarch64(), false, 3),
            entry("newer", aarch64(), true, 2),
            entry("older", aarch64(), true, 1),
        ];
        assert_eq!(
            kernel_choice(&es, true, &h, "/x/probe")
                .unwrap()
                .entry
                .registration
                .name,
            "newer"
        );
        assert!(
            kernel_choice(&es, false, &h, "/x/probe").is_none(),
            "binfmt_misc disabled"
        );
        assert!(kernel_choice(&es[..1], true, &h, "/x/probe").is_none());
    }

    #[test]
    fn extension_entries_use_the_last_dot_of_the_path() {
        let es = [entry("jar", Matcher::Extension("jar".into()), true, 1)];
        assert!(kernel_choice(&es, true, b"PK", "/a/app.jar").is_some());
        assert!(kernel_choice(&es, true, b"PK", "/a.jar/app").is_none());
        // The kernel looks at the whole path: a dot in a directory name counts when the file
        // name has none.
        assert!(kernel_choice(&es, true, b"PK", "/dir.jar").is_some());
    }

    fn nothing_exists(_: &str) -> bool {
        false
    }

    fn machine<'a>(
        t: &'a Table,
        native: &'a [NativeArch],
        entries: &'a [KernelEntry],
    ) -> Machine<'a> {
        Machine {
            table: t,
            native,
            entries,
            binfmt_enabled: true,
            interp_exists: &nothing_exists,
        }
    }

    #[test]
    fn verdicts() {
        let t = Table::builtin();
        let h = header();
        let f = elf::inspect(&h).unwrap();
        let native = [NativeArch {
            arch: "x86_64".into(),
            evidence: String::new(),
        }];
        let m = |entries| machine(t, &native, entries);
        let r = report(&m(&[]), "/p", &h, &f);
        assert_eq!(
            r.verdict,
            Verdict::NoHandler {
                fix: Some("binfmtctl install linux/arm64".into())
            }
        );
        assert_eq!(
            r.verdict.to_string(),
            "no handler — run: binfmtctl install linux/arm64"
        );
        // binfmt_misc disabled as a whole: install would change nothing; the fix says so.
        let es = [entry("qemu-aarch64", aarch64(), true, 1)];
        let off = Machine {
            binfmt_enabled: false,
            ..m(&es)
        };
        assert_eq!(
            report(&off, "/p", &h, &f).verdict.to_string(),
            "no handler — run: echo 1 > /proc/sys/fs/binfmt_misc/status (binfmt_misc is disabled as a whole)"
        );
        let r = report(&m(&es), "/p", &h, &f);
        assert_eq!(
            r.verdict.to_string(),
            "emulated by qemu-aarch64 (/usr/bin/qemu-aarch64, flags PF)"
        );
        assert!(r.warnings.is_empty());
        let mut no_f = es.clone();
        no_f[0].entry.registration.flags = Flags::parse("P").unwrap();
        let r = report(&m(&no_f), "/p", &h, &f);
        assert!(
            r.warnings[0].contains("lacks the F flag"),
            "{:?}",
            r.warnings
        );
        // Our own x86_64 probe on an x86_64 host: native; captured when an entry matches it.
        let x = crate::inspection::probe::build(t.get("x86_64").unwrap()).unwrap();
        let fx = elf::inspect(&x).unwrap();
        assert_eq!(report(&m(&es), "/p", &x, &fx).verdict, Verdict::Native);
        let cap = [entry(
            "qemu-x86_64",
            t.get("x86_64").unwrap().matcher(),
            true,
            1,
        )];
        let r = report(&m(&cap), "/p", &x, &fx);
        assert!(r.warnings[0].contains("captures binaries the host runs natively"));
        // Dynamic binary with a missing loader.
        let dynf = ElfFacts {
            interp: Some("/lib/ld-linux-aarch64.so.1".into()),
            ..f.clone()
        };
        let r = report(&m(&es), "/p", &h, &dynf);
        assert_eq!(r.interp_present, Some(false));
        assert!(r.warnings[0].contains("QEMU_LD_PREFIX"), "{:?}", r.warnings);
        // A relocatable object is never run.
        let relf = ElfFacts { e_type: 1, ..f };
        let r = report(&m(&es), "/p.o", &h, &relf);
        assert_eq!(
            r.verdict,
            Verdict::NotRunnable {
                reason: "ELF relocatable".into()
            }
        );
        assert_eq!(
            r.arch.as_deref(),
            Some("aarch64"),
            "arch still named by machine"
        );
    }
}
