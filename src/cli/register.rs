//! `install`, `uninstall` and `apply` (`ops::compose`: with `--persist`, `--nix` and the
//! config's `[nix]`): their options become requests, each step's report is shown as it is
//! done.

use std::io::Write;

use anyhow::Result;

use super::args::InstallOpts;
use super::context::Ctx;
use super::render::show;
use super::settings::flags_from;
use crate::ops;
use crate::ops::compose::{Nix, Persisted, Steps};
use crate::ops::facade::NixPaths as Paths;
use crate::ops::nix::{SyncReport, SystemNix};

/// The CLI's side of the compositions: each step's report rendered on `out` as it is done.
struct Shown<'a, 'g> {
    ctx: &'a Ctx<'g>,
    out: &'a mut dyn Write,
}

impl Steps for Shown<'_, '_> {
    fn report(&mut self, r: ops::Reported) -> Result<()> {
        show(self.ctx, self.out, r)
    }

    fn nix(&mut self, r: &SyncReport, paths: &Paths) -> Result<()> {
        super::nix::show_sync(self.ctx, self.out, r, paths)
    }

    fn persisted(&mut self, p: &Persisted) -> Result<()> {
        let (config, names) = (p.config.display(), p.arches.join(", "));
        if p.changed {
            writeln!(self.out, "note: added {names} to {config}")?;
        } else {
            writeln!(self.out, "note: {config} already has {names}")?;
        }
        Ok(())
    }
}

/// Runs `f` with Nix as it is on this system (`NIX_CONF_DIR` and the `nix` on PATH).
fn with_nix<T>(f: impl FnOnce(Nix) -> T) -> T {
    let paths = Paths::from_env();
    f(Nix {
        paths: &paths,
        tool: &SystemNix,
    })
}

fn install_options(ctx: &Ctx, opts: &InstallOpts) -> Result<ops::install::InstallOptions> {
    Ok(ops::install::InstallOptions {
        flags: flags_from(opts)?,
        keep_existing: opts.keep_existing,
        dry_run: ctx.g.dry_run,
    })
}

/// A plain install (no `--persist`, no `--nix`): `run --install-missing`.
pub(super) fn install(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let r = ops::install::install(
        &ctx.fs,
        &ctx.host,
        &ctx.search(),
        names,
        install_options(ctx, opts)?,
    )?;
    show(ctx, out, r)
}

/// `install` (and the `--install` form).
pub(super) fn install_cmd(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let store_root = ctx.store().root;
    let req = ops::compose::InstallRequest {
        names,
        options: install_options(ctx, opts)?,
        nix: opts.nix,
        persist: opts.persist.then_some(ops::compose::Persist {
            config: &ctx.g.config,
            qemu_spec: opts.qemu.as_deref(),
            store_root: &store_root,
        }),
    };
    with_nix(|nix| {
        let steps = &mut Shown { ctx, out };
        ops::compose::install(&ctx.fs, &ctx.host, &ctx.search(), nix, &req, steps)
    })
}

/// `apply`: reconcile the kernel to the config file; `--remove`: remove what it declares.
pub(super) fn apply(ctx: &Ctx, remove: bool, out: &mut dyn Write) -> Result<()> {
    let cfg = crate::ops::facade::load_config(&ctx.g.config, ctx.table)?;
    let steps = &mut Shown { ctx, out };
    if remove {
        return with_nix(|nix| {
            ops::compose::apply_remove(&ctx.fs, &ctx.host, nix, &cfg, ctx.g.dry_run, steps)
        });
    }
    // The config's stored version is resolved with the store's shared lock held through
    // the kernel write (as install --qemu does), so gc cannot remove it in between.
    let mut _lock = None;
    let mut given = ctx.search();
    if given.qemu_bin.is_none()
        && let Some(v) = &cfg.qemu
    {
        let (lock, s) = ctx.resolve_stored(v)?;
        _lock = lock;
        given.qemu_bin = Some(ops::StoredBin::of(&s));
    }
    let search = ops::apply::search_for(&cfg, &given);
    with_nix(|nix| {
        ops::compose::apply(&ctx.fs, &ctx.host, &search, nix, &cfg, ctx.g.dry_run, steps)
    })
}

/// `uninstall` (and the `--uninstall` form), then Nix kept in step.
pub(super) fn uninstall(
    ctx: &Ctx,
    targets: &[std::ffi::OsString],
    out: &mut dyn Write,
) -> Result<()> {
    with_nix(|nix| {
        let steps = &mut Shown { ctx, out };
        ops::compose::uninstall(&ctx.fs, &ctx.host, nix, targets, ctx.g.dry_run, steps)
    })
}
