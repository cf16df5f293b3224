//! Install: validate the request (natives skipped or refused, interpreters found and checked,
//! the native-capture guard, the kernel's grammar) into registrations (`prepare`), then plan
//! them against the kernel, apply, read back and report (`reconcile`). `apply` (the config
//! file), `import --register` and `qemu use` go through the same two steps.

use anyhow::{Context, Result};

use super::{Host, OpsError, Outcome, Report, Reported, Search};
use crate::binfmt::arch::{Arch, ENTRY_PREFIX};
use crate::binfmt::kernel::{self, BinfmtFs, Mounted};
use crate::binfmt::plan::{self, Action, Desired, Plan, Verdict};
use crate::binfmt::registration::Flags;

/// The validated registrations for a request, and what was decided about each arch so far.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Arches skipped or refused.
    pub outcomes: Vec<Outcome>,
    /// The registrations to make, with their interpreters resolved.
    pub desired: Vec<Desired>,
    /// The QEMU version of each desired registration's interpreter.
    pub versions: Vec<Option<String>>,
    /// One line per refusal; any refusal means nothing is written.
    pub refused: Vec<String>,
}

/// Finds and checks the interpreter of each arch (from `search`) and builds its registrations
/// with `flags`. `all`: an arch that is native or has no interpreter is skipped, not refused.
pub fn prepare(
    host: &Host,
    search: &Search,
    wanted: &[(&'static Arch, Flags)],
    all: bool,
    versions: bool,
) -> Result<Prepared> {
    search.check()?;
    let dirs = search.dirs();
    let mut p = Prepared::default();
    // The natives (compat probes, kernel config) are decided on a second thread meanwhile.
    let found = std::thread::scope(|s| {
        // Where no thread can be made (a pids limit), the natives are decided right here.
        let natives = std::thread::Builder::new()
            .spawn_scoped(s, || {
                host.native();
            })
            .ok();
        let found = discover_all(host, &dirs, wanted, versions);
        match natives {
            Some(n) => n.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            None => {
                host.native();
            }
        }
        found
    })?;
    let mut found = found.into_iter();
    let guard = host.native_guard();
    for &(a, flags) in wanted {
        let discovery = found.next().flatten();
        // Natives are never registered.
        if let Some(n) = host.is_native(&a.name) {
            let mut o = Outcome::new(Verdict::SkippedNative, a.entry_name(), Some(&a.name));
            o.reason = Some(format!("runs natively on this host ({})", n.evidence));
            if !all {
                p.refused.push(format!(
                    "{}: runs natively on this host ({}); a handler would capture the host's own binaries",
                    a.name, n.evidence
                ));
                o.verdict = Verdict::Refused;
            }
            p.outcomes.push(o);
            continue;
        }
        // Looked for unless native (`discover_all`).
        let Some(d) = discovery else {
            continue;
        };
        let Some(c) = d.chosen() else {
            let skip = all && d.candidates.is_empty();
            let mut o = Outcome::new(
                if skip {
                    Verdict::Skipped
                } else {
                    Verdict::Refused
                },
                a.entry_name(),
                Some(&a.name),
            );
            let why = match &search.qemu_bin {
                _ if skip => "no interpreter installed".to_owned(),
                Some(s) => format!(
                    "QEMU {} has no usable interpreter for it ({})",
                    s.version,
                    d.refusal()
                ),
                None => d.refusal(),
            };
            if !skip {
                p.refused.push(format!("{}: {why}", a.name));
            }
            o.reason = Some(why);
            p.outcomes.push(o);
            continue;
        };
        // The resolved path: the file itself, never a symlink someone could re-point later.
        let Some(path) = c.facts.resolved.to_str() else {
            let why = format!(
                "the interpreter {} resolves to a path that is not UTF-8: use --qemu-path with a plain path",
                c.facts.resolved.display()
            );
            let mut o = Outcome::new(Verdict::Refused, a.entry_name(), Some(&a.name));
            o.reason = Some(why.clone());
            p.refused.push(format!("{}: {why}", a.name));
            p.outcomes.push(o);
            continue;
        };
        // Guard: the pattern must not accept any native program or the interpreter.
        let guard = guard
            .clone()
            .with(format!("the interpreter {path}"), c.facts.header.clone());
        // One registration per pattern of the arch (microblaze has two).
        for reg in a.registrations(path, flags) {
            if let Some(what) = guard.captures(&reg) {
                let mut o = Outcome::new(Verdict::Refused, reg.name.clone(), Some(&a.name));
                o.reason = Some(format!("its pattern would capture {what}"));
                p.refused
                    .push(format!("{}: its pattern would capture {what}", a.name));
                p.outcomes.push(o);
                continue;
            }
            // The record must be one the kernel accepts.
            reg.to_record().with_context(|| reg.name.clone())?;
            p.desired.push(Desired {
                arch: a.name.clone(),
                registration: reg,
            });
            p.versions.push(c.facts.version.clone());
        }
    }
    Ok(p)
}

/// The discovery of each wanted arch's interpreter, in order (`None` for the host's own arch,
/// which is not looked for; the compat arches are, as whether they are native may not be
/// decided yet). Each is some 25 system calls and a read of `.rodata` for the version,
/// independent of the others: `install all`'s 35 are shared among up to four threads.
fn discover_all(
    host: &Host,
    dirs: &[std::path::PathBuf],
    wanted: &[(&'static Arch, Flags)],
    versions: bool,
) -> Result<Vec<Option<crate::qemu::interpreter::Discovery>>> {
    let own = host.facts.host_arch(host.table);
    let jobs: Vec<Option<(&Arch, crate::qemu::interpreter::Requirements)>> = wanted
        .iter()
        .map(|&(a, flags)| {
            if own.is_some_and(|o| o.name == a.name) {
                return Ok(None);
            }
            let mut req = host.requirements(flags.fix_binary)?;
            req.version = versions;
            Ok(Some((a, req)))
        })
        .collect::<Result<_, OpsError>>()?;
    let look = host.search_dirs(dirs);
    let one = |job: &Option<(&Arch, crate::qemu::interpreter::Requirements)>| {
        job.as_ref().map(|(a, req)| host.discover_in(a, &look, req))
    };
    // The CPUs this process may run on (`available_parallelism` also reads the cgroup's
    // quota files: 0.1 ms, for a count that only caps four threads).
    let threads = rustix::thread::sched_getaffinity(None)
        .map_or(1, |cpus| cpus.count() as usize)
        .min(4);
    if threads < 2 || jobs.len() < 8 {
        return Ok(jobs.iter().map(one).collect());
    }
    // This thread takes the first part, one more thread each of the others.
    let per = jobs.len().div_ceil(threads);
    let (first, rest) = jobs.split_at(per);
    Ok(std::thread::scope(|s| {
        // A part no thread could be made for (a pids limit) is done here, after the first.
        let parts: Vec<_> = rest
            .chunks(per)
            .map(|part| {
                std::thread::Builder::new()
                    .spawn_scoped(s, move || part.iter().map(one).collect::<Vec<_>>())
                    .map_err(|_| part)
            })
            .collect();
        let mut found: Vec<_> = first.iter().map(one).collect();
        for p in parts {
            match p {
                Ok(h) => found.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
                Err(part) => found.extend(part.iter().map(one)),
            }
        }
        found
    }))
}

/// What install may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    pub flags: Flags,
    /// Leave an entry with our name that differs from ours as it is.
    pub keep_existing: bool,
    /// Plan only: write nothing, not even a mount.
    pub dry_run: bool,
    /// Read each interpreter's QEMU version for the report: a search of ~100 KiB of its
    /// `.rodata`, a tenth of `install all`, skipped when nothing shows it (`-q`).
    pub versions: bool,
}

/// The notes that go with these flags.
pub fn flag_notes(flags: Flags) -> Vec<String> {
    let mut notes = Vec::new();
    if flags.credentials {
        notes.push(
            "flag C: setuid binaries run the emulator with their own credentials (needed for sudo in emulated chroots)".into(),
        );
    }
    if !flags.fix_binary {
        notes.push(
            "without flag F the interpreter is looked up at each exec, so emulation fails inside chroots and containers that lack it".into(),
        );
    }
    notes
}

/// `install ARCHES`: registers the arches' emulators, or refuses them all.
pub fn install(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    names: &[String],
    opts: InstallOptions,
) -> Result<Reported> {
    let (all, arches) = host.resolve_list(names)?;
    let wanted: Vec<(&'static Arch, Flags)> = arches.iter().map(|a| (*a, opts.flags)).collect();
    let p = prepare(host, search, &wanted, all, opts.versions)?;
    reconcile(
        fs,
        p,
        flag_notes(opts.flags),
        opts.keep_existing,
        opts.dry_run,
    )
}

/// Plans the prepared registrations against the kernel, applies (rolling back on failure),
/// and reports. A dry run plans against what is there, mounting nothing. A request with any
/// refusal writes nothing: the report says what was decided, and the failure lists why.
pub fn reconcile(
    fs: &dyn BinfmtFs,
    p: Prepared,
    notes: Vec<String>,
    keep_existing: bool,
    dry_run: bool,
) -> Result<Reported> {
    if !p.refused.is_empty() {
        return Ok(Reported {
            report: Report {
                dry_run,
                outcomes: p.outcomes,
                notes,
                ..Report::default()
            },
            failure: Some(OpsError::Refused(p.refused)),
        });
    }
    let Prepared {
        outcomes,
        desired,
        versions,
        ..
    } = p;
    let mut report = Report {
        dry_run,
        outcomes,
        notes,
        ..Report::default()
    };
    if dry_run {
        if !fs.is_mounted() {
            report.notes.push(format!(
                "binfmt_misc is not mounted at {}: would mount it",
                fs.root().display()
            ));
        }
        let plan = plan::plan_install(&desired, &kernel::snapshot(fs)?, keep_existing);
        record_plan(&plan, &versions, &mut report, true);
        return Ok(Reported::ok(report));
    }
    if !desired.is_empty() {
        fs.require_privilege("register binfmt_misc entries")?;
        let mounted = kernel::ensure_mounted(fs)
            .context("binfmt_misc is not mounted and mounting it failed")?;
        if let Mounted::Now = mounted {
            report
                .notes
                .push(format!("mounted binfmt_misc at {}", fs.root().display()));
            report
                .warnings
                .extend(crate::host::mount_lifetime_warning().map(str::to_owned));
        }
    }
    let _lock = if desired.is_empty() {
        None
    } else {
        Some(fs.lock()?)
    };
    let plan = plan::plan_install(&desired, &kernel::snapshot(fs)?, keep_existing);
    // Apply, read back, roll back on failure; a failure reports what was attempted.
    let applied = plan::apply(fs, &plan);
    record_plan(&plan, &versions, &mut report, applied.is_err());
    Ok(Reported {
        report,
        failure: applied.err().map(|source| OpsError::Failed {
            op: "install",
            source,
        }),
    })
}

/// The plan's actions as outcomes (`attempted`: as what would have been done), and its
/// overlaps as notes.
fn record_plan(plan: &Plan, versions: &[Option<String>], report: &mut Report, attempted: bool) {
    for (a, version) in plan.actions.iter().zip(versions) {
        let verdict = a.verdict(attempted);
        let name = a.name().to_owned();
        let mut o = match a {
            Action::Register { arch, new } | Action::Replace { arch, new, .. } => {
                Outcome::of(verdict, name, Some(arch), new)
            }
            Action::Keep { arch, current }
            | Action::Enable { arch, current }
            | Action::Disable { arch, current } => {
                Outcome::of(verdict, name, Some(arch), &current.registration)
            }
            Action::KeepExisting {
                arch,
                current,
                wanted,
            } => {
                let mut o = Outcome::of(verdict, name, Some(arch), &current.registration);
                o.reason = Some(format!(
                    "differs from ours ({} flags={}); left as is because of --keep-existing",
                    wanted.interpreter, wanted.flags
                ));
                o
            }
            Action::Remove { .. } => Outcome::new(verdict, name, None),
        };
        if let Action::Replace { old, .. } = a {
            o.previous = Some(old.clone());
        }
        o.version.clone_from(version);
        report.outcomes.push(o);
    }
    report.overlaps.extend(plan.overlaps.iter().cloned());
    for o in &plan.overlaps {
        report.notes.push(format!(
            "{} overlaps {} ({}, {}): the kernel will run {} for files both match",
            o.ours,
            o.other,
            o.other_interpreter,
            if o.other_enabled {
                "enabled"
            } else {
                "disabled"
            },
            o.winner
        ));
    }
}

/// `qemu use SPEC`: switches every registered qemu-* entry to the stored version `spec`
/// (resolved in `store`, under its shared lock unless this is a dry run) through install's
/// checks (resolved, checked interpreters; the native-capture guard), then one plan (replace
/// each entry, flags kept) applied with rollback: all or nothing. `system` switches back to
/// the system's QEMU (the default search path), the way back from a stored version.
pub fn use_version(
    fs: &dyn BinfmtFs,
    host: &Host,
    store: &crate::qemu::store::Store,
    spec: &str,
    dry_run: bool,
) -> Result<super::Reported> {
    let (_lock, stored) = if spec == "system" {
        (None, None)
    } else {
        let (lock, s) = super::stored::resolve(store, host, spec, dry_run)?;
        (lock, Some(super::StoredBin::of(&s)))
    };
    use_stored(
        fs,
        host,
        stored,
        spec,
        dry_run,
        &crate::inspection::selftest::probe_interpreter,
    )
}

/// Proves that an interpreter emulates an arch before it is registered (`qemu use`): the real
/// one is `inspection::selftest::probe_interpreter`; tests pass their own.
pub type ProbeInterpreter<'a> = &'a dyn Fn(&std::path::Path, &Arch) -> Result<String, String>;

/// `qemu use VERSION`: switches every registered qemu-* entry to the interpreters in `bin` (a
/// stored version's directory), flags kept, through the same checks and plan as install: all
/// or nothing. Each interpreter first runs its arch's probe (`probe`): a version that fails
/// one is refused before the first kernel write.
pub fn use_stored(
    fs: &dyn BinfmtFs,
    host: &Host,
    stored: Option<super::StoredBin>,
    spec: &str,
    dry_run: bool,
    probe: ProbeInterpreter,
) -> Result<Reported> {
    kernel::mount_to_read(fs, dry_run)?;
    let entries = kernel::snapshot(fs)?;
    let mut wanted: Vec<(&'static Arch, Flags)> = Vec::new();
    for k in &entries {
        let name = &k.entry.registration.name;
        let Some(a) = name
            .strip_prefix(ENTRY_PREFIX)
            .and_then(|n| host.table.get(n))
            .filter(|a| &a.entry_name() == name)
        else {
            continue;
        };
        if !wanted.iter().any(|(w, _)| w.name == a.name) {
            wanted.push((a, k.entry.registration.flags));
        }
    }
    if wanted.is_empty() {
        return Err(OpsError::NoEntriesToSwitch {
            root: fs.root().to_owned(),
            version: spec.to_owned(),
        }
        .into());
    }
    // None: `qemu use system`, back to the system's QEMU (the default search path).
    let search = Search {
        qemu_path: Vec::new(),
        qemu_bin: stored,
    };
    let mut p = prepare(host, &search, &wanted, false, true)?;
    let mut failed = Vec::new();
    for d in &p.desired {
        let Some(a) = host.table.get(&d.arch) else {
            continue;
        };
        let interp = std::path::Path::new(&d.registration.interpreter);
        if let Err(why) = probe(interp, a) {
            failed.push(format!(
                "{} from QEMU {spec} ({}): {why}",
                d.registration.name,
                interp.display()
            ));
        }
    }
    // Refused like any other interpreter: reported, nothing written.
    p.refused.extend(failed);
    let notes = vec![
        "running emulated programs keep the interpreter they started with (the kernel holds it open with F)".to_owned(),
    ];
    reconcile(fs, p, notes, false, dry_run)
}
