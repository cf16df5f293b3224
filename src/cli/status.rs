//! `status` (`ops::status::report`) as text or JSON: the instance, what the machine runs,
//! warnings for entries that capture this host's own programs, and the entries.

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use super::render::print_json;
use crate::ops;

/// `status`; `json` whatever --json said (the --install/--uninstall forms print JSON).
pub(super) fn status(ctx: &Ctx, json: bool, out: &mut dyn Write) -> Result<()> {
    let stored = ctx.store().list();
    let r = ops::status::report(
        &ctx.fs,
        &ctx.host,
        &ctx.g.binfmt_misc,
        &stored,
        &crate::ops::facade::NixPaths::from_env(),
    )?;
    if json {
        return print_json(out, &r);
    }
    let (mounted, enabled) = (r.binfmt_misc.mounted, r.binfmt_misc.enabled);
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
    for w in &r.nix_warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    for (s, e) in r.kernel.iter().zip(&r.entries) {
        let (k, Some(what)) = (&s.kernel, &s.captures) else {
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
    let natives: Vec<String> = ctx.host.native.iter().map(|n| n.arch.clone()).collect();
    writeln!(out, "native: {}", natives.join(", "))?;
    writeln!(out, "supported: {}", r.supported.join(", "))?;
    if r.entries.is_empty() {
        writeln!(out, "no entries")?;
        return Ok(());
    }
    // Columns at least as wide as their longest cell (long names such as
    // qemu-microblaze-old keep the table aligned).
    let w_name = r
        .entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(20);
    let w_arch = r
        .entries
        .iter()
        .map(|e| e.arch.len())
        .max()
        .unwrap_or(0)
        .max(12);
    writeln!(
        out,
        "{:<w_name$} {:<8} {:<w_arch$} {:<5} {:<8} INTERPRETER",
        "ENTRY", "ENABLED", "ARCH", "FLAGS", "TABLE"
    )?;
    for e in &r.entries {
        let table = match e.matches_table {
            Some(true) => "matches",
            Some(false) => "DIFFERS",
            None => "-",
        };
        writeln!(
            out,
            "{:<w_name$} {:<8} {:<w_arch$} {:<5} {:<8} {} [{}]",
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
