//! Commands that register and remove entries, and report them: install, uninstall, apply,
//! export, import, status, interpreters. The work is in `crate::ops`; here the options become
//! its requests and its reports become text or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::args::InstallOpts;
use super::context::Ctx;
use super::qemu::{source_of, store_of};
use super::render::{EntryJson, entry_json, show};
use super::settings::flags_from;
use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::KernelEntry;
use crate::binfmt::registration::Entry;
use crate::error::BadInput;
use crate::host::NativeArch;
use crate::ops;
use crate::qemu::interpreter::{self, Discovery};

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
                        serde_json::to_value(entry_json(ctx.table, &ctx.host.native_guard(), &e))
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
                        serde_json::to_value(entry_json(ctx.table, &ctx.host.native_guard(), &e))
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
                let j = entry_json(ctx.table, &ctx.host.native_guard(), &e);
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

/// `status`; `json` whatever --json said (the --install/--uninstall forms print JSON).
pub(super) fn status(ctx: &Ctx, json: bool, out: &mut dyn Write) -> Result<()> {
    let st = ops::status::status(&ctx.fs, &ctx.host)?;
    let (mounted, enabled, supported) = (st.mounted, st.enabled, &st.supported);
    let guard = ctx.host.native_guard();
    let stored = store_of(ctx).list();
    let json_entries: Vec<EntryJson> = st
        .entries
        .iter()
        .map(|s| {
            let mut e = entry_json(ctx.table, &guard, &s.kernel.entry);
            e.source = Some(source_of(&stored, &e.interpreter));
            e
        })
        .collect();
    let emulators: Vec<&str> = json_entries
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    // Only when binfmtctl told Nix about handlers (`install --nix`): do both still agree?
    let entries: Vec<KernelEntry> = st.entries.iter().map(|s| s.kernel.clone()).collect();
    let nix_warnings = super::nix::status_hints(ctx, &entries);
    if json {
        let mut v = json!({
            "supported": supported,
            "emulators": emulators,
            "entries": json_entries,
            "native": ctx.host.native,
            "binfmt_misc": {"path": ctx.g.binfmt_misc, "mounted": mounted, "enabled": enabled},
        });
        if !nix_warnings.is_empty() {
            v["nix_warnings"] = json!(nix_warnings);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if !mounted {
        writeln!(
            out,
            "binfmt_misc: not mounted at {} (binfmtctl install mounts it)",
            ctx.g.binfmt_misc.display()
        )?;
    } else {
        writeln!(
            out,
            "binfmt_misc: {} ({})",
            ctx.g.binfmt_misc.display(),
            if enabled {
                "enabled"
            } else {
                "DISABLED: no entry is used"
            }
        )?;
    }
    for w in &nix_warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    for (s, e) in st.entries.iter().zip(&json_entries) {
        let (k, Some(what)) = (&s.kernel, &s.captures) else {
            continue;
        };
        // Quoted for the shell when the name needs it (other tools' names may hold spaces).
        let arg = if k
            .name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(b))
        {
            e.name.clone()
        } else {
            format!("'{}'", e.name.replace('\'', "'\\''"))
        };
        writeln!(
            out,
            "WARNING: entry {} ({}) matches {what}: native programs run through {}{}; remove it with `binfmtctl uninstall {arg}`",
            e.name,
            if e.enabled { "enabled" } else { "disabled" },
            e.interpreter,
            if e.enabled { "" } else { " once enabled" },
        )?;
    }
    let natives: Vec<String> = ctx.host.native.iter().map(|n| n.arch.clone()).collect();
    writeln!(out, "native: {}", natives.join(", "))?;
    writeln!(out, "supported: {}", supported.join(", "))?;
    if json_entries.is_empty() {
        writeln!(out, "no entries")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<8} {:<12} {:<5} {:<8} INTERPRETER",
        "ENTRY", "ENABLED", "ARCH", "FLAGS", "TABLE"
    )?;
    for e in &json_entries {
        let table = match e.matches_table {
            Some(true) => "matches",
            Some(false) => "DIFFERS",
            None => "-",
        };
        writeln!(
            out,
            "{:<20} {:<8} {:<12} {:<5} {:<8} {} [{}]",
            e.name,
            if e.enabled { "yes" } else { "no" },
            e.arch,
            e.flags,
            table,
            e.interpreter,
            e.source.as_deref().unwrap_or("system")
        )?;
    }
    Ok(())
}

pub(super) fn interpreters(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let arches: Vec<&Arch> = if names.is_empty() {
        ctx.table.arches.iter().collect()
    } else {
        ctx.host.resolve_list(names)?.1
    };
    let flags_need_static = true;
    let req = ctx.requirements(flags_need_static)?;
    let dirs = ctx.search_dirs();
    let stored = store_of(ctx).list();
    let found: Vec<(Discovery, Option<&NativeArch>)> = arches
        .iter()
        .map(|a| {
            (
                interpreter::discover(a, &dirs, &req),
                ctx.is_native(&a.name),
            )
        })
        .collect();
    if ctx.g.json {
        let v: Vec<serde_json::Value> = found
            .iter()
            .map(|(d, native)| {
                let chosen = d.chosen();
                json!({
                    "arch": d.arch,
                    "native": native.is_some(),
                    "status": if chosen.is_some() { "ok" } else if d.candidates.is_empty() { "missing" } else { "refused" },
                    "interpreter": chosen.map(|c| &c.facts.path),
                    "source": chosen.map(|c| source_of(&stored, &c.facts.path.to_string_lossy())),
                    "version": chosen.and_then(|c| c.facts.version.as_ref()),
                    "candidates": d.candidates,
                    "searched": d.searched,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"interpreters": v}))?
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<13} {:<8} {:<36} {:<8} NOTES",
        "ARCH", "STATUS", "INTERPRETER", "VERSION"
    )?;
    for (d, native) in &found {
        let (status, path, version, notes) = match d.chosen() {
            Some(c) => (
                "ok",
                format!(
                    "{} [{}]",
                    c.facts.path.display(),
                    source_of(&stored, &c.facts.path.to_string_lossy())
                ),
                c.facts
                    .version
                    .as_deref()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("?")
                    .to_owned(),
                String::new(),
            ),
            None if d.candidates.is_empty() => ("missing", "-".into(), "-".into(), String::new()),
            None => ("refused", "-".into(), "-".into(), d.refusal()),
        };
        let notes = match native {
            Some(_) => format!(
                "native on this host; never registered{}",
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("; {notes}")
                }
            ),
            None => notes,
        };
        writeln!(
            out,
            "{:<13} {:<8} {:<36} {:<8} {}",
            d.arch, status, path, version, notes
        )?;
    }
    Ok(())
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
