//! `doctor`'s report (`ops::doctor`) as text: each finding with its fix, the summary.
//! Untrusted text (file names, messages quoting files) is escaped for the terminal.

use std::io::{Result, Write};

use crate::escape::escape as esc;
use crate::ops::doctor::DoctorReport;
use crate::ops::facade::{Finding, Severity};

/// A finding's severity as its line names it.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// One finding, `extra` after its code; its fix on the next line.
fn finding(f: &Finding, extra: &str, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "  {:<8}{}{extra}: {}",
        severity(f.severity),
        f.code,
        esc(&f.message)
    )?;
    if let Some(fix) = &f.fix {
        writeln!(out, "          fix: {}", esc(fix))?;
    }
    Ok(())
}

impl DoctorReport {
    /// The machine's findings, each file's, the rootfs's (grouped, with a count and
    /// examples), then the counts of errors and warnings.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let r = self;
        writeln!(out, "machine:")?;
        if r.machine.is_empty() {
            writeln!(
                out,
                "  ok      binfmt_misc is usable and no entry misbehaves"
            )?;
        }
        for f in &r.machine {
            let extra = match f.subject.as_str() {
                "machine" => String::new(),
                s => format!(" ({})", esc(s)),
            };
            finding(f, &extra, out)?;
        }
        for file in &r.files {
            writeln!(out, "{}:", esc(&file.path))?;
            for f in &file.findings {
                finding(f, "", out)?;
            }
        }
        if let Some(root) = &r.rootfs {
            writeln!(
                out,
                "rootfs {} ({} files, {} ELF):",
                esc(&root.path),
                root.files,
                root.elf
            )?;
            for g in &root.findings {
                let more = if g.count > g.examples.len() {
                    ", ..."
                } else {
                    ""
                };
                let extra = format!(
                    " [{} file{}: {}{more}]",
                    g.count,
                    if g.count == 1 { "" } else { "s" },
                    g.examples
                        .iter()
                        .map(|e| esc(e))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                finding(&g.finding, &extra, out)?;
            }
        }
        let all = r
            .machine
            .iter()
            .chain(r.files.iter().flat_map(|f| &f.findings))
            .chain(
                r.rootfs
                    .iter()
                    .flat_map(|x| x.findings.iter().map(|g| &g.finding)),
            );
        let (mut e, mut w) = (0, 0);
        for f in all {
            match f.severity {
                Severity::Error => e += 1,
                Severity::Warning => w += 1,
                Severity::Note => {}
            }
        }
        writeln!(
            out,
            "summary: {e} error{}, {w} warning{}{}",
            if e == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" },
            if r.ok {
                ""
            } else {
                ": something asked about will not run"
            }
        )?;
        Ok(())
    }
}
