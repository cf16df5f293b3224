//! Commands for building and running foreign code: rootfs create, run, cross env, build. The
//! work is in `ops::emulate` and `ops::build`; this module turns the parsed flags into their
//! requests and prints (notes and `--install-missing` registrations through `render::Shown`).

use std::io::Write;

use anyhow::Result;

use super::args::{Accelerate, BuildArgs, RunArgs, Strategy};
use super::context::Ctx;
use super::render::Shown;
use crate::error::ChildExit;
use crate::ops;
use crate::ops::build::Requested;
use crate::ops::emulate as em;

impl RunArgs {
    /// The request `ops::emulate::prepare` takes.
    fn request(&self) -> em::RunRequest {
        em::RunRequest {
            rootfs: self.rootfs.clone(),
            arch: self.arch.clone(),
            rootless: self.rootless,
            bind: self.bind.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            user: self.user.clone(),
            install_missing: self.install_missing,
            host_handlers: self.host_handlers,
            cpu: self.cpu.clone(),
            keep_privileges: self.keep_privileges,
            accelerate: self.accelerate.map(|a| match a {
                Accelerate::On => em::Accelerate::On,
                Accelerate::Force => em::Accelerate::Force,
            }),
            command: self.command.clone(),
        }
    }
}

/// `rootfs create`: its stages are shown as they come (`render::Shown`).
pub(super) fn rootfs_create(ctx: &Ctx, req: &em::RootfsRequest, out: &mut dyn Write) -> Result<()> {
    em::create_rootfs(&ctx.host, &ctx.search(), req, &mut Shown { ctx, out })
}

/// `cross env --arch ARCH`: the variables in `format` (sh, fish, json).
pub(super) fn cross_env(ctx: &Ctx, arch: &str, format: &str, out: &mut dyn Write) -> Result<()> {
    let vars = ops::build::cross_env(&ctx.host, &ctx.search(), arch)?;
    Ok(write!(
        out,
        "{}",
        ops::facade::render_cross_env(&vars, format)?
    )?)
}

/// `build`: its exit status is the build command's.
pub(super) fn build(ctx: &Ctx, args: &BuildArgs, out: &mut dyn Write) -> Result<()> {
    let req = ops::build::BuildRequest {
        arch: args.arch.clone(),
        strategy: match args.strategy {
            Strategy::Auto => Requested::Auto,
            Strategy::Cross => Requested::Cross,
            Strategy::Emulate => Requested::Emulate,
            Strategy::Hybrid => Requested::Hybrid,
        },
        rootfs: args.rootfs.clone(),
        src: args.src.clone(),
        command: args.command.clone(),
        host_handlers: args.host_handlers,
        cpu: args.cpu.clone(),
    };
    let code = ops::build::build(
        &ctx.fs,
        &ctx.host,
        &ctx.search(),
        &req,
        &mut Shown { ctx, out },
    )?;
    exited(code)
}

/// `run`: its exit status is the command's.
pub(super) fn run_in_rootfs(ctx: &Ctx, args: &RunArgs, out: &mut dyn Write) -> Result<()> {
    let emulated = em::prepare(
        &ctx.fs,
        &ctx.host,
        &ctx.search(),
        &args.request(),
        &mut Shown { ctx, out },
    )?;
    out.flush()?;
    let code = em::run(&emulated)?;
    exited(code)
}

/// The command's exit status as binfmtctl's: 0, or `ChildExit` (`crate::exit`).
fn exited(code: i32) -> Result<()> {
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}
