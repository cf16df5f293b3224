//! `doctor`: why a foreign program does or does not run here, and how to fix it. Pure: the
//! facts (the kernel's entries, the interpreters' checks, the files' ELF facts, boot
//! configuration) are gathered by `ops::doctor`; this module turns them into findings.
//!
//! Every finding has a stable `code` (docs/doctor.md lists them all), a severity (`error`: it
//! will not run; `warning`: it runs but misbehaves or breaks later; `note`), the evidence, and
//! the fix as a command where one exists. The kernel's own rules are the ones `inspect` models
//! (`inspection::inspect::kernel_choice`): newest entry first, the first enabled match wins.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::binfmt::arch::Table;
use crate::binfmt::kernel::KernelEntry;
use crate::binfmt::registration::Matcher;
use crate::elf::ElfFacts;
use crate::inspection::inspect::{NativeArch, arch_of, kernel_choice};
use crate::inspection::isa::IsaNeeds;
use crate::qemu::interpreter::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

/// One thing doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable, kebab-case (docs/doctor.md).
    pub code: &'static str,
    pub severity: Severity,
    /// What it is about: `machine`, an entry (`entry qemu-aarch64`) or a file path.
    pub subject: String,
    pub message: String,
    /// Entry name, interpreter, flags, version, ... as text.
    pub evidence: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn new(code: &'static str, severity: Severity, subject: &str, message: String) -> Finding {
        Finding {
            code,
            severity,
            subject: subject.to_owned(),
            message,
            evidence: BTreeMap::new(),
            fix: None,
        }
    }

    fn with(mut self, key: &'static str, value: impl Into<String>) -> Finding {
        self.evidence.insert(key, value.into());
        self
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// binfmt_misc as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binfmt {
    /// The kernel has no binfmt_misc file system (not built, or the module is not loaded).
    Missing,
    /// Known to the kernel but not mounted where we look.
    Unmounted {
        root: String,
        /// In a user namespace other than the initial one.
        in_userns: bool,
        /// Whether this kernel gives a user namespace its own instance (Linux >= 6.7).
        private_instances: bool,
    },
    Mounted {
        enabled: bool,
    },
}

/// One entry with what binfmtctl knows of it.
#[derive(Debug, Clone)]
pub struct EntryFacts {
    pub kernel: KernelEntry,
    /// The arch it emulates (by our table), if known.
    pub arch: Option<String>,
    /// What install's checks say of its interpreter (empty: nothing wrong).
    pub problems: Vec<Problem>,
    /// The interpreter's QEMU version, when it is QEMU and readable.
    pub version: Option<String>,
    /// What native program its pattern would capture (the native-capture guard).
    pub captures: Option<String>,
}

/// A QEMU version with a known user-mode regression (registrations/qemu-known-bad.toml).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KnownBad {
    /// A version or a prefix (`8.1`, `8.1.0`): matched as `qemu::version::version_matches`.
    pub version: String,
    /// Arches affected (our names), empty for all.
    #[serde(default)]
    pub arches: Vec<String>,
    pub problem: String,
    /// Where it is described (an upstream issue or commit).
    pub reference: String,
}

#[derive(Debug, serde::Deserialize)]
struct KnownBadFile {
    bad: Vec<KnownBad>,
}

/// The list of QEMU versions with known user-mode regressions, embedded at build time.
pub fn known_bad() -> Vec<KnownBad> {
    parse_known_bad(include_str!("../../registrations/qemu-known-bad.toml"))
        .expect("registrations/qemu-known-bad.toml is valid (tested)")
}

pub fn parse_known_bad(text: &str) -> Result<Vec<KnownBad>, toml::de::Error> {
    Ok(toml::from_str::<KnownBadFile>(text)?.bad)
}

/// A boot-time configuration that defines an entry of the same name (systemd-binfmt's
/// binfmt.d, binfmt-support's /var/lib/binfmts): it will replace the live entry at the next
/// boot or restart of that service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub file: String,
    pub name: String,
    /// The interpreter it registers.
    pub interpreter: String,
    /// Which service applies it.
    pub by: &'static str,
    /// binfmt-support: the package that registered it (`update-binfmts --package`).
    pub package: Option<String>,
}

/// Everything about the machine doctor judges.
pub struct Machine<'a> {
    pub table: &'a Table,
    pub native: &'a [NativeArch],
    pub binfmt: Binfmt,
    /// Newest first (the kernel's order).
    pub entries: &'a [EntryFacts],
    pub boot: &'a [BootConfig],
    pub known_bad: &'a [KnownBad],
    /// QEMU versions in binfmtctl's store, newest first.
    pub stored: &'a [String],
    /// Platforms Nix claims (`extra-platforms` and its own), when Nix is configured.
    pub nix_platforms: Option<&'a [String]>,
}

impl Machine<'_> {
    fn enabled(&self) -> bool {
        self.binfmt == Binfmt::Mounted { enabled: true }
    }

    fn kernel_entries(&self) -> Vec<KernelEntry> {
        self.entries.iter().map(|e| e.kernel.clone()).collect()
    }
}

fn entry_subject(name: &str) -> String {
    format!("entry {name}")
}

/// The machine's findings: can it run foreign programs at all, and which entries misbehave.
pub fn machine(m: &Machine) -> Vec<Finding> {
    let mut out = Vec::new();
    match &m.binfmt {
        Binfmt::Missing => out.push(
            Finding::new(
                "binfmt-misc-missing",
                Severity::Error,
                "machine",
                "the kernel has no binfmt_misc (not in /proc/filesystems): no foreign program runs without it".into(),
            )
            .fix("modprobe binfmt_misc (the kernel must be built with CONFIG_BINFMT_MISC)"),
        ),
        Binfmt::Unmounted {
            root,
            in_userns,
            private_instances,
        } => {
            let (message, fix) = match (in_userns, private_instances) {
                (true, true) => (
                    format!("binfmt_misc is not mounted at {root}: this user namespace has no instance of its own yet (Linux >= 6.7 allows one); the host's entries are not visible here"),
                    format!("mount -t binfmt_misc binfmt_misc {root} (inside this namespace), then binfmtctl install ARCH; or use binfmtctl run --rootless"),
                ),
                (true, false) => (
                    format!("binfmt_misc is not mounted at {root}, and this kernel (< 6.7) gives user namespaces no instance of their own: a container without privileges sees no handler"),
                    "register the handlers on the host (binfmtctl install ARCH as root there); an F-flag entry then works in every container".into(),
                ),
                _ => (
                    format!("binfmt_misc is not mounted at {root}"),
                    format!("mount -t binfmt_misc binfmt_misc {root} (binfmtctl install mounts it)"),
                ),
            };
            out.push(Finding::new("binfmt-misc-unmounted", Severity::Error, "machine", message).fix(fix));
        }
        Binfmt::Mounted { enabled: false } => out.push(
            Finding::new(
                "binfmt-misc-disabled",
                Severity::Error,
                "machine",
                "binfmt_misc is disabled as a whole: the kernel uses none of its entries".into(),
            )
            .fix("echo 1 > /proc/sys/fs/binfmt_misc/status"),
        ),
        Binfmt::Mounted { enabled: true } => {}
    }
    for (i, e) in m.entries.iter().enumerate() {
        out.extend(entry_findings(m, e));
        // Older entries a newer enabled one fully shadows for the same files.
        if e.kernel.entry.enabled {
            for older in m.entries[i + 1..].iter().filter(|o| o.kernel.entry.enabled) {
                if overlap(&e.kernel, &older.kernel) {
                    out.push(shadowed(
                        &e.kernel,
                        &older.kernel,
                        &entry_subject(&older.kernel.entry.registration.name),
                    ));
                }
            }
        }
    }
    for b in m.boot {
        let live = m
            .entries
            .iter()
            .find(|e| e.kernel.entry.registration.name == b.name);
        if let Some(live) = live {
            let r = &live.kernel.entry.registration;
            if r.interpreter != b.interpreter {
                out.push(
                    Finding::new(
                        "boot-clobber",
                        Severity::Warning,
                        &entry_subject(&b.name),
                        format!(
                            "{} defines {} with {}: {} will replace the live entry ({}) at the next boot or restart",
                            b.file, b.name, b.interpreter, b.by, r.interpreter
                        ),
                    )
                    .with("file", b.file.clone())
                    .with("entry", b.name.clone())
                    .with("interpreter", b.interpreter.clone())
                    .fix(boot_fix(b)),
                );
            }
        }
    }
    if let Some(nix) = m.nix_platforms {
        let runs = |p: &str| {
            m.native
                .iter()
                .filter_map(|n| m.table.get(&n.arch))
                .chain(
                    m.entries
                        .iter()
                        .filter(|e| m.enabled() && e.kernel.entry.enabled && e.problems.is_empty())
                        .filter_map(|e| e.arch.as_deref().and_then(|a| m.table.get(a))),
                )
                .any(|a| a.nix.iter().any(|x| x == p))
        };
        for p in nix.iter().filter(|p| !runs(p)) {
            out.push(
                Finding::new(
                    "nix-mismatch",
                    Severity::Warning,
                    "machine",
                    format!("Nix claims it can build for {p}, but no working handler runs it: builds for it fail with \"exec format error\""),
                )
                .with("platform", p.clone())
                .fix(format!("binfmtctl install {p} --nix (or remove it from extra-platforms)")),
            );
        }
    }
    out
}

/// How to stop a boot-time tool from replacing an entry (docs/deploy.md, "Coexistence").
fn boot_fix(b: &BootConfig) -> String {
    match b.by {
        "binfmt-support" => format!(
            "update-binfmts --package {} --remove {} {} (or remove that package)",
            b.package.as_deref().unwrap_or("PACKAGE"),
            b.name,
            b.interpreter
        ),
        _ if b.file.starts_with("/etc/") => format!("remove or edit {}", b.file),
        _ => {
            let name = b.file.rsplit('/').next().unwrap_or(&b.file);
            format!("ln -s /dev/null /etc/binfmt.d/{name} (masks {})", b.file)
        }
    }
}

fn overlap(a: &KernelEntry, b: &KernelEntry) -> bool {
    let (ma, mb) = (&a.entry.registration.matcher, &b.entry.registration.matcher);
    match (ma, mb) {
        (Matcher::Extension(x), Matcher::Extension(y)) => x == y,
        _ => ma.overlaps(mb),
    }
}

fn shadowed(winner: &KernelEntry, dead: &KernelEntry, subject: &str) -> Finding {
    let (w, d) = (&winner.entry.registration, &dead.entry.registration);
    Finding::new(
        "shadowed-entry",
        Severity::Warning,
        subject,
        format!(
            "{} and {} match the same files; the kernel tries the newest entry first, so {} ({}) runs them and {} ({}) is never used for them",
            w.name, d.name, w.name, w.interpreter, d.name, d.interpreter
        ),
    )
    .with("used", w.name.clone())
    .with("unused", d.name.clone())
    .fix(format!("binfmtctl uninstall '{}' if it is not wanted (or disable it: binfmtctl disable '{}')", d.name, d.name))
}

/// The findings about an entry's interpreter file (missing, dynamic, wrong machine, unsafe).
fn interpreter_findings(e: &EntryFacts, subject: &str, arch_hint: &str) -> Vec<Finding> {
    let r = &e.kernel.entry.registration;
    let mut out = Vec::new();
    for p in &e.problems {
        let (code, severity) = match p {
            Problem::Missing if !r.flags.fix_binary => ("interpreter-not-visible", Severity::Error),
            // With F the kernel holds the file it opened at registration.
            Problem::Missing => continue,
            Problem::Dynamic { .. } => (
                "interpreter-dynamic",
                if r.flags.fix_binary {
                    Severity::Error
                } else {
                    Severity::Warning
                },
            ),
            Problem::WrongHostArch { .. } | Problem::NotElf { .. } => {
                ("interpreter-wrong-machine", Severity::Error)
            }
            _ => ("interpreter-unsafe", Severity::Warning),
        };
        let message = match code {
            "interpreter-not-visible" => format!(
                "{} has no F flag and its interpreter {} does not exist here: the kernel looks it up at every exec, in the caller's mount namespace, so programs fail with \"No such file or directory\"",
                r.name, r.interpreter
            ),
            "interpreter-dynamic" => format!(
                "{}'s interpreter {} {p}: inside a chroot or container its libraries are looked up there, and programs fail",
                r.name, r.interpreter
            ),
            _ => format!("{}'s interpreter {} {p}", r.name, r.interpreter),
        };
        out.push(
            Finding::new(code, severity, subject, message)
                .with("entry", r.name.clone())
                .with("interpreter", r.interpreter.clone())
                .with("flags", r.flags.to_string())
                .fix(format!("binfmtctl install {arch_hint} (replaces it with a checked, static interpreter and flags PF)")),
        );
    }
    out
}

/// The findings about an entry's QEMU version: a known bug, a newer one in the store.
fn version_findings(m: &Machine, e: &EntryFacts, v: &String, subject: &str) -> Vec<Finding> {
    let r = &e.kernel.entry.registration;
    let mut out = Vec::new();
    for b in m.known_bad.iter().filter(|b| {
        crate::qemu::version::version_matches(&b.version, v)
            && (b.arches.is_empty() || e.arch.as_ref().is_some_and(|a| b.arches.contains(a)))
    }) {
        out.push(
            Finding::new(
                "qemu-known-bad",
                Severity::Warning,
                subject,
                format!("{}'s QEMU {v} has a known user-mode bug: {}", r.name, b.problem),
            )
            .with("entry", r.name.clone())
            .with("version", v.clone())
            .with("reference", b.reference.clone())
            .fix("binfmtctl qemu versions, then binfmtctl qemu fetch VERSION and binfmtctl qemu use VERSION"),
        );
    }
    if let Some(newest) = m.stored.first()
        && crate::qemu::version::compare_versions(newest, v) == std::cmp::Ordering::Greater
    {
        out.push(
            Finding::new(
                "qemu-old",
                Severity::Note,
                subject,
                format!("{} runs QEMU {v}; the store holds {newest}", r.name),
            )
            .with("entry", r.name.clone())
            .with("version", v.clone())
            .fix(format!("binfmtctl qemu use {newest}")),
        );
    }
    out
}

/// What is wrong with one entry, whatever file it runs.
fn entry_findings(m: &Machine, e: &EntryFacts) -> Vec<Finding> {
    let r = &e.kernel.entry.registration;
    let subject = entry_subject(&r.name);
    let mut out = Vec::new();
    let arch_hint = e.arch.clone().unwrap_or_else(|| "ARCH".into());
    if !e.kernel.entry.enabled {
        out.push(
            Finding::new(
                "handler-disabled",
                Severity::Note,
                &subject,
                format!("{} is disabled: the kernel skips it", r.name),
            )
            .with("entry", r.name.clone())
            .fix(format!("binfmtctl enable '{}'", r.name)),
        );
    }
    if let Some(c) = &e.captures {
        out.push(
            Finding::new(
                "captures-native",
                Severity::Error,
                &subject,
                format!(
                    "{}'s pattern matches {c}: the host's own programs run under {}",
                    r.name, r.interpreter
                ),
            )
            .with("entry", r.name.clone())
            .fix(format!("binfmtctl uninstall '{}'", r.name)),
        );
    }
    out.extend(interpreter_findings(e, &subject, &arch_hint));
    if !r.flags.preserve_argv0 && !matches!(r.matcher, Matcher::Extension(_)) {
        out.push(
            Finding::new(
                "no-preserve-argv0",
                Severity::Warning,
                &subject,
                format!(
                    "{} lacks the P flag: programs see their own path as argv[0], so multi-call programs (busybox, as in Alpine images) break: `sh -c 'echo hello | grep -c hell'` ends in \"applet not found\"",
                    r.name
                ),
            )
            .with("entry", r.name.clone())
            .with("flags", r.flags.to_string())
            .fix(format!("binfmtctl install {arch_hint} (flags PF)")),
        );
    }
    if let Some(v) = &e.version {
        out.extend(version_findings(m, e, v, &subject));
    }
    out
}

/// One file to judge.
pub struct FileFacts<'a> {
    pub path: &'a str,
    /// The first 256 bytes.
    pub header: &'a [u8],
    /// `None`: not ELF.
    pub elf: Option<&'a ElfFacts>,
    pub isa: &'a IsaNeeds,
    pub setuid: bool,
    /// Whether the program's own loader (PT_INTERP) exists where it will run.
    pub loader_present: Option<bool>,
    /// Inside a rootfs (`doctor --rootfs`): whether a path exists there (for interpreters of
    /// entries without F).
    pub in_rootfs: Option<&'a dyn Fn(&str) -> bool>,
}

/// What the CPUs that will run programs offer.
pub struct Cpus<'a> {
    /// The host's `/proc/cpuinfo` flags.
    pub host_flags: &'a [&'a str],
}

/// Will this file run here, through what, and if not, why.
pub fn file(m: &Machine, cpus: &Cpus, f: &FileFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = f.path;
    let entries = m.kernel_entries();
    let Some(elf) = f.elf else {
        return not_elf(m, &entries, f);
    };
    use goblin::elf::header::{ET_DYN, ET_EXEC};
    if elf.e_type != ET_EXEC && elf.e_type != ET_DYN {
        out.push(Finding::new(
            "not-elf",
            Severity::Note,
            subject,
            format!(
                "an ELF {} file, not a program",
                crate::elf::type_name(elf.e_type)
            ),
        ));
        return out;
    }
    let arch = arch_of(m.table, f.header, elf);
    let arch_name = arch.map(|a| a.name.clone());
    let native = arch.is_some_and(|a| m.native.iter().any(|n| n.arch == a.name));
    let library = elf.e_type == ET_DYN && elf.interp.is_none() && is_library_name(f.path);
    if library {
        out.push(
            Finding::new(
                "not-elf",
                Severity::Note,
                subject,
                format!(
                    "a shared library ({}): not run by itself; the programs that load it must be of the same arch",
                    arch_name.as_deref().unwrap_or("unknown arch")
                ),
            ),
        );
        return out;
    }
    let choice = kernel_choice(&entries, m.enabled(), f.header, f.path);
    // Every entry whose pattern matches this file, newest first.
    let matching: Vec<&EntryFacts> = m
        .entries
        .iter()
        .filter(|e| match &e.kernel.entry.registration.matcher {
            mm @ Matcher::Magic { .. } => mm.matches_header(f.header),
            Matcher::Extension(x) => f.path.rsplit_once('.').is_some_and(|(_, ext)| ext == x),
        })
        .collect();
    match choice {
        Some(k) => out.extend(handled(
            m,
            f,
            elf,
            k,
            &matching,
            native,
            arch_name.as_deref(),
        )),
        None if native => {
            out.push(
                Finding::new(
                    "not-foreign",
                    Severity::Note,
                    subject,
                    format!(
                        "a native {} program: it runs without emulation",
                        arch_name.clone().unwrap_or_default()
                    ),
                )
                .with("arch", arch_name.clone().unwrap_or_default()),
            );
            out.extend(isa_native(subject, elf, f.isa, cpus));
        }
        None => out.extend(unhandled(m, f, arch, &matching)),
    }
    out
}

/// A file that is not an ELF program: a script, something an entry takes, or nothing runnable.
fn not_elf(m: &Machine, entries: &[KernelEntry], f: &FileFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = f.path;
    if let Some(rest) = f.header.strip_prefix(b"#!") {
        let line = rest.split(|&c| c == b'\n').next().unwrap_or(rest);
        let interp = String::from_utf8_lossy(line).trim().to_owned();
        out.push(
            Finding::new(
                "not-elf",
                Severity::Note,
                subject,
                format!("a script: the kernel runs its interpreter ({interp}); doctor that program instead"),
            )
            .with("interpreter", interp),
        );
    } else if let Some(k) = kernel_choice(entries, m.enabled(), f.header, f.path) {
        let r = &k.entry.registration;
        out.push(
            Finding::new(
                "not-elf",
                Severity::Note,
                subject,
                format!(
                    "not an ELF program; {} runs it with {}",
                    r.name, r.interpreter
                ),
            )
            .with("entry", r.name.clone()),
        );
    } else {
        out.push(Finding::new(
            "not-elf",
            Severity::Error,
            subject,
            "not an ELF program, and no binfmt_misc entry matches it: exec fails with \"exec format error\"".into(),
        ));
    }
    out
}

/// What is wrong with the entry that takes the file, said of the file: the entry's own
/// findings, its interpreter missing in the file's rootfs, setuid without the C flag.
fn chosen_entry_findings(
    m: &Machine,
    f: &FileFacts,
    e: &EntryFacts,
    arch_name: Option<&str>,
) -> Vec<Finding> {
    let subject = f.path;
    let r = &e.kernel.entry.registration;
    let mut out = Vec::new();
    for mut x in entry_findings(m, e) {
        // Said of this file, with the entry as evidence.
        x.subject = subject.to_owned();
        out.push(x);
    }
    if let (Some(exists), false) = (f.in_rootfs, r.flags.fix_binary)
        && !exists(&r.interpreter)
    {
        out.push(
            Finding::new(
                "interpreter-not-visible",
                Severity::Error,
                subject,
                format!(
                    "{} has no F flag and {} does not exist inside the rootfs: the kernel looks it up there at exec, so this fails with \"No such file or directory\" in the chroot",
                    r.name, r.interpreter
                ),
            )
            .with("entry", r.name.clone())
            .fix(format!("binfmtctl install {} (flag F opens the interpreter once, so it works in every chroot)", arch_name.unwrap_or("ARCH"))),
        );
    }
    if f.setuid && !r.flags.credentials {
        out.push(
            Finding::new(
                "credentials-off",
                Severity::Warning,
                subject,
                format!("a setuid/setgid program, but {} lacks the C flag: it runs with the caller's credentials (sudo, su, ping fail)", r.name),
            )
            .with("entry", r.name.clone())
            .fix(format!("binfmtctl install {} --credentials", arch_name.unwrap_or("ARCH"))),
        );
    }
    out
}

/// A foreign (or captured native) program an enabled entry `k` takes: how it runs, and what
/// will go wrong with that entry, the entries it shadows, its loader and its ISA level.
fn handled(
    m: &Machine,
    f: &FileFacts,
    elf: &ElfFacts,
    k: &KernelEntry,
    matching: &[&EntryFacts],
    native: bool,
    arch_name: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = f.path;
    let arch_name = arch_name.map(str::to_owned);
    let chosen = matching.iter().find(|e| e.kernel.name == k.name).copied();
    let r = &k.entry.registration;
    if native {
        out.push(
            Finding::new(
                "captures-native",
                Severity::Error,
                subject,
                format!(
                    "a native program, but {} takes it: it runs under {}",
                    r.name, r.interpreter
                ),
            )
            .with("entry", r.name.clone())
            .fix(format!("binfmtctl uninstall '{}'", r.name)),
        );
    } else {
        let mut ok = Finding::new(
            "runs-emulated",
            Severity::Note,
            subject,
            format!(
                "{} runs it with {} (flags {})",
                r.name, r.interpreter, r.flags
            ),
        )
        .with("entry", r.name.clone())
        .with("interpreter", r.interpreter.clone())
        .with("flags", r.flags.to_string());
        if let Some(a) = &arch_name {
            ok = ok.with("arch", a.clone());
        }
        out.push(ok);
    }
    if let Some(e) = chosen {
        out.extend(chosen_entry_findings(m, f, e, arch_name.as_deref()));
    }
    for dead in matching.iter().filter(|e| e.kernel.name != k.name) {
        if dead.kernel.entry.enabled {
            if dead.kernel.age < k.age {
                out.push(shadowed(k, &dead.kernel, subject));
            }
        } else {
            out.push(
                Finding::new(
                    "handler-disabled",
                    Severity::Note,
                    subject,
                    format!(
                        "{} would also match but is disabled",
                        dead.kernel.entry.registration.name
                    ),
                )
                .with("entry", dead.kernel.entry.registration.name.clone()),
            );
        }
    }
    if !native
        && let Some(i) = &elf.interp
        && f.loader_present == Some(false)
    {
        out.push(
            Finding::new(
                "loader-missing",
                Severity::Error,
                subject,
                format!("dynamically linked against {i}, which does not exist here: QEMU fails with \"Could not open '{i}'\""),
            )
            .with("loader", i.clone())
            .fix("run it inside a rootfs of its arch (binfmtctl run --rootfs DIR -- PROGRAM), or set QEMU_LD_PREFIX to one"),
        );
    }
    if !native {
        out.extend(isa_emulated(
            subject,
            arch_name.as_deref(),
            f.isa,
            chosen.and_then(|e| e.version.as_deref()),
        ));
    }
    out
}

/// A foreign program no enabled entry takes: why (binfmt_misc unusable, a disabled entry, no
/// entry) and the fix.
fn unhandled(
    m: &Machine,
    f: &FileFacts,
    arch: Option<&crate::binfmt::arch::Arch>,
    matching: &[&EntryFacts],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = f.path;
    let arch_name = arch.map(|a| a.name.clone());
    let disabled = matching.iter().find(|e| !e.kernel.entry.enabled);
    if !m.enabled() {
        out.push(Finding::new(
            "no-handler",
            Severity::Error,
            subject,
            "binfmt_misc is not usable here (see the machine's findings): the kernel cannot run it"
                .into(),
        ));
    } else if let Some(d) = disabled {
        let name = &d.kernel.entry.registration.name;
        out.push(
            Finding::new(
                "handler-disabled",
                Severity::Error,
                subject,
                format!("{name} matches it but is disabled: exec fails with \"exec format error\""),
            )
            .with("entry", name.clone())
            .fix(format!("binfmtctl enable '{name}'")),
        );
    } else {
        let mut x = Finding::new(
            "no-handler",
            Severity::Error,
            subject,
            format!(
                "no binfmt_misc entry matches this {} program: exec fails with \"exec format error\"",
                arch_name.as_deref().unwrap_or("foreign")
            ),
        );
        if let Some(a) = arch {
            x = x.with("arch", a.name.clone()).fix(format!(
                "binfmtctl install {}",
                a.platform().unwrap_or(&a.name)
            ));
        }
        out.push(x);
    }
    out
}

fn is_library_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".so") || name.contains(".so.")
}

/// An emulated program that needs more than QEMU's default CPU model offers.
fn isa_emulated(
    subject: &str,
    arch: Option<&str>,
    isa: &IsaNeeds,
    qemu: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if arch == Some("x86_64")
        && let Some(level) = isa.x86_64_level.filter(|l| *l > 1)
    {
        let default = crate::inspection::isa::qemu_x86_64_level(qemu, false);
        let max = crate::inspection::isa::qemu_x86_64_level(qemu, true);
        if level > max {
            out.push(
                Finding::new(
                    "isa-level",
                    Severity::Error,
                    subject,
                    format!("built for x86-64-v{level}, and QEMU emulates at most x86-64-v{max} (no AVX-512): it stops with SIGILL"),
                )
                .with("needs", format!("x86-64-v{level}"))
                .fix(format!("rebuild it for x86-64-v{max} or lower (-march=x86-64-v{max})")),
            );
        } else if level > default {
            out.push(
                Finding::new(
                    "isa-level",
                    Severity::Error,
                    subject,
                    format!("built for x86-64-v{level}, beyond QEMU's default CPU (x86-64-v{default}): it stops with SIGILL"),
                )
                .with("needs", format!("x86-64-v{level}"))
                .fix("QEMU_CPU=max (binfmtctl run --cpu max)"),
            );
        }
    }
    if !isa.riscv_beyond_gc.is_empty() {
        // QEMU's riscv64 models take extensions as properties (`rv64,v=true`); `max` exists
        // only in newer QEMU. Vector sub-extensions come with `v`.
        let v = isa.riscv_beyond_gc.iter().any(|e| e == "v");
        let props: Vec<String> = isa
            .riscv_beyond_gc
            .iter()
            .filter(|e| !(v && (e.starts_with("zve") || e.starts_with("zvl"))))
            .map(|e| format!("{e}=true"))
            .collect();
        let cpu = format!("rv64,{}", props.join(","));
        out.push(
            Finding::new(
                "isa-level",
                Severity::Warning,
                subject,
                format!(
                    "its RISC-V arch string names extensions beyond rv64gc ({}): QEMU's default riscv CPU may lack some, and the program then stops with SIGILL",
                    isa.riscv_beyond_gc.join(", ")
                ),
            )
            .with("riscv_arch", isa.riscv_arch.clone().unwrap_or_default())
            .fix(format!("QEMU_CPU={cpu} (binfmtctl run --cpu {cpu})")),
        );
    }
    if !isa.aarch64.is_empty() {
        out.push(
            Finding::new(
                "isa-level",
                Severity::Note,
                subject,
                format!(
                    "built with {} (QEMU's default aarch64 CPU, max, implements them)",
                    isa.aarch64.join(" and ")
                ),
            )
            .with("aarch64", isa.aarch64.join(",")),
        );
    }
    out
}

/// A native program that needs more than the host's CPU has.
fn isa_native(subject: &str, elf: &ElfFacts, isa: &IsaNeeds, cpus: &Cpus) -> Vec<Finding> {
    let mut out = Vec::new();
    if elf.machine == goblin::elf::header::EM_X86_64
        && let Some(level) = isa.x86_64_level.filter(|l| *l > 1)
        && !cpus.host_flags.is_empty()
    {
        let host = crate::inspection::isa::x86_64_level_of(cpus.host_flags);
        if level > host {
            let qemu_max = crate::inspection::isa::qemu_x86_64_level(Some("7.2"), true);
            let fix = if level <= qemu_max {
                format!(
                    "run it under QEMU's x86-64-v{qemu_max} CPU: QEMU_CPU=max qemu-x86_64-static {subject}"
                )
            } else {
                format!(
                    "rebuild it for x86-64-v{host} (-march=x86-64-v{host}); QEMU emulates at most x86-64-v{qemu_max}"
                )
            };
            out.push(
                Finding::new(
                    "isa-level",
                    Severity::Error,
                    subject,
                    format!("built for x86-64-v{level}, and this CPU offers x86-64-v{host}: glibc's loader refuses such a program (\"CPU ISA level is lower than required\"), and a static one stops with SIGILL at its first x86-64-v{level} instruction"),
                )
                .with("needs", format!("x86-64-v{level}"))
                .with("cpu", format!("x86-64-v{host}"))
                .fix(fix),
            );
        }
    }
    out
}

/// Exit status for a doctor run: 1 when anything asked about will not run.
pub fn any_error(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::registration::{Entry, Flags, Registration};

    fn table() -> &'static Table {
        Table::builtin()
    }

    fn entry(
        name: &str,
        arch: &str,
        interp: &str,
        flags: &str,
        enabled: bool,
        age: u64,
    ) -> EntryFacts {
        let a = table().get(arch).unwrap();
        EntryFacts {
            kernel: KernelEntry {
                name: name.as_bytes().to_vec(),
                entry: Entry {
                    registration: Registration {
                        name: name.into(),
                        matcher: a.matcher(),
                        interpreter: interp.into(),
                        flags: Flags::parse(flags).unwrap(),
                    },
                    enabled,
                },
                age,
            },
            arch: Some(arch.into()),
            problems: Vec::new(),
            version: Some("1:7.2+dfsg-7+deb12u18".into()),
            captures: None,
        }
    }

    fn x86_64_host() -> Vec<NativeArch> {
        vec![NativeArch {
            arch: "x86_64".into(),
            evidence: "uname".into(),
        }]
    }

    struct World {
        native: Vec<NativeArch>,
        entries: Vec<EntryFacts>,
        boot: Vec<BootConfig>,
        bad: Vec<KnownBad>,
        stored: Vec<String>,
        binfmt: Binfmt,
    }

    impl World {
        fn new(entries: Vec<EntryFacts>) -> World {
            World {
                native: x86_64_host(),
                entries,
                boot: Vec::new(),
                bad: known_bad(),
                stored: Vec::new(),
                binfmt: Binfmt::Mounted { enabled: true },
            }
        }

        fn machine(&self) -> Machine<'_> {
            Machine {
                table: table(),
                native: &self.native,
                binfmt: self.binfmt.clone(),
                entries: &self.entries,
                boot: &self.boot,
                known_bad: &self.bad,
                stored: &self.stored,
                nix_platforms: None,
            }
        }
    }

    fn codes(f: &[Finding]) -> Vec<(&'static str, Severity)> {
        f.iter().map(|f| (f.code, f.severity)).collect()
    }

    /// A minimal ELF header of `arch` (what the table's pattern matches), type EXEC.
    fn header(arch: &str) -> Vec<u8> {
        let a = table().get(arch).unwrap();
        let Matcher::Magic {
            offset,
            magic,
            mask,
        } = a.matcher()
        else {
            panic!("magic")
        };
        let mask = mask.unwrap_or_else(|| vec![0xff; magic.len()]);
        let mut h = vec![0u8; 64];
        for (i, (m, k)) in magic.iter().zip(&mask).enumerate() {
            h[offset + i] = m & k;
        }
        h
    }

    fn elf_of(arch: &str, interp: Option<&str>) -> ElfFacts {
        let a = table().get(arch).unwrap();
        ElfFacts {
            class: a.class,
            endian: a.endian,
            machine: a.machine,
            e_type: 2,
            e_flags: 0,
            os_abi: 0,
            interp: interp.map(str::to_owned),
            build_id: None,
        }
    }

    fn judge(
        w: &World,
        path: &str,
        arch: &str,
        isa: &IsaNeeds,
        setuid: bool,
        loader: Option<bool>,
    ) -> Vec<Finding> {
        let h = header(arch);
        let e = elf_of(arch, loader.map(|_| "/lib/ld-linux-aarch64.so.1"));
        let flags: Vec<&str> = vec![];
        file(
            &w.machine(),
            &Cpus { host_flags: &flags },
            &FileFacts {
                path,
                header: &h,
                elf: Some(&e),
                isa,
                setuid,
                loader_present: loader,
                in_rootfs: None,
            },
        )
    }

    #[test]
    fn a_healthy_machine_says_nothing_and_a_good_file_only_notes() {
        let w = World::new(vec![entry(
            "qemu-aarch64",
            "aarch64",
            "/usr/bin/qemu-aarch64-static",
            "PF",
            true,
            1,
        )]);
        assert!(machine(&w.machine()).is_empty());
        let f = judge(&w, "/a", "aarch64", &IsaNeeds::default(), false, None);
        assert_eq!(codes(&f), [("runs-emulated", Severity::Note)]);
        assert!(!any_error(&f));
    }

    #[test]
    fn binfmt_misc_states() {
        let mut w = World::new(Vec::new());
        for (state, code) in [
            (Binfmt::Missing, "binfmt-misc-missing"),
            (
                Binfmt::Unmounted {
                    root: "/x".into(),
                    in_userns: false,
                    private_instances: true,
                },
                "binfmt-misc-unmounted",
            ),
            (Binfmt::Mounted { enabled: false }, "binfmt-misc-disabled"),
        ] {
            w.binfmt = state;
            let f = machine(&w.machine());
            assert_eq!(codes(&f), [(code, Severity::Error)]);
            assert!(f[0].fix.is_some(), "{code} names its fix");
            // A foreign file then has no handler, whatever the entries.
            let g = judge(&w, "/a", "aarch64", &IsaNeeds::default(), false, None);
            assert_eq!(codes(&g), [("no-handler", Severity::Error)]);
        }
        // In a user namespace the message says why and what Linux allows.
        w.binfmt = Binfmt::Unmounted {
            root: "/x".into(),
            in_userns: true,
            private_instances: true,
        };
        assert!(machine(&w.machine())[0].message.contains("Linux >= 6.7"));
        w.binfmt = Binfmt::Unmounted {
            root: "/x".into(),
            in_userns: true,
            private_instances: false,
        };
        assert!(
            machine(&w.machine())[0]
                .message
                .contains("container without privileges")
        );
    }

    #[test]
    fn no_handler_and_disabled_handler() {
        let w = World::new(vec![entry("qemu-aarch64", "aarch64", "/q", "PF", false, 1)]);
        let f = judge(&w, "/a", "aarch64", &IsaNeeds::default(), false, None);
        assert_eq!(codes(&f), [("handler-disabled", Severity::Error)]);
        assert_eq!(f[0].fix.as_deref(), Some("binfmtctl enable 'qemu-aarch64'"));
        let f = judge(&w, "/r", "riscv64", &IsaNeeds::default(), false, None);
        assert_eq!(codes(&f), [("no-handler", Severity::Error)]);
        assert_eq!(f[0].fix.as_deref(), Some("binfmtctl install linux/riscv64"));
        assert_eq!(
            codes(&machine(&w.machine())),
            [("handler-disabled", Severity::Note)]
        );
    }

    #[test]
    fn shadowed_entries_name_the_winner_and_the_dead() {
        // Newest first: the F-only entry someone added last wins over ours.
        let w = World::new(vec![
            entry(
                "aarch64",
                "aarch64",
                "/usr/bin/qemu-aarch64-static",
                "F",
                true,
                2,
            ),
            entry(
                "qemu-aarch64",
                "aarch64",
                "/usr/bin/qemu-aarch64-static",
                "PF",
                true,
                1,
            ),
        ]);
        let m = machine(&w.machine());
        let shadow: Vec<&Finding> = m.iter().filter(|f| f.code == "shadowed-entry").collect();
        assert_eq!(shadow.len(), 1);
        assert_eq!(shadow[0].evidence["used"], "aarch64");
        assert_eq!(shadow[0].evidence["unused"], "qemu-aarch64");
        let f = judge(&w, "/a", "aarch64", &IsaNeeds::default(), false, None);
        let c = codes(&f);
        assert!(c.contains(&("runs-emulated", Severity::Note)), "{c:?}");
        assert!(
            c.contains(&("no-preserve-argv0", Severity::Warning)),
            "{c:?}"
        );
        assert!(c.contains(&("shadowed-entry", Severity::Warning)), "{c:?}");
        assert_eq!(f[0].evidence["entry"], "aarch64");
    }

    #[test]
    fn interpreter_problems_are_classified() {
        let mut missing = entry("qemu-arm", "arm", "/nope/qemu-arm", "P", true, 3);
        missing.problems = vec![Problem::Missing];
        let mut missing_f = entry("qemu-mips", "mips", "/gone/qemu-mips", "PF", true, 2);
        missing_f.problems = vec![Problem::Missing];
        let mut dynamic = entry(
            "qemu-riscv64",
            "riscv64",
            "/usr/bin/qemu-riscv64",
            "PF",
            true,
            1,
        );
        dynamic.problems = vec![Problem::Dynamic {
            interp: "/lib64/ld-linux-x86-64.so.2".into(),
        }];
        let mut wrong = entry("qemu-s390x", "s390x", "/x/qemu-s390x", "PF", true, 4);
        wrong.problems = vec![Problem::WrongHostArch {
            machine: 183,
            class: 64,
        }];
        let mut unsafe_ = entry("qemu-ppc64le", "ppc64le", "/tmp/qemu", "PF", true, 5);
        unsafe_.problems = vec![Problem::Writable { mode: 0o777 }];
        let w = World::new(vec![unsafe_, wrong, missing, missing_f, dynamic]);
        let m = machine(&w.machine());
        let by = |code: &str| {
            m.iter()
                .filter(|f| f.code == code)
                .map(|f| f.subject.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(by("interpreter-not-visible"), ["entry qemu-arm"]);
        assert_eq!(by("interpreter-dynamic"), ["entry qemu-riscv64"]);
        assert_eq!(by("interpreter-wrong-machine"), ["entry qemu-s390x"]);
        assert_eq!(by("interpreter-unsafe"), ["entry qemu-ppc64le"]);
        // With F the kernel holds the file: a missing path is no finding.
        assert!(m.iter().all(|f| f.subject != "entry qemu-mips"), "{m:?}");
    }

    #[test]
    fn not_visible_inside_a_rootfs_and_credentials() {
        let w = World::new(vec![entry(
            "qemu-aarch64",
            "aarch64",
            "/usr/bin/qemu-aarch64-static",
            "P",
            true,
            1,
        )]);
        let h = header("aarch64");
        let e = elf_of("aarch64", None);
        let none: Vec<&str> = vec![];
        let in_rootfs = |p: &str| p == "/bin/sh";
        let f = file(
            &w.machine(),
            &Cpus { host_flags: &none },
            &FileFacts {
                path: "/usr/bin/sudo",
                header: &h,
                elf: Some(&e),
                isa: &IsaNeeds::default(),
                setuid: true,
                loader_present: None,
                in_rootfs: Some(&in_rootfs),
            },
        );
        let c = codes(&f);
        assert!(
            c.contains(&("interpreter-not-visible", Severity::Error)),
            "{c:?}"
        );
        assert!(c.contains(&("credentials-off", Severity::Warning)), "{c:?}");
    }

    #[test]
    fn known_bad_and_old_versions() {
        let mut s390 = entry("qemu-s390x", "s390x", "/q", "PF", true, 1);
        s390.version = Some("1:7.0.0+dfsg-7".into());
        let mut w = World::new(vec![s390]);
        w.stored = vec!["1:10.0.6+ds-0+deb13u2".into()];
        let m = machine(&w.machine());
        let bad = m
            .iter()
            .find(|f| f.code == "qemu-known-bad")
            .expect("known bad");
        assert!(bad.evidence["reference"].starts_with("https://"));
        let old = m.iter().find(|f| f.code == "qemu-old").expect("old");
        assert_eq!(
            old.fix.as_deref(),
            Some("binfmtctl qemu use 1:10.0.6+ds-0+deb13u2")
        );
        // The same version on another arch is not on the list.
        let mut arm = entry("qemu-aarch64", "aarch64", "/q", "PF", true, 1);
        arm.version = Some("1:7.0.0+dfsg-7".into());
        assert!(
            machine(&World::new(vec![arm]).machine())
                .iter()
                .all(|f| f.code != "qemu-known-bad")
        );
    }

    #[test]
    fn known_bad_list_is_valid() {
        let list = known_bad();
        assert!(!list.is_empty());
        for b in &list {
            assert!(b.reference.starts_with("https://"), "{b:?}");
            assert!(!b.problem.is_empty() && !b.version.is_empty(), "{b:?}");
            for a in &b.arches {
                assert!(table().get(a).is_some(), "unknown arch {a} in {b:?}");
            }
        }
        assert!(
            parse_known_bad("[[bad]]\nversion = \"1\"\n").is_err(),
            "fields are required"
        );
    }

    #[test]
    fn boot_clobber_only_when_it_differs() {
        let mut w = World::new(vec![entry(
            "qemu-aarch64",
            "aarch64",
            "/usr/bin/qemu-aarch64-static",
            "PF",
            true,
            1,
        )]);
        w.boot = vec![
            BootConfig {
                file: "/usr/lib/binfmt.d/qemu-aarch64.conf".into(),
                name: "qemu-aarch64".into(),
                interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into(),
                by: "systemd-binfmt",
                package: None,
            },
            BootConfig {
                file: "/etc/binfmt.d/same.conf".into(),
                name: "qemu-aarch64".into(),
                interpreter: "/usr/bin/qemu-aarch64-static".into(),
                by: "systemd-binfmt",
                package: None,
            },
        ];
        let m = machine(&w.machine());
        assert_eq!(codes(&m), [("boot-clobber", Severity::Warning)]);
        assert_eq!(
            m[0].fix.as_deref(),
            Some(
                "ln -s /dev/null /etc/binfmt.d/qemu-aarch64.conf (masks /usr/lib/binfmt.d/qemu-aarch64.conf)"
            )
        );
    }

    #[test]
    fn isa_levels() {
        let w = World::new(vec![entry("qemu-x86_64", "x86_64", "/q", "PF", true, 1)]);
        // An emulated x86_64 program (this World's host is x86_64, so pretend it is not).
        let mut w2 = World::new(w.entries.clone());
        w2.native = vec![NativeArch {
            arch: "aarch64".into(),
            evidence: "uname".into(),
        }];
        let v4 = IsaNeeds {
            x86_64_level: Some(4),
            ..Default::default()
        };
        let f = judge(&w2, "/a", "x86_64", &v4, false, None);
        let isa = f.iter().find(|f| f.code == "isa-level").expect("isa");
        assert_eq!(isa.severity, Severity::Error);
        assert!(isa.message.contains("at most x86-64-v3"), "{}", isa.message);
        // QEMU before 7.2 defaults to qemu64: QEMU_CPU=max is the fix for v2.
        let mut w3 = World::new(w.entries.clone());
        w3.native = w2.native.clone();
        w3.entries[0].version = Some("1:7.1+dfsg-2".into());
        let v2 = IsaNeeds {
            x86_64_level: Some(2),
            ..Default::default()
        };
        let f = judge(&w3, "/a", "x86_64", &v2, false, None);
        assert_eq!(
            f.iter()
                .find(|f| f.code == "isa-level")
                .unwrap()
                .fix
                .as_deref(),
            Some("QEMU_CPU=max (binfmtctl run --cpu max)")
        );
        // riscv beyond gc.
        let wr = World::new(vec![entry("qemu-riscv64", "riscv64", "/q", "PF", true, 1)]);
        let rv = IsaNeeds {
            riscv_beyond_gc: vec!["v".into(), "zba".into(), "zve32f".into()],
            riscv_arch: Some("rv64gcv_zba".into()),
            ..Default::default()
        };
        let f = judge(&wr, "/r", "riscv64", &rv, false, None);
        let isa = f.iter().find(|f| f.code == "isa-level").expect("isa");
        assert_eq!(isa.severity, Severity::Warning);
        assert_eq!(
            isa.fix.as_deref(),
            Some("QEMU_CPU=rv64,v=true,zba=true (binfmtctl run --cpu rv64,v=true,zba=true)")
        );
        // A native program beyond this CPU.
        let host_v3 = [
            "cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3", "avx", "avx2", "bmi1",
            "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        ];
        let h = header("x86_64");
        let e = elf_of("x86_64", None);
        let f = file(
            &World::new(Vec::new()).machine(),
            &Cpus {
                host_flags: &host_v3,
            },
            &FileFacts {
                path: "/n",
                header: &h,
                elf: Some(&e),
                isa: &v4,
                setuid: false,
                loader_present: None,
                in_rootfs: None,
            },
        );
        assert_eq!(
            codes(&f),
            [
                ("not-foreign", Severity::Note),
                ("isa-level", Severity::Error)
            ]
        );
        assert!(f[1].message.contains("this CPU offers x86-64-v3"));
    }

    #[test]
    fn scripts_libraries_and_native_programs() {
        let w = World::new(Vec::new());
        let none: Vec<&str> = vec![];
        let cpus = Cpus { host_flags: &none };
        let script = file(
            &w.machine(),
            &cpus,
            &FileFacts {
                path: "/s",
                header: b"#!/bin/sh\necho",
                elf: None,
                isa: &IsaNeeds::default(),
                setuid: false,
                loader_present: None,
                in_rootfs: None,
            },
        );
        assert_eq!(codes(&script), [("not-elf", Severity::Note)]);
        assert_eq!(script[0].evidence["interpreter"], "/bin/sh");
        let junk = file(
            &w.machine(),
            &cpus,
            &FileFacts {
                path: "/j",
                header: b"hello",
                elf: None,
                isa: &IsaNeeds::default(),
                setuid: false,
                loader_present: None,
                in_rootfs: None,
            },
        );
        assert_eq!(codes(&junk), [("not-elf", Severity::Error)]);
        let h = header("aarch64");
        let mut lib = elf_of("aarch64", None);
        lib.e_type = 3;
        let f = file(
            &w.machine(),
            &cpus,
            &FileFacts {
                path: "/lib/libc.so.6",
                header: &h,
                elf: Some(&lib),
                isa: &IsaNeeds::default(),
                setuid: false,
                loader_present: None,
                in_rootfs: None,
            },
        );
        assert_eq!(codes(&f), [("not-elf", Severity::Note)]);
        let f = judge(&w, "/bin/ls", "x86_64", &IsaNeeds::default(), false, None);
        assert_eq!(codes(&f), [("not-foreign", Severity::Note)]);
    }

    #[test]
    fn loader_missing_for_a_dynamic_foreign_program() {
        let w = World::new(vec![entry("qemu-aarch64", "aarch64", "/q", "PF", true, 1)]);
        let f = judge(
            &w,
            "/hello",
            "aarch64",
            &IsaNeeds::default(),
            false,
            Some(false),
        );
        assert!(codes(&f).contains(&("loader-missing", Severity::Error)));
        let f = judge(
            &w,
            "/hello",
            "aarch64",
            &IsaNeeds::default(),
            false,
            Some(true),
        );
        assert!(!any_error(&f));
    }

    #[test]
    fn captures_native() {
        let mut e = entry("evil", "x86_64", "/q", "PF", true, 1);
        e.captures = Some("native x86_64 programs".into());
        let w = World::new(vec![e]);
        assert!(codes(&machine(&w.machine())).contains(&("captures-native", Severity::Error)));
        let f = judge(&w, "/bin/ls", "x86_64", &IsaNeeds::default(), false, None);
        assert_eq!(f[0].code, "captures-native");
    }
}
