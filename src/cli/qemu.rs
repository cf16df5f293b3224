//! `binfmtctl qemu …`: the store of static QEMU versions (versions, fetch, list, use, verify,
//! gc). Here the options become `ops::qemu` requests (`--mirror`/`--keyring` over the config's
//! `qemu_mirror`/`qemu_keyring`) and its reports text (`crate::text::qemu`) or JSON.

use std::io::Write;

use anyhow::Result;

use super::args::{NetOpts, QemuCommand};
use super::context::Ctx;
use super::render::{Keys, emit, show};
use crate::ops;
use crate::ops::qemu::{ArchiveOptions, FetchFrom};

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

/// One `qemu` subcommand on the store `--qemu-store` names.
pub(super) fn qemu_cmd(ctx: &Ctx, cmd: &QemuCommand, out: &mut dyn Write) -> Result<()> {
    let store = ctx.store();
    let (dry_run, json) = (ctx.g.dry_run, Keys::Declared);
    match cmd {
        QemuCommand::Versions { net, .. } => {
            let o = archive_options(ctx, net)?;
            let r = ops::qemu::versions(&ctx.host, &store, &o, ctx.progress())?;
            emit(ctx, out, &r, json, |r, out| r.write_text(out))
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
            let r = ops::qemu::fetch(&ctx.host, &store, from, dry_run, ctx.progress())?;
            emit(ctx, out, &r, json, |r, out| r.write_text(out))
        }
        QemuCommand::List { .. } => {
            let r = ops::qemu::list(&ctx.fs, &ctx.host, &store);
            emit(ctx, out, &r, json, |r, out| r.write_text(out))
        }
        QemuCommand::Use { version, .. } => {
            let r = ops::install::use_version(&ctx.fs, &ctx.host, &store, version, dry_run)?;
            show(ctx, out, r)
        }
        QemuCommand::Verify => {
            let r = ops::qemu::verify(&store);
            emit(ctx, out, &r, json, |r, out| r.write_text(out))?;
            r.failure().map_or(Ok(()), |e| Err(e.into()))
        }
        QemuCommand::Gc { versions, .. } => {
            let r = ops::qemu::gc(&ctx.fs, &store, versions, dry_run)?;
            emit(ctx, out, &r, json, |r, out| r.write_text(out))
        }
    }
}
