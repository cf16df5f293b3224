//! The architecture table (`registrations/arches.toml`, embedded at build time) and the names a
//! user may type for each architecture: QEMU cpu, `uname -m`, Docker/OCI platforms, Debian
//! architectures, Rust/GNU triples and Nix systems.
//!
//! Pure: no I/O. Host detection (which of these arches the machine runs natively) lives in
//! `host`, which reads `/proc`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::binfmt::registration::{Flags, Matcher, Registration, escape_hex, unescape_hex};

/// The table's text, embedded so the binary needs no data files at run time.
pub const TABLE_SOURCE: &str = include_str!("../../registrations/arches.toml");
/// The same table as JSON, made from `TABLE_SOURCE` by build.rs: what `Table::builtin` reads.
const TABLE_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/arches.json"));
/// Where the table came from, for error messages.
pub const TABLE_PATH: &str = "registrations/arches.toml";
/// binfmt_misc entry names we own start with this, the convention shared by Debian, QEMU's
/// `qemu-binfmt-conf.sh`, systemd's binfmt.d files and the container tools.
pub const ENTRY_PREFIX: &str = "qemu-";

pub use crate::elf::Endian;

/// 32-bit MIPS ABIs, told apart by `EF_MIPS_ABI2` in `e_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MipsAbi {
    O32,
    N32,
}

/// One row of the table as written in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArch {
    name: String,
    qemu: Option<String>,
    class: u8,
    endian: Endian,
    machine: u16,
    abi: Option<MipsAbi>,
    magic: String,
    mask: String,
    #[serde(default)]
    oci: Vec<String>,
    #[serde(default)]
    debian: Vec<String>,
    #[serde(default)]
    uname: Vec<String>,
    #[serde(default)]
    triples: Vec<String>,
    #[serde(default)]
    nix: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    compat: Vec<String>,
    compat_config: Option<String>,
    #[serde(default)]
    compat_cpu_optional: bool,
    note: Option<String>,
    #[serde(default)]
    also: Vec<RawPattern>,
}

/// A further pattern of an arch, as written in the TOML file (`[[arch.also]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    entry: String,
    machine: u16,
    magic: String,
    mask: String,
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    arch: Vec<RawArch>,
}

/// One architecture QEMU user mode can emulate.
#[derive(Clone, Debug, Serialize)]
pub struct Arch {
    /// QEMU cpu name; the entry is `qemu-<name>`.
    pub name: String,
    /// QEMU binary cpu name (`qemu-<qemu>-static`).
    pub qemu: String,
    pub class: u8,
    pub endian: Endian,
    pub machine: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi: Option<MipsAbi>,
    #[serde(serialize_with = "ser_hex")]
    pub magic: Vec<u8>,
    #[serde(serialize_with = "ser_hex")]
    pub mask: Vec<u8>,
    pub oci: Vec<String>,
    pub debian: Vec<String>,
    pub uname: Vec<String>,
    pub triples: Vec<String>,
    pub nix: Vec<String>,
    pub aliases: Vec<String>,
    /// Arches a kernel for this arch can run natively through its compat layer.
    pub compat: Vec<String>,
    /// The kernel config option that enables that compat layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat_config: Option<String>,
    /// CPUs of this arch may lack the compat mode even when the kernel has the option on
    /// (arm64 cores without AArch32 at EL0): only a probe that ran counts a compat arch native.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compat_cpu_optional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Further patterns: binaries of this arch that carry another e_machine too (microblaze's
    /// pre-2009 0xbaab). binfmt_misc matches one magic per entry, so each is an entry of its
    /// own, registered, removed, switched and reported with the arch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Pattern>,
}

/// One further pattern of an arch, with the entry that carries it.
#[derive(Clone, Debug, Serialize)]
pub struct Pattern {
    /// The binfmt_misc entry name (`qemu-<arch>-<what>`).
    pub entry: String,
    pub machine: u16,
    #[serde(serialize_with = "ser_hex")]
    pub magic: Vec<u8>,
    #[serde(serialize_with = "ser_hex")]
    pub mask: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Pattern {
    pub fn matcher(&self) -> Matcher {
        Matcher::Magic {
            offset: 0,
            magic: self.magic.clone(),
            mask: Some(self.mask.clone()),
        }
    }
}

fn ser_hex<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::input::hex(b))
}

impl Arch {
    /// The binfmt_misc entry name.
    pub fn entry_name(&self) -> String {
        format!("{ENTRY_PREFIX}{}", self.name)
    }

    pub fn matcher(&self) -> Matcher {
        Matcher::Magic {
            offset: 0,
            magic: self.magic.clone(),
            mask: Some(self.mask.clone()),
        }
    }

    /// The registration for this arch with a given interpreter and flags (its main pattern;
    /// `registrations` gives every entry of the arch).
    pub fn registration(&self, interpreter: &str, flags: Flags) -> Registration {
        Registration {
            name: self.entry_name(),
            matcher: self.matcher(),
            interpreter: interpreter.to_owned(),
            flags,
        }
    }

    /// Every entry of this arch, main one first: (entry name, pattern).
    pub fn patterns(&self) -> Vec<(String, Matcher)> {
        std::iter::once((self.entry_name(), self.matcher()))
            .chain(self.also.iter().map(|p| (p.entry.clone(), p.matcher())))
            .collect()
    }

    /// Every entry name of this arch, main one first.
    pub fn entry_names(&self) -> Vec<String> {
        self.patterns().into_iter().map(|(n, _)| n).collect()
    }

    /// One registration per pattern, all with the same interpreter and flags.
    pub fn registrations(&self, interpreter: &str, flags: Flags) -> Vec<Registration> {
        self.patterns()
            .into_iter()
            .map(|(name, matcher)| Registration {
                name,
                matcher,
                interpreter: interpreter.to_owned(),
                flags,
            })
            .collect()
    }

    /// The canonical OCI platform (`linux/arm64`), if the arch has one.
    pub fn platform(&self) -> Option<&str> {
        self.oci.first().map(String::as_str)
    }

    /// Every name that resolves to this arch, lowercase, deduplicated, `name` first.
    pub fn all_names(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let oci_short = self.oci.iter().filter_map(|p| p.strip_prefix("linux/"));
        let candidates = std::iter::once(self.name.clone())
            .chain(std::iter::once(self.entry_name()))
            .chain(self.oci.iter().cloned())
            .chain(oci_short.map(str::to_owned))
            .chain(self.debian.iter().cloned())
            .chain(self.uname.iter().cloned())
            .chain(self.triples.iter().cloned())
            .chain(self.nix.iter().cloned())
            .chain(self.aliases.iter().cloned())
            .chain(self.also.iter().map(|p| p.entry.clone()));
        for n in candidates {
            let n = n.to_ascii_lowercase();
            if !v.contains(&n) {
                v.push(n);
            }
        }
        v
    }
}

/// An error in the table file itself (a build-time bug, caught by the tests).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{TABLE_PATH}: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("{TABLE_PATH}: arch {arch:?}: {reason}")]
    Invalid { arch: String, reason: String },
}

impl crate::error::Classify for TableError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

/// The loaded, validated table.
#[derive(Debug)]
pub struct Table {
    pub arches: Vec<Arch>,
    by_name: BTreeMap<String, usize>,
}

/// A name that matches no arch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture {name:?}{}", suggestion(.suggestions))]
pub struct UnknownArch {
    pub name: String,
    pub suggestions: Vec<String>,
}

impl crate::error::Classify for UnknownArch {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

fn suggestion(s: &[String]) -> String {
    if s.is_empty() {
        "; run `binfmtctl arches` to list the known names".into()
    } else {
        format!(
            "; did you mean {}? (`binfmtctl arches` lists all)",
            s.join(", ")
        )
    }
}

impl Table {
    /// The embedded table. Panics only if the embedded data is broken, which the tests rule out.
    pub fn builtin() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        // Its invariants (`check`) hold for the text compiled in: the tests prove it, and debug
        // builds check again here. Release builds skip them (every pattern against every other,
        // some 0.3 ms, a tenth of `install all`).
        T.get_or_init(|| {
            let raw = serde_json::from_str(TABLE_JSON).expect("build.rs wrote the table's JSON");
            let t = Table::from_rows(raw).expect("embedded arch table is valid");
            #[cfg(debug_assertions)]
            if let Err(e) = t.check() {
                panic!("embedded arch table: {e}");
            }
            t
        })
    }

    /// A table from TOML text, its invariants checked (`check`).
    pub fn parse(src: &str) -> Result<Table, TableError> {
        let t = Table::from_rows(toml::from_str(src)?)?;
        t.check()?;
        Ok(t)
    }

    /// The rows, and the index of names (each name is one arch's), without `check`.
    fn from_rows(raw: RawTable) -> Result<Table, TableError> {
        let mut arches = Vec::with_capacity(raw.arch.len());
        for r in raw.arch {
            let invalid = |reason: String| TableError::Invalid {
                arch: r.name.clone(),
                reason,
            };
            let magic = unescape_hex(crate::binfmt::registration::Field::Magic, &r.magic, 1)
                .map_err(|e| invalid(e.to_string()))?;
            let mask = unescape_hex(crate::binfmt::registration::Field::Mask, &r.mask, 1)
                .map_err(|e| invalid(e.to_string()))?;
            let mut also = Vec::new();
            for p in &r.also {
                also.push(Pattern {
                    entry: p.entry.clone(),
                    machine: p.machine,
                    magic: unescape_hex(crate::binfmt::registration::Field::Magic, &p.magic, 1)
                        .map_err(|e| invalid(format!("{}: {e}", p.entry)))?,
                    mask: unescape_hex(crate::binfmt::registration::Field::Mask, &p.mask, 1)
                        .map_err(|e| invalid(format!("{}: {e}", p.entry)))?,
                    note: p.note.clone(),
                });
            }
            arches.push(Arch {
                qemu: r.qemu.unwrap_or_else(|| r.name.clone()),
                name: r.name,
                class: r.class,
                endian: r.endian,
                machine: r.machine,
                abi: r.abi,
                magic,
                mask,
                oci: r.oci,
                debian: r.debian,
                uname: r.uname,
                triples: r.triples,
                nix: r.nix,
                aliases: r.aliases,
                compat: r.compat,
                compat_config: r.compat_config,
                compat_cpu_optional: r.compat_cpu_optional,
                note: r.note,
                also,
            });
        }
        let mut by_name = BTreeMap::new();
        for (i, a) in arches.iter().enumerate() {
            for n in a.all_names() {
                if let Some(j) = by_name.insert(n.clone(), i)
                    && j != i
                {
                    return Err(TableError::Invalid {
                        arch: a.name.clone(),
                        reason: format!("name {n:?} is also claimed by {:?}", arches[j].name),
                    });
                }
            }
        }
        Ok(Table { arches, by_name })
    }

    /// The table's invariants: each row's (`check_arch`, further patterns included), no two
    /// patterns matching the same header, compat arches in the table.
    pub fn check(&self) -> Result<(), TableError> {
        let (arches, by_name) = (&self.arches, &self.by_name);
        for a in arches {
            check_arch(a).map_err(|reason| TableError::Invalid {
                arch: a.name.clone(),
                reason,
            })?;
            for p in &a.also {
                // The same invariants, with this pattern's machine, magic and mask.
                let as_arch = Arch {
                    machine: p.machine,
                    magic: p.magic.clone(),
                    mask: p.mask.clone(),
                    also: Vec::new(),
                    ..a.clone()
                };
                check_arch(&as_arch).map_err(|reason| TableError::Invalid {
                    arch: a.name.clone(),
                    reason: format!("{}: {reason}", p.entry),
                })?;
                if !p.entry.starts_with(&format!("{}-", a.entry_name())) {
                    return Err(TableError::Invalid {
                        arch: a.name.clone(),
                        reason: format!(
                            "further entry {} must be named {}-<what>",
                            p.entry,
                            a.entry_name()
                        ),
                    });
                }
            }
        }
        // Every pattern of every arch (further patterns included) against every other one.
        let all: Vec<(usize, String, Matcher)> = arches
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.patterns().into_iter().map(move |(n, m)| (i, n, m)))
            .collect();
        for (k, (i, n, m)) in all.iter().enumerate() {
            for (_, n2, m2) in &all[k + 1..] {
                if m.overlaps(m2) {
                    return Err(TableError::Invalid {
                        arch: arches[*i].name.clone(),
                        reason: format!("the pattern of {n} can match the same header as {n2}"),
                    });
                }
            }
        }
        for a in arches {
            for c in &a.compat {
                if !by_name.contains_key(c) {
                    return Err(TableError::Invalid {
                        arch: a.name.clone(),
                        reason: format!("compat arch {c:?} is not in the table"),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arch> {
        self.by_name.get(name).map(|&i| &self.arches[i])
    }

    /// Resolves any spelling a user may type (case-insensitive). Besides the listed names,
    /// a GNU/Rust triple `<cpu>-<vendor>-linux-<env>` or `<cpu>-linux-<env>` resolves by its
    /// cpu part when the triple itself is not listed.
    pub fn resolve(&self, name: &str) -> Result<&Arch, UnknownArch> {
        let key = name.trim().to_ascii_lowercase();
        if let Some(a) = self.get(&key) {
            return Ok(a);
        }
        let parts: Vec<&str> = key.split('-').collect();
        if parts.len() >= 3 && parts[1..].contains(&"linux") {
            let cpu = parts[0];
            // n32 triples are 64-bit cpu names with a 32-bit ABI: only the listed ones resolve.
            if !key.ends_with("abin32")
                && let Some(a) = self.get(cpu)
            {
                return Ok(a);
            }
        }
        Err(UnknownArch {
            name: name.to_owned(),
            suggestions: self.closest(&key, 3),
        })
    }

    /// The known names closest to `key` by edit distance (at most `n`, and only close ones).
    pub fn closest(&self, key: &str, n: usize) -> Vec<String> {
        let mut scored: Vec<(usize, &String)> = self
            .by_name
            .keys()
            .map(|k| (edit_distance(key, k), k))
            .filter(|(d, k)| *d <= (k.len().max(key.len()) / 2).max(1))
            .collect();
        scored.sort();
        let mut out: Vec<String> = Vec::new();
        for (_, k) in scored {
            // Suggest each arch once, by the spelling that was closest.
            let arch = &self.arches[self.by_name[k]].name;
            if !out
                .iter()
                .any(|o| &self.arches[self.by_name[o]].name == arch)
            {
                out.push(k.clone());
            }
            if out.len() == n {
                break;
            }
        }
        out
    }

    /// Which arch's pattern accepts this file header (at most one: the patterns are disjoint).
    pub fn arch_of_header(&self, header: &[u8]) -> Option<&Arch> {
        self.arches
            .iter()
            .find(|a| a.patterns().iter().any(|(_, m)| m.matches_header(header)))
    }

    /// The arch one of whose patterns is exactly this matcher.
    pub fn arch_of_matcher(&self, m: &Matcher) -> Option<&Arch> {
        self.arches
            .iter()
            .find(|a| a.patterns().iter().any(|(_, p)| p.same_pattern(m)))
    }

    /// The arch an entry name of ours belongs to, with that entry's pattern.
    pub fn arch_of_entry(&self, entry: &str) -> Option<(&Arch, Matcher)> {
        self.arches.iter().find_map(|a| {
            a.patterns()
                .into_iter()
                .find(|(n, _)| n == entry)
                .map(|(_, m)| (a, m))
        })
    }
}

/// The table rendered for humans (docs/arch-table.md is exactly this).
pub fn render_markdown(t: &Table) -> String {
    let mut s = String::from(
        "# Architecture table\n\n\
         Generated from `registrations/arches.toml` by `binfmtctl arches --markdown`; a test fails \
         when this file and the table disagree. Why the patterns look the way they do: \
         [design.md](design.md#the-patterns).\n\n\
         | arch (entry `qemu-<arch>`) | ELF | e_machine | names you can use |\n|---|---|---|---|\n",
    );
    for a in &t.arches {
        let abi = a
            .abi
            .map(|x| format!(", {x:?}").to_lowercase())
            .unwrap_or_default();
        let endian = if a.endian == Endian::Little {
            "LE"
        } else {
            "BE"
        };
        let names: Vec<String> = a.all_names()[2..]
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        s += &format!(
            "| {} | {}-bit {endian}{abi} | {} | {} |\n",
            a.name,
            a.class,
            a.machine,
            names.join(" ")
        );
    }
    s += "\n## Patterns (offset 0)\n\n";
    for a in &t.arches {
        s += &format!(
            "### {}\n\n- magic `{}`\n- mask  `{}`\n",
            a.name,
            escape_hex(&a.magic),
            escape_hex(&a.mask)
        );
        if a.qemu != a.name {
            s += &format!("- interpreter `qemu-{}-static`\n", a.qemu);
        }
        if let Some(n) = &a.note {
            s += &format!("- note: {n}\n");
        }
        for p in &a.also {
            s += &format!(
                "- also entry `{}` (e_machine {:#06x}): magic `{}`, mask `{}`{}\n",
                p.entry,
                p.machine,
                escape_hex(&p.magic),
                escape_hex(&p.mask),
                p.note
                    .as_deref()
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default()
            );
        }
        if !a.compat.is_empty() {
            s += &format!(
                "- a {} kernel runs {} natively when `{}` is on{}\n",
                a.name,
                a.compat.join(", "),
                a.compat_config.as_deref().unwrap_or("its compat layer"),
                if a.compat_cpu_optional {
                    " and the CPU has the mode (not all do: only a probe that runs proves it)"
                } else {
                    ""
                }
            );
        }
        s += "\n";
    }
    s
}

/// The invariants every row must hold (docs/design.md, "The patterns").
fn check_arch(a: &Arch) -> Result<(), String> {
    if a.magic.len() != a.mask.len() {
        return Err(format!(
            "mask has {} bytes, magic {}",
            a.mask.len(),
            a.magic.len()
        ));
    }
    if a.magic.len() > crate::binfmt::registration::BINPRM_BUF_SIZE {
        return Err("pattern is longer than the 256 bytes the kernel reads".into());
    }
    if let Some(i) = (0..a.magic.len()).find(|&i| a.magic[i] & !a.mask[i] != 0) {
        return Err(format!(
            "magic byte {i} has bits the mask ignores (magic & !mask must be 0)"
        ));
    }
    if a.magic.len() < 20 {
        return Err("pattern must reach e_machine (20 bytes)".into());
    }
    // The pattern must say what the structured fields say.
    let want_class = match a.class {
        32 => 1,
        64 => 2,
        c => return Err(format!("class must be 32 or 64, not {c}")),
    };
    let le = a.endian == Endian::Little;
    let mach = if le {
        a.machine.to_le_bytes()
    } else {
        a.machine.to_be_bytes()
    };
    let checks: [(usize, u8, u8, &str); 9] = [
        (0, 0x7f, 0xff, "ELF magic"),
        (1, b'E', 0xff, "ELF magic"),
        (2, b'L', 0xff, "ELF magic"),
        (3, b'F', 0xff, "ELF magic"),
        (4, want_class, 0xff, "EI_CLASS"),
        (5, if le { 1 } else { 2 }, 0xff, "EI_DATA"),
        (18, mach[0], 0xff, "e_machine"),
        (19, mach[1], 0xff, "e_machine"),
        // e_type: ET_EXEC and ET_DYN both, nothing else.
        (if le { 16 } else { 17 }, 2, 0xfe, "e_type"),
    ];
    for (i, v, m, what) in checks {
        if a.magic[i] != v || a.mask[i] != m {
            return Err(format!(
                "{what} byte {i}: magic {:#04x} mask {:#04x}, want {v:#04x}/{m:#04x}",
                a.magic[i], a.mask[i]
            ));
        }
    }
    let other_type = if le { 17 } else { 16 };
    if a.magic[other_type] != 0 || a.mask[other_type] != 0xff {
        return Err("e_type high byte must be matched as 0".into());
    }
    if a.mask[7] != 0 {
        return Err("EI_OSABI (byte 7) must be ignored: Linux binaries carry 0 or 3".into());
    }
    if a.machine == 8 && a.class == 32 {
        let flag_byte = if le { 36 } else { 39 };
        let want = match a.abi {
            Some(MipsAbi::O32) => 0,
            Some(MipsAbi::N32) => 0x20,
            None => return Err("32-bit MIPS needs abi = \"o32\" or \"n32\"".into()),
        };
        if a.magic.get(flag_byte) != Some(&want) || a.mask.get(flag_byte) != Some(&0x20) {
            return Err("32-bit MIPS must test EF_MIPS_ABI2 in e_flags".into());
        }
    } else if a.abi.is_some() {
        return Err("abi applies only to 32-bit MIPS".into());
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_loads_and_holds_invariants() {
        let t = Table::builtin();
        // `builtin` checks them only in debug builds: this holds in release tests too.
        t.check().unwrap();
        // build.rs's JSON is the TOML file, row for row.
        let from_toml = Table::parse(TABLE_SOURCE).unwrap();
        assert_eq!(
            serde_json::to_value(&t.arches).unwrap(),
            serde_json::to_value(&from_toml.arches).unwrap()
        );
        assert_eq!(t.by_name, from_toml.by_name);
        assert!(t.arches.len() >= 30, "{} arches", t.arches.len());
        for a in &t.arches {
            let r = a.registration("/usr/bin/qemu-x-static", Flags::DEFAULT);
            r.validate().unwrap();
            assert!(a.entry_name().starts_with(ENTRY_PREFIX));
        }
    }

    #[test]
    fn issue_list_is_covered() {
        let t = Table::builtin();
        for n in [
            "i386",
            "x86_64",
            "aarch64",
            "aarch64_be",
            "arm",
            "armeb",
            "riscv32",
            "riscv64",
            "ppc",
            "ppc64",
            "ppc64le",
            "s390x",
            "mips",
            "mipsel",
            "mipsn32",
            "mipsn32el",
            "mips64",
            "mips64el",
            "loongarch64",
            "sparc",
            "sparc32plus",
            "sparc64",
            "m68k",
            "alpha",
            "sh4",
            "sh4eb",
            "hppa",
            "microblaze",
            "microblazeel",
            "or1k",
            "xtensa",
            "xtensaeb",
            "hexagon",
        ] {
            assert!(t.get(n).is_some_and(|a| a.name == n), "{n} missing");
        }
    }

    /// Each rule of check_arch is enforced: break one field of a good row at a time.
    #[test]
    fn invariant_violations_are_caught() {
        let good = r#"[[arch]]
name = "aarch64"
class = 64
endian = "little"
machine = 183
magic = '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
mask = '\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
"#;
        Table::parse(good).unwrap();
        let cases = [
            ("machine = 183", "machine = 62", "e_machine"),
            ("class = 64", "class = 32", "EI_CLASS"),
            ("\\xfe\\xff\\xff\\xff'", "\\xff\\xff\\xff\\xff'", "e_type"),
            (
                "\\xfe\\xff\\xff\\xff'",
                "\\xfe\\xff\\xff'",
                "mask has 19 bytes",
            ),
            (
                "\\x02\\x00\\xb7\\x00'",
                "\\x03\\x00\\xb7\\x00'",
                "bits the mask ignores",
            ),
            ("\\xff\\x00\\x00", "\\xff\\xff\\x00", "EI_OSABI"),
        ];
        for (from, to, want) in cases {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{from} not found");
            let e = Table::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
        let dup = format!("{good}\n{}", good.replace("\"aarch64\"", "\"aarch64b\""));
        let e = Table::parse(&dup).unwrap_err().to_string();
        assert!(e.contains("same header"), "{e}");
        let unknown = format!("{good}bogus = 1\n");
        assert!(
            Table::parse(&unknown)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }

    #[test]
    fn aliases_resolve() {
        let t = Table::builtin();
        let cases = [
            ("arm64", "aarch64"),
            ("linux/arm64", "aarch64"),
            ("LINUX/ARM64/V8", "aarch64"),
            ("linux/arm/v7", "arm"),
            ("armhf", "arm"),
            ("armel", "arm"),
            ("386", "i386"),
            ("linux/386", "i386"),
            ("i686", "i386"),
            ("amd64", "x86_64"),
            ("mips64le", "mips64el"),
            ("linux/mips64le", "mips64el"),
            ("mipsle", "mipsel"),
            ("loong64", "loongarch64"),
            ("ppc64el", "ppc64le"),
            ("powerpc", "ppc"),
            ("aarch64-unknown-linux-gnu", "aarch64"),
            ("aarch64-linux", "aarch64"),
            ("riscv64gc-unknown-linux-gnu", "riscv64"),
            ("riscv64-alpine-linux-musl", "riscv64"),
            ("armv7-unknown-linux-musleabihf", "arm"),
            ("mips64el-unknown-linux-gnuabin32", "mipsn32el"),
            ("mips64-linux-gnuabin32", "mipsn32"),
            ("mips64el-linux-gnuabi64", "mips64el"),
            ("qemu-riscv64", "riscv64"),
            ("s390x", "s390x"),
            ("i486", "i486"),
        ];
        for (input, want) in cases {
            assert_eq!(
                t.resolve(input).map(|a| a.name.as_str()),
                Ok(want),
                "{input}"
            );
        }
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let t = Table::builtin();
        let e = t.resolve("arm46").unwrap_err();
        assert!(e.suggestions.contains(&"arm64".to_owned()), "{e}");
        assert!(e.to_string().contains("did you mean"));
        let e = t.resolve("riscv46").unwrap_err();
        assert!(e.suggestions.contains(&"riscv64".to_owned()), "{e}");
        let e = t.resolve("zzzzzzzzzzzz").unwrap_err();
        assert!(e.suggestions.is_empty());
    }

    #[test]
    fn header_classification() {
        let t = Table::builtin();
        let hdr = |class: u8, data: u8, mach: [u8; 2], flags39: u8, flags36: u8| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(b"\x7fELF");
            h[4] = class;
            h[5] = data;
            h[6] = 1;
            if data == 1 {
                h[16] = 2;
            } else {
                h[17] = 3;
            }
            h[18..20].copy_from_slice(&mach);
            h[36] = flags36;
            h[39] = flags39;
            h
        };
        let name = |h: &[u8]| t.arch_of_header(h).map(|a| a.name.clone());
        assert_eq!(
            name(&hdr(2, 1, [0xb7, 0], 0, 0)).as_deref(),
            Some("aarch64")
        );
        assert_eq!(
            name(&hdr(2, 2, [0, 0xb7], 0, 0)).as_deref(),
            Some("aarch64_be")
        );
        assert_eq!(name(&hdr(1, 2, [0, 8], 0, 0)).as_deref(), Some("mips"));
        assert_eq!(
            name(&hdr(1, 2, [0, 8], 0x20, 0)).as_deref(),
            Some("mipsn32")
        );
        assert_eq!(
            name(&hdr(1, 1, [8, 0], 0, 0x20)).as_deref(),
            Some("mipsn32el")
        );
        assert_eq!(name(&hdr(1, 1, [8, 0], 0, 0)).as_deref(), Some("mipsel"));
        assert_eq!(
            name(&hdr(2, 1, [8, 0], 0, 0x20)).as_deref(),
            Some("mips64el")
        );
        assert_eq!(
            name(&hdr(1, 2, [0, 189], 0, 0)).as_deref(),
            Some("microblaze")
        );
        // QEMU's loader also takes the pre-2009 EM_MICROBLAZE_OLD, 0xbaab, in both byte orders.
        assert_eq!(
            name(&hdr(1, 2, [0xba, 0xab], 0, 0)).as_deref(),
            Some("microblaze")
        );
        assert_eq!(
            name(&hdr(1, 1, [0xab, 0xba], 0, 0)).as_deref(),
            Some("microblazeel")
        );
        assert_eq!(
            name(&hdr(1, 1, [189, 0], 0, 0)).as_deref(),
            Some("microblazeel")
        );
        assert_eq!(
            name(&hdr(2, 1, [0x26, 0x90], 0, 0)).as_deref(),
            Some("alpha")
        );
        // A relocatable object (ET_REL) is never captured.
        let mut rel = hdr(2, 1, [0xb7, 0], 0, 0);
        rel[16] = 1;
        assert_eq!(name(&rel), None);
    }

    #[test]
    fn an_arch_with_two_machines_has_two_entries() {
        let t = Table::builtin();
        for (arch, old) in [
            ("microblaze", "qemu-microblaze-old"),
            ("microblazeel", "qemu-microblazeel-old"),
        ] {
            let a = t.get(arch).unwrap();
            assert_eq!(a.entry_names(), [format!("qemu-{arch}"), old.to_owned()]);
            let regs = a.registrations("/usr/bin/qemu-microblaze-static", Flags::DEFAULT);
            assert_eq!(regs.len(), 2);
            for r in &regs {
                r.validate().unwrap();
                assert_eq!(t.arch_of_matcher(&r.matcher).unwrap().name, arch);
                assert_eq!(t.arch_of_entry(&r.name).unwrap().1, r.matcher);
            }
            assert_eq!(
                t.resolve(old).unwrap().name,
                arch,
                "the further entry name resolves"
            );
            assert_eq!(a.also[0].machine, 0xbaab);
        }
        // Every arch's entries are disjoint from every other's (checked in parse); an entry
        // name not of ours belongs to no arch.
        assert!(t.arch_of_entry("qemu-microblaze-new").is_none());
    }

    #[test]
    fn further_patterns_hold_the_invariants() {
        let row = |entry: &str, machine: &str, magic: &str| {
            format!(
                "[[arch]]\nname = \"microblaze\"\nclass = 32\nendian = \"big\"\nmachine = 189\nmagic = '\\x7f\\x45\\x4c\\x46\\x01\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xbd'\nmask = '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff'\n[[arch.also]]\nentry = \"{entry}\"\nmachine = {machine}\nmagic = '\\x7f\\x45\\x4c\\x46\\x01\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02{magic}'\nmask = '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff'\n"
            )
        };
        let ok = Table::parse(&row("qemu-microblaze-old", "0xbaab", "\\xba\\xab")).unwrap();
        assert_eq!(ok.arches[0].also.len(), 1);
        let e = Table::parse(&row("qemu-microblaze-old", "0xbaab", "\\xab\\xba")).unwrap_err();
        assert!(e.to_string().contains("e_machine"), "{e}");
        let e = Table::parse(&row("qemu-mb-old", "0xbaab", "\\xba\\xab")).unwrap_err();
        assert!(
            e.to_string().contains("must be named qemu-microblaze-"),
            "{e}"
        );
        let e = Table::parse(&row("qemu-microblaze-old", "189", "\\x00\\xbd")).unwrap_err();
        assert!(e.to_string().contains("can match the same header"), "{e}");
    }

    #[test]
    fn docs_arch_table_is_current() {
        let want = render_markdown(Table::builtin());
        let have = include_str!("../../docs/arch-table.md");
        assert!(
            have == want,
            "docs/arch-table.md is stale: run `binfmtctl arches --markdown > docs/arch-table.md`"
        );
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("arm64", "arm64"), 0);
        assert_eq!(edit_distance("arm46", "arm64"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
