//! Reconciliation: desired registrations + a snapshot of the kernel → a list of actions with
//! reasons (`plan_install`, `plan_uninstall`, pure), then `apply`, which performs them through
//! `BinfmtFs`, reads every entry back, and rolls back everything this run changed when any
//! step or the read-back fails.

use goblin::elf::header::{ET_DYN, ET_EXEC};
use serde::Serialize;

use crate::binfmt::arch::{Arch, Endian};

use crate::binfmt::kernel::{BinfmtFs, KernelEntry, KernelError};
use crate::binfmt::registration::{Entry, Matcher, Registration, display_name};
use crate::binfmt::signals::{catch_termination_signals, pending_signal, signal_name};

/// What to do about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write a new entry.
    Register { arch: String, new: Registration },
    /// An identical, enabled entry exists.
    Keep { arch: String, current: Entry },
    /// An identical entry exists but is disabled: enable it.
    Enable { arch: String, current: Entry },
    /// An entry with our name differs: remove it and register ours.
    Replace {
        arch: String,
        old: Entry,
        new: Registration,
    },
    /// An entry with our name differs and `--keep-existing` was given.
    KeepExisting {
        arch: String,
        current: Entry,
        wanted: Registration,
    },
    /// Remove an entry (uninstall). `name` is the entry's name as the kernel has it (bytes);
    /// `entry.registration.name` is only its printable form.
    Remove { name: Vec<u8>, entry: Entry },
    /// Switch an enabled entry off, keeping it (`disable`).
    Disable { arch: String, current: Entry },
}

impl Action {
    /// Does this action write to the kernel?
    pub fn changes(&self) -> bool {
        !matches!(self, Action::Keep { .. } | Action::KeepExisting { .. })
    }

    pub fn name(&self) -> &str {
        match self {
            Action::Register { new, .. } | Action::Replace { new, .. } => &new.name,
            Action::Keep { current, .. }
            | Action::Enable { current, .. }
            | Action::Disable { current, .. }
            | Action::KeepExisting { current, .. } => &current.registration.name,
            Action::Remove { entry, .. } => &entry.registration.name,
        }
    }

    /// The verb reported to the user (`registered`, `kept`, ...), in the past tense, or with
    /// `dry_run` in the conditional ("would register").
    pub fn verb(&self, dry_run: bool) -> &'static str {
        self.verdict(dry_run).as_str()
    }

    /// What became of the entry (or, with `dry_run`, what would).
    pub fn verdict(&self, dry_run: bool) -> Verdict {
        match (self, dry_run) {
            (Action::Register { .. }, false) => Verdict::Registered,
            (Action::Register { .. }, true) => Verdict::WouldRegister,
            (Action::Keep { .. }, _) => Verdict::Kept,
            (Action::Enable { .. }, false) => Verdict::Enabled,
            (Action::Enable { .. }, true) => Verdict::WouldEnable,
            (Action::Replace { .. }, false) => Verdict::Replaced,
            (Action::Replace { .. }, true) => Verdict::WouldReplace,
            (Action::KeepExisting { .. }, _) => Verdict::KeptExisting,
            (Action::Remove { .. }, false) => Verdict::Removed,
            (Action::Remove { .. }, true) => Verdict::WouldRemove,
            (Action::Disable { .. }, false) => Verdict::Disabled,
            (Action::Disable { .. }, true) => Verdict::WouldDisable,
        }
    }
}

/// What a command did (or would do) about one entry: the plan's actions, and the decisions
/// made before planning (refused, skipped, absent). Reported as its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Registered,
    WouldRegister,
    Kept,
    Enabled,
    WouldEnable,
    Replaced,
    WouldReplace,
    KeptExisting,
    Removed,
    WouldRemove,
    Disabled,
    WouldDisable,
    /// Refused before any write (native arch named, interpreter refused, pattern captures).
    Refused,
    /// `all`: an arch with no interpreter installed.
    Skipped,
    /// `all`: an arch this host runs natively.
    SkippedNative,
    /// Uninstall: the arch has no entry.
    Absent,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Registered => "registered",
            Verdict::WouldRegister => "would-register",
            Verdict::Kept => "kept",
            Verdict::Enabled => "enabled",
            Verdict::WouldEnable => "would-enable",
            Verdict::Replaced => "replaced",
            Verdict::WouldReplace => "would-replace",
            Verdict::KeptExisting => "kept-existing",
            Verdict::Removed => "removed",
            Verdict::WouldRemove => "would-remove",
            Verdict::Disabled => "disabled",
            Verdict::WouldDisable => "would-disable",
            Verdict::Refused => "refused",
            Verdict::Skipped => "skipped",
            Verdict::SkippedNative => "skipped-native",
            Verdict::Absent => "absent",
        }
    }
}

/// Another entry (not ours by name) that can claim the same files as one of ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overlap {
    pub ours: String,
    pub other: String,
    pub other_enabled: bool,
    pub other_interpreter: String,
    /// Which entry the kernel will run for a file both match.
    pub winner: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub overlaps: Vec<Overlap>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        self.actions.iter().any(Action::changes)
    }
}

/// One registration we want, for an arch.
#[derive(Debug, Clone)]
pub struct Desired {
    pub arch: String,
    pub registration: Registration,
}

/// Decides, for each desired registration, keep / enable / register / replace; and reports
/// entries with other names whose patterns overlap ours, with the one the kernel will pick.
pub fn plan_install(desired: &[Desired], current: &[KernelEntry], keep_existing: bool) -> Plan {
    let mut plan = Plan::default();
    let newest = current.iter().map(|k| k.age).max().unwrap_or(0);
    for (i, d) in desired.iter().enumerate() {
        let arch = d.arch.clone();
        let new = d.registration.clone();
        let existing = current.iter().find(|k| k.name == new.name.as_bytes());
        // Age our entry will have after this run: a fresh registration is newer than anything.
        let (action, our_age) = match existing {
            None => (Action::Register { arch, new }, newest + 1 + i as u64),
            Some(k) if k.entry.registration.same_as(&new) => {
                let current = k.entry.clone();
                if k.entry.enabled {
                    (Action::Keep { arch, current }, k.age)
                } else {
                    (Action::Enable { arch, current }, k.age)
                }
            }
            Some(k) if keep_existing => (
                Action::KeepExisting {
                    arch,
                    current: k.entry.clone(),
                    wanted: new,
                },
                k.age,
            ),
            Some(k) => (
                Action::Replace {
                    arch,
                    old: k.entry.clone(),
                    new,
                },
                newest + 1 + i as u64,
            ),
        };
        let ours_enabled =
            !matches!(&action, Action::KeepExisting { current, .. } if !current.enabled);
        for other in current {
            let o = &other.entry.registration;
            if other.name == d.registration.name.as_bytes()
                || !o.matcher.overlaps(&d.registration.matcher)
            {
                continue;
            }
            let winner = match (ours_enabled, other.entry.enabled) {
                (true, false) => d.registration.name.clone(),
                (false, true) => o.name.clone(),
                _ if our_age > other.age => d.registration.name.clone(),
                _ => o.name.clone(),
            };
            plan.overlaps.push(Overlap {
                ours: d.registration.name.clone(),
                other: o.name.clone(),
                other_enabled: other.entry.enabled,
                other_interpreter: o.interpreter.clone(),
                winner,
            });
        }
        plan.actions.push(action);
    }
    plan
}

/// Removes the named entries that exist (names are the kernel's bytes, compared exactly);
/// names that do not exist need nothing.
pub fn plan_uninstall(names: &[Vec<u8>], current: &[KernelEntry]) -> Plan {
    let actions = current
        .iter()
        .filter(|k| names.contains(&k.name))
        .map(|k| Action::Remove {
            name: k.name.clone(),
            entry: k.entry.clone(),
        })
        .collect();
    Plan {
        actions,
        overlaps: Vec::new(),
    }
}

/// Switches existing entries on (`enable`) or off, keeping them: `targets` are (arch or
/// `None`, entry name) pairs that exist in `current`. Entries already in that state are kept.
pub fn plan_switch(targets: &[(String, String)], current: &[KernelEntry], enable: bool) -> Plan {
    let actions = targets
        .iter()
        .filter_map(|(arch, name)| {
            let k = current
                .iter()
                .find(|k| &k.entry.registration.name == name)?;
            let (arch, current) = (arch.clone(), k.entry.clone());
            Some(match (enable, current.enabled) {
                (true, true) | (false, false) => Action::Keep { arch, current },
                (true, false) => Action::Enable { arch, current },
                (false, true) => Action::Disable { arch, current },
            })
        })
        .collect();
    Plan {
        actions,
        overlaps: Vec::new(),
    }
}

/// The native-capture guard: the headers of programs this host runs without emulation, and the
/// one question install, import and status ask of a pattern: would the kernel hand any of these
/// to the entry's interpreter? binfmt_misc is consulted before the ELF and `#!` loaders, so a
/// pattern that accepts one of them captures every such native program.
///
/// The set covers every native arch (the host's own and the compat arches its kernel runs,
/// such as i386 on x86_64), each as `ET_EXEC` and `ET_DYN` (PIE), with OS ABI byte 0 (System V)
/// and 3 (GNU/Linux): a pattern that masks the OS ABI byte or the type still matches one of
/// them. Scripts (`#!`) are in the set too, and so is our own executable's real header.
///
/// Sample headers alone are not enough: a pattern can also fix bytes past the ELF identity
/// (entry point, header offsets, section count) at the values one real native program has —
/// the first 64 bytes of `/usr/bin/passwd`, say — and so capture that program while matching
/// no sample. So a pattern is also refused when one file could satisfy both it and a native
/// arch's own table pattern (class, byte order, type, machine; `Matcher::overlaps`): every
/// other header byte varies from program to program and proves nothing.
#[derive(Debug, Clone, Default)]
pub struct NativeGuard {
    headers: Vec<(String, Vec<u8>)>,
    /// The table patterns of the native arches: what makes a file a native program.
    native_patterns: Vec<(String, Matcher)>,
}

/// `EI_OSABI` values native Linux programs carry: `ELFOSABI_SYSV` and `ELFOSABI_GNU`.
const NATIVE_OS_ABIS: [u8; 2] = [0, 3];

impl NativeGuard {
    /// The guard for these native arches (host first, then compat), plus this host's own
    /// executable header as read from `/proc/self/exe` (empty when unreadable).
    pub fn new(native: &[&Arch], exe_header: &[u8]) -> NativeGuard {
        let mut headers = Vec::new();
        let mut native_patterns = Vec::new();
        if !exe_header.is_empty() {
            headers.push((
                "this host's own executables".to_owned(),
                exe_header.to_vec(),
            ));
        }
        for a in native {
            for (_, m) in a.patterns() {
                native_patterns.push((format!("native {} programs", a.name), m));
            }
            for (e_type, kind) in [(ET_EXEC, "ET_EXEC"), (ET_DYN, "ET_DYN")] {
                for abi in NATIVE_OS_ABIS {
                    let mut h = crate::elf::write::elf_exec(a.class, a.endian, a.machine, 0, &[]);
                    h[7] = abi;
                    let t = match a.endian {
                        Endian::Little => e_type.to_le_bytes(),
                        Endian::Big => e_type.to_be_bytes(),
                    };
                    h[16..18].copy_from_slice(&t);
                    headers.push((
                        format!("native {} programs ({kind}, OS ABI {abi})", a.name),
                        h,
                    ));
                }
            }
        }
        for script in [&b"#!/bin/sh\n"[..], b"#! /bin/sh\n"] {
            headers.push(("native scripts (#!)".to_owned(), script.to_vec()));
        }
        NativeGuard {
            headers,
            native_patterns,
        }
    }

    /// Adds one more header the pattern must not accept (the interpreter itself, say).
    pub fn with(mut self, what: impl Into<String>, header: Vec<u8>) -> NativeGuard {
        if !header.is_empty() {
            self.headers.push((what.into(), header));
        }
        self
    }

    /// What native programs the pattern of `reg` would capture, if any. Extension entries match
    /// by file name, not content: they are judged by policy where they are registered (import
    /// refuses them unless asked), and answer `None` here.
    pub fn captures(&self, reg: &Registration) -> Option<&str> {
        self.headers
            .iter()
            .find(|(_, h)| reg.matcher.matches_header(h))
            .map(|(what, _)| what)
            .or_else(|| {
                self.native_patterns
                    .iter()
                    .find(|(_, m)| reg.matcher.overlaps(m))
                    .map(|(what, _)| what)
            })
            .map(String::as_str)
    }
}

/// How an undo step restores the state before this run. Names are the kernel's bytes, so an
/// entry another tool named with spaces or non-UTF-8 bytes comes back exactly.
#[derive(Debug, Clone)]
enum Undo {
    Remove(Vec<u8>),
    Restore(Vec<u8>, Entry),
    Disable(Vec<u8>),
    Enable(Vec<u8>),
}

/// A failed apply, after rollback.
#[derive(Debug, thiserror::Error)]
#[error("{failure}; {}", rollback_summary(.rolled_back, .rollback_errors))]
pub struct ApplyError {
    #[source]
    pub failure: Box<ApplyFailure>,
    /// Entries rollback restored or removed.
    pub rolled_back: Vec<String>,
    /// Rollback steps that failed in turn (the kernel is then left partly changed).
    pub rollback_errors: Vec<KernelError>,
}

/// A failed apply is a failed operation (rolled back), whatever the errno underneath.
impl crate::error::Classify for ApplyError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

fn rollback_summary(done: &[String], errs: &[KernelError]) -> String {
    if errs.is_empty() {
        if done.is_empty() {
            "nothing had been changed".into()
        } else {
            format!("rolled back: {}", done.join(", "))
        }
    } else {
        let e: Vec<String> = errs.iter().map(ToString::to_string).collect();
        format!(
            "rollback incomplete ({}); run `binfmtctl status` and fix by hand",
            e.join("; ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyFailure {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// SIGINT, SIGTERM or SIGHUP arrived: finished like a failed write (rolled back).
    #[error("interrupted by {}", signal_name(*.signal))]
    Interrupted { signal: i32 },
    #[error("read-back of {name} does not match what was written: {detail}")]
    Verify { name: String, detail: String },
}

impl crate::error::Classify for ApplyFailure {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

/// Performs the plan, then reads every touched entry back. On any failure, undoes what this run
/// did, newest step first, and returns what happened. SIGINT, SIGTERM and SIGHUP are caught from
/// the first write on: one arriving is such a failure (checked before each step and after the
/// read-back), so a signal never leaves a partial set behind.
pub fn apply(fs: &dyn BinfmtFs, plan: &Plan) -> Result<(), ApplyError> {
    if plan.changes() {
        catch_termination_signals();
    }
    apply_until(fs, plan, &pending_signal)
}

/// `apply`, stopping (and rolling back) as soon as `stop` names a signal.
pub fn apply_until(
    fs: &dyn BinfmtFs,
    plan: &Plan,
    stop: &dyn Fn() -> Option<i32>,
) -> Result<(), ApplyError> {
    let mut journal: Vec<Undo> = Vec::new();
    let check = || match stop() {
        Some(signal) => Err(ApplyFailure::Interrupted { signal }),
        None => Ok(()),
    };
    let result = run_steps(fs, plan, &mut journal, &check)
        .and_then(|()| verify(fs, plan))
        .and_then(|()| if plan.changes() { check() } else { Ok(()) });
    let Err(failure) = result else {
        return Ok(());
    };
    let mut rolled_back = Vec::new();
    let mut rollback_errors = Vec::new();
    for undo in journal.into_iter().rev() {
        let r = match &undo {
            Undo::Remove(name) => fs.remove_named(name).map(|()| display_name(name)),
            Undo::Disable(name) => fs
                .set_enabled_named(name, false)
                .map(|()| display_name(name)),
            Undo::Enable(name) => fs
                .set_enabled_named(name, true)
                .map(|()| display_name(name)),
            Undo::Restore(name, e) => fs.register_named(name, &e.registration).and_then(|()| {
                if e.enabled {
                    Ok(())
                } else {
                    fs.set_enabled_named(name, false)
                }
                .map(|()| display_name(name))
            }),
        };
        match r {
            Ok(name) => {
                tracing::info!(%name, "rolled back");
                if !rolled_back.contains(&name) {
                    rolled_back.push(name)
                }
            }
            Err(e) => rollback_errors.push(e),
        }
    }
    Err(ApplyError {
        failure: Box::new(failure),
        rolled_back,
        rollback_errors,
    })
}

fn run_steps(
    fs: &dyn BinfmtFs,
    plan: &Plan,
    journal: &mut Vec<Undo>,
    check: &dyn Fn() -> Result<(), ApplyFailure>,
) -> Result<(), ApplyFailure> {
    for a in &plan.actions {
        if a.changes() {
            check()?;
        }
        match a {
            Action::Keep { .. } | Action::KeepExisting { .. } => {}
            Action::Register { new, .. } => {
                fs.register(new)?;
                journal.push(Undo::Remove(new.name.as_bytes().to_vec()));
            }
            Action::Enable { current, .. } => {
                let name = current.registration.name.as_bytes();
                fs.set_enabled_named(name, true)?;
                journal.push(Undo::Disable(name.to_vec()));
            }
            Action::Replace { old, new, .. } => {
                // Our own name (a validated, UTF-8 qemu-* name): the old entry had these bytes.
                let name = new.name.as_bytes();
                fs.remove_named(name)?;
                journal.push(Undo::Restore(name.to_vec(), old.clone()));
                // Never stop between the halves of a replace: the entry would be missing.
                fs.register(new)?;
                journal.push(Undo::Remove(name.to_vec()));
            }
            Action::Remove { name, entry } => {
                fs.remove_named(name)?;
                journal.push(Undo::Restore(name.clone(), entry.clone()));
            }
            Action::Disable { current, .. } => {
                let name = current.registration.name.as_bytes();
                fs.set_enabled_named(name, false)?;
                journal.push(Undo::Enable(name.to_vec()));
            }
        }
    }
    Ok(())
}

/// Reads the kernel's view back and checks each action took effect.
fn verify(fs: &dyn BinfmtFs, plan: &Plan) -> Result<(), ApplyFailure> {
    if !plan.changes() {
        return Ok(());
    }
    let now = fs.list()?;
    let find = |name: &[u8]| now.iter().find(|k| k.name == name);
    for a in &plan.actions {
        let wanted = match a {
            Action::Register { new, .. } | Action::Replace { new, .. } => Some(new),
            Action::Enable { current, .. } => Some(&current.registration),
            Action::Remove { name, entry } => {
                if find(name).is_some() {
                    return Err(ApplyFailure::Verify {
                        name: entry.registration.name.clone(),
                        detail: "still present after removal".into(),
                    });
                }
                None
            }
            Action::Disable { current, .. } => {
                let name = &current.registration.name;
                let detail = match find(name.as_bytes()) {
                    None => Some("missing"),
                    Some(k) if k.entry.enabled => Some("still enabled"),
                    Some(k) if !k.entry.registration.same_as(&current.registration) => {
                        Some("changed")
                    }
                    Some(_) => None,
                };
                if let Some(d) = detail {
                    return Err(ApplyFailure::Verify {
                        name: name.clone(),
                        detail: d.into(),
                    });
                }
                None
            }
            Action::Keep { .. } | Action::KeepExisting { .. } => None,
        };
        if let Some(w) = wanted {
            let detail = match find(w.name.as_bytes()) {
                None => Some("missing".to_owned()),
                Some(k) if !k.entry.enabled => Some("disabled".to_owned()),
                Some(k) if !k.entry.registration.same_as(w) => Some(format!(
                    "kernel shows interpreter {} flags {}",
                    k.entry.registration.interpreter, k.entry.registration.flags
                )),
                Some(_) => None,
            };
            if let Some(detail) = detail {
                return Err(ApplyFailure::Verify {
                    name: w.name.clone(),
                    detail,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;
    use crate::binfmt::kernel::{Call, RecordingBinfmt};
    use crate::binfmt::registration::Flags;
    use rustix::io::Errno;

    fn desired(arch: &str) -> Desired {
        let a = Table::builtin().get(arch).unwrap();
        Desired {
            arch: a.name.clone(),
            registration: a
                .registration(&format!("/usr/bin/qemu-{}-static", a.qemu), Flags::DEFAULT),
        }
    }

    fn entry(reg: Registration, enabled: bool) -> Entry {
        Entry {
            registration: reg,
            enabled,
        }
    }

    /// Another tool's entry, matched by extension: never ours, never overlapping.
    fn jar() -> Registration {
        Registration {
            name: "jar".into(),
            matcher: Matcher::Extension("jar".into()),
            interpreter: "/usr/bin/jexec".into(),
            flags: Flags::default(),
        }
    }

    fn verbs(p: &Plan) -> Vec<(String, &'static str)> {
        p.actions
            .iter()
            .map(|a| (a.name().to_owned(), a.verb(false)))
            .collect()
    }

    #[test]
    fn disable_then_enable_keeps_the_entry_and_rolls_back() {
        let a = desired("aarch64").registration;
        let fake = RecordingBinfmt::mounted_with(&[entry(a.clone(), true), entry(jar(), false)]);
        let t = |n: &str| vec![("aarch64".to_owned(), n.to_owned())];
        let plan = plan_switch(&t("qemu-aarch64"), &fake.list().unwrap(), false);
        assert_eq!(verbs(&plan), [("qemu-aarch64".into(), "disabled")]);
        apply(&fake, &plan).unwrap();
        let now = fake.list().unwrap();
        let aarch64 = |l: &[KernelEntry]| {
            l.iter()
                .find(|k| k.entry.registration.name == "qemu-aarch64")
                .map(|k| k.entry.clone())
                .unwrap()
        };
        assert!(!aarch64(&now).enabled, "disabled, still there");
        assert!(aarch64(&now).registration.same_as(&a), "unchanged");
        // Already disabled: kept, nothing written.
        let again = plan_switch(&t("qemu-aarch64"), &now, false);
        assert_eq!(verbs(&again), [("qemu-aarch64".into(), "kept")]);
        let on = plan_switch(
            &[
                ("aarch64".to_owned(), "qemu-aarch64".to_owned()),
                (String::new(), "jar".to_owned()),
            ],
            &now,
            true,
        );
        assert_eq!(
            verbs(&on),
            [
                ("qemu-aarch64".into(), "enabled"),
                ("jar".into(), "enabled")
            ]
        );
        // The second step fails: the first is undone (disabled again).
        fake.fail
            .borrow_mut()
            .push((Call::Enable("jar".into(), true), Errno::IO));
        let e = apply(&fake, &on).unwrap_err();
        assert_eq!(e.rolled_back, ["qemu-aarch64"]);
        let after = fake.list().unwrap();
        let enabled = |n: &str| {
            after
                .iter()
                .find(|k| k.entry.registration.name == n)
                .unwrap()
                .entry
                .enabled
        };
        assert!(!enabled("qemu-aarch64") && !enabled("jar"));
    }

    #[test]
    fn fresh_install_registers_and_second_run_keeps() {
        let fake = RecordingBinfmt::mounted_with(&[]);
        let want = [desired("aarch64"), desired("riscv64")];
        let plan = plan_install(&want, &fake.list().unwrap(), false);
        assert_eq!(
            verbs(&plan),
            [
                ("qemu-aarch64".into(), "registered"),
                ("qemu-riscv64".into(), "registered")
            ]
        );
        apply(&fake, &plan).unwrap();
        let again = plan_install(&want, &fake.list().unwrap(), false);
        assert!(!again.changes(), "{:?}", verbs(&again));
        let calls_before = fake.calls.borrow().len();
        apply(&fake, &again).unwrap();
        assert_eq!(
            fake.calls.borrow().len(),
            calls_before,
            "a no-op plan writes nothing"
        );
    }

    #[test]
    fn different_entry_with_our_name_is_replaced_or_kept() {
        let mut old = desired("aarch64").registration;
        old.interpreter = "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into();
        old.flags = Flags::parse("OPF").unwrap();
        let fake = RecordingBinfmt::mounted_with(&[entry(old.clone(), true)]);
        let plan = plan_install(&[desired("aarch64")], &fake.list().unwrap(), false);
        assert!(
            matches!(&plan.actions[0], Action::Replace { old: o, .. } if o.registration == old)
        );
        apply(&fake, &plan).unwrap();
        assert_eq!(
            fake.calls.borrow()[..],
            [
                Call::Remove("qemu-aarch64".into()),
                Call::Register("qemu-aarch64".into())
            ]
        );
        let keep = plan_install(
            &[desired("aarch64")],
            &RecordingBinfmt::mounted_with(&[entry(old, true)])
                .list()
                .unwrap(),
            true,
        );
        assert_eq!(keep.actions[0].verb(false), "kept-existing");
        assert!(!keep.changes());
    }

    #[test]
    fn identical_but_disabled_is_enabled() {
        let fake = RecordingBinfmt::mounted_with(&[entry(desired("s390x").registration, false)]);
        let plan = plan_install(&[desired("s390x")], &fake.list().unwrap(), false);
        assert_eq!(plan.actions[0].verb(false), "enabled");
        apply(&fake, &plan).unwrap();
        assert!(fake.list().unwrap()[0].entry.enabled);
    }

    #[test]
    fn overlaps_report_the_winner_newest_enabled_first() {
        // Another tool's entry for the same headers, registered before us.
        let mut fex = desired("aarch64").registration;
        fex.name = "FEX-aarch64".into();
        fex.interpreter = "/usr/bin/FEXInterpreter".into();
        let fake = RecordingBinfmt::mounted_with(&[entry(fex.clone(), true)]);
        let plan = plan_install(&[desired("aarch64")], &fake.list().unwrap(), false);
        assert_eq!(plan.overlaps.len(), 1);
        assert_eq!(plan.overlaps[0].other, "FEX-aarch64");
        assert_eq!(
            plan.overlaps[0].winner, "qemu-aarch64",
            "we register after it"
        );

        // We already exist and the other tool came later: it wins.
        let fake = RecordingBinfmt::mounted_with(&[
            entry(desired("aarch64").registration, true),
            entry(fex.clone(), true),
        ]);
        let plan = plan_install(&[desired("aarch64")], &fake.list().unwrap(), false);
        assert_eq!(plan.actions[0].verb(false), "kept");
        assert_eq!(plan.overlaps[0].winner, "FEX-aarch64");

        // A disabled newer entry does not win.
        let fake = RecordingBinfmt::mounted_with(&[
            entry(desired("aarch64").registration, true),
            entry(fex, false),
        ]);
        let plan = plan_install(&[desired("aarch64")], &fake.list().unwrap(), false);
        assert_eq!(plan.overlaps[0].winner, "qemu-aarch64");

        // Entries for other arches or by extension never overlap.
        let fake = RecordingBinfmt::mounted_with(&[
            entry(jar(), true),
            entry(desired("riscv64").registration, true),
        ]);
        assert!(
            plan_install(&[desired("aarch64")], &fake.list().unwrap(), false)
                .overlaps
                .is_empty()
        );
    }

    #[test]
    fn failure_midway_rolls_back_everything_this_run_did() {
        let mut old_arm = desired("arm").registration;
        old_arm.flags = Flags::parse("F").unwrap();
        let fake = RecordingBinfmt::mounted_with(&[entry(jar(), true), entry(old_arm, false)]);
        let before = fake.rendered();
        let want = [desired("aarch64"), desired("arm"), desired("riscv64")];
        let plan = plan_install(&want, &fake.list().unwrap(), false);
        assert_eq!(
            verbs(&plan),
            [
                ("qemu-aarch64".into(), "registered"),
                ("qemu-arm".into(), "replaced"),
                ("qemu-riscv64".into(), "registered"),
            ]
        );
        fake.fail
            .borrow_mut()
            .push((Call::Register("qemu-riscv64".into()), Errno::NOENT));
        let err = apply(&fake, &plan).unwrap_err();
        assert!(matches!(
            *err.failure,
            ApplyFailure::Kernel(KernelError::Register { ref name, errno: Errno::NOENT }) if name == "qemu-riscv64"
        ));
        assert!(err.rollback_errors.is_empty());
        assert_eq!(err.rolled_back, ["qemu-arm", "qemu-aarch64"]);
        let msg = err.to_string();
        assert!(
            msg.contains("qemu-riscv64") && msg.contains("interpreter does not exist"),
            "{msg}"
        );
        // Same entries, same contents, same enabled state as before (ages may differ).
        let mut after = fake.rendered();
        let mut before = before;
        after.sort();
        before.sort();
        assert_eq!(after, before);
        assert_eq!(
            fake.calls.borrow()[..],
            [
                Call::Register("qemu-aarch64".into()),
                Call::Remove("qemu-arm".into()),
                Call::Register("qemu-arm".into()),
                Call::Register("qemu-riscv64".into()),
                // rollback, newest first
                Call::Remove("qemu-arm".into()),
                Call::Register("qemu-arm".into()),
                Call::Enable("qemu-arm".into(), false),
                Call::Remove("qemu-aarch64".into()),
            ]
        );
    }

    /// A termination signal finishes like a failed write: everything this run did is undone,
    /// wherever it arrives (between steps, after the last one), and a replace is never cut in half.
    #[test]
    fn a_signal_rolls_back_like_a_failed_write() {
        for after_calls in [1, 2, 3, 4] {
            let mut old_arm = desired("arm").registration;
            old_arm.flags = Flags::parse("F").unwrap();
            let fake = RecordingBinfmt::mounted_with(&[entry(jar(), true), entry(old_arm, false)]);
            let mut before = fake.rendered();
            let want = [desired("aarch64"), desired("arm"), desired("riscv64")];
            let plan = plan_install(&want, &fake.list().unwrap(), false);
            // The signal arrives once `after_calls` kernel writes are done.
            let stop = || (fake.calls.borrow().len() >= after_calls).then_some(15);
            let err = apply_until(&fake, &plan, &stop).unwrap_err();
            assert!(
                matches!(*err.failure, ApplyFailure::Interrupted { signal: 15 }),
                "{after_calls}: {err}"
            );
            assert!(
                err.to_string()
                    .starts_with("interrupted by SIGTERM; rolled back: "),
                "{err}"
            );
            let calls = fake.calls.borrow().clone();
            // Forward writes done before the stop, and all calls with the rollback: after 1
            // write (qemu-aarch64) it stops; after 2 the replace of qemu-arm still runs to its
            // end; after 4 the read-back is done and everything is undone.
            let forward = [
                Call::Register("qemu-aarch64".into()),
                Call::Remove("qemu-arm".into()),
                Call::Register("qemu-arm".into()),
                Call::Register("qemu-riscv64".into()),
            ];
            let (n, total) = match after_calls {
                1 => (1, 2),
                2 | 3 => (3, 7),
                _ => (4, 9),
            };
            assert_eq!(calls[..n], forward[..n], "{after_calls}: {calls:?}");
            assert_eq!(calls.len(), total, "{after_calls}: {calls:?}");
            let mut after = fake.rendered();
            after.sort();
            before.sort();
            assert_eq!(after, before, "{after_calls}: {calls:?}");
        }
    }

    #[test]
    fn failed_rollback_is_reported() {
        let fake = RecordingBinfmt::mounted_with(&[]);
        let plan = plan_install(&[desired("aarch64"), desired("riscv64")], &[], false);
        fake.fail.borrow_mut().extend([
            (Call::Register("qemu-riscv64".into()), Errno::INVAL),
            (Call::Remove("qemu-aarch64".into()), Errno::PERM),
        ]);
        let err = apply(&fake, &plan).unwrap_err();
        assert!(err.rolled_back.is_empty());
        assert_eq!(err.rollback_errors.len(), 1);
        let msg = err.to_string();
        assert!(
            msg.contains("EINVAL") && msg.contains("rollback incomplete"),
            "{msg}"
        );
        assert!(msg.contains("removing qemu-aarch64 failed"), "{msg}");
    }

    #[test]
    fn uninstall_removes_only_named_existing_entries_and_rolls_back() {
        let fake = RecordingBinfmt::mounted_with(&[
            entry(jar(), true),
            entry(desired("aarch64").registration, true),
            entry(desired("riscv64").registration, false),
        ]);
        let names = vec![
            "qemu-aarch64".into(),
            "qemu-riscv64".into(),
            "qemu-s390x".into(),
        ];
        let plan = plan_uninstall(&names, &fake.list().unwrap());
        assert_eq!(plan.actions.len(), 2);
        fake.fail
            .borrow_mut()
            .push((Call::Remove("qemu-aarch64".into()), Errno::PERM));
        let before = {
            let mut b = fake.rendered();
            b.sort();
            b
        };
        let err = apply(&fake, &plan).unwrap_err();
        assert_eq!(err.rolled_back, ["qemu-riscv64"]);
        let mut after = fake.rendered();
        after.sort();
        assert_eq!(
            after, before,
            "the disabled riscv64 entry came back disabled"
        );
        apply(&fake, &plan).unwrap();
        let left: Vec<String> = fake.rendered().into_iter().map(|(n, _)| n).collect();
        assert_eq!(left, ["jar"]);
    }

    #[test]
    fn verify_catches_a_kernel_that_disagrees() {
        // A fake that silently drops the P flag, as an old kernel might.
        struct Lossy(RecordingBinfmt);
        impl BinfmtFs for Lossy {
            fn root(&self) -> &std::path::Path {
                self.0.root()
            }
            fn is_mounted(&self) -> bool {
                true
            }
            fn mount(&self) -> Result<(), KernelError> {
                Ok(())
            }
            fn list(&self) -> Result<Vec<KernelEntry>, KernelError> {
                self.0.list()
            }
            fn global_enabled(&self) -> Result<bool, KernelError> {
                Ok(true)
            }
            fn register_named(&self, n: &[u8], reg: &Registration) -> Result<(), KernelError> {
                let mut r = reg.clone();
                r.flags.preserve_argv0 = false;
                self.0.register_named(n, &r)
            }
            fn set_enabled_named(&self, n: &[u8], e: bool) -> Result<(), KernelError> {
                self.0.set_enabled_named(n, e)
            }
            fn remove_named(&self, n: &[u8]) -> Result<(), KernelError> {
                self.0.remove_named(n)
            }
            fn lock(&self) -> Result<crate::binfmt::kernel::LockGuard, KernelError> {
                self.0.lock()
            }
        }
        let fake = Lossy(RecordingBinfmt::mounted_with(&[]));
        let plan = plan_install(&[desired("aarch64")], &[], false);
        let err = apply(&fake, &plan).unwrap_err();
        assert!(matches!(*err.failure, ApplyFailure::Verify { .. }), "{err}");
        assert!(fake.0.list().unwrap().is_empty(), "rolled back");
    }

    fn guard() -> NativeGuard {
        let t = Table::builtin();
        NativeGuard::new(&[t.get("x86_64").unwrap(), t.get("i386").unwrap()], &[])
    }

    fn magic(offset: usize, magic: &[u8], mask: Option<&[u8]>) -> Registration {
        let mut r = desired("aarch64").registration;
        r.matcher = Matcher::Magic {
            offset,
            magic: magic.to_vec(),
            mask: mask.map(<[u8]>::to_vec),
        };
        r
    }

    /// Every kind of native program, not only binfmtctl's own header: the patterns an attacker
    /// put in a binfmt.d file to capture the host's programs are all caught.
    #[test]
    fn native_capture_guard() {
        let g = guard();
        assert!(g.captures(&desired("x86_64").registration).is_some());
        assert!(g.captures(&desired("i386").registration).is_some());
        assert!(g.captures(&desired("aarch64").registration).is_none());
        assert!(g.captures(&desired("riscv64").registration).is_none());
        // x86_64 ET_EXEC with the OS ABI byte masked out (the table masks it for other arches).
        let mut masked = desired("x86_64").registration;
        if let Matcher::Magic { mask, .. } = &mut masked.matcher {
            let m = mask.as_mut().unwrap();
            m[7] = 0;
        }
        assert_eq!(
            g.captures(&masked),
            Some("native x86_64 programs (ET_EXEC, OS ABI 0)")
        );
        // Only ET_DYN with GNU OS ABI, exact.
        let mut pie = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0];
        pie.extend_from_slice(&[3, 0, 0x3e, 0]);
        assert_eq!(
            g.captures(&magic(0, &pie, None)),
            Some("native x86_64 programs (ET_DYN, OS ABI 3)")
        );
        // i386 only: the compat arch counts.
        assert_eq!(
            g.captures(&magic(18, b"\x03\x00", None)),
            Some("native i386 programs (ET_EXEC, OS ABI 0)")
        );
        // Too loose: any ELF.
        assert!(g.captures(&magic(0, b"\x7fELF", None)).is_some());
        // The first 64 bytes of one real native program (x86_64 PIE, entry point, header
        // offsets, section count and all): it matches no sample header, yet captures that
        // program. Any pattern one file could share with a native arch's own is refused.
        let mut real = pie.clone();
        real[7] = 0;
        real.extend_from_slice(&[1, 0, 0, 0, 0xd0, 0x61, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0]);
        real.extend_from_slice(&[0, 0, 0, 0, 0x70, 0x47, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        real.extend_from_slice(&[0x40, 0, 0x38, 0, 0x0d, 0, 0x40, 0, 0x1f, 0, 0x1e, 0]);
        assert_eq!(real.len(), 64);
        assert_eq!(
            g.captures(&magic(0, &real, None)),
            Some("native x86_64 programs")
        );
        // The same for the compat arch, with a fixed entry point only.
        let mut i386 = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        i386.extend_from_slice(&[2, 0, 3, 0, 1, 0, 0, 0, 0x54, 0x80, 0x04, 0x08]);
        assert_eq!(
            g.captures(&magic(0, &i386, None)),
            Some("native i386 programs")
        );
        // A foreign arch's real header is still fine.
        let mut arm64 = real.clone();
        arm64[18] = 0xb7;
        assert_eq!(g.captures(&magic(0, &arm64, None)), None);
        // Scripts.
        assert_eq!(
            g.captures(&magic(0, b"#!", None)),
            Some("native scripts (#!)")
        );
        // The interpreter itself, when added.
        let g = g.with("the interpreter /x", b"\x7fELF-custom".to_vec());
        assert_eq!(
            g.captures(&magic(4, b"-custom", None)),
            Some("the interpreter /x")
        );
        // An extension entry is judged by policy, not here.
        let mut ext = desired("aarch64").registration;
        ext.matcher = Matcher::Extension("jar".into());
        assert_eq!(g.captures(&ext), None);
    }

    /// Names are bytes: an entry another tool named with a space and a non-UTF-8 byte is
    /// removed by its exact name and comes back byte for byte when the run rolls back.
    #[test]
    fn rollback_restores_raw_names_exactly() {
        let fake = RecordingBinfmt::mounted_with(&[entry(desired("aarch64").registration, true)]);
        let raw = b"other tool \xff".to_vec();
        fake.push_named(&raw, entry(jar(), false));
        let before = fake.rendered_raw();
        assert!(before.iter().any(|(n, _)| *n == raw));
        let plan = plan_uninstall(
            &[raw.clone(), b"qemu-aarch64".to_vec()],
            &fake.list().unwrap(),
        );
        assert_eq!(plan.actions.len(), 2);
        fake.fail
            .borrow_mut()
            .push((Call::Remove("qemu-aarch64".into()), Errno::PERM));
        let err = apply(&fake, &plan).unwrap_err();
        assert!(err.rollback_errors.is_empty(), "{err}");
        assert_eq!(err.rolled_back, ["other tool \\xff"]);
        assert_eq!(fake.rendered_raw(), before, "same bytes, same state");
        // And without the failure it is removed by its exact bytes.
        apply(
            &fake,
            &plan_uninstall(std::slice::from_ref(&raw), &fake.list().unwrap()),
        )
        .unwrap();
        assert!(fake.list().unwrap().iter().all(|k| k.name != raw));
    }
}
