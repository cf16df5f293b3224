//! Commands that register and remove entries, and report them: install, uninstall, apply,
//! export, import, status, interpreters.

use super::*;

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
        let path = c.facts.path.to_string_lossy().into_owned();
        let reg = a.registration(&path, flags);
        // Guard: the pattern must not accept the host's executables or the interpreter.
        let mut headers = vec![(
            "this host's own executables".to_owned(),
            ctx.host.exe_header.clone(),
        )];
        headers.push((format!("the interpreter {path}"), c.facts.header.clone()));
        if let Some(what) = plan::captures_native(&reg, &headers) {
            let mut row = Row::new("refused", reg.name.clone(), Some(&a.name));
            row.reason = Some(format!("its pattern would capture {what}"));
            refused.push(format!("{}: its pattern would capture {what}", a.name));
            rows.push(row);
            continue;
        }
        // The record must be one the kernel accepts.
        reg.to_record()
            .map_err(|e| BadInput(format!("{}: {e}", reg.name)))?;
        desired.push(Desired {
            arch: a.name.clone(),
            registration: reg,
        });
        versions.push(c.facts.version.clone());
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
    install(ctx, names, opts, out)?;
    if opts.persist && !ctx.g.dry_run {
        crate::config::persist(&ctx.g.config, names, ctx.table)
            .map_err(|e| anyhow::Error::new(BadInput(e.to_string())))?;
        writeln!(
            out,
            "note: added {} to {}",
            names.join(", "),
            ctx.g.config.display()
        )?;
    }
    Ok(())
}

/// The status as JSON, whatever --json said (after the --install/--uninstall forms).
pub(super) fn status_json(g: &Global, out: &mut dyn Write) -> Result<()> {
    let g = Global {
        json: true,
        ..g.clone()
    };
    status(&Ctx::new(&g), out)
}

/// `apply`: reconcile the kernel to the config file; `--remove`: remove what it declares.
pub(super) fn apply(ctx: &Ctx, remove: bool, out: &mut dyn Write) -> Result<()> {
    let cfg = crate::config::load(&ctx.g.config, ctx.table).map_err(|e| match e {
        crate::config::ConfigError::Read { .. } => anyhow::Error::new(Unsupported(e.to_string())),
        other => anyhow::Error::new(BadInput(other.to_string())),
    })?;
    if remove {
        let names: Vec<String> = if cfg.arches.iter().any(|a| a == "all") {
            vec!["all".into()]
        } else {
            cfg.arches.clone()
        };
        return uninstall(ctx, &names, out);
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
        sub = Ctx::new(&g);
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
    let p = prepare(ctx, &cfg.arches, cfg.flags, out)?;
    reconcile(ctx, p, cfg.keep_existing, out)
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
                    crate::interop::to_binfmt_d(&d.registration, &d.arch)?,
                ))
            })
            .collect::<std::result::Result<_, String>>(),
        "update-binfmts" => p
            .desired
            .iter()
            .map(|d| {
                Ok((
                    d.registration.name.clone(),
                    crate::interop::to_update_binfmts(&d.registration, "binfmtctl")?,
                ))
            })
            .collect::<std::result::Result<_, String>>(),
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
                        serde_json::to_value(entry_json(ctx.table, &ctx.host.exe_header, &e))
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
    }
    .map_err(BadInput)?;
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            for (name, text) in &files {
                let path = d.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                writeln!(out, "wrote {}", path.display())?;
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

pub(super) fn import(
    ctx: &Ctx,
    paths: &[PathBuf],
    register: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut imported = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            crate::interop::conf_files(p).with_context(|| format!("reading {}", p.display()))?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| BadInput(format!("cannot read {}: {e}", f.display())))?;
            imported.extend(
                crate::interop::parse_binfmt_d(&f, &text).map_err(|e| BadInput(e.to_string()))?,
            );
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
                        serde_json::to_value(entry_json(ctx.table, &ctx.host.exe_header, &e))
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
                let j = entry_json(ctx.table, &ctx.host.exe_header, &e);
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
    // Registering: the same guards as install, then the same reconcile.
    let mut desired = Vec::new();
    for i in &imported {
        let r = &i.registration;
        if r.matcher.matches_header(&ctx.host.exe_header) {
            return Err(BadInput(format!(
                "{}:{}: {} would capture this host's own binaries; not registering anything",
                i.path.display(),
                i.line,
                r.name
            ))
            .into());
        }
        // Never register an interpreter others could replace or that is not there.
        let any_arch = &ctx.table.arches[0];
        let facts = interpreter::facts(std::path::Path::new(&r.interpreter), any_arch);
        let owner = ctx.host.in_user_namespace.then_some(ctx.host.overflow_uid);
        let problems = interpreter::security_problems(&facts, owner);
        if !problems.is_empty() {
            let why: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(BadInput(format!(
                "{}:{}: {}: the interpreter {} {}; not registering anything",
                i.path.display(),
                i.line,
                r.name,
                r.interpreter,
                why.join("; ")
            ))
            .into());
        }
        desired.push(Desired {
            arch: r.name.clone(),
            registration: r.clone(),
        });
    }
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
            | Action::KeepExisting { arch, .. } => Some(arch.as_str()),
            Action::Remove { .. } => None,
        };
        let mut row = Row::new(a.verb(dry_run), a.name().to_owned(), arch);
        match a {
            Action::Register { new, .. } | Action::Replace { new, .. } => {
                row.interpreter = Some(new.interpreter.clone());
                row.flags = Some(new.flags.to_string());
            }
            Action::Keep { current, .. } | Action::Enable { current, .. } => {
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
            row.previous = Some(entry_json(ctx.table, &ctx.host.exe_header, old));
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

pub(super) fn uninstall(ctx: &Ctx, targets: &[String], out: &mut dyn Write) -> Result<()> {
    ctx.mount_to_read();
    let current = ctx.snapshot()?;
    let names_now: Vec<&str> = current
        .iter()
        .map(|k| k.entry.registration.name.as_str())
        .collect();
    let mut wanted: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    let mut absent = Vec::new();
    let mut unknown = Vec::new();
    let add = |n: &str, wanted: &mut Vec<String>| {
        if !wanted.iter().any(|w| w == n) {
            wanted.push(n.to_owned());
        }
    };
    for t in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if t.eq_ignore_ascii_case("all") {
            for n in names_now.iter().filter(|n| n.starts_with(ENTRY_PREFIX)) {
                add(n, &mut wanted);
            }
        } else if t.contains(['*', '?']) {
            for n in names_now
                .iter()
                .filter(|n| glob_match(t.as_bytes(), n.as_bytes()))
            {
                add(n, &mut wanted);
            }
        } else if names_now.contains(&t) {
            add(t, &mut wanted);
        } else {
            match ctx.table.resolve(t) {
                Ok(a) => {
                    let n = a.entry_name();
                    if names_now.contains(&n.as_str()) {
                        add(&n, &mut wanted);
                    } else {
                        absent.push(Row::new("absent", n, Some(&a.name)));
                    }
                }
                Err(e) => unknown.push(e.to_string()),
            }
        }
    }
    if !unknown.is_empty() {
        return Err(BadInput(unknown.join("\n")).into());
    }
    let dry = ctx.g.dry_run;
    let mut notes = Vec::new();
    if !ctx.fs.is_mounted() {
        notes.push(format!(
            "binfmt_misc is not mounted at {}: nothing is registered",
            ctx.g.binfmt_misc.display()
        ));
    }
    let render = |plan: &Plan, rows: &mut Vec<Row>| {
        for a in &plan.actions {
            if let Action::Remove { entry } = a {
                let mut r = Row::new(a.verb(dry), a.name().to_owned(), None);
                let j = entry_json(ctx.table, &ctx.host.exe_header, entry);
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
    let applied = plan::apply(&ctx.fs, &plan);
    render(&plan, &mut rows);
    rows.extend(absent);
    emit_report(ctx, out, &rows, &[], &notes)?;
    applied.context("uninstall failed")
}

pub(super) fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let mounted = ctx.mount_to_read();
    let entries = if mounted { ctx.fs.list()? } else { Vec::new() };
    let enabled = if mounted {
        ctx.fs.global_enabled()?
    } else {
        false
    };
    let stored = store_of(ctx).list();
    let json_entries: Vec<EntryJson> = entries
        .iter()
        .map(|k| {
            let mut e = entry_json(ctx.table, &ctx.host.exe_header, &k.entry);
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
    if ctx.g.json {
        let v = json!({
            "supported": supported,
            "emulators": emulators,
            "entries": json_entries,
            "native": ctx.native,
            "binfmt_misc": {"path": ctx.g.binfmt_misc, "mounted": mounted, "enabled": enabled},
        });
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
    for e in json_entries.iter().filter(|e| e.captures_native) {
        writeln!(
            out,
            "WARNING: entry {} ({}) matches this host's own executables: native programs run through {}{}; remove it with `binfmtctl uninstall {}`",
            e.name,
            if e.enabled { "enabled" } else { "disabled" },
            e.interpreter,
            if e.enabled { "" } else { " once enabled" },
            e.name
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
