//! Rendering shared by the commands that change entries: a report (`ops::Report`) as text
//! lines with a summary, or as the `--json` report (docs/json.md); an entry as reports and
//! `status` show it. Warnings go to stderr.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::context::Ctx;
use crate::ops::facade::Verdict;
use crate::ops::{self, Outcome, Reported};

/// Shows a report (warnings on stderr), then returns the operation's failure, if any.
pub(super) fn show(ctx: &Ctx, out: &mut dyn Write, r: Reported) -> Result<()> {
    for w in &r.report.warnings {
        eprintln!("binfmtctl: warning: {w}");
    }
    emit_report(ctx, out, &r.report)?;
    match r.failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// One line of a report.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    action: Verdict,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<crate::ops::view::EntryView>,
}

impl Row {
    /// One line; `w_name`: the name column's width (at least 18, as wide as the longest name
    /// of the report so that long names such as qemu-microblaze-old stay aligned).
    fn human(&self, w_name: usize) -> String {
        let mut s = format!("{:<15} {:<w_name$}", self.action.as_str(), self.name);
        if let Some(i) = &self.interpreter {
            s += &format!(" {i}");
        }
        if let Some(f) = &self.flags {
            s += &format!(" flags={f}");
        }
        if let Some(v) = &self.version {
            s += &format!(" (QEMU {})", v.split_whitespace().next().unwrap_or(v));
        }
        if let Some(p) = &self.previous {
            s += &format!(" [was {} flags={}]", p.interpreter, p.flags);
        }
        if let Some(r) = &self.reason {
            // No column padding before the reason: "refused  qemu-x86_64: runs natively ...".
            s = format!("{}: {r}", s.trim_end());
        }
        s.trim_end().to_owned()
    }
}

/// One line of a report, as text and JSON show it.
fn row(ctx: &Ctx, o: &Outcome) -> Row {
    Row {
        action: o.verdict,
        name: o.name.clone(),
        arch: o.arch.clone(),
        interpreter: o.interpreter.clone(),
        version: o.version.clone(),
        flags: o.flags.map(|f| f.to_string()),
        reason: o.reason.clone(),
        previous: o
            .previous
            .as_ref()
            .map(|e| crate::ops::view::entry_view(ctx.table, &ctx.host.native_guard(), e)),
    }
}

pub(super) fn summary(rows: &[Row]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for r in rows {
        let n = m.entry(r.action.as_str()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    m
}

pub(super) fn emit_report(ctx: &Ctx, out: &mut dyn Write, report: &ops::Report) -> Result<()> {
    let rows: Vec<Row> = report.outcomes.iter().map(|o| row(ctx, o)).collect();
    if ctx.g.json {
        let v = json!({
            "dry_run": report.dry_run,
            "binfmt_misc": ctx.g.binfmt_misc,
            "results": rows,
            "overlaps": report.overlaps,
            "notes": report.notes,
            "summary": summary(&rows),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if !ctx.g.quiet {
        // Refused rows carry their reason right after the name; they do not widen the column.
        let w_name = rows
            .iter()
            .filter(|r| r.reason.is_none())
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(18);
        for r in &rows {
            writeln!(out, "{}", r.human(w_name))?;
        }
        for n in &report.notes {
            writeln!(out, "note: {n}")?;
        }
    }
    let s: Vec<String> = summary(&rows)
        .into_iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    if !ctx.g.quiet || report.refused() {
        writeln!(
            out,
            "summary: {}",
            if s.is_empty() {
                "nothing to do".into()
            } else {
                s.join(", ")
            }
        )?;
    }
    Ok(())
}

/// `arches`: the table with every name each arch answers to (text, JSON or Markdown).
pub(super) fn arches(ctx: &Ctx, markdown: bool, out: &mut dyn Write) -> Result<()> {
    if markdown {
        write!(out, "{}", crate::ops::facade::render_markdown(ctx.table))?;
        return Ok(());
    }
    if ctx.g.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"arches": ctx.table.arches}))?
        )?;
        return Ok(());
    }
    for a in &ctx.table.arches {
        let names = a.all_names();
        writeln!(out, "{:<13} {}", a.name, names[1..].join(" "))?;
    }
    Ok(())
}

/// Prints a report as its documented JSON: pretty, with each object's keys in alphabetical
/// order (serde_json's maps keep them so), as docs/json.md shows them.
pub(super) fn print_json(out: &mut dyn Write, report: &impl Serialize) -> Result<()> {
    let v = serde_json::to_value(report)?;
    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    Ok(())
}
