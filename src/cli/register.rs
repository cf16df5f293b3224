//! Commands that register and remove entries, and report them: install, uninstall, apply,
//! export, import, status, interpreters.

use super::*;
use crate::binfmt::registration::display_name;

/// The validated registrations for a request (natives skipped or refused, interpreters found
/// and checked, native-capture guard, kernel grammar), with the report rows so far. Shared by
/// install, apply and export.
pub(super) struct Prepared {
    pub(super) rows: Vec<Row>,
    pub(super) notes: Vec<String>,
    pub(super) desired: Vec<Desired>,
    pub(super) versions: Vec<Option<String>>,
}

pub(super) fn prepare(
    ctx: &Ctx,
    names: &[String],
    flags: Flags,
    out: &mut dyn Write,
) -> Result<Prepared> {
    let (all, arches) = ctx.resolve_list(names)?;
    // A search directory that is not there is a typo, not "no interpreter installed".
    for d in &ctx.g.qemu_path {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                return Err(BadInput(format!(
                    "interpreter search path {}: {}, not a directory: check --qemu-path (or qemu_path in the config)",
                    d.display(),
                    crate::input::kind_of(m.file_type()).trim_start_matches("a ")
                ))
                .into());
            }
            Err(e) => {
                return Err(BadInput(format!(
                    "interpreter search path {}: {}: check --qemu-path (or qemu_path in the config)",
                    d.display(),
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "no such directory".to_owned()
                    } else {
                        e.to_string()
                    }
                ))
                .into());
            }
        }
    }
    let req = ctx.requirements(flags.fix_binary)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
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
    let mut refused = Vec::new();
    let mut desired = Vec::new();
    let mut versions = Vec::new();
    // Natives are never registered; then find and check every interpreter.
    for a in arches {
        if let Some(n) = ctx.is_native(&a.name) {
            let mut row = Row::new("skipped-native", a.entry_name(), Some(&a.name));
            row.reason = Some(format!("runs natively on this host ({})", n.evidence));
            if !all {
                refused.push(format!(
                    "{}: runs natively on this host ({}); a handler would capture the host's own binaries",
                    a.name, n.evidence
                ));
                row.action = "refused".into();
            }
            rows.push(row);
            continue;
        }
        let d: Discovery = interpreter::discover(a, &ctx.search_dirs(), &req);
        let Some(c) = d.chosen() else {
            if all && d.candidates.is_empty() {
                let mut row = Row::new("skipped", a.entry_name(), Some(&a.name));
                row.reason = Some("no interpreter installed".into());
                rows.push(row);
            } else {
                let mut row = Row::new("refused", a.entry_name(), Some(&a.name));
                row.reason = Some(d.refusal());
                refused.push(format!("{}: {}", a.name, d.refusal()));
                rows.push(row);
            }
            continue;
        };
        // The resolved path: the file itself, never a symlink someone could re-point later.
        let Some(path) = c.facts.resolved.to_str().map(str::to_owned) else {
            let why = format!(
                "the interpreter {} resolves to a path that is not UTF-8: use --qemu-path with a plain path",
                c.facts.resolved.display()
            );
            let mut row = Row::new("refused", a.entry_name(), Some(&a.name));
            row.reason = Some(why.clone());
            refused.push(format!("{}: {why}", a.name));
            rows.push(row);
            continue;
        };
        // One registration per pattern of the arch (microblaze has two).
        for reg in a.registrations(&path, flags) {
            // Guard: the pattern must not accept any native program or the interpreter.
            let guard = ctx
                .native_guard()
                .with(format!("the interpreter {path}"), c.facts.header.clone());
            if let Some(what) = guard.captures(&reg) {
                let mut row = Row::new("refused", reg.name.clone(), Some(&a.name));
                row.reason = Some(format!("its pattern would capture {what}"));
                refused.push(format!("{}: its pattern would capture {what}", a.name));
                rows.push(row);
                continue;
            }
            // The record must be one the kernel accepts.
            reg.to_record().with_context(|| reg.name.clone())?;
            desired.push(Desired {
                arch: a.name.clone(),
                registration: reg,
            });
            versions.push(c.facts.version.clone());
        }
    }
    if !refused.is_empty() {
        emit_report(ctx, out, &rows, &[], &notes)?;
        return Err(BadInput(format!(
            "nothing was changed; refused:\n  {}",
            refused.join("\n  ")
        ))
        .into());
    }
    Ok(Prepared {
        rows,
        notes,
        desired,
        versions,
    })
}

pub(super) fn install(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let flags = flags_from(opts)?;
    let p = prepare(ctx, names, flags, out)?;
    reconcile(ctx, p, opts.keep_existing, out)
}

/// Plans the prepared registrations against the kernel, applies, reads back, reports.
pub(super) fn reconcile(
    ctx: &Ctx,
    p: Prepared,
    keep_existing: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let Prepared {
        mut rows,
        mut notes,
        desired,
        versions,
    } = p;
    // Dry run: against what is there, mounting nothing.
    if ctx.g.dry_run {
        if !ctx.fs.is_mounted() {
            notes.push(format!(
                "binfmt_misc is not mounted at {}: would mount it",
                ctx.g.binfmt_misc.display()
            ));
        }
        let plan = plan::plan_install(&desired, &ctx.snapshot()?, keep_existing);
        report_plan(ctx, &plan, &versions, &mut rows, &mut notes, true);
        return emit_report(ctx, out, &rows, &plan.overlaps, &notes);
    }
    if !desired.is_empty() {
        require_cap_sys_admin("register binfmt_misc entries")?;
        if ctx.ensure_mounted()? {
            notes.push(format!(
                "mounted binfmt_misc at {}",
                ctx.g.binfmt_misc.display()
            ));
        }
    }
    let _lock = if desired.is_empty() {
        None
    } else {
        Some(ctx.fs.lock()?)
    };
    let plan = plan::plan_install(&desired, &ctx.snapshot()?, keep_existing);
    // Apply, read back, roll back on failure.
    let applied = plan::apply(&ctx.fs, &plan);
    if applied.is_err() {
        // Report what was attempted, then the error (with its rollback) goes to main.
        report_plan(ctx, &plan, &versions, &mut rows, &mut notes, true);
        emit_report(ctx, out, &rows, &plan.overlaps, &notes)?;
        return applied.context("install failed");
    }
    report_plan(ctx, &plan, &versions, &mut rows, &mut notes, false);
    emit_report(ctx, out, &rows, &plan.overlaps, &notes)
}

pub(super) fn install_cmd(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    // --persist: the config is read, checked and its new content written to a temporary file
    // (under a lock) before the first kernel write; it is renamed into place only after
    // install succeeded.
    if opts.nix {
        // Nothing is registered when Nix's side cannot follow.
        super::nix::precheck()?;
    }
    let pending = if opts.persist && !ctx.g.dry_run {
        // Names first, so an unknown arch is reported as such, not as a config error.
        ctx.resolve_list(names)?;
        let flags = flags_from(opts)?;
        let qemu_path = if ctx.g.qemu_path.is_empty() {
            Vec::new()
        } else {
            ctx.search_dirs()
        };
        let req = crate::config::PersistRequest {
            arches: names,
            flags,
            qemu_path: &qemu_path,
            keep_existing: opts.keep_existing,
        };
        Some(
            crate::config::prepare_persist(&ctx.g.config, &req, ctx.table)
                .map_err(|e| anyhow::Error::new(BadInput(format!("{e}; nothing was changed"))))?,
        )
    } else {
        None
    };
    install(ctx, names, opts, out)?;
    if opts.nix {
        let arches: Vec<String> = ctx
            .resolve_list(names)?
            .1
            .iter()
            .map(|a| a.name.clone())
            .collect();
        super::nix::sync(ctx, &arches, out)?;
    }
    if let Some(p) = pending {
        let changes = p.changes();
        p.commit().context(
            "the entries were registered, but the config file was not updated: run the same command again",
        )?;
        if changes {
            writeln!(
                out,
                "note: added {} to {}",
                names.join(", "),
                ctx.g.config.display()
            )?;
        } else {
            writeln!(
                out,
                "note: {} already has {}",
                ctx.g.config.display(),
                names.join(", ")
            )?;
        }
    }
    Ok(())
}

/// The status as JSON, whatever --json said (after the --install/--uninstall forms).
pub(super) fn status_json(g: &Global, out: &mut dyn Write) -> Result<()> {
    let g = Global {
        json: true,
        probe_compat: true,
        ..g.clone()
    };
    status(&Ctx::new(&g)?, out)
}

/// `apply`: reconcile the kernel to the config file; `--remove`: remove what it declares.
pub(super) fn apply(ctx: &Ctx, remove: bool, out: &mut dyn Write) -> Result<()> {
    let cfg = crate::config::load(&ctx.g.config, ctx.table)?;
    if remove {
        let names: Vec<std::ffi::OsString> = if cfg.arches.iter().any(|a| a == "all") {
            vec!["all".into()]
        } else {
            cfg.arches.iter().map(Into::into).collect()
        };
        uninstall(ctx, &names, out)?;
        return super::nix::sync(ctx, &[], out);
    }
    // The config's search path applies unless --qemu-path was given; its `qemu` version
    // unless --qemu was.
    let g;
    let mut sub;
    let ctx = if (ctx.g.qemu_path.is_empty() && !cfg.qemu_path.is_empty())
        || (ctx.qemu_bin.is_none() && cfg.qemu.is_some())
    {
        g = Global {
            qemu_path: if ctx.g.qemu_path.is_empty() {
                cfg.qemu_path.clone()
            } else {
                ctx.g.qemu_path.clone()
            },
            ..ctx.g.clone()
        };
        sub = Ctx::new(&g)?;
        sub.qemu_bin = match (&ctx.qemu_bin, &cfg.qemu) {
            (Some(b), _) => Some(b.clone()),
            (None, Some(v)) => Some(
                store_of(ctx)
                    .resolve(v)
                    .map_err(|e| anyhow::Error::new(crate::qemu::QemuError::from(e)))?
                    .bin(),
            ),
            (None, None) => None,
        };
        &sub
    } else {
        ctx
    };
    if cfg.nix {
        super::nix::precheck()?;
    }
    let p = prepare(ctx, &cfg.arches, cfg.flags, out)?;
    let arches: Vec<String> = p.desired.iter().map(|d| d.arch.clone()).collect();
    reconcile(ctx, p, cfg.keep_existing, out)?;
    if cfg.nix {
        super::nix::sync(ctx, &arches, out)?;
    }
    Ok(())
}

pub(super) fn export(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    format: &str,
    dir: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let flags = flags_from(opts)?;
    let p = prepare(ctx, names, flags, &mut std::io::sink())?;
    let files: Vec<(String, String)> = match format {
        "binfmt.d" => p
            .desired
            .iter()
            .map(|d| {
                Ok((
                    format!("{}.conf", d.registration.name),
                    crate::binfmt::interop::to_binfmt_d(&d.registration, &d.arch)?,
                ))
            })
            .collect::<std::result::Result<_, crate::binfmt::interop::ExportError>>(),
        "update-binfmts" => p
            .desired
            .iter()
            .map(|d| {
                Ok((
                    d.registration.name.clone(),
                    crate::binfmt::interop::to_update_binfmts(&d.registration, "binfmtctl")?,
                ))
            })
            .collect::<std::result::Result<_, crate::binfmt::interop::ExportError>>(),
        "json" => {
            let v: Vec<serde_json::Value> = p
                .desired
                .iter()
                .map(|d| {
                    let e = Entry {
                        registration: d.registration.clone(),
                        enabled: true,
                    };
                    let mut j =
                        serde_json::to_value(entry_json(ctx.table, &ctx.native_guard(), &e))
                            .unwrap_or_default();
                    j["record"] = json!(d.registration.to_record().unwrap_or_default());
                    j
                })
                .collect();
            Ok(vec![(
                "binfmtctl.json".into(),
                serde_json::to_string_pretty(&json!({"registrations": v}))? + "\n",
            )])
        }
        other => {
            return Err(BadInput(format!(
                "unknown format {other:?}: use binfmt.d, update-binfmts or json"
            ))
            .into());
        }
    }?;
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            for (name, text) in &files {
                write_new_file(d, name, text)?;
                writeln!(out, "wrote {}", d.join(name).display())?;
            }
        }
        None => {
            for (_, text) in &files {
                write!(out, "{text}")?;
            }
        }
    }
    Ok(())
}

/// Writes `name` in `dir` without following any symlink: the content goes to a temporary file
/// created with O_CREAT|O_EXCL|O_NOFOLLOW next to it, is synced, and is renamed over `name` (a
/// symlink or file there is replaced, never written through).
fn write_new_file(dir: &std::path::Path, name: &str, text: &str) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, openat, renameat, unlinkat};
    let path = dir.join(name);
    let ctx = || format!("cannot write {}", path.display());
    let dfd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(ctx)?;
    let tmp = format!(".{name}.tmp.{}", std::process::id());
    let _ = unlinkat(&dfd, tmp.as_str(), AtFlags::empty());
    let fd = openat(
        &dfd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(std::io::Error::from)
    .with_context(ctx)?;
    let mut f = std::fs::File::from(fd);
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            renameat(&dfd, tmp.as_str(), &dfd, name)
                .map_err(|e| anyhow::Error::from(std::io::Error::from(e)))
        });
    if written.is_err() {
        let _ = unlinkat(&dfd, tmp.as_str(), AtFlags::empty());
    }
    written.with_context(ctx)
}

/// What `import` may do.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ImportOpts {
    pub register: bool,
    pub allow_credentials: bool,
    pub allow_extension: bool,
}

pub(super) fn import(
    ctx: &Ctx,
    paths: &[PathBuf],
    opts: ImportOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let register = opts.register;
    let mut imported = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            crate::binfmt::interop::conf_files(p)
                .with_context(|| format!("reading {}", p.display()))?
        } else {
            vec![p.clone()]
        };
        for f in files {
            // A regular file of at most 1 MiB (a FIFO or /dev/zero is refused, not read).
            let text = crate::input::read_text(&f, crate::input::MAX_TEXT)?;
            imported.extend(crate::binfmt::interop::parse_binfmt_d(&f, &text)?);
        }
    }
    if !register {
        if ctx.g.json {
            let v: Vec<serde_json::Value> = imported
                .iter()
                .map(|i| {
                    let e = Entry {
                        registration: i.registration.clone(),
                        enabled: true,
                    };
                    let mut j =
                        serde_json::to_value(entry_json(ctx.table, &ctx.native_guard(), &e))
                            .unwrap_or_default();
                    j["file"] = json!(i.path);
                    j["line"] = json!(i.line);
                    j
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json!({"registrations": v}))?
            )?;
        } else {
            for i in &imported {
                let e = Entry {
                    registration: i.registration.clone(),
                    enabled: true,
                };
                let j = entry_json(ctx.table, &ctx.native_guard(), &e);
                let table = match j.matches_table {
                    Some(true) => "matches our table",
                    Some(false) => "DIFFERS from our table",
                    None => "not ours",
                };
                writeln!(
                    out,
                    "{}:{}: {} arch={} flags={} {} ({table}){}",
                    i.path.display(),
                    i.line,
                    j.name,
                    j.arch,
                    j.flags,
                    j.interpreter,
                    if j.captures_native {
                        " WARNING: captures this host's own binaries"
                    } else {
                        ""
                    }
                )?;
            }
        }
        return Ok(());
    }
    // Registering: every check install makes, on every entry, before the first write.
    let desired = check_imported(ctx, &imported, opts).map_err(|refused| {
        BadInput(format!(
            "nothing was changed; refused:\n  {}",
            refused.join("\n  ")
        ))
    })?;
    let versions = vec![None; desired.len()];
    reconcile(
        ctx,
        Prepared {
            rows: Vec::new(),
            notes: Vec::new(),
            desired,
            versions,
        },
        false,
        out,
    )
}

/// The checks install makes, applied to imported entries: the native-capture guard (every kind
/// of native program, and the interpreter itself), the interpreter's whole path (resolved; every
/// directory and symlink root's; the file root's, executable, not writable by others; with F a
/// static ELF for this CPU), C and E only when asked for. Returns the registrations to make, with
/// the resolved interpreter path, or every refusal with its file and line.
fn check_imported(
    ctx: &Ctx,
    imported: &[crate::binfmt::interop::Imported],
    opts: ImportOpts,
) -> std::result::Result<Vec<Desired>, Vec<String>> {
    let mut refused = Vec::new();
    let mut desired = Vec::new();
    let guard = ctx.native_guard();
    let any_arch = &ctx.table.arches[0];
    for i in imported {
        let r = &i.registration;
        let at = format!("{}:{}: {}", i.path.display(), i.line, r.name);
        let mut why: Vec<String> = Vec::new();
        if let Matcher::Extension(ext) = &r.matcher
            && !opts.allow_extension
        {
            why.push(format!(
                "an extension entry runs {} for every file named *.{ext}, native programs and scripts included: pass --allow-extension if that is intended",
                r.interpreter
            ));
        }
        if r.flags.credentials && !opts.allow_credentials {
            why.push(format!(
                "flag C makes setuid programs run {} with their owner's credentials (root's for setuid-root files): pass --allow-credentials if that is intended, or drop C",
                r.interpreter
            ));
        }
        let facts = interpreter::facts(std::path::Path::new(&r.interpreter), any_arch);
        let guard = guard.clone().with(
            format!("the interpreter {}", r.interpreter),
            facts.header.clone(),
        );
        if let Some(what) = guard.captures(r) {
            why.push(format!("its pattern would capture {what}"));
        }
        let problems = if r.flags.fix_binary {
            // F: the kernel pins the file now and runs it in every chroot and container, so it
            // must be what install accepts: a static ELF for this CPU.
            match ctx.requirements(true) {
                Ok(req) => interpreter::check(&facts, &req),
                Err(e) => {
                    why.push(e.to_string());
                    Vec::new()
                }
            }
        } else {
            interpreter::security_problems(&facts, ctx.owners())
        };
        if !problems.is_empty() {
            let p: Vec<String> = problems.iter().map(ToString::to_string).collect();
            why.push(format!(
                "the interpreter {} {}",
                r.interpreter,
                p.join("; ")
            ));
        }
        let resolved = facts.resolved.to_str();
        if resolved.is_none() {
            why.push(format!(
                "the interpreter {} resolves to a path that is not UTF-8 ({}): use a plain path",
                r.interpreter,
                facts.resolved.display()
            ));
        }
        if let (true, Some(resolved)) = (why.is_empty(), resolved) {
            let mut reg = r.clone();
            // The file itself, never a symlink someone could re-point later.
            reg.interpreter = resolved.to_owned();
            desired.push(Desired {
                arch: r.name.clone(),
                registration: reg,
            });
        } else {
            refused.push(format!("{at}: {}", why.join("; ")));
        }
    }
    if refused.is_empty() {
        Ok(desired)
    } else {
        Err(refused)
    }
}

pub(super) fn report_plan(
    ctx: &Ctx,
    plan: &Plan,
    versions: &[Option<String>],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    dry_run: bool,
) {
    for (a, version) in plan.actions.iter().zip(versions) {
        let arch = match a {
            Action::Register { arch, .. }
            | Action::Keep { arch, .. }
            | Action::Enable { arch, .. }
            | Action::Replace { arch, .. }
            | Action::KeepExisting { arch, .. }
            | Action::Disable { arch, .. } => Some(arch.as_str()),
            Action::Remove { .. } => None,
        };
        let mut row = Row::new(a.verb(dry_run), a.name().to_owned(), arch);
        match a {
            Action::Register { new, .. } | Action::Replace { new, .. } => {
                row.interpreter = Some(new.interpreter.clone());
                row.flags = Some(new.flags.to_string());
            }
            Action::Keep { current, .. }
            | Action::Enable { current, .. }
            | Action::Disable { current, .. } => {
                row.interpreter = Some(current.registration.interpreter.clone());
                row.flags = Some(current.registration.flags.to_string());
            }
            Action::KeepExisting {
                current, wanted, ..
            } => {
                row.interpreter = Some(current.registration.interpreter.clone());
                row.flags = Some(current.registration.flags.to_string());
                row.reason = Some(format!(
                    "differs from ours ({} flags={}); left as is because of --keep-existing",
                    wanted.interpreter, wanted.flags
                ));
            }
            Action::Remove { .. } => {}
        }
        if let Action::Replace { old, .. } = a {
            row.previous = Some(entry_json(ctx.table, &ctx.native_guard(), old));
        }
        row.version = version.clone();
        rows.push(row);
    }
    for o in &plan.overlaps {
        notes.push(format!(
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

pub(super) fn summary(rows: &[Row]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for r in rows {
        let n = m.entry(r.action.clone()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    m
}

pub(super) fn emit_report(
    ctx: &Ctx,
    out: &mut dyn Write,
    rows: &[Row],
    overlaps: &[plan::Overlap],
    notes: &[String],
) -> Result<()> {
    if ctx.g.json {
        let v = json!({
            "dry_run": ctx.g.dry_run,
            "binfmt_misc": ctx.g.binfmt_misc,
            "results": rows,
            "overlaps": overlaps,
            "notes": notes,
            "summary": summary(rows),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if !ctx.g.quiet {
        for r in rows {
            writeln!(out, "{}", r.human())?;
        }
        for n in notes {
            writeln!(out, "note: {n}")?;
        }
    }
    let s: Vec<String> = summary(rows)
        .into_iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    if !ctx.g.quiet || rows.iter().any(|r| r.action == "refused") {
        writeln!(
            out,
            "summary: {}",
            if s.is_empty() {
                "nothing to do".into()
            } else {
                s.join(", ")
            }
        )?;
    }
    Ok(())
}

/// A `*`/`?` glob over entry names.
pub(super) fn glob_match(pat: &[u8], s: &[u8]) -> bool {
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
pub(super) fn is_managed(name: &[u8]) -> bool {
    name.starts_with(ENTRY_PREFIX.as_bytes())
}

/// Which entries `targets` select, as the kernel's raw names: `all` and globs (`*`, `?`) take
/// only managed entries; an exact name takes that entry whoever made it; an arch name takes
/// `qemu-<cpu>`. Absent arches become report rows; anything else is an error (exit 2).
pub(super) fn select_for_uninstall(
    table: &Table,
    targets: &[std::ffi::OsString],
    current: &[crate::binfmt::kernel::KernelEntry],
) -> std::result::Result<(Vec<Vec<u8>>, Vec<Row>), String> {
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
                        absent.push(Row::new("absent", a.entry_name(), Some(&a.name)));
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
        Err(errors.join("\n"))
    }
}

pub(super) fn uninstall(
    ctx: &Ctx,
    targets: &[std::ffi::OsString],
    out: &mut dyn Write,
) -> Result<()> {
    ctx.mount_to_read()?;
    let current = ctx.snapshot()?;
    let (wanted, absent) = select_for_uninstall(ctx.table, targets, &current).map_err(BadInput)?;
    let dry = ctx.g.dry_run;
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    if !ctx.fs.is_mounted() {
        notes.push(format!(
            "binfmt_misc is not mounted at {}: nothing is registered",
            ctx.g.binfmt_misc.display()
        ));
    }
    let render = |plan: &Plan, rows: &mut Vec<Row>| {
        for a in &plan.actions {
            if let Action::Remove { entry, .. } = a {
                let mut r = Row::new(a.verb(dry), a.name().to_owned(), None);
                let j = entry_json(ctx.table, &ctx.native_guard(), entry);
                r.arch = Some(j.arch.clone());
                r.interpreter = Some(j.interpreter.clone());
                r.flags = Some(j.flags.clone());
                rows.push(r);
            }
        }
    };
    if dry || wanted.is_empty() {
        let plan = plan::plan_uninstall(&wanted, &current);
        render(&plan, &mut rows);
        rows.extend(absent);
        return emit_report(ctx, out, &rows, &[], &notes);
    }
    require_cap_sys_admin("remove binfmt_misc entries")?;
    let _lock = ctx.fs.lock()?;
    let plan = plan::plan_uninstall(&wanted, &ctx.fs.list()?);
    // Report only after the kernel did it all: a failure rolls back, and nothing was removed.
    plan::apply(&ctx.fs, &plan).context("uninstall failed")?;
    render(&plan, &mut rows);
    rows.extend(absent);
    emit_report(ctx, out, &rows, &[], &notes)
}

pub(super) fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let mounted = ctx.mount_to_read()?;
    let entries = if mounted { ctx.fs.list()? } else { Vec::new() };
    let enabled = if mounted {
        ctx.fs.global_enabled()?
    } else {
        false
    };
    let guard = ctx.native_guard();
    let stored = store_of(ctx).list();
    let json_entries: Vec<EntryJson> = entries
        .iter()
        .map(|k| {
            let mut e = entry_json(ctx.table, &guard, &k.entry);
            e.source = Some(source_of(&stored, &e.interpreter));
            e
        })
        .collect();
    // Native first, then every arch an enabled entry emulates (when binfmt_misc is enabled).
    let mut supported: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        if !supported.iter().any(|s| s == p) {
            supported.push(p.to_owned());
        }
    };
    for n in &ctx.native {
        if let Some(a) = ctx.table.get(&n.arch) {
            a.oci.iter().for_each(|p| push(p));
        }
    }
    if enabled {
        // In table order, so the list is stable whatever order entries were registered in.
        for a in &ctx.table.arches {
            if json_entries.iter().any(|e| e.enabled && e.arch == a.name) {
                a.oci.iter().for_each(|p| push(p));
            }
        }
    }
    let emulators: Vec<&str> = json_entries
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    // Only when binfmtctl told Nix about handlers (`install --nix`): do both still agree?
    let nix_warnings = super::nix::status_hints(ctx, &entries);
    if ctx.g.json {
        let mut v = json!({
            "supported": supported,
            "emulators": emulators,
            "entries": json_entries,
            "native": ctx.native,
            "binfmt_misc": {"path": ctx.g.binfmt_misc, "mounted": mounted, "enabled": enabled},
        });
        if !nix_warnings.is_empty() {
            v["nix_warnings"] = json!(nix_warnings);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if !mounted {
        writeln!(
            out,
            "binfmt_misc: not mounted at {} (binfmtctl install mounts it)",
            ctx.g.binfmt_misc.display()
        )?;
    } else {
        writeln!(
            out,
            "binfmt_misc: {} ({})",
            ctx.g.binfmt_misc.display(),
            if enabled {
                "enabled"
            } else {
                "DISABLED: no entry is used"
            }
        )?;
    }
    for w in &nix_warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    for (k, e) in entries.iter().zip(&json_entries) {
        let Some(what) = guard.captures(&k.entry.registration) else {
            continue;
        };
        // Quoted for the shell when the name needs it (other tools' names may hold spaces).
        let arg = if k
            .name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(b))
        {
            e.name.clone()
        } else {
            format!("'{}'", e.name.replace('\'', "'\\''"))
        };
        writeln!(
            out,
            "WARNING: entry {} ({}) matches {what}: native programs run through {}{}; remove it with `binfmtctl uninstall {arg}`",
            e.name,
            if e.enabled { "enabled" } else { "disabled" },
            e.interpreter,
            if e.enabled { "" } else { " once enabled" },
        )?;
    }
    let natives: Vec<String> = ctx.native.iter().map(|n| n.arch.clone()).collect();
    writeln!(out, "native: {}", natives.join(", "))?;
    writeln!(out, "supported: {}", supported.join(", "))?;
    if json_entries.is_empty() {
        writeln!(out, "no entries")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<8} {:<12} {:<5} {:<8} INTERPRETER",
        "ENTRY", "ENABLED", "ARCH", "FLAGS", "TABLE"
    )?;
    for e in &json_entries {
        let table = match e.matches_table {
            Some(true) => "matches",
            Some(false) => "DIFFERS",
            None => "-",
        };
        writeln!(
            out,
            "{:<20} {:<8} {:<12} {:<5} {:<8} {} [{}]",
            e.name,
            if e.enabled { "yes" } else { "no" },
            e.arch,
            e.flags,
            table,
            e.interpreter,
            e.source.as_deref().unwrap_or("system")
        )?;
    }
    Ok(())
}

pub(super) fn interpreters(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let arches: Vec<&Arch> = if names.is_empty() {
        ctx.table.arches.iter().collect()
    } else {
        ctx.resolve_list(names)?.1
    };
    let flags_need_static = true;
    let req = ctx.requirements(flags_need_static)?;
    let dirs = ctx.search_dirs();
    let stored = store_of(ctx).list();
    let found: Vec<(Discovery, Option<&NativeArch>)> = arches
        .iter()
        .map(|a| {
            (
                interpreter::discover(a, &dirs, &req),
                ctx.is_native(&a.name),
            )
        })
        .collect();
    if ctx.g.json {
        let v: Vec<serde_json::Value> = found
            .iter()
            .map(|(d, native)| {
                let chosen = d.chosen();
                json!({
                    "arch": d.arch,
                    "native": native.is_some(),
                    "status": if chosen.is_some() { "ok" } else if d.candidates.is_empty() { "missing" } else { "refused" },
                    "interpreter": chosen.map(|c| &c.facts.path),
                    "source": chosen.map(|c| source_of(&stored, &c.facts.path.to_string_lossy())),
                    "version": chosen.and_then(|c| c.facts.version.as_ref()),
                    "candidates": d.candidates,
                    "searched": d.searched,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"interpreters": v}))?
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<13} {:<8} {:<36} {:<8} NOTES",
        "ARCH", "STATUS", "INTERPRETER", "VERSION"
    )?;
    for (d, native) in &found {
        let (status, path, version, notes) = match d.chosen() {
            Some(c) => (
                "ok",
                format!(
                    "{} [{}]",
                    c.facts.path.display(),
                    source_of(&stored, &c.facts.path.to_string_lossy())
                ),
                c.facts
                    .version
                    .as_deref()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("?")
                    .to_owned(),
                String::new(),
            ),
            None if d.candidates.is_empty() => ("missing", "-".into(), "-".into(), String::new()),
            None => ("refused", "-".into(), "-".into(), d.refusal()),
        };
        let notes = match native {
            Some(_) => format!(
                "native on this host; never registered{}",
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("; {notes}")
                }
            ),
            None => notes,
        };
        writeln!(
            out,
            "{:<13} {:<8} {:<36} {:<8} {}",
            d.arch, status, path, version, notes
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::kernel::KernelEntry;
    use crate::binfmt::registration::Registration;
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
        select_for_uninstall(Table::builtin(), &t, current).map(|(w, _)| w)
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
