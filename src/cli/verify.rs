//! Commands that look without changing anything: inspect, scan, test.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::context::Ctx;
use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::KernelEntry;
use crate::input::escape as esc;

/// The kernel's entries (newest first) and whether binfmt_misc as a whole is enabled; empty and
/// false when it is not mounted.
pub(super) fn kernel_view(ctx: &Ctx) -> Result<(Vec<KernelEntry>, bool)> {
    Ok(crate::binfmt::kernel::view(&ctx.fs)?)
}

pub(super) fn inspect(ctx: &Ctx, files: &[PathBuf], out: &mut dyn Write) -> Result<()> {
    use crate::inspection::inspect::{path_exists, report};
    use std::os::unix::fs::FileExt;
    let (entries, enabled) = kernel_view(ctx)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for path in files {
        let one = || -> std::result::Result<crate::inspection::inspect::Report, String> {
            // A regular file only: a FIFO or device would block or never end.
            let file = crate::input::open_regular(path).map_err(|e| match e {
                crate::input::InputError::Missing { .. } => "cannot open: no such file".into(),
                crate::input::InputError::Open { cause, .. } => format!("cannot open: {cause}"),
                crate::input::InputError::NotRegular { kind, .. } => {
                    format!("{kind}, not a regular file")
                }
                other => other.to_string(),
            })?;
            let mut header = vec![0u8; crate::binfmt::registration::BINPRM_BUF_SIZE];
            let n = file
                .read_at(&mut header, 0)
                .map_err(|e| format!("cannot read: {e}"))?;
            header.truncate(n);
            let facts = crate::inspection::elf::inspect_file(&file).map_err(|e| match e {
                crate::inspection::elf::ElfError::NotElf => {
                    let start: String = String::from_utf8_lossy(&header[..n.min(16)])
                        .chars()
                        .map(|c| if c.is_control() { '.' } else { c })
                        .collect();
                    format!("not an ELF file (starts with {start:?})")
                }
                other => other.to_string(),
            })?;
            let machine = crate::inspection::inspect::Machine {
                table: ctx.table,
                native: &ctx.host.native,
                entries: &entries,
                binfmt_enabled: enabled,
                interp_exists: &path_exists,
            };
            Ok(report(&machine, &path.to_string_lossy(), &header, &facts))
        };
        match one() {
            Ok(r) => results.push((path, Ok(r))),
            Err(e) => {
                failed += 1;
                results.push((path, Err(e)))
            }
        }
    }
    if ctx.g.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(p, r)| match r {
                Ok(r) => {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["path"] = json!(p);
                    v["ok"] = json!(true);
                    v
                }
                Err(e) => json!({"path": p, "ok": false, "error": e}),
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"files": v}))?
        )?;
    } else {
        for (p, r) in &results {
            match r {
                Err(e) => writeln!(out, "{}: {}", esc(&p.display().to_string()), esc(e))?,
                Ok(r) => {
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
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be inspected", files.len());
    }
    Ok(())
}

pub(super) fn scan(
    ctx: &Ctx,
    path: &std::path::Path,
    list: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let (entries, enabled) = kernel_view(ctx)?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let started = std::time::Instant::now();
    // Unreadable or malformed input, a corrupt archive included: exit 2 (ScanError says so).
    let s = crate::inspection::scan::scan(ctx.table, path, threads)?;
    let elapsed = started.elapsed();
    let native: Vec<String> = ctx.host.native.iter().map(|n| n.arch.clone()).collect();
    // The handler the kernel would pick for an executable of this arch: asked with our probe's
    // header, which is what such executables look like to binfmt_misc.
    let handler_of = |arch: &str| {
        let a = ctx.table.get(arch)?;
        let header = crate::inspection::probe::representative_header(a);
        crate::inspection::inspect::kernel_choice(&entries, enabled, &header, "/x")
            .map(|k| k.entry.registration.name.clone())
    };
    let (counts, unknown) = crate::inspection::scan::summarize(&s, ctx.table, &native, &handler_of);
    if ctx.g.json {
        let mut v = json!({
            "path": path,
            "files": s.files,
            "elf_files": s.elf.len(),
            "special_files": s.special,
            "arches": counts,
            "unknown": unknown,
            "errors": s.errors.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            "seconds": elapsed.as_secs_f64(),
        });
        if list {
            v["elf"] = json!(s.elf);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} files, {} ELF, {} links/special files not opened ({:.2} s)",
        esc(&path.display().to_string()),
        s.files,
        s.elf.len(),
        s.special,
        elapsed.as_secs_f64()
    )?;
    if !counts.is_empty() {
        writeln!(
            out,
            "{:<13} {:>7} {:>7}  {:<28} EXAMPLES",
            "ARCH", "FILES", "PROGRAMS", "ON THIS HOST"
        )?;
    }
    for c in &counts {
        let how = if c.native {
            "native".to_owned()
        } else {
            match &c.handler {
                Some(h) => format!("emulated by {h}"),
                None => format!(
                    "NO HANDLER: binfmtctl install {}",
                    c.platform.as_deref().unwrap_or(&c.arch)
                ),
            }
        };
        writeln!(
            out,
            "{:<13} {:>7} {:>7}  {:<28} {}",
            c.arch,
            c.files,
            c.executables,
            how,
            esc(&c.examples.join(" "))
        )?;
    }
    for u in &unknown {
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
            esc(&s.errors[0].0),
            esc(&s.errors[0].1)
        )?;
    }
    if list {
        for f in &s.elf {
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

pub(super) fn selftest(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    use crate::inspection::selftest::{ArchResult, Env, Status, Workdir, test_arch};
    let (entries, enabled) = kernel_view(ctx)?;
    let targets: Vec<(&Arch, bool)> = if names.is_empty() {
        let mut v: Vec<(&Arch, bool)> = Vec::new();
        for a in &ctx.table.arches {
            if entries
                .iter()
                .any(|k| k.entry.registration.name == a.entry_name())
            {
                v.push((a, true));
            }
        }
        if v.is_empty() {
            anyhow::bail!(
                "no qemu-* handler is registered, so nothing was tested: run `binfmtctl install ARCHES` first, or `binfmtctl test all`"
            );
        }
        v
    } else {
        let (all, arches) = ctx.host.resolve_list(names)?;
        arches.into_iter().map(|a| (a, !all)).collect()
    };
    let work = Workdir::new().context("cannot create a directory for the probes")?;
    let self_exe = std::env::current_exe().context("cannot find binfmtctl's own executable")?;
    let env = Env {
        entries: &entries,
        binfmt_enabled: enabled,
        host_machine: &ctx.host.facts.machine,
        self_exe: &self_exe,
        work: &work,
    };
    let results: Vec<ArchResult> = targets
        .iter()
        .map(|(a, explicit)| test_arch(a, ctx.is_native(&a.name).is_some(), *explicit, &env))
        .collect();
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (pass, fail, skip) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skipped),
    );
    if ctx.g.json {
        let v = json!({
            "results": results,
            "summary": {"pass": pass, "fail": fail, "skipped": skip},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for r in &results {
            if !(ctx.g.quiet && r.status == Status::Pass) {
                writeln!(out, "{}", r.human())?;
            }
        }
        writeln!(out, "summary: {pass} pass, {fail} fail, {skip} skipped")?;
    }
    if fail > 0 {
        anyhow::bail!("emulation test failed for {fail} arch(es)");
    }
    Ok(())
}
