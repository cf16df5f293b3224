//! `interpreters` (`ops::interpreters`) as a table or JSON.

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use super::render::print_json;
use crate::ops;

pub(super) fn interpreters(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let stored = ctx.store().list();
    let r = ops::interpreters::interpreters(&ctx.host, &ctx.search(), &stored, names)?;
    if ctx.g.json {
        return print_json(out, &r);
    }
    writeln!(
        out,
        "{:<13} {:<8} {:<36} {:<8} NOTES",
        "ARCH", "STATUS", "INTERPRETER", "VERSION"
    )?;
    for row in &r.interpreters {
        let (path, version) = match (&row.interpreter, &row.source) {
            (Some(p), Some(source)) => (
                format!("{} [{source}]", p.display()),
                row.version
                    .as_deref()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("?")
                    .to_owned(),
            ),
            _ => ("-".into(), "-".into()),
        };
        let notes = match (row.native, row.refusal.as_str()) {
            (true, "") => "native on this host; never registered".to_owned(),
            (true, why) => format!("native on this host; never registered; {why}"),
            (false, why) => why.to_owned(),
        };
        writeln!(
            out,
            "{:<13} {:<8} {:<36} {:<8} {}",
            row.arch, row.status, path, version, notes
        )?;
    }
    Ok(())
}
