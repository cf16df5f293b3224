//! `inspect`, `scan` and `test` (`ops::look`) as text. File names and other untrusted text
//! are escaped for the terminal.

use std::io::{Result, Write};

use super::column;
use crate::escape::escape as esc;
use crate::ops::facade::Status;
use crate::ops::look::{InspectReport, Inspected, ScanReport, TestReport, TestSummary};

impl InspectReport {
    /// Per file: its ELF facts, the kernel's choice, warnings; or why it was not inspected.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        for f in &self.files {
            match f {
                Inspected::Failed { path: p, error, .. } => {
                    writeln!(out, "{}: {}", esc(&p.display().to_string()), esc(error))?
                }
                Inspected::Ok {
                    path: p, report: r, ..
                } => {
                    writeln!(out, "{}", esc(&p.display().to_string()))?;
                    let names = match &r.arch {
                        Some(a) => {
                            let mut extra: Vec<String> = r.platform.iter().cloned().collect();
                            if !r.debian.is_empty() {
                                extra.push(format!("Debian {}", r.debian.join("/")));
                            }
                            format!("{a} ({})", extra.join("; "))
                        }
                        None => "no QEMU arch".into(),
                    };
                    writeln!(
                        out,
                        "  ELF {}-bit {}-endian {}, machine {} = {names}",
                        r.class, r.endian, r.e_type, r.machine
                    )?;
                    let mut line = vec![format!("OS ABI {}", r.os_abi)];
                    if !r.abi.is_empty() {
                        line.push(format!("ABI {}", r.abi.join(", ")));
                    }
                    line.push(match &r.interp {
                        None => "static".into(),
                        Some(i) => format!(
                            "dynamic, interpreter {}{}",
                            esc(i),
                            if r.interp_present == Some(false) {
                                " (missing here)"
                            } else {
                                ""
                            }
                        ),
                    });
                    if let Some(b) = &r.build_id {
                        line.push(format!("build id {b}"));
                    }
                    writeln!(out, "  {}", line.join("; "))?;
                    writeln!(out, "  kernel: {}", esc(&r.verdict.to_string()))?;
                    for w in &r.warnings {
                        writeln!(out, "  warning: {}", esc(&w.to_string()))?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl ScanReport {
    /// The counts, a table of the arches with their handlers now, the unknown machines, the
    /// unreadable files, and with `--files` every ELF file.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let s = self;
        writeln!(
            out,
            "{}: {} files, {} ELF, {} links/special files not opened ({:.2} s)",
            esc(&s.path.display().to_string()),
            s.files,
            s.elf_files,
            s.special_files,
            s.seconds
        )?;
        // Columns as wide as their longest cell (a NO HANDLER fix never runs into EXAMPLES).
        let hows: Vec<String> = s
            .arches
            .iter()
            .map(|c| {
                if c.native {
                    "native".to_owned()
                } else {
                    match &c.handler {
                        Some(h) => format!("emulated by {h}"),
                        None => format!(
                            "NO HANDLER: binfmtctl install {}",
                            c.platform.as_deref().unwrap_or(&c.arch)
                        ),
                    }
                }
            })
            .collect();
        let w_arch = column(s.arches.iter().map(|c| c.arch.len()), 4);
        let w_how = column(hows.iter().map(|h| h.chars().count()), 12);
        if !s.arches.is_empty() {
            writeln!(
                out,
                "{:<w_arch$} {:>7} {:>8}  {:<w_how$}  EXAMPLES",
                "ARCH", "FILES", "PROGRAMS", "ON THIS HOST"
            )?;
        }
        for (c, how) in s.arches.iter().zip(&hows) {
            writeln!(
                out,
                "{:<w_arch$} {:>7} {:>8}  {:<w_how$}  {}",
                c.arch,
                c.files,
                c.executables,
                how,
                esc(&c.examples.join(" "))
            )?;
        }
        for u in &s.unknown {
            writeln!(
                out,
                "ELF machine {} ({}-bit {:?}): {} files with no QEMU user-mode emulator, e.g. {}",
                u.machine,
                u.class,
                u.endian,
                u.files,
                esc(&u.examples.join(" "))
            )?;
        }
        if !s.errors.is_empty() {
            writeln!(
                out,
                "{} files could not be read, e.g. {}: {}",
                s.errors.len(),
                esc(&s.errors[0].path),
                esc(&s.errors[0].error)
            )?;
        }
        if let Some(elf) = &s.elf {
            for f in elf {
                writeln!(
                    out,
                    "{}\t{}",
                    f.arch.as_deref().unwrap_or("unknown"),
                    esc(&f.path)
                )?;
            }
        }
        Ok(())
    }
}

impl TestReport {
    /// One line per arch (with `quiet`, only those that did not pass), then the summary.
    pub fn write_text(&self, quiet: bool, out: &mut dyn Write) -> Result<()> {
        let TestSummary {
            pass,
            fail,
            skipped,
        } = self.summary;
        let r = self;
        for r in &r.results {
            if !(quiet && r.status == Status::Pass) {
                writeln!(out, "{}", r.human())?;
            }
        }
        let not_run = r
            .results
            .iter()
            .flat_map(|x| &x.checks)
            .filter(|c| c.ok.is_none())
            .count();
        if not_run == 0 {
            writeln!(out, "summary: {pass} pass, {fail} fail, {skipped} skipped")?;
        } else {
            writeln!(
                out,
                "summary: {pass} pass, {fail} fail, {skipped} skipped; {not_run} check(s) not run, so F (the empty chroot) is not proved: run as root, and --strict to fail when a check cannot run"
            )?;
        }
        Ok(())
    }
}
