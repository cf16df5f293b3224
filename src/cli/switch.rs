//! `enable` and `disable`: switch existing entries on and off, keeping them (`ops::switch`).

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use super::render::show;

pub(super) fn switch(
    ctx: &Ctx,
    targets: &[String],
    enable: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let r = crate::ops::switch::switch(&ctx.fs, &ctx.host, targets, enable, ctx.g.dry_run)?;
    show(ctx, out, r)
}
