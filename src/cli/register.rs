//! Commands that register and remove entries, and report them: install, uninstall, apply,
//! export, import, status, interpreters. The work is in `crate::ops`; here the options become
//! its requests and its reports become text or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::args::InstallOpts;
use super::context::Ctx;
use super::render::show;
use super::settings::flags_from;
use crate::binfmt::registration::Entry;
use crate::error::BadInput;
use crate::ops;
use crate::ops::view::entry_view;

pub(super) fn install(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let o = ops::install::InstallOptions {
        flags: flags_from(opts)?,
        keep_existing: opts.keep_existing,
        dry_run: ctx.g.dry_run,
    };
    let r = ops::install::install(&ctx.fs, &ctx.host, &ctx.search(), names, o)?;
    show(ctx, out, r)
}

pub(super) fn install_cmd(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    // --persist: the config is read, checked and its new content written to a temporary file
    // (under a lock) before the first kernel write; it is renamed into place only after
    // install succeeded.
    if opts.nix {
        // Nothing is registered when Nix's side cannot follow.
        super::nix::precheck()?;
    }
    let pending = if opts.persist && !ctx.g.dry_run {
        // Names first, so an unknown arch is reported as such, not as a config error.
        ctx.host.resolve_list(names)?;
        let store = super::qemu::store_of(ctx).root;
        if opts.qemu.is_some() && store.as_os_str() != crate::qemu::store::DEFAULT_ROOT {
            // The config records the version only; the boot unit runs a plain `apply`.
            tracing::warn!(
                "--persist records qemu = VERSION but not --qemu-store {}: `apply` at boot looks in {}, so fetch the version there too (`binfmtctl qemu fetch VERSION`) or run the unit's apply with --qemu-store",
                store.display(),
                crate::qemu::store::DEFAULT_ROOT
            );
        }
        let flags = flags_from(opts)?;
        let qemu_path = if ctx.g.qemu_path.is_empty() {
            Vec::new()
        } else {
            ctx.search_dirs()
        };
        let req = crate::config::PersistRequest {
            arches: names,
            flags,
            qemu_path: &qemu_path,
            keep_existing: opts.keep_existing,
            qemu: ctx
                .qemu_bin
                .as_ref()
                .zip(opts.qemu.as_deref())
                .map(|(b, spec)| crate::config::PersistQemu {
                    version: &b.version,
                    spec,
                }),
        };
        Some(
            crate::config::prepare_persist(&ctx.g.config, &req, ctx.table)
                .map_err(|source| ops::OpsError::ConfigUnchanged { source })?,
        )
    } else {
        None
    };
    install(ctx, names, opts, out)?;
    if opts.nix {
        let arches: Vec<String> = ctx
            .host
            .resolve_list(names)?
            .1
            .iter()
            .map(|a| a.name.clone())
            .collect();
        super::nix::sync(ctx, &arches, out)?;
    }
    if let Some(p) = pending {
        let changes = p.changes();
        p.commit().context(
            "the entries were registered, but the config file was not updated: run the same command again",
        )?;
        if changes {
            writeln!(
                out,
                "note: added {} to {}",
                names.join(", "),
                ctx.g.config.display()
            )?;
        } else {
            writeln!(
                out,
                "note: {} already has {}",
                ctx.g.config.display(),
                names.join(", ")
            )?;
        }
    }
    Ok(())
}

/// `apply`: reconcile the kernel to the config file; `--remove`: remove what it declares.
pub(super) fn apply(ctx: &Ctx, remove: bool, out: &mut dyn Write) -> Result<()> {
    let cfg = crate::config::load(&ctx.g.config, ctx.table)?;
    if remove {
        let r = ops::apply::remove(&ctx.fs, &ctx.host, &cfg, ctx.g.dry_run)?;
        show(ctx, out, r)?;
        return super::nix::sync(ctx, &[], out);
    }
    // The config's stored version is resolved with the store's shared lock held through
    // the kernel write (as install --qemu does), so gc cannot remove it in between.
    let mut _lock = None;
    let mut given = ctx.search();
    if given.qemu_bin.is_none()
        && let Some(v) = &cfg.qemu
    {
        let (lock, s) = super::qemu::resolve_stored(ctx, v)?;
        _lock = lock;
        given.qemu_bin = Some(ops::StoredBin::of(&s));
    }
    let search = ops::apply::search_for(&cfg, &given);
    if cfg.nix {
        super::nix::precheck()?;
    }
    let (r, arches) = ops::apply::apply(&ctx.fs, &ctx.host, &search, &cfg, ctx.g.dry_run)?;
    show(ctx, out, r)?;
    if cfg.nix {
        super::nix::sync(ctx, &arches, out)?;
    }
    Ok(())
}

pub(super) fn export(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    format: &str,
    dir: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let desired = ops::export::registrations(&ctx.host, &ctx.search(), names, flags_from(opts)?)?;
    let files: Vec<(String, String)> = match format {
        "binfmt.d" => ops::export::files(&desired, ops::export::Format::BinfmtD)?,
        "update-binfmts" => ops::export::files(&desired, ops::export::Format::UpdateBinfmts)?,
        "json" => {
            let v: Vec<serde_json::Value> = desired
                .iter()
                .map(|d| {
                    let e = Entry {
                        registration: d.registration.clone(),
                        enabled: true,
                    };
                    let mut j =
                        serde_json::to_value(entry_view(ctx.table, &ctx.host.native_guard(), &e))
                            .unwrap_or_default();
                    j["record"] = json!(d.registration.to_record().unwrap_or_default());
                    j
                })
                .collect();
            vec![(
                "binfmtctl.json".into(),
                serde_json::to_string_pretty(&json!({"registrations": v}))? + "\n",
            )]
        }
        other => {
            return Err(BadInput(format!(
                "unknown format {other:?}: use binfmt.d, update-binfmts or json"
            ))
            .into());
        }
    };
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            for (name, text) in &files {
                write_new_file(d, name, text)?;
                writeln!(out, "wrote {}", d.join(name).display())?;
            }
        }
        None => {
            for (_, text) in &files {
                write!(out, "{text}")?;
            }
        }
    }
    Ok(())
}

/// Writes `name` in `dir` without following any symlink: the content goes to a temporary file
/// created with O_CREAT|O_EXCL|O_NOFOLLOW next to it, is synced, and is renamed over `name` (a
/// symlink or file there is replaced, never written through).
fn write_new_file(dir: &std::path::Path, name: &str, text: &str) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, openat, renameat, unlinkat};
    let path = dir.join(name);
    let ctx = || format!("cannot write {}", path.display());
    let dfd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(ctx)?;
    let tmp = format!(".{name}.tmp.{}", std::process::id());
    let _ = unlinkat(&dfd, tmp.as_str(), AtFlags::empty());
    let fd = openat(
        &dfd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(std::io::Error::from)
    .with_context(ctx)?;
    let mut f = std::fs::File::from(fd);
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            renameat(&dfd, tmp.as_str(), &dfd, name)
                .map_err(|e| anyhow::Error::from(std::io::Error::from(e)))
        });
    if written.is_err() {
        let _ = unlinkat(&dfd, tmp.as_str(), AtFlags::empty());
    }
    written.with_context(ctx)
}

pub(super) fn import(
    ctx: &Ctx,
    paths: &[PathBuf],
    register: bool,
    opts: ops::import::ImportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let mut imported = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            crate::binfmt::interop::conf_files(p)
                .with_context(|| format!("reading {}", p.display()))?
        } else {
            vec![p.clone()]
        };
        for f in files {
            // A regular file of at most 1 MiB (a FIFO or /dev/zero is refused, not read).
            let text = crate::input::read_text(&f, crate::input::MAX_TEXT)?;
            imported.extend(crate::binfmt::interop::parse_binfmt_d(&f, &text)?);
        }
    }
    if !register {
        if ctx.g.json {
            let v: Vec<serde_json::Value> = imported
                .iter()
                .map(|i| {
                    let e = Entry {
                        registration: i.registration.clone(),
                        enabled: true,
                    };
                    let mut j =
                        serde_json::to_value(entry_view(ctx.table, &ctx.host.native_guard(), &e))
                            .unwrap_or_default();
                    j["file"] = json!(i.path);
                    j["line"] = json!(i.line);
                    j
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json!({"registrations": v}))?
            )?;
        } else {
            for i in &imported {
                let e = Entry {
                    registration: i.registration.clone(),
                    enabled: true,
                };
                let j = entry_view(ctx.table, &ctx.host.native_guard(), &e);
                let table = match j.matches_table {
                    Some(true) => "matches our table",
                    Some(false) => "DIFFERS from our table",
                    None => "not ours",
                };
                writeln!(
                    out,
                    "{}:{}: {} arch={} flags={} {} ({table}){}",
                    i.path.display(),
                    i.line,
                    j.name,
                    j.arch,
                    j.flags,
                    j.interpreter,
                    if j.captures_native {
                        " WARNING: captures this host's own binaries"
                    } else {
                        ""
                    }
                )?;
            }
        }
        return Ok(());
    }
    let r = ops::import::register(&ctx.fs, &ctx.host, &imported, opts)?;
    show(ctx, out, r)
}

/// `uninstall`, then Nix kept in step (it forgets the arches no longer registered).
pub(super) fn uninstall(
    ctx: &Ctx,
    targets: &[std::ffi::OsString],
    out: &mut dyn Write,
) -> Result<()> {
    let r = ops::uninstall::uninstall(&ctx.fs, &ctx.host, targets, ctx.g.dry_run)?;
    show(ctx, out, r)?;
    super::nix::sync(ctx, &[], out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;
    use crate::binfmt::kernel::KernelEntry;
    use crate::binfmt::registration::{Flags, Matcher};
    use crate::binfmt::registration::{Registration, display_name};
    use crate::ops::uninstall::select_for_uninstall;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn k(name: &[u8]) -> KernelEntry {
        let reg = Registration {
            name: display_name(name),
            matcher: Matcher::Extension("x".into()),
            interpreter: "/usr/bin/x".into(),
            flags: Flags::default(),
        };
        KernelEntry {
            name: name.to_vec(),
            entry: Entry {
                registration: reg,
                enabled: true,
            },
            age: 0,
        }
    }

    fn sel(targets: &[&[u8]], current: &[KernelEntry]) -> Result<Vec<Vec<u8>>, String> {
        let t: Vec<OsString> = targets
            .iter()
            .map(|t| OsString::from_vec(t.to_vec()))
            .collect();
        select_for_uninstall(Table::builtin(), &t, current)
            .map(|(w, _)| w)
            .map_err(|e| e.to_string())
    }

    /// `all` and globs take only managed (qemu-*) entries, by their exact bytes; exact names,
    /// raw or as printed, take anyone's entry; empty targets are refused.
    #[test]
    fn uninstall_selection_is_by_bytes_and_globs_only_take_managed_entries() {
        let cur = [
            k(b"qemu-aarch64"),
            k(b"qemu-odd \xffx"),
            k(b"other tool \xff"),
            k(b"foo bar"),
            k(b"jar"),
        ];
        let managed: Vec<Vec<u8>> = vec![b"qemu-aarch64".to_vec(), b"qemu-odd \xffx".to_vec()];
        assert_eq!(sel(&[b"all"], &cur).unwrap(), managed);
        assert_eq!(sel(&[b"ALL"], &cur).unwrap(), managed);
        assert_eq!(sel(&[b"*"], &cur).unwrap(), managed);
        assert_eq!(sel(&[b"qemu-*"], &cur).unwrap(), managed);
        assert!(sel(&[b"j*"], &cur).unwrap().is_empty(), "jar is not ours");
        assert_eq!(
            sel(&[b"other tool \xff", b"foo bar"], &cur).unwrap(),
            [b"other tool \xff".to_vec(), b"foo bar".to_vec()]
        );
        assert_eq!(
            sel(&[br"other tool \xff"], &cur).unwrap(),
            [b"other tool \xff".to_vec()],
            "the printed form names it too"
        );
        assert_eq!(sel(&[b"arm64"], &cur).unwrap(), [b"qemu-aarch64".to_vec()]);
        let e = sel(&[b""], &cur).unwrap_err();
        assert!(e.contains("an empty target names nothing"), "{e}");
        assert!(sel(&[b"  "], &cur).is_err());
        let e = sel(&[b"nope \xff"], &cur).unwrap_err();
        assert!(e.contains(r"no entry is named nope \xff"), "{e}");
    }
}
