//! `status`, `interpreters` (`ops::status`, `ops::interpreters`) and `arches` as text or JSON.

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use super::render::{Keys, emit, print_json};
use crate::ops;
use crate::ops::facade::NixPaths;

/// `status`; `json` whatever --json said (the --install/--uninstall forms print JSON).
pub(super) fn status(ctx: &Ctx, json: bool, out: &mut dyn Write) -> Result<()> {
    let stored = ctx.store().list();
    let nix = NixPaths::from_env();
    let r = ops::status::report(&ctx.fs, &ctx.host, &ctx.g.binfmt_misc, &stored, &nix)?;
    if json {
        return print_json(out, &r, Keys::Sorted);
    }
    Ok(r.write_text(out)?)
}

/// `interpreters`: each arch's interpreter, registered or as install would choose it.
pub(super) fn interpreters(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let stored = ctx.store().list();
    let r = ops::interpreters::interpreters(&ctx.fs, &ctx.host, &ctx.search(), &stored, names)?;
    emit(ctx, out, &r, Keys::Sorted, |r, out| r.write_text(out))
}

/// `arches`: the table with every name each arch answers to (text, JSON or Markdown).
pub(super) fn arches(ctx: &Ctx, markdown: bool, out: &mut dyn Write) -> Result<()> {
    if markdown {
        write!(out, "{}", crate::ops::facade::render_markdown(ctx.table))?;
        return Ok(());
    }
    let table = serde_json::json!({"arches": ctx.table.arches});
    emit(ctx, out, &table, Keys::Sorted, |_, out| {
        crate::text::status::write_arches(ctx.table, out)
    })
}
