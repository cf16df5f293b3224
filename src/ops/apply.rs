//! Apply: reconcile the kernel to the config file (what the boot unit runs), or with
//! `--remove` take out exactly what the config declares (the unit's stop).

use anyhow::Result;

use super::install::{prepare, reconcile};
use super::uninstall::uninstall;
use super::{Host, Reported, Search, StoredBin};
use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::BinfmtFs;
use crate::binfmt::registration::Flags;
use crate::config::Config;
use crate::qemu::QemuError;
use crate::qemu::store::Store;

/// Where the config's interpreters come from: its `qemu_path` unless the command line gave a
/// search path, its stored `qemu` version unless the command line gave one.
pub fn search_for(cfg: &Config, given: &Search, store: &Store) -> Result<Search, QemuError> {
    let qemu_path = if given.qemu_path.is_empty() {
        cfg.qemu_path.clone()
    } else {
        given.qemu_path.clone()
    };
    let qemu_bin = match (&given.qemu_bin, &cfg.qemu) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(v)) => Some(StoredBin::of(&store.resolve(v)?)),
        (None, None) => None,
    };
    Ok(Search {
        qemu_path,
        qemu_bin,
    })
}

/// `apply`: registers what the config declares (natives and missing interpreters of `all`
/// skipped, anything else refused). Returns the report and the arches registered.
pub fn apply(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    cfg: &Config,
    dry_run: bool,
) -> Result<(Reported, Vec<String>)> {
    let (all, arches) = host.resolve_list(&cfg.arches)?;
    let wanted: Vec<(&'static Arch, Flags)> = arches.iter().map(|a| (*a, cfg.flags)).collect();
    let p = prepare(host, search, &wanted, all)?;
    let registered: Vec<String> = p.desired.iter().map(|d| d.arch.clone()).collect();
    let notes = super::install::flag_notes(cfg.flags);
    Ok((
        reconcile(fs, p, notes, cfg.keep_existing, dry_run)?,
        registered,
    ))
}

/// `apply --remove`: removes the entries of the arches the config declares (`all`: every
/// qemu-* entry).
pub fn remove(fs: &dyn BinfmtFs, host: &Host, cfg: &Config, dry_run: bool) -> Result<Reported> {
    let names: Vec<std::ffi::OsString> = if cfg.arches.iter().any(|a| a == "all") {
        vec!["all".into()]
    } else {
        cfg.arches.iter().map(Into::into).collect()
    };
    uninstall(fs, host, &names, dry_run)
}
