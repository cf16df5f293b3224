//! `nix status` and `nix machines` (`ops::nix`): Nix's view against the kernel's, and
//! `/etc/nix/machines` lines for this host as a remote builder; as text or JSON. What
//! keeping Nix in step did is shown by `render::Shown`.

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use super::render::{Keys, emit};
use crate::ops::facade::NixPaths;
use crate::ops::nix::{self as opsnix, SelfTestProbe, SystemNix};

/// `nix status`: Nix's view against the handlers that really work.
pub(super) fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let probe = SelfTestProbe::new(&ctx.host)?;
    let paths = NixPaths::from_env();
    let st = opsnix::status(&ctx.fs, &ctx.host, &paths, &SystemNix, &probe)?;
    emit(ctx, out, &st, Keys::Declared, |st, out| st.write_text(out))
}

/// `nix machines`: the lines on stdout, the systems left out as notes on stderr.
pub(super) fn machines(
    ctx: &Ctx,
    req: &opsnix::MachinesRequest,
    out: &mut dyn Write,
) -> Result<()> {
    let probe = SelfTestProbe::new(&ctx.host)?;
    let paths = NixPaths::from_env();
    let m = opsnix::machines(&ctx.fs, &ctx.host, &paths, &SystemNix, &probe, req)?;
    emit(ctx, out, &m, Keys::Declared, |m, out| {
        for l in &m.lines {
            writeln!(out, "{l}")?;
        }
        for s in &m.skipped {
            eprintln!("binfmtctl: note: {} left out: {}", s.system, s.reason);
        }
        Ok(())
    })
}
