//! `export` (registrations as binfmt.d, update-binfmts or JSON files, `ops::export`) and
//! `import` (binfmt.d files shown, or registered through `ops::import`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::args::InstallOpts;
use super::context::Ctx;
use super::render::{Keys, emit, show};
use super::settings::flags_from;
use crate::ops;

/// `export`: the files printed, or written into `--dir` (each one said).
pub(super) fn export(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    format: &str,
    dir: Option<&std::path::Path>,
    force: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let desired = ops::export::registrations(&ctx.host, &ctx.search(), names, flags_from(opts)?)?;
    let files = ops::export::format_files(&ctx.host, &desired, format)?;
    match dir {
        Some(d) => ops::export::write_files(d, &files, force, &mut |path, created_dir| {
            if created_dir {
                writeln!(out, "created {}", path.display())?;
            } else {
                writeln!(out, "wrote {}", path.display())?;
            }
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

/// `import`: the entries listed, or with `--register` registered after install's checks.
pub(super) fn import(
    ctx: &Ctx,
    paths: &[PathBuf],
    register: bool,
    opts: ops::import::ImportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let imported = ops::import::read(paths)?;
    if register {
        let r = ops::import::register(&ctx.fs, &ctx.host, &imported, opts)?;
        return show(ctx, out, r);
    }
    let listing = ops::import::listing(&ctx.host, &imported);
    emit(ctx, out, &listing, Keys::Sorted, |l, out| l.write_text(out))
}
