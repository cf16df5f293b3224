//! A changing command's report (`ops::Report`: install, uninstall, enable, disable, apply,
//! import --register, qemu use) as text lines with a summary, and as the `--json` report
//! (docs/json.md).

use std::io::{Result, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::binfmt::plan::Verdict;
use crate::ops::view::{EntryView, entry_view};
use crate::ops::{Host, Outcome, Report};

/// A report as text and JSON show it (its JSON is this, with keys in alphabetical order).
#[derive(Debug, Serialize)]
pub struct ReportView<'a> {
    dry_run: bool,
    binfmt_misc: &'a Path,
    results: Vec<Row>,
    overlaps: &'a [crate::binfmt::plan::Overlap],
    notes: &'a [String],
    summary: serde_json::Map<String, serde_json::Value>,
    /// Whether an entry was refused (the summary is shown then even with `-q`).
    #[serde(skip)]
    refused: bool,
}

impl<'a> ReportView<'a> {
    /// `report` of the instance at `binfmt_misc`, its replaced entries as `host` sees them.
    pub fn new(report: &'a Report, host: &Host, binfmt_misc: &'a Path) -> ReportView<'a> {
        let results: Vec<Row> = report.outcomes.iter().map(|o| row(host, o)).collect();
        ReportView {
            dry_run: report.dry_run,
            binfmt_misc,
            summary: summary(&results),
            results,
            overlaps: &report.overlaps,
            notes: &report.notes,
            refused: report.refused(),
        }
    }

    /// The rows and notes (unless `quiet`), then the summary (with `quiet`, only when an
    /// entry was refused).
    pub fn write_text(&self, quiet: bool, out: &mut dyn Write) -> Result<()> {
        if !quiet {
            // Refused rows carry their reason right after the name; they do not widen the column.
            let w_name = self
                .results
                .iter()
                .filter(|r| r.reason.is_none())
                .map(|r| r.name.chars().count())
                .max()
                .unwrap_or(0)
                .max(18);
            for r in &self.results {
                writeln!(out, "{}", r.human(w_name))?;
            }
            for n in self.notes {
                writeln!(out, "note: {n}")?;
            }
        }
        let s: Vec<String> = self
            .summary
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        if !quiet || self.refused {
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
}

/// One line of a report.
#[derive(Debug, Serialize)]
struct Row {
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
    previous: Option<EntryView>,
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
fn row(host: &Host, o: &Outcome) -> Row {
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
            .map(|e| entry_view(host.table, &host.native_guard(), e)),
    }
}

/// How many rows of each action.
fn summary(rows: &[Row]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for r in rows {
        let n = m.entry(r.action.as_str()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    m
}
