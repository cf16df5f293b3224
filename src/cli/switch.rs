//! `enable` and `disable`: switch existing entries on and off, keeping them (what
//! `update-binfmts --enable/--disable` does, and writing `1`/`0` to an entry file as
//! Documentation/admin-guide/binfmt-misc.rst describes). Arch names mean our own `qemu-<arch>`
//! entries; any other entry is named exactly. Through the plan/apply path: every target is
//! checked before the first write, the change is read back, and a failure rolls back.

use super::*;

/// The entries a target list names, as (arch, entry name) pairs, every one existing.
fn resolve_targets(
    ctx: &Ctx,
    targets: &[String],
    current: &[KernelEntry],
) -> Result<Vec<(String, String)>> {
    let exists = |n: &str| current.iter().any(|k| k.entry.registration.name == n);
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
                    let arch = entry_json(ctx.table, &ctx.native_guard(), &k.entry).arch;
                    add(arch, n.clone(), &mut wanted);
                }
            }
        } else if exists(t) {
            let k = current
                .iter()
                .find(|k| k.entry.registration.name == t)
                .expect("exists");
            let arch = entry_json(ctx.table, &ctx.native_guard(), &k.entry).arch;
            add(arch, t.to_owned(), &mut wanted);
        } else {
            match ctx.table.resolve(t) {
                Ok(a) if a.entry_names().iter().any(|n| exists(n)) => {
                    // Every entry of the arch that is there (microblaze has two).
                    for n in a.entry_names().into_iter().filter(|n| exists(n)) {
                        add(a.name.clone(), n, &mut wanted);
                    }
                }
                Ok(a) => problems.push(format!(
                    "{t}: there is no entry {} in {}: register it with `binfmtctl install {}`",
                    a.entry_name(),
                    ctx.g.binfmt_misc.display(),
                    a.name
                )),
                Err(e) => problems.push(format!(
                    "{e}; nor is there an entry named {t:?} (`binfmtctl status` lists them)"
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(BadInput(format!("nothing was changed:\n  {}", problems.join("\n  "))).into());
    }
    if wanted.is_empty() {
        return Err(BadInput(
            "nothing to switch: no qemu-* entry is registered (`binfmtctl status` lists the entries)"
                .into(),
        )
        .into());
    }
    Ok(wanted)
}

pub(super) fn switch(
    ctx: &Ctx,
    targets: &[String],
    enable: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mounted = ctx.mount_to_read()?;
    if !mounted {
        return Err(Unsupported(format!(
            "binfmt_misc is not mounted at {}, so no entry exists to {}: mount it (or `binfmtctl install` first)",
            ctx.g.binfmt_misc.display(),
            if enable { "enable" } else { "disable" }
        ))
        .into());
    }
    let verb = if enable { "enable" } else { "disable" };
    let render = |plan: &Plan, dry: bool, rows: &mut Vec<Row>| {
        for a in &plan.actions {
            let (Action::Keep { arch, current }
            | Action::Enable { arch, current }
            | Action::Disable { arch, current }) = a
            else {
                continue;
            };
            let mut r = Row::new(a.verb(dry), a.name().to_owned(), Some(arch));
            r.interpreter = Some(current.registration.interpreter.clone());
            r.flags = Some(current.registration.flags.to_string());
            if let Action::Keep { .. } = a {
                r.reason = Some(format!("already {verb}d"));
            }
            rows.push(r);
        }
    };
    let mut rows = Vec::new();
    if ctx.g.dry_run {
        let current = ctx.snapshot()?;
        let plan = plan::plan_switch(&resolve_targets(ctx, targets, &current)?, &current, enable);
        render(&plan, true, &mut rows);
        return emit_report(ctx, out, &rows, &[], &[]);
    }
    require_cap_sys_admin(&format!("{verb} binfmt_misc entries"))?;
    let _lock = ctx.fs.lock()?;
    let current = ctx.fs.list()?;
    let plan = plan::plan_switch(&resolve_targets(ctx, targets, &current)?, &current, enable);
    let applied = plan::apply(&ctx.fs, &plan);
    render(&plan, false, &mut rows);
    emit_report(ctx, out, &rows, &[], &[])?;
    applied.with_context(|| format!("{verb} failed"))
}
