//! Commands for building and running foreign code: rootfs create, run, cross env, build. The
//! work is in `ops::emulate` and `ops::build`; this module turns the parsed flags into their
//! requests and prints (notes and `--install-missing` registrations through `render::Shown`).

use std::io::Write;

use anyhow::Result;

use super::args::{Accelerate, BuildArgs, RunArgs, Strategy};
use super::context::Ctx;
use super::render::Shown;
use crate::error::ChildExit;
use crate::ops::build::Requested;
use crate::ops::emulate as em;

impl From<Accelerate> for em::Accelerate {
    fn from(a: Accelerate) -> em::Accelerate {
        match a {
            Accelerate::On => em::Accelerate::On,
            Accelerate::Force => em::Accelerate::Force,
        }
    }
}

impl From<Strategy> for Requested {
    fn from(s: Strategy) -> Requested {
        match s {
            Strategy::Auto => Requested::Auto,
            Strategy::Cross => Requested::Cross,
            Strategy::Emulate => Requested::Emulate,
            Strategy::Hybrid => Requested::Hybrid,
        }
    }
}

impl RunArgs {
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
            accelerate: self.accelerate.map(Into::into),
            command: self.command.clone(),
        }
    }
}

pub(super) fn rootfs_create(ctx: &Ctx, req: &em::RootfsRequest, out: &mut dyn Write) -> Result<()> {
    let plan = em::rootfs_plan(&ctx.host, &ctx.search(), req, &mut Shown { ctx, out })?;
    writeln!(
        out,
        "creating a {} {} rootfs for {} in {} with {}{}",
        req.suite,
        req.variant,
        plan.arch,
        plan.target.display(),
        plan.tool,
        if plan.private {
            " (emulated in a private binfmt_misc instance)"
        } else {
            ""
        }
    )?;
    out.flush()?;
    em::bootstrap(&plan, &*ctx.progress())?;
    writeln!(
        out,
        "created {} ({} {})",
        plan.target.display(),
        plan.arch,
        req.suite
    )?;
    Ok(())
}

pub(super) fn cross_env(ctx: &Ctx, arch: &str, format: &str, out: &mut dyn Write) -> Result<()> {
    let vars = crate::ops::build::cross_env(&ctx.host, &ctx.search(), arch)?;
    write!(
        out,
        "{}",
        crate::ops::facade::render_cross_env(&vars, format)?
    )?;
    Ok(())
}

pub(super) fn build(ctx: &Ctx, args: &BuildArgs, out: &mut dyn Write) -> Result<()> {
    let req = crate::ops::build::BuildRequest {
        arch: args.arch.clone(),
        strategy: args.strategy.into(),
        rootfs: args.rootfs.clone(),
        src: args.src.clone(),
        command: args.command.clone(),
        host_handlers: args.host_handlers,
        cpu: args.cpu.clone(),
    };
    let code = crate::ops::build::build(
        &ctx.fs,
        &ctx.host,
        &ctx.search(),
        &req,
        &mut Shown { ctx, out },
    )?;
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}

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
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}
