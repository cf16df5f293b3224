//! `install`, `uninstall` and `apply` (`ops::compose`: with `--persist`, `--nix` and the
//! config's `[nix]`): their options become requests, each step's report is shown as it is
//! done (`render::Shown`).

use std::io::Write;

use anyhow::Result;

use super::args::InstallOpts;
use super::context::Ctx;
use super::render::Shown;
use super::settings::flags_from;
use crate::ops;
use crate::ops::compose::Nix;
use crate::ops::facade::NixPaths;
use crate::ops::nix::SystemNix;

/// Runs `f` with Nix as it is on this system (`NIX_CONF_DIR` and the `nix` on PATH).
fn with_nix<T>(f: impl FnOnce(Nix) -> T) -> T {
    let paths = NixPaths::from_env();
    f(Nix {
        paths: &paths,
        tool: &SystemNix,
    })
}

/// `install` (and the `--install` form).
pub(super) fn install(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let store_root = ctx.store().root;
    let req = ops::compose::InstallRequest {
        names,
        options: ops::install::InstallOptions {
            flags: flags_from(opts)?,
            keep_existing: opts.keep_existing,
            dry_run: ctx.g.dry_run,
            versions: ctx.g.json || !ctx.g.quiet,
        },
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
    let req = ops::compose::ApplyRequest {
        config: &ctx.g.config,
        store: &ctx.store(),
        remove,
        dry_run: ctx.g.dry_run,
    };
    with_nix(|nix| {
        let steps = &mut Shown { ctx, out };
        ops::compose::apply_config(&ctx.fs, &ctx.host, &ctx.search(), nix, &req, steps)
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
