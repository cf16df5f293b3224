//! Uninstall: select entries by name, arch, glob or `all` (globs and `all` take only ours,
//! `qemu-*`), then remove them through the plan (all or nothing, rolled back on failure).

use anyhow::Result;

use super::{Host, OpsError, Outcome, Report, Reported, arch_of};
use crate::binfmt::arch::{ENTRY_PREFIX, Table};
use crate::binfmt::kernel::{self, BinfmtFs, KernelEntry};
use crate::binfmt::plan::{self, Action, Plan, Verdict};
use crate::binfmt::registration::display_name;

/// A `*`/`?` glob over entry names.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&pat[1..], s) || (!s.is_empty() && glob_match(pat, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob_match(&pat[1..], &s[1..]),
        _ => false,
    }
}

/// Entries `all` and globs may touch: the ones binfmtctl manages, named `qemu-<cpu>` (every
/// name the config file can declare is one of these). Anything else is another tool's, and is
/// removed only when named exactly.
pub fn is_managed(name: &[u8]) -> bool {
    name.starts_with(ENTRY_PREFIX.as_bytes())
}

/// Which entries `targets` select, as the kernel's raw names: `all` and globs (`*`, `?`) take
/// only managed entries; an exact name takes that entry whoever made it; an arch name takes
/// `qemu-<cpu>`. Absent arches become outcomes; anything else is an error (exit 2).
pub fn select_for_uninstall(
    table: &Table,
    targets: &[std::ffi::OsString],
    current: &[KernelEntry],
) -> Result<(Vec<Vec<u8>>, Vec<Outcome>), OpsError> {
    use std::os::unix::ffi::OsStrExt;
    let mut wanted: Vec<Vec<u8>> = Vec::new();
    let mut absent = Vec::new();
    let mut errors = Vec::new();
    let add = |n: &[u8], wanted: &mut Vec<Vec<u8>>| {
        if !wanted.iter().any(|w| w == n) {
            wanted.push(n.to_vec());
        }
    };
    for raw in targets.iter().map(|t| t.as_bytes()) {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            errors.push(
                "an empty target names nothing: give an entry name, an arch, a glob such as 'qemu-*', or all"
                    .to_owned(),
            );
            continue;
        }
        if trimmed.eq_ignore_ascii_case(b"all") {
            for k in current.iter().filter(|k| is_managed(&k.name)) {
                add(&k.name, &mut wanted);
            }
        } else if let Some(k) = current
            .iter()
            .find(|k| k.name == raw)
            .or_else(|| current.iter().find(|k| k.name == trimmed))
            // As binfmtctl prints it (`\xHH` for bytes that are not UTF-8).
            .or_else(|| {
                current
                    .iter()
                    .find(|k| display_name(&k.name).as_bytes() == trimmed)
            })
        {
            add(&k.name, &mut wanted);
        } else if trimmed.contains(&b'*') || trimmed.contains(&b'?') {
            for k in current
                .iter()
                .filter(|k| is_managed(&k.name) && glob_match(trimmed, &k.name))
            {
                add(&k.name, &mut wanted);
            }
        } else {
            let Ok(t) = std::str::from_utf8(trimmed) else {
                errors.push(format!(
                    "no entry is named {}: run `binfmtctl status` for the names",
                    display_name(raw)
                ));
                continue;
            };
            match table.resolve(t) {
                Ok(a) => {
                    // Every entry of the arch that is there; `absent` when none is.
                    let present: Vec<String> = a
                        .entry_names()
                        .into_iter()
                        .filter(|n| current.iter().any(|k| k.name == n.as_bytes()))
                        .collect();
                    if present.is_empty() {
                        absent.push(Outcome::new(Verdict::Absent, a.entry_name(), Some(&a.name)));
                    }
                    for n in &present {
                        add(n.as_bytes(), &mut wanted);
                    }
                }
                Err(e) => errors.push(format!(
                    "{e}; nor is any entry named {t:?} (run `binfmtctl status` for the names)"
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok((wanted, absent))
    } else {
        Err(OpsError::Targets(errors))
    }
}

/// `uninstall TARGETS`: removes the selected entries (reported only once the kernel did it
/// all: a failure rolls back, and nothing was removed).
pub fn uninstall(
    fs: &dyn BinfmtFs,
    host: &Host,
    targets: &[std::ffi::OsString],
    dry_run: bool,
) -> Result<Reported> {
    kernel::mount_to_read(fs, dry_run)?;
    let current = kernel::snapshot(fs)?;
    let (wanted, absent) = select_for_uninstall(host.table, targets, &current)?;
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    if !fs.is_mounted() {
        report.notes.push(format!(
            "binfmt_misc is not mounted at {}: nothing is registered",
            fs.root().display()
        ));
    }
    let record = |plan: &Plan, report: &mut Report| {
        for a in &plan.actions {
            if let Action::Remove { entry, .. } = a {
                let arch = arch_of(host.table, &entry.registration)
                    .map_or_else(|| "unknown".to_owned(), |a| a.name.clone());
                report.outcomes.push(Outcome::of(
                    a.verdict(dry_run),
                    a.name().to_owned(),
                    Some(&arch),
                    &entry.registration,
                ));
            }
        }
        report.outcomes.extend(absent);
    };
    if dry_run || wanted.is_empty() {
        let plan = plan::plan_uninstall(&wanted, &current);
        record(&plan, &mut report);
        return Ok(Reported::ok(report));
    }
    fs.require_privilege("remove binfmt_misc entries")?;
    let _lock = fs.lock()?;
    let plan = plan::plan_uninstall(&wanted, &fs.list()?);
    plan::apply(fs, &plan).map_err(|source| OpsError::Failed {
        op: "uninstall",
        source,
    })?;
    record(&plan, &mut report);
    Ok(Reported::ok(report))
}

#[cfg(test)]
mod tests {
    use super::select_for_uninstall;
    use crate::binfmt::arch::Table;
    use crate::binfmt::kernel::KernelEntry;
    use crate::binfmt::registration::{Entry, Flags, Matcher};
    use crate::binfmt::registration::{Registration, display_name};
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn k(name: &[u8]) -> KernelEntry {
        let reg = Registration {
            name: display_name(name),
            matcher: Matcher::Extension("x".into()),
            interpreter: "/usr/bin/x".into(),
            flags: Flags::default(),
        };
        KernelEntry {
            name: name.to_vec(),
            entry: Entry {
                registration: reg,
                enabled: true,
            },
            age: 0,
        }
    }

    fn sel(targets: &[&[u8]], current: &[KernelEntry]) -> Result<Vec<Vec<u8>>, String> {
        let t: Vec<OsString> = targets
            .iter()
            .map(|t| OsString::from_vec(t.to_vec()))
            .collect();
        select_for_uninstall(Table::builtin(), &t, current)
            .map(|(w, _)| w)
            .map_err(|e| e.to_string())
    }

    /// `all` and globs take only managed (qemu-*) entries, by their exact bytes; exact names,
    /// raw or as printed, take anyone's entry; empty targets are refused.
    #[test]
    fn uninstall_selection_is_by_bytes_and_globs_only_take_managed_entries() {
        let cur = [
            k(b"qemu-aarch64"),
            k(b"qemu-odd \xffx"),
            k(b"other tool \xff"),
            k(b"foo bar"),
            k(b"jar"),
        ];
        let managed: Vec<Vec<u8>> = vec![b"qemu-aarch64".to_vec(), b"qemu-odd \xffx".to_vec()];
        assert_eq!(sel(&[b"all"], &cur).unwrap(), managed);
        assert_eq!(sel(&[b"ALL"], &cur).unwrap(), managed);
        assert_eq!(sel(&[b"*"], &cur).unwrap(), managed);
        assert_eq!(sel(&[b"qemu-*"], &cur).unwrap(), managed);
        assert!(sel(&[b"j*"], &cur).unwrap().is_empty(), "jar is not ours");
        assert_eq!(
            sel(&[b"other tool \xff", b"foo bar"], &cur).unwrap(),
            [b"other tool \xff".to_vec(), b"foo bar".to_vec()]
        );
        assert_eq!(
            sel(&[br"other tool \xff"], &cur).unwrap(),
            [b"other tool \xff".to_vec()],
            "the printed form names it too"
        );
        assert_eq!(sel(&[b"arm64"], &cur).unwrap(), [b"qemu-aarch64".to_vec()]);
        let e = sel(&[b""], &cur).unwrap_err();
        assert!(e.contains("an empty target names nothing"), "{e}");
        assert!(sel(&[b"  "], &cur).is_err());
        let e = sel(&[b"nope \xff"], &cur).unwrap_err();
        assert!(e.contains(r"no entry is named nope \xff"), "{e}");
    }
}
