//! `binfmtctl doctor [FILE...] [--rootfs DIR]`: the report of `ops::doctor` as text or JSON.
//! Exit status 0 when everything asked about will run, 1 when something will not
//! (`Reported`), 2/3 as elsewhere.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::context::Ctx;
use crate::error::Reported;
use crate::escape::escape as esc;
use crate::ops::doctor::{DoctorReport, DoctorRequest};
use crate::ops::facade::{Finding, NixPaths, Severity};

pub(super) fn run(
    ctx: &Ctx,
    files: &[PathBuf],
    rootfs: Option<&PathBuf>,
    out: &mut dyn Write,
) -> Result<()> {
    let req = DoctorRequest {
        files: files.to_vec(),
        rootfs: rootfs.cloned(),
        system_root: PathBuf::from("/"),
        store: ctx
            .g
            .qemu_store
            .clone()
            .unwrap_or_else(|| crate::ops::facade::STORE_ROOT.into()),
        nix_platforms: nix_platforms(),
    };
    let report = crate::ops::doctor::doctor(&ctx.fs, &ctx.host, &req, &*ctx.progress())?;
    if ctx.g.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        render(&report, out)?;
    }
    if report.ok {
        Ok(())
    } else {
        Err(Reported.into())
    }
}

/// The platforms Nix claims (its `system` and `extra-platforms`), when a Nix is installed and
/// its configuration can be read (`NIX_CONF_DIR`, else /etc/nix); otherwise nothing to compare.
fn nix_platforms() -> Option<Vec<String>> {
    use crate::ops::nix::NixTool;
    let nix = crate::ops::nix::SystemNix;
    nix.program().ok()?;
    let view = nix.show_config(&NixPaths::from_env().dir).ok()?;
    let mut p = vec![view.system];
    p.extend(view.extra_platforms);
    Some(p)
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

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

fn render(r: &DoctorReport, out: &mut dyn Write) -> Result<()> {
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
