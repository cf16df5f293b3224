//! A changing command's report (`ops::Report`: install, uninstall, enable, disable, apply,
//! import --register, qemu use) as text lines with a summary, and as the `--json` report
//! (docs/json.md).

use std::io::{Result, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::column;
use crate::ops::facade::Verdict;
use crate::ops::view::{EntryView, entry_view};
use crate::ops::{Host, Outcome, Report};

/// A report as text and JSON show it (its JSON is this, with keys in alphabetical order).
#[derive(Debug, Serialize)]
pub struct ReportView<'a> {
    dry_run: bool,
    binfmt_misc: &'a Path,
    results: Vec<Row>,
    overlaps: &'a [crate::ops::facade::Overlap],
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
            let named = self.results.iter().filter(|r| r.reason.is_none());
            let w_name = column(named.map(|r| r.name.chars().count()), 18);
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::ReportView;
    use crate::ops::facade::{Flags, Table, Verdict};
    use crate::ops::{Host, Outcome, Report};

    /// Two registered (one with a long name), one refused, and a note.
    fn report() -> Report {
        let registered = |name: &str| Outcome {
            interpreter: Some("/usr/bin/qemu-aarch64-static".into()),
            flags: Some(Flags::DEFAULT),
            version: Some("7.2.22 (Debian 1:7.2+dfsg-7)".into()),
            ..Outcome::new(Verdict::Registered, name.into(), Some("aarch64"))
        };
        let refused = Outcome {
            reason: Some("runs natively on this host".into()),
            ..Outcome::new(Verdict::Refused, "qemu-x86_64-and-a-long-name".into(), None)
        };
        Report {
            outcomes: vec![
                registered("qemu-aarch64"),
                registered("qemu-microblaze-old-x"),
                refused,
            ],
            notes: vec!["a note".into()],
            ..Report::default()
        }
    }

    fn text(r: &Report, quiet: bool) -> String {
        let host = Host::gather(Table::builtin());
        let mut out = Vec::new();
        let view = ReportView::new(r, &host, Path::new("/bm"));
        view.write_text(quiet, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The name column is as wide as the longest name that is not refused (at least 18); a
    /// refused row carries its reason right after the name; the summary counts each action, in
    /// alphabetical order.
    #[test]
    fn rows_are_aligned_and_summarized() {
        let r = report();
        let flags = Flags::DEFAULT.to_string();
        assert_eq!(
            text(&r, false),
            format!(
                "registered      qemu-aarch64          /usr/bin/qemu-aarch64-static flags={flags} (QEMU 7.2.22)\n\
                 registered      qemu-microblaze-old-x /usr/bin/qemu-aarch64-static flags={flags} (QEMU 7.2.22)\n\
                 refused         qemu-x86_64-and-a-long-name: runs natively on this host\n\
                 note: a note\n\
                 summary: 1 refused, 2 registered\n"
            )
        );
        // -q: only the summary, and only because something was refused.
        assert_eq!(text(&r, true), "summary: 1 refused, 2 registered\n");
        let done = Report {
            outcomes: r.outcomes[..1].to_vec(),
            ..Report::default()
        };
        assert_eq!(text(&done, true), "");
        assert_eq!(text(&Report::default(), false), "summary: nothing to do\n");
    }

    /// The JSON view: the instance, the rows, and the same counts as the text's summary.
    #[test]
    fn json_has_the_rows_and_the_counts() {
        let r = report();
        let host = Host::gather(Table::builtin());
        let view = ReportView::new(&r, &host, Path::new("/bm"));
        let v = serde_json::to_value(&view).unwrap();
        assert_eq!(v["binfmt_misc"], "/bm");
        assert_eq!(v["dry_run"], false);
        assert_eq!(v["results"].as_array().unwrap().len(), 3);
        assert_eq!(v["results"][2]["action"], "refused");
        assert!(v["results"][2].get("interpreter").is_none(), "{v}");
        assert_eq!(
            v["summary"],
            serde_json::json!({"registered": 2, "refused": 1})
        );
        assert_eq!(v["notes"], serde_json::json!(["a note"]));
        assert!(v.get("refused").is_none(), "not part of the JSON: {v}");
    }
}
