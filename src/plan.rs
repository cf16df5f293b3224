//! Reconciliation: desired registrations + a snapshot of the kernel → a list of actions with
//! reasons (`plan_install`, `plan_uninstall`, pure), then `apply`, which performs them through
//! `BinfmtFs`, reads every entry back, and rolls back everything this run changed when any
//! step or the read-back fails.

use serde::Serialize;

use crate::kernel::{BinfmtFs, KernelEntry, KernelError};
use crate::registration::{Entry, Registration};

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
    /// Remove an entry (uninstall).
    Remove { entry: Entry },
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
            Action::Remove { entry } => &entry.registration.name,
        }
    }

    /// The verb reported to the user (`registered`, `kept`, ...), in the past tense, or with
    /// `dry_run` in the conditional ("would register").
    pub fn verb(&self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Register { .. }, false) => "registered",
            (Action::Register { .. }, true) => "would-register",
            (Action::Keep { .. }, _) => "kept",
            (Action::Enable { .. }, false) => "enabled",
            (Action::Enable { .. }, true) => "would-enable",
            (Action::Replace { .. }, false) => "replaced",
            (Action::Replace { .. }, true) => "would-replace",
            (Action::KeepExisting { .. }, _) => "kept-existing",
            (Action::Remove { .. }, false) => "removed",
            (Action::Remove { .. }, true) => "would-remove",
            (Action::Disable { .. }, false) => "disabled",
            (Action::Disable { .. }, true) => "would-disable",
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
        let existing = current
            .iter()
            .find(|k| k.entry.registration.name == new.name);
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
            if o.name == d.registration.name || !o.matcher.overlaps(&d.registration.matcher) {
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

/// Removes the named entries that exist; names that do not exist need nothing.
pub fn plan_uninstall(names: &[String], current: &[KernelEntry]) -> Plan {
    let actions = current
        .iter()
        .filter(|k| names.contains(&k.entry.registration.name))
        .map(|k| Action::Remove {
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

/// The pattern of `reg` accepts one of these headers (the host's own executables or the
/// interpreter itself): registering it would capture native binaries.
pub fn captures_native<'h>(
    reg: &Registration,
    headers: &'h [(String, Vec<u8>)],
) -> Option<&'h str> {
    headers
        .iter()
        .find(|(_, h)| reg.matcher.matches_header(h))
        .map(|(what, _)| what.as_str())
}

/// How an undo step restores the state before this run.
#[derive(Debug, Clone)]
enum Undo {
    Remove(String),
    Restore(Entry),
    Disable(String),
    Enable(String),
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
    #[error("read-back of {name} does not match what was written: {detail}")]
    Verify { name: String, detail: String },
}

impl crate::error::Classify for ApplyFailure {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

/// Performs the plan, then reads every touched entry back. On any failure, undoes what this run
/// did, newest step first, and returns what happened.
pub fn apply(fs: &dyn BinfmtFs, plan: &Plan) -> Result<(), ApplyError> {
    let mut journal: Vec<Undo> = Vec::new();
    let result = run_steps(fs, plan, &mut journal).and_then(|()| verify(fs, plan));
    let Err(failure) = result else {
        return Ok(());
    };
    let mut rolled_back = Vec::new();
    let mut rollback_errors = Vec::new();
    for undo in journal.into_iter().rev() {
        let r = match &undo {
            Undo::Remove(name) => fs.remove(name).map(|()| name.clone()),
            Undo::Disable(name) => fs.set_enabled(name, false).map(|()| name.clone()),
            Undo::Enable(name) => fs.set_enabled(name, true).map(|()| name.clone()),
            Undo::Restore(e) => fs.register(&e.registration).and_then(|()| {
                if e.enabled {
                    Ok(())
                } else {
                    fs.set_enabled(&e.registration.name, false)
                }
                .map(|()| e.registration.name.clone())
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

fn run_steps(fs: &dyn BinfmtFs, plan: &Plan, journal: &mut Vec<Undo>) -> Result<(), ApplyFailure> {
    for a in &plan.actions {
        match a {
            Action::Keep { .. } | Action::KeepExisting { .. } => {}
            Action::Register { new, .. } => {
                fs.register(new)?;
                journal.push(Undo::Remove(new.name.clone()));
            }
            Action::Enable { current, .. } => {
                fs.set_enabled(&current.registration.name, true)?;
                journal.push(Undo::Disable(current.registration.name.clone()));
            }
            Action::Replace { old, new, .. } => {
                fs.remove(&old.registration.name)?;
                journal.push(Undo::Restore(old.clone()));
                fs.register(new)?;
                journal.push(Undo::Remove(new.name.clone()));
            }
            Action::Remove { entry } => {
                fs.remove(&entry.registration.name)?;
                journal.push(Undo::Restore(entry.clone()));
            }
            Action::Disable { current, .. } => {
                fs.set_enabled(&current.registration.name, false)?;
                journal.push(Undo::Enable(current.registration.name.clone()));
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
    let find = |name: &str| now.iter().find(|k| k.entry.registration.name == name);
    for a in &plan.actions {
        let wanted = match a {
            Action::Register { new, .. } | Action::Replace { new, .. } => Some(new),
            Action::Enable { current, .. } => Some(&current.registration),
            Action::Remove { entry } => {
                if find(&entry.registration.name).is_some() {
                    return Err(ApplyFailure::Verify {
                        name: entry.registration.name.clone(),
                        detail: "still present after removal".into(),
                    });
                }
                None
            }
            Action::Disable { current, .. } => {
                let name = &current.registration.name;
                let detail = match find(name) {
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
            let detail = match find(&w.name) {
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
    use crate::arch::Table;
    use crate::kernel::{Call, RecordingBinfmt};
    use crate::registration::{Flags, Matcher};
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
            fn register(&self, reg: &Registration) -> Result<(), KernelError> {
                let mut r = reg.clone();
                r.flags.preserve_argv0 = false;
                self.0.register(&r)
            }
            fn set_enabled(&self, n: &str, e: bool) -> Result<(), KernelError> {
                self.0.set_enabled(n, e)
            }
            fn remove(&self, n: &str) -> Result<(), KernelError> {
                self.0.remove(n)
            }
            fn lock(&self) -> Result<crate::kernel::LockGuard, KernelError> {
                self.0.lock()
            }
        }
        let fake = Lossy(RecordingBinfmt::mounted_with(&[]));
        let plan = plan_install(&[desired("aarch64")], &[], false);
        let err = apply(&fake, &plan).unwrap_err();
        assert!(matches!(*err.failure, ApplyFailure::Verify { .. }), "{err}");
        assert!(fake.0.list().unwrap().is_empty(), "rolled back");
    }

    #[test]
    fn native_capture_guard() {
        let mut x86 = vec![0u8; 64];
        x86[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        x86[16] = 2;
        x86[18] = 62;
        let headers = vec![("/proc/self/exe".to_owned(), x86)];
        assert_eq!(
            captures_native(&desired("x86_64").registration, &headers),
            Some("/proc/self/exe")
        );
        assert_eq!(
            captures_native(&desired("aarch64").registration, &headers),
            None
        );
        let mut greedy = desired("aarch64").registration;
        greedy.matcher = Matcher::Magic {
            offset: 0,
            magic: b"\x7fELF".to_vec(),
            mask: None,
        };
        assert!(captures_native(&greedy, &headers).is_some());
    }
}
