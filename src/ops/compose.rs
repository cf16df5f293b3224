//! Operations made of other operations, each composed in one place: `install` with `--persist`
//! (the config file prepared before the first kernel write, committed after install
//! succeeded) and `--nix` (Nix checked first, kept in step after); `uninstall` and
//! `apply --remove`, then Nix kept in step; `apply` with the config's `[nix]`.
//!
//! Each step's report is handed to `Steps` as soon as the step is done (the CLI renders it),
//! so what was done before a later step fails is still shown. Nix is reached through the
//! `NixTool` seam and its configuration directory (`crate::nix::Paths`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::install::{self, InstallOptions};
use super::nix::{NixTool, SyncReport};
use super::{Host, OpsError, Reported, Search};
use crate::binfmt::kernel::BinfmtFs;
use crate::config::Config;

/// Where a composed operation shows each step.
pub trait Steps {
    /// A changing operation's report; its failure, if any, is the error to stop with.
    fn report(&mut self, r: Reported) -> Result<()>;
    /// What keeping Nix in step did (`paths`: its configuration).
    fn nix(&mut self, r: &SyncReport, paths: &crate::nix::Paths) -> Result<()>;
    /// `--persist` wrote the config file (or found it had the arches already).
    fn persisted(&mut self, p: &Persisted) -> Result<()>;
}

/// Nix, as the compositions reach it.
#[derive(Clone, Copy)]
pub struct Nix<'a> {
    pub paths: &'a crate::nix::Paths,
    pub tool: &'a dyn NixTool,
}

/// What `install --persist` did to the config file.
#[derive(Debug)]
pub struct Persisted {
    pub config: PathBuf,
    /// The arches as named.
    pub arches: Vec<String>,
    /// False: the file had them already.
    pub changed: bool,
}

/// `install`'s request beyond the registrations: `--nix`, `--persist`.
pub struct InstallRequest<'a> {
    pub names: &'a [String],
    pub options: InstallOptions,
    /// `--nix`: tell Nix about the arches.
    pub nix: bool,
    /// `--persist`: add the arches to this config file.
    pub persist: Option<Persist<'a>>,
}

/// `install --persist`: the config file and what it records besides the arches.
pub struct Persist<'a> {
    pub config: &'a Path,
    /// `--qemu SPEC`, as given (the config records the version it resolved to).
    pub qemu_spec: Option<&'a str>,
    /// The QEMU store `--qemu` was resolved in.
    pub store_root: &'a Path,
}

/// `install`: Nix checked first (`--nix`: nothing is registered when Nix's side cannot
/// follow); with `--persist`, the config is read, checked and its new content written to a
/// temporary file (under a lock) before the first kernel write, and renamed into place only
/// after install succeeded.
pub fn install(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    nix: Nix,
    req: &InstallRequest,
    steps: &mut dyn Steps,
) -> Result<()> {
    if req.nix {
        super::nix::precheck(nix.paths, nix.tool)?;
    }
    let pending = match &req.persist {
        Some(p) if !req.options.dry_run => Some(prepare_persist(host, search, req, p)?),
        _ => None,
    };
    steps.report(install::install(fs, host, search, req.names, req.options)?)?;
    if req.nix {
        let arches: Vec<String> = host
            .resolve_list(req.names)?
            .1
            .iter()
            .map(|a| a.name.clone())
            .collect();
        sync_nix(fs, host, nix, &arches, req.options.dry_run, steps)?;
    }
    if let (Some(p), Some(persist)) = (pending, &req.persist) {
        let changed = p.changes();
        p.commit().context(
            "the entries were registered, but the config file was not updated: run the same command again",
        )?;
        steps.persisted(&Persisted {
            config: persist.config.to_path_buf(),
            arches: req.names.to_vec(),
            changed,
        })?;
    }
    Ok(())
}

/// `--persist`'s first phase: the config's new content, checked and written aside.
fn prepare_persist(
    host: &Host,
    search: &Search,
    req: &InstallRequest,
    p: &Persist,
) -> Result<crate::config::PendingConfig> {
    // Names first, so an unknown arch is reported as such, not as a config error.
    host.resolve_list(req.names)?;
    if p.qemu_spec.is_some() && p.store_root.as_os_str() != crate::qemu::store::DEFAULT_ROOT {
        // The config records the version only; the boot unit runs a plain `apply`.
        tracing::warn!(
            "--persist records qemu = VERSION but not --qemu-store {}: `apply` at boot looks in {}, so fetch the version there too (`binfmtctl qemu fetch VERSION`) or run the unit's apply with --qemu-store",
            p.store_root.display(),
            crate::qemu::store::DEFAULT_ROOT
        );
    }
    let qemu_path = if search.qemu_path.is_empty() {
        Vec::new()
    } else {
        search.dirs()
    };
    let persist = crate::config::PersistRequest {
        arches: req.names,
        flags: req.options.flags,
        qemu_path: &qemu_path,
        keep_existing: req.options.keep_existing,
        qemu: search.qemu_bin.as_ref().zip(p.qemu_spec).map(|(b, spec)| {
            crate::config::PersistQemu {
                version: &b.version,
                spec,
            }
        }),
    };
    Ok(
        crate::config::prepare_persist(p.config, &persist, host.table)
            .map_err(|source| OpsError::ConfigUnchanged { source })?,
    )
}

/// `uninstall`, then Nix kept in step (it forgets the arches no longer registered).
pub fn uninstall(
    fs: &dyn BinfmtFs,
    host: &Host,
    nix: Nix,
    targets: &[std::ffi::OsString],
    dry_run: bool,
    steps: &mut dyn Steps,
) -> Result<()> {
    steps.report(super::uninstall::uninstall(fs, host, targets, dry_run)?)?;
    sync_nix(fs, host, nix, &[], dry_run, steps)
}

/// `apply --remove`: what the config declares taken out, then Nix kept in step.
pub fn apply_remove(
    fs: &dyn BinfmtFs,
    host: &Host,
    nix: Nix,
    cfg: &Config,
    dry_run: bool,
    steps: &mut dyn Steps,
) -> Result<()> {
    steps.report(super::apply::remove(fs, host, cfg, dry_run)?)?;
    sync_nix(fs, host, nix, &[], dry_run, steps)
}

/// `apply`: the kernel reconciled to the config file, Nix checked first and kept in step
/// after when the config says `[nix]`. `search`: where interpreters are looked for
/// (`apply::search_for`).
pub fn apply(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    nix: Nix,
    cfg: &Config,
    dry_run: bool,
    steps: &mut dyn Steps,
) -> Result<()> {
    if cfg.nix {
        super::nix::precheck(nix.paths, nix.tool)?;
    }
    let (r, arches) = super::apply::apply(fs, host, search, cfg, dry_run)?;
    steps.report(r)?;
    if cfg.nix {
        sync_nix(fs, host, nix, &arches, dry_run, steps)?;
    }
    Ok(())
}

/// Brings binfmtctl's include file in line with the kernel (`ops::nix::sync`), adding `add`.
fn sync_nix(
    fs: &dyn BinfmtFs,
    host: &Host,
    nix: Nix,
    add: &[String],
    dry_run: bool,
    steps: &mut dyn Steps,
) -> Result<()> {
    let r = super::nix::sync(fs, host, nix.paths, nix.tool, add, dry_run)?;
    steps.nix(&r, nix.paths)
}

/// `apply` of a config file, or `apply --remove`.
pub struct ApplyRequest<'a> {
    pub config: &'a Path,
    /// The QEMU store the config's `qemu` version is resolved in.
    pub store: &'a crate::qemu::store::Store,
    /// `--remove`: take out what the config declares.
    pub remove: bool,
    pub dry_run: bool,
}

/// `apply` of the config file `req.config` (with `req.remove`: `apply --remove`). Its stored
/// `qemu` version, unless `given` names one, is resolved in `req.store` with the store's
/// shared lock held through the kernel write (as `install --qemu` does), so gc cannot remove
/// it in between.
pub fn apply_config(
    fs: &dyn BinfmtFs,
    host: &Host,
    given: &Search,
    nix: Nix,
    req: &ApplyRequest,
    steps: &mut dyn Steps,
) -> Result<()> {
    let (dry_run, cfg) = (req.dry_run, crate::config::load(req.config, host.table)?);
    if req.remove {
        return apply_remove(fs, host, nix, &cfg, dry_run, steps);
    }
    let mut _lock = None;
    let mut given = given.clone();
    if given.qemu_bin.is_none()
        && let Some(v) = &cfg.qemu
    {
        let (lock, s) = super::stored::resolve(req.store, host, v, dry_run)?;
        _lock = lock;
        given.qemu_bin = Some(super::StoredBin::of(&s));
    }
    let search = super::apply::search_for(&cfg, &given);
    apply(fs, host, &search, nix, &cfg, dry_run, steps)
}
