//! Nix: keeping binfmtctl's include file in Nix's configuration in step with the registered
//! handlers (`install --nix`, `apply` with `[nix]`, `uninstall`, `apply --remove`), the hints
//! `status` shows when both disagree, `nix status` (Nix's view against the kernel's, each
//! handler proved with its probe) and `nix machines` (`/etc/nix/machines` lines for this host
//! as a remote builder).
//!
//! Each function takes the binfmt_misc seam, the host, Nix's paths and two seams of its own:
//! `NixTool` (Nix's effective settings, the daemon) and `Probe` (does a handler really run
//! the arch's programs), so that the flows run in tests against `RecordingBinfmt`, a
//! temporary configuration directory and doubles. The file handling is in `crate::nix`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Host;
use crate::binfmt::arch::{Arch, ENTRY_PREFIX, Table};
use crate::binfmt::kernel::{self, BinfmtFs, KernelEntry, KernelError};
use crate::error::{Classify, ErrorKind};
use crate::inspection::inspect::kernel_choice;
use crate::inspection::probe::representative_header;
use crate::nix::{self as nixcfg, Changed, Machine, Managed, NixError, Paths, Record, View};

/// What the Nix operations refuse, or could not do.
#[derive(Debug, thiserror::Error)]
pub enum NixOpsError {
    #[error(transparent)]
    Nix(#[from] NixError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The kernel was changed, Nix's configuration could not be.
    #[error(
        "the handlers were changed, but Nix's configuration was not: {source}; then run `binfmtctl install ARCHES --nix` again"
    )]
    NotSynced {
        #[source]
        source: NixError,
    },
    /// Nix rejected what binfmtctl wrote; it was put back (or putting it back failed too).
    #[error(
        "Nix rejects the configuration binfmtctl wrote, so it was put back ({}): {source}",
        match restore_failed { None => "restored".to_owned(), Some(r) => format!("restoring failed too: {r}") }
    )]
    RejectedOurs {
        #[source]
        source: NixError,
        restore_failed: Option<NixError>,
    },
    #[error(
        "--host {0:?}: a store URI without blanks, control characters or `#`, such as ssh-ng://builder1"
    )]
    BadUri(String),
    /// A value that would not stay one field of its /etc/nix/machines line.
    #[error(
        "{what} {value:?}: {problem}; /etc/nix/machines separates fields with blanks and builders with lines, and starts a comment at `#`: give a value without those"
    )]
    BadField {
        what: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("--max-jobs 0: a builder needs at least one job")]
    NoJobs,
    #[error("--host-key: {source}")]
    HostKey {
        #[source]
        source: crate::input::InputError,
    },
    #[error("cannot create a directory for the probes: {source}")]
    ProbeDir {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find binfmtctl's own executable: {source}")]
    SelfExe {
        #[source]
        source: std::io::Error,
    },
}

impl Classify for NixOpsError {
    fn kind(&self) -> ErrorKind {
        match self {
            NixOpsError::Nix(e) => e.kind(),
            NixOpsError::Kernel(e) => e.kind(),
            NixOpsError::NotSynced { .. } | NixOpsError::RejectedOurs { .. } => ErrorKind::Failed,
            NixOpsError::BadUri(_) | NixOpsError::BadField { .. } | NixOpsError::NoJobs => {
                ErrorKind::BadInput
            }
            NixOpsError::HostKey { source } => source.kind(),
            NixOpsError::ProbeDir { .. } | NixOpsError::SelfExe { .. } => ErrorKind::Environment,
        }
    }
}

/// What nix-daemon did about a changed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "pids")]
pub enum Daemon {
    /// No nix-daemon runs with this configuration directory.
    NotRunning,
    /// `systemctl try-restart nix-daemon.service` restarted it.
    Restarted,
    /// It runs (these pids) and could not be restarted: the user must.
    MustRestart(Vec<u32>),
}

/// Nix itself, as the operations need it.
pub trait NixTool {
    /// The `nix` program (`NixError::NotInstalled` when there is none).
    fn program(&self) -> Result<PathBuf, NixError>;
    /// Nix's effective settings with `dir` as its configuration directory; a configuration
    /// Nix rejects is `NixError::Rejected`.
    fn show_config(&self, dir: &Path) -> Result<View, NixError>;
    /// nix-daemon reads its configuration at start: restart it when it runs with `dir`.
    fn restart_daemon(&self, dir: &Path) -> Daemon;
}

/// The Nix in `PATH`, and the running nix-daemon.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemNix;

impl NixTool for SystemNix {
    fn program(&self) -> Result<PathBuf, NixError> {
        nixcfg::find_nix(std::env::var_os("PATH").as_deref()).ok_or(NixError::NotInstalled)
    }

    fn show_config(&self, dir: &Path) -> Result<View, NixError> {
        nixcfg::show_config(&self.program()?, dir)
    }

    fn restart_daemon(&self, dir: &Path) -> Daemon {
        let ours: Vec<u32> = nixcfg::daemon_pids()
            .into_iter()
            .filter(|pid| {
                let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let d = env
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(b"NIX_CONF_DIR="))
                    .map_or_else(
                        || PathBuf::from(nixcfg::DEFAULT_CONF_DIR),
                        |d| PathBuf::from(String::from_utf8_lossy(d).into_owned()),
                    );
                std::path::absolute(&d).ok() == std::path::absolute(dir).ok()
            })
            .collect();
        if ours.is_empty() {
            return Daemon::NotRunning;
        }
        // systemctl is run by an absolute path found safe on PATH (`host::which_safe`): a
        // `systemctl` planted in a directory others can write is never run as root.
        if Path::new("/run/systemd/system").exists()
            && let Some(systemctl) = crate::host::which_safe("systemctl")
        {
            let ok = std::process::Command::new(systemctl)
                .args(["try-restart", "nix-daemon.service"])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                tracing::info!("restarted nix-daemon.service");
                return Daemon::Restarted;
            }
        }
        Daemon::MustRestart(ours)
    }
}

/// What a probe of one arch said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The probe ran through the handler and did what it should.
    pub runs: bool,
    pub detail: String,
}

/// Runs an arch's probe through the kernel's handler.
pub trait Probe {
    /// `None` when binfmtctl has no probe for the arch.
    fn run(&self, a: &Arch, entries: &[KernelEntry], enabled: bool) -> Option<Probed>;
}

/// The self-test's probes, run for real (in a private work directory).
pub struct SelfTestProbe {
    work: crate::inspection::selftest::Workdir,
    self_exe: PathBuf,
    machine: String,
}

impl SelfTestProbe {
    pub fn new(host: &Host) -> Result<SelfTestProbe, NixOpsError> {
        Ok(SelfTestProbe {
            work: crate::inspection::selftest::Workdir::new()
                .map_err(|source| NixOpsError::ProbeDir { source })?,
            self_exe: std::env::current_exe().map_err(|source| NixOpsError::SelfExe { source })?,
            machine: host.facts.machine.clone(),
        })
    }
}

impl Probe for SelfTestProbe {
    fn run(&self, a: &Arch, entries: &[KernelEntry], enabled: bool) -> Option<Probed> {
        use crate::inspection::selftest;
        crate::inspection::probe::build(a)?;
        let env = selftest::Env {
            entries,
            binfmt_enabled: enabled,
            host_machine: &self.machine,
            self_exe: &self.self_exe,
            work: &self.work,
        };
        let res = selftest::test_arch(a, false, true, &env);
        let runs = res.checks.iter().find(|c| c.name == "runs");
        Some(match runs {
            Some(c) if c.ok == Some(true) => Probed {
                runs: true,
                detail: c.detail.clone(),
            },
            _ => Probed {
                runs: false,
                detail: runs.map_or_else(
                    || res.reason.clone().unwrap_or_default(),
                    |c| c.detail.clone(),
                ),
            },
        })
    }
}

/// Before `install --nix` / `apply` with `[nix]` changes anything: Nix is there, its
/// configuration is one Nix and binfmtctl can read, and binfmtctl may write it.
pub fn precheck(paths: &Paths, nix: &dyn NixTool) -> Result<(), NixError> {
    nix.program()?;
    nixcfg::precheck(paths)?;
    nix.show_config(&paths.dir)?;
    Ok(())
}

/// What `sync` did (or, on a dry run, would do), in order.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    /// Dry run: the systems that would be added.
    pub would_add: Vec<String>,
    /// Arches that were installed but have no Nix system name.
    pub nameless: Vec<String>,
    /// Files written and removed (empty when nothing had to change).
    pub changed: Changed,
    /// When the file changed: the extra platforms binfmtctl now gives Nix.
    pub platforms: Option<Vec<String>>,
    /// Platforms binfmtctl added that Nix still does not accept (a later line overrides).
    pub not_accepted: Vec<String>,
    pub daemon: Option<Daemon>,
}

/// Brings binfmtctl.conf in line with the kernel: records for `add` (arch names whose entries
/// were just installed), and no record for an arch whose entry is gone or disabled. Does
/// nothing when the file does not exist and nothing is to be added (plain `uninstall` without
/// Nix). The user's nix.conf lines are never rewritten: only our include line is added to, or
/// taken out of, it.
pub fn sync(
    fs: &dyn BinfmtFs,
    host: &Host,
    paths: &Paths,
    nix: &dyn NixTool,
    add: &[String],
    dry_run: bool,
) -> Result<SyncReport, NixOpsError> {
    let mut r = SyncReport {
        dry_run,
        ..SyncReport::default()
    };
    if add.is_empty() && !paths.include.exists() {
        return Ok(r);
    }
    if dry_run {
        r.would_add = add
            .iter()
            .filter_map(|a| host.table.get(a))
            .flat_map(|a| a.nix.iter().cloned())
            .collect();
        return Ok(r);
    }
    // The kernel has changed by now: a failure here is a failed operation (exit 1), and says
    // what did and did not happen.
    let after = |source: NixError| NixOpsError::NotSynced { source };
    let old = nixcfg::load_managed(paths).map_err(after)?;
    let mut m = old.clone();
    let entries = kernel::snapshot(fs)?;
    let enabled_entry = |name: &str| {
        entries
            .iter()
            .map(|k| &k.entry)
            .find(|e| e.registration.name == name && e.enabled)
    };
    for name in add {
        let Some(a) = host.table.get(name) else {
            continue;
        };
        // Only what is registered now (`install all` names every arch).
        let Some(e) = enabled_entry(&a.entry_name()) else {
            continue;
        };
        if a.nix.is_empty() {
            r.nameless.push(a.name.clone());
            continue;
        }
        let reg = &e.registration;
        m.arches.insert(
            a.name.clone(),
            Record {
                systems: a.nix.clone(),
                sandbox: (!reg.flags.fix_binary).then(|| reg.interpreter.clone()),
            },
        );
    }
    m.arches
        .retain(|arch, _| enabled_entry(&format!("{ENTRY_PREFIX}{arch}")).is_some());
    if m == old {
        return Ok(r);
    }
    let (changed, undo) = nixcfg::write(paths, &m).map_err(after)?;
    // Nix must accept the result and see our systems; otherwise put everything back.
    match nix.show_config(&paths.dir) {
        Err(NixError::NotInstalled) => {}
        Err(source) => {
            return Err(NixOpsError::RejectedOurs {
                source,
                restore_failed: undo.restore().err(),
            });
        }
        Ok(view) => {
            r.not_accepted = m
                .platforms()
                .into_iter()
                .filter(|p| !view.accepts(p))
                .collect();
        }
    }
    r.changed = changed;
    r.platforms = Some(m.platforms());
    r.daemon = Some(nix.restart_daemon(&paths.dir));
    Ok(r)
}

/// A disagreement `status` shows between binfmtctl.conf and the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// binfmtctl.conf tells Nix about an arch whose entry is gone or disabled.
    Unregistered {
        arch: String,
        systems: Vec<String>,
        include: PathBuf,
    },
    /// An entry is registered and enabled, but binfmtctl.conf does not tell Nix.
    NotTold {
        arch: String,
        entry: String,
        systems: Vec<String>,
        include: PathBuf,
    },
    /// binfmtctl.conf cannot be read.
    Unreadable(String),
}

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hint::Unregistered {
                arch,
                systems,
                include,
            } => write!(
                f,
                "Nix builds {} ({}) but {ENTRY_PREFIX}{arch} is not registered and enabled: `binfmtctl install {arch} --nix`, or `binfmtctl uninstall {arch}` to take it out of Nix",
                systems.join(" "),
                include.display()
            ),
            Hint::NotTold {
                arch,
                entry,
                systems,
                include,
            } => write!(
                f,
                "{entry} is registered but Nix is not told (no {} in {}): `binfmtctl install {arch} --nix`",
                systems.join(" "),
                include.display()
            ),
            Hint::Unreadable(e) => f.write_str(e),
        }
    }
}

impl Serialize for Hint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// For `status`: when binfmtctl.conf exists, the arches it tells Nix about whose handler is
/// gone or disabled, and registered handlers of arches with a Nix system it does not list.
/// (`nix status` is the full check, with Nix's own view and the probes.)
pub fn status_hints(table: &Table, paths: &Paths, entries: &[KernelEntry]) -> Vec<Hint> {
    if !paths.include.exists() {
        return Vec::new();
    }
    let m = match nixcfg::load_managed(paths) {
        Ok(m) => m,
        Err(e) => return vec![Hint::Unreadable(e.to_string())],
    };
    let enabled = |name: &str| {
        entries
            .iter()
            .any(|k| k.entry.registration.name == name && k.entry.enabled)
    };
    let mut w = Vec::new();
    for (arch, r) in &m.arches {
        if !enabled(&format!("{ENTRY_PREFIX}{arch}")) {
            w.push(Hint::Unregistered {
                arch: arch.clone(),
                systems: r.systems.clone(),
                include: paths.include.clone(),
            });
        }
    }
    for a in &table.arches {
        if !a.nix.is_empty() && !m.arches.contains_key(&a.name) && enabled(&a.entry_name()) {
            w.push(Hint::NotTold {
                arch: a.name.clone(),
                entry: a.entry_name(),
                systems: a.nix.clone(),
                include: paths.include.clone(),
            });
        }
    }
    w
}

/// What the kernel does with one arch's programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandlerState {
    Native,
    /// The arch's probe ran through the handler.
    Works,
    Fails,
    NoHandler,
    /// Registered, but binfmtctl has no probe for the arch.
    Unverified,
}

impl HandlerState {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerState::Native => "native",
            HandlerState::Works => "works",
            HandlerState::Fails => "fails",
            HandlerState::NoHandler => "no-handler",
            HandlerState::Unverified => "unverified",
        }
    }
}

/// What the kernel does with one arch's programs, proved with its probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handler {
    /// Our arch name, or `-` for a system binfmtctl has no arch for.
    pub arch: String,
    pub state: HandlerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    pub detail: String,
}

impl Handler {
    fn native(arch: String, detail: String) -> Handler {
        Handler {
            arch,
            state: HandlerState::Native,
            entry: None,
            interpreter: None,
            flags: None,
            detail,
        }
    }

    /// Registered without F: the interpreter is opened at exec time, inside Nix's sandbox.
    fn without_f(&self) -> bool {
        self.flags.as_deref().is_some_and(|f| !f.contains('F'))
    }
}

/// The kernel's entries, and the probe that proves them.
struct Prober<'a> {
    host: &'a Host,
    entries: Vec<KernelEntry>,
    enabled: bool,
    probe: &'a dyn Probe,
}

impl<'a> Prober<'a> {
    /// Against the kernel's entries now.
    fn of(
        host: &'a Host,
        fs: &dyn BinfmtFs,
        probe: &'a dyn Probe,
    ) -> Result<Prober<'a>, KernelError> {
        let (entries, enabled) = kernel::view(fs)?;
        Ok(Prober {
            host,
            entries,
            enabled,
            probe,
        })
    }

    fn has_handler(&self, a: &Arch) -> bool {
        kernel_choice(&self.entries, self.enabled, &representative_header(a), "/x").is_some()
    }

    fn handler(&self, a: &Arch) -> Handler {
        if self.host.is_native(&a.name).is_some() {
            return Handler::native(a.name.clone(), "runs natively".into());
        }
        let mut h = Handler {
            arch: a.name.clone(),
            state: HandlerState::NoHandler,
            entry: None,
            interpreter: None,
            flags: None,
            detail: String::new(),
        };
        let header = representative_header(a);
        let Some(k) = kernel_choice(&self.entries, self.enabled, &header, "/x") else {
            h.detail = format!("no handler: `binfmtctl install {} --nix`", a.name);
            return h;
        };
        let r = &k.entry.registration;
        h.entry = Some(r.name.clone());
        h.interpreter = Some(r.interpreter.clone());
        h.flags = Some(r.flags.to_string());
        match self.probe.run(a, &self.entries, self.enabled) {
            None => {
                h.state = HandlerState::Unverified;
                h.detail = "registered, but binfmtctl has no probe to prove it works".into();
            }
            Some(p) => {
                h.state = if p.runs {
                    HandlerState::Works
                } else {
                    HandlerState::Fails
                };
                h.detail = p.detail;
            }
        }
        h
    }
}

/// Where a system in `nix status` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Nix's own `system`.
    System,
    ExtraPlatforms,
    /// Only a handler: Nix does not accept it.
    Handler,
}

/// A system Nix accepts or binfmtctl could give it.
#[derive(Debug, Clone, Serialize)]
pub struct SystemRow {
    pub system: String,
    /// Nix accepts derivations for it now.
    pub accepted: bool,
    pub source: Source,
    /// binfmtctl.conf lists it.
    pub from_binfmtctl: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<Handler>,
    /// What is wrong, if anything, with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `x86_64-v3-linux` and friends (Nix's micro-architecture levels): the level and the system
/// it is a level of (`v3`, `x86_64-linux`).
pub fn microarch_level(system: &str) -> Option<(&str, String)> {
    let (cpu, rest) = system.split_once('-')?;
    let (level, os) = rest.split_once('-')?;
    let digits = level.strip_prefix('v')?;
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| (level, format!("{cpu}-{os}")))
}

/// A micro-architecture level of one of the native systems?
fn native_variant(system: &str, native_systems: &[String]) -> bool {
    microarch_level(system).is_some_and(|(_, base)| native_systems.contains(&base))
}

/// The systems this host builds natively: Nix's own, and every native arch's.
fn native_systems(host: &Host, view: &View) -> Vec<String> {
    let mut v = vec![view.system.clone()];
    for n in host.native() {
        if let Some(a) = host.table.get(&n.arch) {
            for s in &a.nix {
                if !v.contains(s) {
                    v.push(s.clone());
                }
            }
        }
    }
    v
}

/// The handler row of a native system (a micro-architecture level says whose).
fn native_handler(table: &Table, system: &str) -> Handler {
    if let Some((level, base)) = microarch_level(system)
        && let Some(a) = nixcfg::arch_of_system(table, &base)
    {
        return Handler::native(
            a.name.clone(),
            format!(
                "runs natively ({} micro-architecture level {level})",
                a.name
            ),
        );
    }
    Handler::native(
        nixcfg::arch_of_system(table, system).map_or_else(|| "-".into(), |a| a.name.clone()),
        "runs natively".into(),
    )
}

/// `nix status`: Nix's view of the machine against the handlers that really work.
#[derive(Debug, Clone, Serialize)]
pub struct NixStatus {
    /// The nix program used.
    pub nix: PathBuf,
    pub conf_dir: PathBuf,
    pub nix_conf: PathBuf,
    pub include_file: PathBuf,
    /// binfmtctl.conf exists.
    #[serde(skip)]
    pub include_exists: bool,
    /// nix.conf includes it.
    pub included: bool,
    /// What binfmtctl.conf records.
    pub binfmtctl: Managed,
    pub system: String,
    pub extra_platforms: Vec<String>,
    pub sandbox: String,
    pub sandbox_paths: Vec<String>,
    pub system_features: Vec<String>,
    pub systems: Vec<SystemRow>,
    pub warnings: Vec<String>,
}

/// The systems `nix status` shows: Nix's own, its extra-platforms, then those with a
/// registered handler that Nix does not accept.
fn systems_to_show(host: &Host, view: &View, prober: &Prober) -> Vec<(String, Source)> {
    let mut systems: Vec<(String, Source)> = vec![(view.system.clone(), Source::System)];
    for p in &view.extra_platforms {
        if !systems.iter().any(|(s, _)| s == p) {
            systems.push((p.clone(), Source::ExtraPlatforms));
        }
    }
    for a in &host.table.arches {
        if a.nix.is_empty() || host.is_native(&a.name).is_some() || !prober.has_handler(a) {
            continue;
        }
        for s in &a.nix {
            if !systems.iter().any(|(x, _)| x == s) {
                systems.push((s.clone(), Source::Handler));
            }
        }
    }
    systems
}

/// What is wrong with an emulated system's row, with the fix: Nix accepts it and no handler
/// works (or the sandbox hides the interpreter), or a handler works that Nix does not use.
fn row_problem(
    view: &View,
    system: &str,
    arch: &str,
    accepted: bool,
    h: &Handler,
) -> Option<String> {
    match (accepted, h.state) {
        (true, HandlerState::Works | HandlerState::Unverified) => {
            let interp = h.interpreter.clone().unwrap_or_default();
            (h.without_f() && view.sandboxed() && !view.in_sandbox(&interp)).then(|| {
                format!(
                    "{} has no F flag and {interp} is not in Nix's sandbox-paths, so {system} builds fail in the sandbox: `binfmtctl install {arch} --nix` (adds it), or register it with F",
                    h.entry.clone().unwrap_or_default(),
                )
            })
        }
        (true, _) => Some(format!(
            "Nix accepts {system} builds but no working handler runs {arch} programs ({}): `binfmtctl install {arch} --nix`, or take {system} out of extra-platforms",
            h.detail
        )),
        (false, HandlerState::Works) => Some(format!(
            "{} works but Nix does not build {system}: `binfmtctl install {arch} --nix`",
            h.entry.clone().unwrap_or_default(),
        )),
        (false, _) => None,
    }
}

pub fn status(
    fs: &dyn BinfmtFs,
    host: &Host,
    paths: &Paths,
    nix: &dyn NixTool,
    probe: &dyn Probe,
) -> Result<NixStatus, NixOpsError> {
    let program = nix.program()?;
    let conf_lines = match std::fs::read_to_string(&paths.conf) {
        Ok(t) => nixcfg::parse(&paths.conf, &t)?,
        Err(_) => Vec::new(),
    };
    let included = nixcfg::includes(&paths.conf, &conf_lines, &paths.include);
    let managed = nixcfg::load_managed(paths)?;
    let view = nix.show_config(&paths.dir)?;
    let native = native_systems(host, &view);
    let prober = Prober::of(host, fs, probe)?;
    let mut rows: Vec<SystemRow> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let ours = managed.platforms();
    let systems = systems_to_show(host, &view, &prober);
    let mut probed: Vec<Handler> = Vec::new();
    for (system, source) in systems {
        let mut row = SystemRow {
            accepted: source != Source::Handler,
            from_binfmtctl: ours.contains(&system),
            system: system.clone(),
            source,
            handler: None,
            problem: None,
        };
        if source == Source::System || native.contains(&system) || native_variant(&system, &native)
        {
            row.handler = Some(native_handler(host.table, &system));
            rows.push(row);
            continue;
        }
        let Some(a) = nixcfg::arch_of_system(host.table, &system) else {
            let p = format!(
                "Nix accepts {system}, which binfmtctl has no arch for: nothing here can run its builders unless you know better"
            );
            warnings.push(p.clone());
            row.problem = Some(p);
            rows.push(row);
            continue;
        };
        let h = match probed.iter().find(|h| h.arch == a.name) {
            Some(h) => h.clone(),
            None => {
                let h = prober.handler(a);
                probed.push(h.clone());
                h
            }
        };
        row.problem = row_problem(&view, &system, &a.name, row.accepted, &h);
        if let Some(p) = &row.problem {
            warnings.push(p.clone());
        }
        row.handler = Some(h);
        rows.push(row);
    }
    let include_exists = paths.include.exists();
    if include_exists && !included {
        warnings.push(format!(
            "{} exists but {} does not include it, so Nix ignores it: add `{}` to {}",
            paths.include.display(),
            paths.conf.display(),
            nixcfg::INCLUDE_LINE,
            paths.conf.display()
        ));
    }
    Ok(NixStatus {
        nix: program,
        conf_dir: paths.dir.clone(),
        nix_conf: paths.conf.clone(),
        include_file: paths.include.clone(),
        include_exists,
        included,
        binfmtctl: managed,
        system: view.system,
        extra_platforms: view.extra_platforms,
        sandbox: view.sandbox,
        sandbox_paths: view.sandbox_paths,
        system_features: view.system_features,
        systems: rows,
        warnings,
    })
}

/// What `nix machines` is asked for.
#[derive(Debug, Clone, Default)]
pub struct MachinesRequest {
    /// The store URI other machines reach this host by.
    pub uri: String,
    /// Builds at a time (default: the number of CPUs).
    pub max_jobs: Option<u32>,
    /// The SSH private key the clients use (path on the client).
    pub ssh_key: Option<String>,
    /// This host's SSH public host key file (`None`: the default one, when readable).
    pub host_key: Option<PathBuf>,
}

/// The host key the line names when the user names none.
pub const DEFAULT_HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

/// A system left out of the machines lines, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub system: String,
    pub reason: String,
}

/// `nix machines`: the lines, and how the systems in them were chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Machines {
    pub machines: Vec<Machine>,
    /// The same, as /etc/nix/machines lines.
    pub lines: Vec<String>,
    pub native: Vec<String>,
    /// Systems built through a handler that works and Nix accepts.
    pub emulated: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// Why `value` cannot be one field of an /etc/nix/machines line, if it cannot. Nix splits a
/// line at blanks, each line is a builder, and `#` starts a comment: a newline in `--ssh-key`
/// added a whole builder to the file.
pub fn machine_field_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("it is empty")
    } else if value.contains(char::is_whitespace) {
        Some("it contains a blank (a space, a tab or a newline)")
    } else if value.contains(char::is_control) {
        Some("it contains a control character")
    } else if value.contains('#') {
        Some("it contains `#`")
    } else {
        None
    }
}

/// `machine_field_problem` as the error naming `what` (the flag or the source).
fn check_field(what: &'static str, value: &str) -> Result<(), NixOpsError> {
    match machine_field_problem(value) {
        Some(problem) => Err(NixOpsError::BadField {
            what,
            value: value.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// The request's own fields checked before anything is read: the URI and key are one field
/// each of a machines line, the jobs at least one. Returns the jobs and the host key
/// (base64 of the public key file, the default one when readable).
fn check_machines_request(req: &MachinesRequest) -> Result<(u32, Option<String>), NixOpsError> {
    if machine_field_problem(&req.uri).is_some() {
        return Err(NixOpsError::BadUri(req.uri.clone()));
    }
    if let Some(key) = &req.ssh_key {
        check_field("--ssh-key", key)?;
    }
    let jobs = req
        .max_jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    if jobs == 0 {
        return Err(NixOpsError::NoJobs);
    }
    let host_key = match &req.host_key {
        Some(p) => Some(
            crate::input::read_text(p, crate::input::MAX_TEXT)
                .map_err(|source| NixOpsError::HostKey { source })?,
        ),
        None => std::fs::read_to_string(DEFAULT_HOST_KEY).ok(),
    }
    .map(|k| nixcfg::base64(k.trim().as_bytes()));
    if let (Some(p), Some("")) = (&req.host_key, host_key.as_deref()) {
        return Err(NixOpsError::BadField {
            what: "--host-key",
            value: p.display().to_string(),
            problem: "the file is empty",
        });
    }
    Ok((jobs, host_key))
}

/// The systems and features come from Nix's configuration: each must stay one element of its
/// comma-separated field of the line.
fn check_list_fields(m: &Machine) -> Result<(), NixOpsError> {
    for v in m
        .systems
        .iter()
        .chain(&m.supported_features)
        .chain(&m.mandatory_features)
    {
        check_field("a system or feature of Nix's configuration", v)?;
        if v.contains(',') {
            return Err(NixOpsError::BadField {
                what: "a system or feature of Nix's configuration",
                value: v.clone(),
                problem: "it contains a comma (the list separator)",
            });
        }
    }
    Ok(())
}

pub fn machines(
    fs: &dyn BinfmtFs,
    host: &Host,
    paths: &Paths,
    nix: &dyn NixTool,
    probe: &dyn Probe,
    req: &MachinesRequest,
) -> Result<Machines, NixOpsError> {
    let uri = req.uri.as_str();
    let (jobs, host_key) = check_machines_request(req)?;
    nix.program()?;
    let view = nix.show_config(&paths.dir)?;
    let mut native = native_systems(host, &view);
    for p in &view.extra_platforms {
        if native_variant(p, &native) && !native.contains(p) {
            native.push(p.clone());
        }
    }
    let prober = Prober::of(host, fs, probe)?;
    let mut emulated: Vec<String> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    for a in &host.table.arches {
        if a.nix.is_empty() || host.is_native(&a.name).is_some() || !prober.has_handler(a) {
            continue;
        }
        let h = prober.handler(a);
        let interp = h.interpreter.clone().unwrap_or_default();
        for s in &a.nix {
            let why = if h.state != HandlerState::Works {
                Some(format!(
                    "{} {}: {}",
                    h.entry.clone().unwrap_or_default(),
                    h.state.as_str(),
                    h.detail
                ))
            } else if !view.accepts(s) {
                Some(format!(
                    "Nix here does not accept {s}: `binfmtctl install {} --nix`",
                    a.name
                ))
            } else if h.without_f() && view.sandboxed() && !view.in_sandbox(&interp) {
                Some(format!(
                    "{interp} (no F flag) is not in Nix's sandbox: `binfmtctl install {} --nix`",
                    a.name
                ))
            } else {
                None
            };
            match why {
                None => emulated.push(s.clone()),
                Some(reason) => skipped.push(Skipped {
                    system: s.clone(),
                    reason,
                }),
            }
        }
    }
    let machines = nixcfg::machine_lines(
        uri,
        &native,
        &emulated,
        &view.system_features,
        jobs,
        req.ssh_key.clone(),
        host_key,
    );
    for m in &machines {
        check_list_fields(m)?;
    }
    Ok(Machines {
        lines: machines.iter().map(ToString::to_string).collect(),
        machines,
        native,
        emulated,
        skipped,
    })
}

#[cfg(test)]
mod tests;
