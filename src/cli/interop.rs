//! `export` (registrations as binfmt.d, update-binfmts or JSON files, `ops::export`) and
//! `import` (binfmt.d files shown, or registered through `ops::import`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::args::InstallOpts;
use super::context::Ctx;
use super::render::show;
use super::settings::flags_from;
use crate::binfmt::registration::Entry;
use crate::ops;
use crate::ops::view::entry_view;

pub(super) fn export(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    format: &str,
    dir: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let desired = ops::export::registrations(&ctx.host, &ctx.search(), names, flags_from(opts)?)?;
    let files = ops::export::format_files(&ctx.host, &desired, format)?;
    match dir {
        Some(d) => ops::export::write_files(d, &files, &mut |path| {
            writeln!(out, "wrote {}", path.display())?;
            Ok(())
        }),
        None => {
            for (_, text) in &files {
                write!(out, "{text}")?;
            }
            Ok(())
        }
    }
}

pub(super) fn import(
    ctx: &Ctx,
    paths: &[PathBuf],
    register: bool,
    opts: ops::import::ImportOptions,
    out: &mut dyn Write,
) -> Result<()> {
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
                        serde_json::to_value(entry_view(ctx.table, &ctx.host.native_guard(), &e))
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
                let j = entry_view(ctx.table, &ctx.host.native_guard(), &e);
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
    let r = ops::import::register(&ctx.fs, &ctx.host, &imported, opts)?;
    show(ctx, out, r)
}
