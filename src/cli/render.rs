//! The terminal's side of the reports: each typed report as its JSON (`--json`) or its text
//! (`crate::text`), warnings and notes on stderr; and the CLI's sides of the operations that
//! report as they go (`Steps`, `Events`).

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::context::Ctx;
use crate::ops::compose::{Persisted, Steps};
use crate::ops::emulate::{Events, RootfsRequest, RootfsStage};
use crate::ops::facade::{Arch, NixPaths};
use crate::ops::nix::SyncReport;
use crate::ops::{self, Reported};
use crate::text::nix::Said;
use crate::text::report::ReportView;

/// How a report's JSON orders each object's keys.
#[derive(Debug, Clone, Copy)]
pub(super) enum Keys {
    /// Alphabetical (serde_json's maps keep them so), as docs/json.md shows them.
    Sorted,
    /// As the report declares its fields (doctor, nix, qemu: their schemas' order).
    Declared,
}

/// Prints a report as its documented JSON, pretty.
pub(super) fn print_json(out: &mut dyn Write, report: &impl Serialize, keys: Keys) -> Result<()> {
    let text = match keys {
        Keys::Sorted => serde_json::to_string_pretty(&serde_json::to_value(report)?)?,
        Keys::Declared => serde_json::to_string_pretty(report)?,
    };
    writeln!(out, "{text}")?;
    Ok(())
}

/// A report as JSON with `--json` (its keys ordered by `keys`), else as the text `text`
/// writes.
pub(super) fn emit<R: Serialize>(
    ctx: &Ctx,
    out: &mut dyn Write,
    report: &R,
    keys: Keys,
    text: impl FnOnce(&R, &mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    if ctx.g.json {
        return print_json(out, report, keys);
    }
    Ok(text(report, out)?)
}

/// Shows a changing command's report (warnings on stderr), then returns the operation's
/// failure, if any.
pub(super) fn show(ctx: &Ctx, out: &mut dyn Write, r: Reported) -> Result<()> {
    for w in &r.report.warnings {
        eprintln!("binfmtctl: warning: {w}");
    }
    let view = ReportView::new(&r.report, &ctx.host, &ctx.g.binfmt_misc);
    emit(ctx, out, &view, Keys::Sorted, |v, out| {
        v.write_text(ctx.g.quiet, out)
    })?;
    r.failure.map_or(Ok(()), |e| Err(e.into()))
}

/// The CLI's side of the compositions and of the emulated commands: each step's report
/// rendered on `out` as it is done, notes on stderr.
pub(super) struct Shown<'a, 'g> {
    pub ctx: &'a Ctx<'g>,
    pub out: &'a mut dyn Write,
}

impl Steps for Shown<'_, '_> {
    fn report(&mut self, r: Reported) -> Result<()> {
        show(self.ctx, self.out, r)
    }

    /// What keeping Nix in step did: notes on the report's stream (stderr with `--json`, none
    /// with `-q`), warnings on stderr.
    fn nix(&mut self, r: &SyncReport, paths: &NixPaths) -> Result<()> {
        for said in r.said(paths) {
            match said {
                Said::Warning(w) => eprintln!("binfmtctl: warning: {w}"),
                Said::Note(n) if self.ctx.g.json => eprintln!("binfmtctl: note: {n}"),
                Said::Note(n) if !self.ctx.g.quiet => writeln!(self.out, "note: {n}")?,
                Said::Note(_) => {}
            }
        }
        Ok(())
    }

    fn persisted(&mut self, p: &Persisted) -> Result<()> {
        let (config, names) = (p.config.display(), p.arches.join(", "));
        if p.changed {
            writeln!(self.out, "note: added {names} to {config}")?;
        } else {
            writeln!(self.out, "note: {config} already has {names}")?;
        }
        Ok(())
    }
}

impl Events for Shown<'_, '_> {
    /// A note may quote the rootfs (a package's version, a file name): escaped for the terminal.
    fn note(&mut self, line: &str) {
        eprintln!("binfmtctl: {}", crate::escape::escape(line));
    }

    /// `run --install-missing`: a plain install, reported like `install`'s.
    fn install(&mut self, arch: &Arch) -> Result<()> {
        let ctx = self.ctx;
        let options = ops::install::InstallOptions {
            flags: ops::facade::Flags::DEFAULT.normalized(),
            keep_existing: false,
            dry_run: ctx.g.dry_run,
            versions: true,
        };
        let names = std::slice::from_ref(&arch.name);
        let r = ops::install::install(&ctx.fs, &ctx.host, &ctx.search(), names, options)?;
        show(ctx, self.out, r)
    }

    fn progress(&self) -> std::sync::Arc<dyn crate::progress::Progress + Send> {
        self.ctx.progress()
    }

    /// `rootfs create`: what is about to be made (before the tool's own output), then that it
    /// was.
    fn rootfs(&mut self, req: &RootfsRequest, stage: RootfsStage<'_>) -> Result<()> {
        match stage {
            RootfsStage::Starting(plan) => {
                plan.write_start(req, self.out)?;
                self.out.flush()?;
            }
            RootfsStage::Created(plan) => plan.write_done(req, self.out)?,
        }
        Ok(())
    }
}
