//! `binfmtctl qemu …`: the store of static QEMU versions (versions, fetch, list, use, verify,
//! gc), and the glue that lets `install --qemu` and `status` see it. Here the options become
//! `ops::qemu` requests (`--mirror`/`--keyring` over the config's `qemu_mirror`/`qemu_keyring`)
//! and its reports become text or JSON; `qemu use` is `ops::install::use_stored`.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::args::{NetOpts, QemuCommand};
use super::context::Ctx;
use super::render::show;
use crate::ops;
use crate::ops::facade::Store;
use crate::ops::qemu::{
    ArchiveOptions, FetchFrom, FetchReport, GcReport, ListReport, Verified, VerifyReport,
    VersionsReport,
};

/// The store `--qemu-store` names (`ops::stored::store`).
fn store_of(ctx: &Ctx) -> Store {
    ctx.store()
}

/// The archive options: the flags, completed by the config file's.
fn archive_options(ctx: &Ctx, net: &NetOpts) -> Result<ArchiveOptions> {
    let o = ArchiveOptions {
        mirror: net.mirror.clone(),
        keyring: net.keyring.clone(),
        suites: net.suite.clone(),
        timeout: net.timeout,
        cache: net.cache.clone(),
        allow_expired: net.allow_expired,
    };
    Ok(ops::stored::with_config(o, &ctx.g.config, ctx.table)?)
}

fn print_json(out: &mut dyn Write, v: &impl Serialize) -> Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

pub(super) fn qemu_cmd(ctx: &Ctx, cmd: &QemuCommand, out: &mut dyn Write) -> Result<()> {
    let store = store_of(ctx);
    match cmd {
        QemuCommand::Versions { net, .. } => {
            let r = ops::qemu::versions(
                &ctx.host,
                &store,
                &archive_options(ctx, net)?,
                ctx.progress(),
            )?;
            show_versions(ctx, &r, out)
        }
        QemuCommand::Fetch {
            spec,
            from_deb,
            net,
            ..
        } => {
            let o;
            let from = match from_deb {
                Some(deb) => FetchFrom::Deb(deb),
                None => {
                    o = archive_options(ctx, net)?;
                    FetchFrom::Archive(spec.as_deref().unwrap_or("latest"), &o)
                }
            };
            let r = ops::qemu::fetch(&ctx.host, &store, from, ctx.g.dry_run, ctx.progress())?;
            show_fetch(ctx, &r, out)
        }
        QemuCommand::List { .. } => {
            show_list(ctx, &ops::qemu::list(&ctx.fs, &ctx.host, &store), out)
        }
        QemuCommand::Use { version, .. } => use_version(ctx, version, out),
        QemuCommand::Verify => {
            let r = ops::qemu::verify(&store);
            show_verify(ctx, &r, out)?;
            match r.failure() {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        }
        QemuCommand::Gc { versions, .. } => {
            let r = ops::qemu::gc(&ctx.fs, &store, versions, ctx.g.dry_run)?;
            show_gc(ctx, &r, out)
        }
    }
}

fn show_versions(ctx: &Ctx, r: &VersionsReport, out: &mut dyn Write) -> Result<()> {
    if ctx.g.json {
        return print_json(out, r);
    }
    writeln!(
        out,
        "{:<20} {:<10} {:<18} DEBIAN VERSION",
        "SUITE", "QEMU", "PACKAGE"
    )?;
    for o in &r.archive {
        match o {
            ops::qemu::SuiteOffer::Offer(o) => writeln!(
                out,
                "{:<20} {:<10} {:<18} {}{}",
                o.suite,
                o.upstream,
                o.package,
                o.version,
                o.expired.as_ref().map_or_else(String::new, |e| format!(
                    "  (InRelease expired {}, allowed by {})",
                    e.valid_until, e.allowed_by
                ))
            )?,
            ops::qemu::SuiteOffer::Error { suite, error } => {
                writeln!(out, "{suite:<20} error: {error}")?;
            }
        }
    }
    if r.store.is_empty() {
        writeln!(out, "store: empty ({})", r.store_root.display())?;
    } else {
        writeln!(out, "store: {}", r.store.join(", "))?;
    }
    Ok(())
}

fn show_fetch(ctx: &Ctx, r: &FetchReport, out: &mut dyn Write) -> Result<()> {
    if ctx.g.json {
        return print_json(out, r);
    }
    let m = &r.manifest;
    let cpus: Vec<&str> = m.files.iter().map(|f| f.cpu.as_str()).collect();
    writeln!(
        out,
        "{} QEMU {} ({} {} from {}) in {}: {} interpreters ({})",
        r.action.as_str(),
        m.version,
        m.package,
        m.debian_version,
        m.suite,
        r.dir.display(),
        cpus.len(),
        cpus.join(" ")
    )?;
    writeln!(out, "origin: {}", m.origin)?;
    if let Some(e) = &m.expired {
        writeln!(
            out,
            "expired: the InRelease was past its Valid-Until ({}), allowed by {}",
            e.valid_until, e.allowed_by
        )?;
    }
    if r.action == ops::qemu::FetchAction::WouldStore {
        writeln!(out, "dry run: nothing was stored")?;
    }
    Ok(())
}

fn show_list(ctx: &Ctx, r: &ListReport, out: &mut dyn Write) -> Result<()> {
    if ctx.g.json {
        return print_json(out, r);
    }
    writeln!(out, "store: {}", r.store.display())?;
    if r.versions.is_empty() {
        writeln!(out, "no stored versions (binfmtctl qemu fetch VERSION)")?;
    } else {
        writeln!(
            out,
            "{:<26} {:<20} {:<17} {:<3} {:<16} USED BY",
            "VERSION", "SUITE", "PACKAGE", "#", "DEB SHA256"
        )?;
        for v in &r.versions {
            writeln!(
                out,
                "{:<26} {:<20} {:<17} {:<3} {:<16} {}",
                v.version,
                match (v.verified, &v.expired) {
                    (false, _) => format!("{} (unverified)", v.suite),
                    (true, Some(_)) => format!("{} (expired)", v.suite),
                    (true, None) => v.suite.clone(),
                },
                v.package,
                v.arches.len(),
                &v.deb_sha256[..v.deb_sha256.len().min(16)],
                if v.used_by.is_empty() {
                    "-".into()
                } else {
                    v.used_by.join(",")
                }
            )?;
        }
    }
    match &r.system {
        Some(s) => writeln!(
            out,
            "system: {} (QEMU {})",
            s.path.display(),
            s.version
                .as_deref()
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
        )?,
        None => writeln!(out, "system: no QEMU installed on the default path")?,
    }
    for v in r.versions.iter() {
        if let Some(e) = &v.expired {
            writeln!(
                out,
                "{}: verified by an InRelease past its Valid-Until ({}), allowed by {}",
                v.version, e.valid_until, e.allowed_by
            )?;
        }
    }
    Ok(())
}

/// Switches every registered qemu-* entry to `spec`'s interpreters: through install's checks
/// (resolved, checked interpreters; the native-capture guard), then one plan (replace each
/// entry, flags kept) applied with rollback: all or nothing.
/// `system` switches back to the system's QEMU (the default search path), the way back from a
/// stored version.
fn use_version(ctx: &Ctx, spec: &str, out: &mut dyn Write) -> Result<()> {
    let (_lock, stored) = if spec == "system" {
        (None, None)
    } else {
        let (lock, s) = ctx.resolve_stored(spec)?;
        (lock, Some(crate::ops::StoredBin::of(&s)))
    };
    let r = crate::ops::install::use_stored(
        &ctx.fs,
        &ctx.host,
        stored,
        spec,
        ctx.g.dry_run,
        &crate::ops::facade::probe_interpreter,
    )?;
    show(ctx, out, r)
}

fn show_verify(ctx: &Ctx, r: &VerifyReport, out: &mut dyn Write) -> Result<()> {
    if ctx.g.json {
        return print_json(out, r);
    }
    for v in &r.versions {
        match v {
            Verified::Version {
                version,
                problems,
                files,
                ..
            } => {
                if problems.is_empty() {
                    writeln!(out, "ok       {version} ({files} files match the manifest)")?;
                }
                for line in problems {
                    writeln!(out, "MISMATCH {version}: {line}")?;
                }
            }
            Verified::Broken { problems, .. } => {
                for e in problems {
                    writeln!(out, "MISMATCH {e}")?;
                }
            }
        }
    }
    if r.versions.is_empty() {
        writeln!(out, "the store {} holds no version", r.store_root.display())?;
    }
    Ok(())
}

fn show_gc(ctx: &Ctx, r: &GcReport, out: &mut dyn Write) -> Result<()> {
    if ctx.g.json {
        return print_json(out, r);
    }
    if r.gc.is_empty() {
        writeln!(out, "the store {} holds no version", r.store_root.display())?;
    }
    for row in &r.gc {
        let users = if row.used_by.is_empty() {
            String::new()
        } else {
            format!(" (in use by {})", row.used_by.join(", "))
        };
        writeln!(out, "{:<13} {}{users}", row.action.as_str(), row.version)?;
    }
    Ok(())
}
