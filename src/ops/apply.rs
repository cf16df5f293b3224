//! Apply: reconcile the kernel to the config file (what the boot unit runs), or with
//! `--remove` take out exactly what the config declares (the unit's stop).

use anyhow::Result;

use super::install::{prepare, reconcile};
use super::uninstall::uninstall;
use super::{Host, Reported, Search};
use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::BinfmtFs;
use crate::binfmt::registration::Flags;
use crate::config::Config;

/// Where the config's interpreters come from: its `qemu_path` unless the command line gave a
/// search path. Its stored `qemu` version is resolved by the caller (under the store's shared
/// lock, held through the kernel write) and arrives in `given.qemu_bin`.
pub fn search_for(cfg: &Config, given: &Search) -> Search {
    let qemu_path = if given.qemu_path.is_empty() {
        cfg.qemu_path.clone()
    } else {
        given.qemu_path.clone()
    };
    Search {
        qemu_path,
        qemu_bin: given.qemu_bin.clone(),
    }
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
    let p = prepare(host, search, &wanted, all, true)?;
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
