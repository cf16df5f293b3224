//! The operations beneath the command line: install, uninstall, enable/disable, status,
//! apply (the config file), export, import, `qemu use`, the QEMU store's commands (`qemu`,
//! `stored`), interpreters, the commands that only look (`look`: inspect, scan, test), the
//! compositions of these (`compose`: install with --persist/--nix, uninstall and apply with
//! Nix), and the foreign builds and chroots (`emulate`: rootfs create, run; `build`).
//! Each takes the binfmt_misc seam
//! (`&dyn BinfmtFs`: the real instance, or `RecordingBinfmt` in tests), the host facts
//! (`Host`), where interpreters are looked for (`Search`) and its own options, and returns a
//! typed report; the CLI parses, calls one of these, and renders the report (text or JSON).
//!
//! Every operation validates the whole request before the first kernel write; then it takes
//! the instance lock, snapshots the kernel, plans, applies and reads back (`binfmt::plan`).

use std::path::{Path, PathBuf};

use crate::binfmt::arch::{Arch, Table};
use crate::binfmt::plan::{NativeGuard, Overlap, Verdict};
use crate::binfmt::registration::{Entry, Flags, Registration};
use crate::error::{Classify, ErrorKind};
use crate::host::{HostFacts, NativeArch};
use crate::qemu::interpreter::{self, Owners, Requirements};

pub mod apply;
pub mod build;
pub mod compose;
pub mod doctor;
pub mod emulate;
pub mod export;
pub mod import;
pub mod install;
pub mod interpreters;
pub mod look;
pub mod nix;
pub mod qemu;
pub mod status;
pub mod stored;
pub mod switch;
pub mod uninstall;
pub mod view;

/// What the command layer names of the layers below `ops`: the types its requests and reports
/// carry, the seams it opens for one run, and the hidden helpers it dispatches. The command
/// layer imports nothing else below `ops` (docs/design.md, "Modules").
pub mod facade {
    pub use crate::binfmt::arch::{Arch, Table, render_markdown};
    pub use crate::binfmt::kernel::{DEFAULT_ROOT as BINFMT_MISC_ROOT, ProcBinfmt};
    pub use crate::binfmt::registration::Flags;
    pub use crate::config::DEFAULT_PATH as CONFIG_PATH;
    pub use crate::emulation::cross::render as render_cross_env;
    pub use crate::emulation::sandbox::{helper_stage1, helper_stage2};
    pub use crate::generate::{Artifact, generate};
    pub use crate::host::{HostFacts, NativeOverride, probe_native_helper};
    pub use crate::inspection::inspect::path_exists;
    pub use crate::inspection::selftest::chroot_exec;
    pub use crate::nix::Paths as NixPaths;
    pub use crate::qemu::store::{Store, StoreLock};
    // The types the reports carry, for their text (`crate::text`).
    pub use crate::binfmt::plan::{Overlap, Verdict};
    pub use crate::inspection::doctor::{Finding, Severity};
    pub use crate::inspection::selftest::Status;
    pub use crate::nix::Changed as NixChanged;
}

#[cfg(test)]
mod tests;

/// A request the operations refuse, or one they cannot carry out here.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Entries refused before any write, one line each (with the reason and the fix).
    #[error("nothing was changed; refused:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
    /// Names that are neither arches nor `all`, one message each.
    #[error("{}", .0.join("\n"))]
    UnknownArches(Vec<String>),
    #[error("no architecture given: name one or more, or `all`")]
    NoArch,
    /// A `--qemu-path` directory that is not one.
    #[error(
        "interpreter search path {}: {problem}: check --qemu-path (or qemu_path in the config)",
        dir.display()
    )]
    SearchPath { dir: PathBuf, problem: String },
    #[error("unknown host architecture {0:?}")]
    UnknownHost(String),
    /// `doctor --rootfs` of something that is not a directory.
    #[error(
        "--rootfs {}: not a directory (unpack an image first, or look at it with binfmtctl scan)",
        .0.display()
    )]
    RootfsNotDir(PathBuf),
    /// Targets of uninstall, enable or disable that name nothing, one message each.
    #[error("{}", .0.join("\n"))]
    Targets(Vec<String>),
    /// `enable`/`disable`: targets that name no entry.
    #[error("nothing was changed:\n  {}", .0.join("\n  "))]
    NoSuchEntries(Vec<String>),
    #[error(
        "nothing to switch: no qemu-* entry is registered (`binfmtctl status` lists the entries)"
    )]
    NothingToSwitch,
    #[error(
        "binfmt_misc is not mounted at {}, so no entry exists to {verb}: mount it (or `binfmtctl install` first)",
        root.display()
    )]
    NotMounted { root: PathBuf, verb: &'static str },
    /// `qemu use`: none of our entries to switch.
    #[error(
        "no qemu-* entry is registered at {}: register with `binfmtctl install ARCHES --qemu {version}`",
        root.display()
    )]
    NoEntriesToSwitch { root: PathBuf, version: String },
    /// `install --persist`: the config file cannot take the arches.
    #[error("{source}; nothing was changed")]
    ConfigUnchanged {
        #[source]
        source: crate::config::ConfigError,
    },
    /// The plan failed while being applied; what it changed was rolled back.
    #[error("{op} failed")]
    Failed {
        op: &'static str,
        #[source]
        source: crate::binfmt::plan::ApplyError,
    },
}

impl Classify for OpsError {
    fn kind(&self) -> ErrorKind {
        match self {
            OpsError::UnknownHost(_) | OpsError::NotMounted { .. } => ErrorKind::Environment,
            OpsError::Failed { source, .. } => source.kind(),
            OpsError::ConfigUnchanged { source } => source.kind(),
            _ => ErrorKind::BadInput,
        }
    }
}

/// The host as the operations see it: the arch table, the gathered facts, the arches it runs
/// natively (after probes and the user's overrides) and whose interpreter owners count as
/// root's.
#[derive(Debug, Clone)]
pub struct Host {
    pub table: &'static Table,
    pub facts: HostFacts,
    /// Read through `native()`: decided on first use where the compat probes are involved.
    pub native: Natives,
    /// In a user namespace, count unmapped (overflow uid) owners as root's.
    pub trust_unmapped_owner: bool,
    /// Where interpreters' facts are read: the disk, or fabricated ones in unit tests.
    pub files: Files,
}

/// The seam in front of the interpreter files (`interpreter::FactSource`): `Files::default()`
/// reads the disk; unit tests put fabricated interpreters behind it.
#[derive(Clone, Default)]
pub struct Files(Option<std::sync::Arc<dyn interpreter::FactSource>>);

impl Files {
    pub fn fabricated(source: impl interpreter::FactSource + 'static) -> Files {
        Files(Some(std::sync::Arc::new(source)))
    }

    fn source(&self) -> &dyn interpreter::FactSource {
        match &self.0 {
            Some(s) => s.as_ref(),
            None => &interpreter::Disk,
        }
    }
}

/// The arches a host runs natively: known, or decided on first use (`deferred`). Deciding
/// means running the compat probes (for the commands that take `--native`) and, for an arch
/// they leave undecided, reading the kernel config (`HostFacts::decide_natives`): a command that
/// never asks pays nothing, and `install` asks on a second thread while it checks
/// interpreters (`install::prepare`).
#[derive(Clone)]
pub struct Natives(std::sync::Arc<NativesInner>);

struct NativesInner {
    known: std::sync::OnceLock<Vec<NativeArch>>,
    decide: std::sync::Mutex<Option<Decide>>,
}

type Decide = Box<dyn FnOnce() -> Vec<NativeArch> + Send>;

impl Natives {
    pub fn known(native: Vec<NativeArch>) -> Natives {
        let n = Natives::deferred(Vec::new);
        let _ = n.0.known.set(native);
        n
    }

    /// Decided by `decide` the first time they are read (once, whichever thread reads first;
    /// the others wait for it).
    pub fn deferred(decide: impl FnOnce() -> Vec<NativeArch> + Send + 'static) -> Natives {
        Natives(std::sync::Arc::new(NativesInner {
            known: std::sync::OnceLock::new(),
            decide: std::sync::Mutex::new(Some(Box::new(decide))),
        }))
    }

    pub fn get(&self) -> &[NativeArch] {
        self.0.known.get_or_init(|| {
            let decide = self
                .0
                .decide
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            // Gone only when an earlier decision panicked: never an empty list, which would
            // leave even the host's own arch unguarded.
            let decide = decide.expect("the natives' decision panicked earlier");
            decide()
        })
    }
}

impl From<Vec<NativeArch>> for Natives {
    fn from(native: Vec<NativeArch>) -> Natives {
        Natives::known(native)
    }
}

impl std::fmt::Debug for Natives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.known.get() {
            Some(n) => f.debug_tuple("Natives").field(n).finish(),
            None => f.write_str("Natives(not decided yet)"),
        }
    }
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Files(fabricated)"
        } else {
            "Files(disk)"
        })
    }
}

impl Host {
    /// This machine as its facts say, without the user's overrides or vouching.
    pub fn gather(table: &'static Table) -> Host {
        let facts = HostFacts::gather();
        let native = facts.native(table).into();
        Host {
            table,
            facts,
            native,
            trust_unmapped_owner: false,
            files: Files::default(),
        }
    }

    /// This machine for a command: the user's `--native` and `--not-native` (`overrides`),
    /// the natives decided when first asked for (`Natives`), with the compat probes when
    /// `probe`: a command that never asks runs none.
    pub fn for_command(
        table: &'static Table,
        overrides: (&[String], &[String]),
        probe: bool,
        trust_unmapped_owner: bool,
    ) -> Result<Host, crate::host::OverrideError> {
        let facts = HostFacts::gather_without_config();
        let over = crate::host::NativeOverride::resolve(table, &facts, overrides.0, overrides.1)?;
        let native = Natives::deferred({
            let facts = facts.clone();
            move || {
                let started = std::env::current_exe()
                    .ok()
                    .filter(|_| probe)
                    .and_then(|exe| facts.start_probes(table, &exe));
                facts.decide_natives(table, &over, started)
            }
        });
        Ok(Host {
            table,
            facts,
            native,
            trust_unmapped_owner,
            files: Files::default(),
        })
    }

    /// `interpreter::discover` through this host's `files`.
    pub fn discover(
        &self,
        arch: &Arch,
        dirs: &[PathBuf],
        req: &Requirements,
    ) -> interpreter::Discovery {
        interpreter::discover_with(self.files.source(), arch, dirs, req)
    }

    /// `dirs`, looked at once for many `discover_in`s.
    pub fn search_dirs<'d>(&self, dirs: &'d [PathBuf]) -> interpreter::SearchDirs<'d> {
        interpreter::SearchDirs::look(self.files.source(), dirs)
    }

    /// `interpreter::discover_in` through this host's `files`.
    pub fn discover_in(
        &self,
        arch: &Arch,
        dirs: &interpreter::SearchDirs,
        req: &Requirements,
    ) -> interpreter::Discovery {
        interpreter::discover_in(self.files.source(), arch, dirs, req)
    }

    /// `interpreter::facts_of` through this host's `files`.
    pub fn interpreter_facts(&self, path: &Path, qemu_cpu: Option<&str>) -> interpreter::FileFacts {
        self.files.source().facts_of(path, qemu_cpu)
    }

    /// The arches this host runs natively (deciding them now if not yet done).
    pub fn native(&self) -> &[NativeArch] {
        self.native.get()
    }

    pub fn is_native(&self, arch: &str) -> Option<&NativeArch> {
        self.native().iter().find(|n| n.arch == arch)
    }

    /// The native-capture guard for this host (every native arch, both ELF types, both OS ABI
    /// bytes, scripts, our own header): the one install, import and status use.
    pub fn native_guard(&self) -> NativeGuard {
        let arches: Vec<&Arch> = self
            .native()
            .iter()
            .filter_map(|n| self.table.get(&n.arch))
            .collect();
        NativeGuard::new(&arches, &self.facts.exe_header)
    }

    /// Inside a user namespace, the uid unmapped owners (host root among them) show as: the
    /// store's owner may be that when its lock is taken, since the interpreters' own checks
    /// (`owners`) still refuse them unless the caller vouches for them.
    pub fn unmapped_uid(&self) -> Option<u32> {
        self.facts
            .in_user_namespace
            .then_some(self.facts.overflow_uid)
    }

    /// Which owners count as root's here: in a user namespace, unmapped owners only when the
    /// caller vouches for them.
    pub fn owners(&self) -> Owners {
        Owners {
            unmapped_uid: self
                .facts
                .in_user_namespace
                .then_some(self.facts.overflow_uid),
            trust_unmapped: self.trust_unmapped_owner,
            overflow_is_mapped: self.facts.in_user_namespace && self.facts.overflow_uid_mapped,
        }
    }

    /// What an interpreter must be on this host (`need_static`: with flag F).
    pub fn requirements(&self, need_static: bool) -> Result<Requirements, OpsError> {
        let host = self
            .facts
            .host_arch(self.table)
            .ok_or_else(|| OpsError::UnknownHost(self.facts.machine.clone()))?;
        Ok(Requirements {
            host_class: host.class,
            host_endian: host.endian,
            host_machine: host.machine,
            owners: self.owners(),
            need_static,
            version: true,
        })
    }

    /// Arch names (any spelling, or `all`) to arches, each once; true when `all` was named.
    pub fn resolve_list(&self, names: &[String]) -> Result<(bool, Vec<&'static Arch>), OpsError> {
        let mut all = false;
        let mut arches: Vec<&'static Arch> = Vec::new();
        let mut unknown = Vec::new();
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if n.eq_ignore_ascii_case("all") {
                all = true;
                continue;
            }
            match self.table.resolve(n) {
                Ok(a) if !arches.iter().any(|x| x.name == a.name) => arches.push(a),
                Ok(_) => {}
                Err(e) => unknown.push(e.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(OpsError::UnknownArches(unknown));
        }
        if all {
            arches = self.table.arches.iter().collect();
        } else if arches.is_empty() {
            return Err(OpsError::NoArch);
        }
        Ok((all, arches))
    }
}

/// The arch an entry emulates: by its name when it is ours (`qemu-<arch>`, or a further entry
/// of the arch such as `qemu-microblaze-old`), else by its pattern.
pub fn arch_of<'t>(table: &'t Table, reg: &Registration) -> Option<&'t Arch> {
    table
        .arch_of_entry(&reg.name)
        .map(|(a, _)| a)
        .or_else(|| table.arch_of_matcher(&reg.matcher))
}

/// Where interpreters are looked for: the user's directories (`--qemu-path`, or the config's
/// `qemu_path`; empty: the default search path), or a stored QEMU version's directory.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub qemu_path: Vec<PathBuf>,
    /// `--qemu VERSION` (or the config's `qemu`): the stored version interpreters come from.
    pub qemu_bin: Option<StoredBin>,
}

/// A stored QEMU version's interpreter directory, and the version (named in refusals).
#[derive(Debug, Clone)]
pub struct StoredBin {
    pub bin: PathBuf,
    pub version: String,
}

impl StoredBin {
    pub fn of(s: &crate::qemu::store::Stored) -> StoredBin {
        StoredBin {
            bin: s.bin(),
            version: s.manifest.version.clone(),
        }
    }
}

impl Search {
    /// The directories, made absolute: the kernel needs an absolute interpreter.
    pub fn dirs(&self) -> Vec<PathBuf> {
        if let Some(s) = &self.qemu_bin {
            return vec![s.bin.clone()];
        }
        if self.qemu_path.is_empty() {
            interpreter::default_search()
        } else {
            self.qemu_path
                .iter()
                .map(|d| {
                    std::fs::canonicalize(d)
                        .or_else(|_| std::path::absolute(d))
                        .unwrap_or_else(|_| d.clone())
                })
                .collect()
        }
    }

    /// A search directory that is not there is a typo, not "no interpreter installed".
    pub fn check(&self) -> Result<(), OpsError> {
        for d in &self.qemu_path {
            let problem = match std::fs::metadata(d) {
                Ok(m) if m.is_dir() => continue,
                Ok(m) => format!(
                    "{}, not a directory",
                    crate::input::kind_of(m.file_type()).trim_start_matches("a ")
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".into(),
                Err(e) => e.to_string(),
            };
            return Err(OpsError::SearchPath {
                dir: d.clone(),
                problem,
            });
        }
        Ok(())
    }
}

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub name: String,
    pub arch: Option<String>,
    pub interpreter: Option<String>,
    /// The interpreter's QEMU version, when it says.
    pub version: Option<String>,
    pub flags: Option<Flags>,
    /// Why it was refused, skipped or kept as it was.
    pub reason: Option<String>,
    /// The entry a replace removed.
    pub previous: Option<Entry>,
}

impl Outcome {
    pub fn new(verdict: Verdict, name: String, arch: Option<&str>) -> Outcome {
        Outcome {
            verdict,
            name,
            arch: arch.map(str::to_owned),
            interpreter: None,
            version: None,
            flags: None,
            reason: None,
            previous: None,
        }
    }

    /// With the interpreter and flags of `reg`.
    fn of(verdict: Verdict, name: String, arch: Option<&str>, reg: &Registration) -> Outcome {
        Outcome {
            interpreter: Some(reg.interpreter.clone()),
            flags: Some(reg.flags),
            ..Outcome::new(verdict, name, arch)
        }
    }
}

/// What a changing command did (or, on a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dry_run: bool,
    pub outcomes: Vec<Outcome>,
    /// Other entries that can claim the same files as ours.
    pub overlaps: Vec<Overlap>,
    /// Things the user should know (flags' consequences, a mount made).
    pub notes: Vec<String>,
    /// Warnings for stderr (a mount that may not outlive this process).
    pub warnings: Vec<String>,
}

impl Report {
    /// Did any entry get refused?
    pub fn refused(&self) -> bool {
        self.outcomes.iter().any(|o| o.verdict == Verdict::Refused)
    }
}

/// A report, and the error when the operation failed after making it (refused entries, or a
/// failed apply that was rolled back): the CLI shows the report, then returns the error.
#[derive(Debug)]
pub struct Reported {
    pub report: Report,
    pub failure: Option<OpsError>,
}

impl Reported {
    fn ok(report: Report) -> Reported {
        Reported {
            report,
            failure: None,
        }
    }
}
