//! `interpreters` (`ops::interpreters`) as a table or JSON.

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use super::render::print_json;
use crate::ops;

pub(super) fn interpreters(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let stored = ctx.store().list();
    let r = ops::interpreters::interpreters(&ctx.fs, &ctx.host, &ctx.search(), &stored, names)?;
    if ctx.g.json {
        return print_json(out, &r);
    }
    // What really runs first: the registered entry's interpreter when there is one (labelled
    // [system] or [store VERSION]), else the one install would choose. Columns as wide as
    // their longest cell.
    let short = |v: Option<&str>| {
        v.and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_owned()
    };
    let mut rows: Vec<[String; 5]> = vec![[
        "ARCH".into(),
        "STATUS".into(),
        "INTERPRETER".into(),
        "VERSION".into(),
        "NOTES".into(),
    ]];
    for row in &r.interpreters {
        let chosen = match (&row.interpreter, &row.source) {
            (Some(p), Some(source)) => Some((
                format!("{} [{source}]", p.display()),
                short(row.version.as_deref()),
            )),
            _ => None,
        };
        let mut notes: Vec<String> = Vec::new();
        if row.native {
            notes.push("native on this host; never registered".into());
        }
        let (path, version) = match &row.registered {
            Some(reg) => {
                let shown = (
                    format!("{} [{}]", reg.interpreter.display(), reg.source),
                    short(reg.version.as_deref()),
                );
                notes.push(format!(
                    "registered as {}{}",
                    reg.entry,
                    if reg.enabled { "" } else { " (disabled)" }
                ));
                match &chosen {
                    Some(c) if c.0 != shown.0 => {
                        notes.push(format!("install would take {} {}", c.0, c.1));
                    }
                    None if !row.refusal.is_empty() => {
                        notes.push(format!("install would refuse: {}", row.refusal));
                    }
                    _ => {}
                }
                shown
            }
            None => {
                if !row.refusal.is_empty() {
                    notes.push(row.refusal.clone());
                }
                chosen.unwrap_or_else(|| ("-".into(), "-".into()))
            }
        };
        rows.push([
            row.arch.clone(),
            row.status.to_owned(),
            path,
            version,
            notes.join("; "),
        ]);
    }
    let width = |k: usize| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    for [a, st, path, version, notes] in &rows {
        writeln!(
            out,
            "{}",
            format!("{a:<w0$} {st:<w1$} {path:<w2$} {version:<w3$} {notes}").trim_end()
        )?;
    }
    Ok(())
}
