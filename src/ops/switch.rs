//! `enable` and `disable`: switch existing entries on and off, keeping them (what
//! `update-binfmts --enable/--disable` does, and writing `1`/`0` to an entry file as
//! Documentation/admin-guide/binfmt-misc.rst describes). Arch names mean our own `qemu-<arch>`
//! entries; any other entry is named exactly. Through the plan/apply path: every target is
//! checked before the first write, the change is read back, and a failure rolls back.

use anyhow::Result;

use super::{Host, OpsError, Outcome, Report, Reported, arch_of};
use crate::binfmt::arch::ENTRY_PREFIX;
use crate::binfmt::kernel::{self, BinfmtFs, KernelEntry};
use crate::binfmt::plan::{self, Action, Plan, Verdict};

/// The entries a target list names, as (arch, entry name) pairs, every one existing.
fn resolve_targets(
    fs: &dyn BinfmtFs,
    host: &Host,
    targets: &[String],
    current: &[KernelEntry],
) -> Result<Vec<(String, String)>, OpsError> {
    let exists = |n: &str| current.iter().any(|k| k.entry.registration.name == n);
    let arch_name = |k: &KernelEntry| {
        arch_of(host.table, &k.entry.registration)
            .map_or_else(|| "unknown".to_owned(), |a| a.name.clone())
    };
    let mut wanted: Vec<(String, String)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let add = |arch: String, name: String, wanted: &mut Vec<(String, String)>| {
        if !wanted.iter().any(|(_, n)| *n == name) {
            wanted.push((arch, name));
        }
    };
    for t in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if t.eq_ignore_ascii_case("all") {
            for k in current {
                let n = &k.entry.registration.name;
                if n.starts_with(ENTRY_PREFIX) {
                    add(arch_name(k), n.clone(), &mut wanted);
                }
            }
        } else if let Some(k) = current.iter().find(|k| k.entry.registration.name == t) {
            add(arch_name(k), t.to_owned(), &mut wanted);
        } else {
            match host.table.resolve(t) {
                Ok(a) if a.entry_names().iter().any(|n| exists(n)) => {
                    // Every entry of the arch that is there (microblaze has two).
                    for n in a.entry_names().into_iter().filter(|n| exists(n)) {
                        add(a.name.clone(), n, &mut wanted);
                    }
                }
                Ok(a) => problems.push(format!(
                    "{t}: there is no entry {} in {}: register it with `binfmtctl install {}`",
                    a.entry_name(),
                    fs.root().display(),
                    a.name
                )),
                Err(e) => problems.push(format!(
                    "{e}; nor is there an entry named {t:?} (`binfmtctl status` lists them)"
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(OpsError::NoSuchEntries(problems));
    }
    if wanted.is_empty() {
        return Err(OpsError::NothingToSwitch);
    }
    Ok(wanted)
}

/// `enable`/`disable TARGETS`.
pub fn switch(
    fs: &dyn BinfmtFs,
    host: &Host,
    targets: &[String],
    enable: bool,
    dry_run: bool,
) -> Result<Reported> {
    let verb = if enable { "enable" } else { "disable" };
    if !kernel::mount_to_read(fs, dry_run)? {
        return Err(OpsError::NotMounted {
            root: fs.root().to_owned(),
            verb,
        }
        .into());
    }
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    let record = |plan: &Plan, dry: bool, report: &mut Report| {
        for a in &plan.actions {
            let (Action::Keep { arch, current }
            | Action::Enable { arch, current }
            | Action::Disable { arch, current }) = a
            else {
                continue;
            };
            let mut o = Outcome::of(
                a.verdict(dry),
                a.name().to_owned(),
                Some(arch),
                &current.registration,
            );
            if o.verdict == Verdict::Kept {
                o.reason = Some(format!("already {verb}d"));
            }
            report.outcomes.push(o);
        }
    };
    if dry_run {
        let current = kernel::snapshot(fs)?;
        let plan = plan::plan_switch(
            &resolve_targets(fs, host, targets, &current)?,
            &current,
            enable,
        );
        record(&plan, true, &mut report);
        return Ok(Reported::ok(report));
    }
    fs.require_privilege(&format!("{verb} binfmt_misc entries"))?;
    let _lock = fs.lock()?;
    let current = fs.list()?;
    let plan = plan::plan_switch(
        &resolve_targets(fs, host, targets, &current)?,
        &current,
        enable,
    );
    let applied = plan::apply(fs, &plan);
    record(&plan, false, &mut report);
    Ok(Reported {
        report,
        failure: applied
            .err()
            .map(|source| OpsError::Failed { op: verb, source }),
    })
}
