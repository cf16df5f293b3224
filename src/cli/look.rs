//! `inspect`, `scan`, `test` (`ops::look`) and `doctor` (`ops::doctor`): their reports as text
//! (`crate::text`) or JSON; exit 1 when a file could not be inspected, an arch failed, or
//! something asked about will not run.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::context::Ctx;
use super::render::{Keys, emit};
use crate::error::Reported;
use crate::ops;
use crate::ops::doctor::DoctorRequest;

/// `inspect FILE...`: exit 2 when a file could not be inspected (`LookError`).
pub(super) fn inspect(ctx: &Ctx, files: &[PathBuf], out: &mut dyn Write) -> Result<()> {
    let r = ops::look::inspect(&ctx.fs, &ctx.host, files, &crate::ops::facade::path_exists)?;
    emit(ctx, out, &r, Keys::Sorted, |r, out| r.write_text(out))?;
    r.failure().map_or(Ok(()), |e| Err(e.into()))
}

/// `scan DIR|TARBALL [--files]`, read with one thread per CPU.
pub(super) fn scan(ctx: &Ctx, path: &Path, list: bool, out: &mut dyn Write) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let s = ops::look::scan(&ctx.fs, &ctx.host, path, threads, list, &*ctx.progress())?;
    emit(ctx, out, &s, Keys::Sorted, |s, out| s.write_text(out))
}

/// `test [ARCHES] [--strict]`: exit 1 when an arch failed.
pub(super) fn selftest(
    ctx: &Ctx,
    names: &[String],
    strict: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let self_exe = std::env::current_exe().context("cannot find binfmtctl's own executable")?;
    let r = ops::look::selftest(&ctx.fs, &ctx.host, names, &self_exe, strict)?;
    emit(ctx, out, &r, Keys::Sorted, |r, out| {
        r.write_text(ctx.g.quiet, out)
    })?;
    r.failure().map_or(Ok(()), |e| Err(e.into()))
}

/// `doctor [FILE...] [--rootfs DIR]`: exit 0 when everything asked about will run, 1 when
/// something will not (`Reported`), 2/3 as elsewhere.
pub(super) fn doctor(
    ctx: &Ctx,
    files: &[PathBuf],
    rootfs: Option<&PathBuf>,
    out: &mut dyn Write,
) -> Result<()> {
    let store = ctx.g.qemu_store.clone();
    let req = DoctorRequest::on_this_machine(files.to_vec(), rootfs.cloned(), store);
    let report = ops::doctor::doctor(&ctx.fs, &ctx.host, &req, &*ctx.progress())?;
    emit(ctx, out, &report, Keys::Declared, |r, out| {
        r.write_text(out)
    })?;
    if report.ok {
        Ok(())
    } else {
        Err(Reported.into())
    }
}
