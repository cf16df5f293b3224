//! Nix: `install --nix` (and `[nix]` in the config for `apply`) keeps binfmtctl's include file
//! in Nix's configuration in step with the registered handlers; `uninstall` and
//! `apply --remove` take out what they added; `nix status` shows Nix's view against the
//! kernel's; `nix machines` prints `/etc/nix/machines` lines for this host as a remote builder.
//! The work is in `crate::ops::nix`; here its reports become text or JSON.

use std::io::Write;

use anyhow::Result;

use super::context::Ctx;
use crate::ops::facade::NixPaths as Paths;
use crate::ops::nix::{self as opsnix, Daemon, SelfTestProbe, SystemNix};

/// Where notes go: the report's stream, or stderr when the report is JSON.
fn note(ctx: &Ctx, out: &mut dyn Write, msg: &str) -> Result<()> {
    if ctx.g.json {
        eprintln!("binfmtctl: note: {msg}");
    } else if !ctx.g.quiet {
        writeln!(out, "note: {msg}")?;
    }
    Ok(())
}

/// Says what keeping binfmtctl.conf in line with the kernel did (`ops::nix::sync`).
pub(super) fn show_sync(
    ctx: &Ctx,
    out: &mut dyn Write,
    r: &opsnix::SyncReport,
    paths: &Paths,
) -> Result<()> {
    if !r.would_add.is_empty() {
        note(
            ctx,
            out,
            &format!(
                "would add {} to Nix's extra platforms in {}",
                r.would_add.join(" "),
                paths.include.display()
            ),
        )?;
    }
    if !r.nameless.is_empty() {
        note(
            ctx,
            out,
            &format!(
                "Nix has no system name for {} (docs/nix.md): Nix is not told about them",
                r.nameless.join(", ")
            ),
        )?;
    }
    if !r.not_accepted.is_empty() {
        eprintln!(
            "binfmtctl: warning: Nix still does not accept {} after the change: a later `extra-platforms = ...` line in {} overrides it; move that line before the `!include binfmtctl.conf` line, or change it to `extra-extra-platforms = ...`",
            r.not_accepted.join(" "),
            paths.conf.display()
        );
    }
    for p in &r.changed.wrote {
        note(ctx, out, &format!("wrote {}", p.display()))?;
    }
    for p in &r.changed.removed {
        note(ctx, out, &format!("removed {}", p.display()))?;
    }
    if let Some(platforms) = &r.platforms {
        note(
            ctx,
            out,
            &if platforms.is_empty() {
                "Nix's extra platforms from binfmtctl: none".to_owned()
            } else {
                format!(
                    "Nix's extra platforms from binfmtctl: {}",
                    platforms.join(" ")
                )
            },
        )?;
    }
    match &r.daemon {
        None | Some(Daemon::NotRunning) => {}
        Some(Daemon::Restarted) => note(
            ctx,
            out,
            "restarted nix-daemon.service (systemctl try-restart) so it reads the new settings",
        )?,
        Some(Daemon::MustRestart(pids)) => eprintln!(
            "binfmtctl: warning: nix-daemon (pid {}) reads its settings only at start: restart it",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}

pub(super) fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let paths = Paths::from_env();
    let probe = SelfTestProbe::new(&ctx.host)?;
    let st = opsnix::status(&ctx.fs, &ctx.host, &paths, &SystemNix, &probe)?;
    if ctx.g.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&st)?)?;
        return Ok(());
    }
    let ours = st.binfmtctl.platforms();
    writeln!(
        out,
        "nix: {} (configuration {})",
        st.nix.display(),
        st.conf_dir.display()
    )?;
    writeln!(
        out,
        "binfmtctl.conf: {}",
        match (st.include_exists, st.included) {
            (true, true) => format!(
                "included, adds {}",
                if ours.is_empty() {
                    "nothing".to_owned()
                } else {
                    ours.join(" ")
                }
            ),
            (true, false) => "present but NOT included".to_owned(),
            (false, _) => "not present (binfmtctl install ARCHES --nix writes it)".to_owned(),
        }
    )?;
    writeln!(out, "system: {}", st.system)?;
    writeln!(out, "extra-platforms: {}", st.extra_platforms.join(" "))?;
    writeln!(
        out,
        "sandbox: {}{}",
        st.sandbox,
        if st.sandbox_paths.is_empty() {
            String::new()
        } else {
            format!(" (paths: {})", st.sandbox_paths.join(" "))
        }
    )?;
    writeln!(
        out,
        "{:<20} {:<9} {:<10} {:<14} DETAIL",
        "SYSTEM", "NIX", "STATE", "HANDLER"
    )?;
    for r in &st.systems {
        let h = r.handler.as_ref();
        writeln!(
            out,
            "{:<20} {:<9} {:<10} {:<14} {}",
            r.system,
            if r.accepted { "builds" } else { "no" },
            h.map_or("unknown", |h| h.state.as_str()),
            h.and_then(|h| h.entry.clone())
                .unwrap_or_else(|| "-".into()),
            h.map_or("", |h| h.detail.as_str())
        )?;
    }
    for w in &st.warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    Ok(())
}

pub(super) fn machines(
    ctx: &Ctx,
    req: &opsnix::MachinesRequest,
    out: &mut dyn Write,
) -> Result<()> {
    let probe = SelfTestProbe::new(&ctx.host)?;
    let m = opsnix::machines(
        &ctx.fs,
        &ctx.host,
        &Paths::from_env(),
        &SystemNix,
        &probe,
        req,
    )?;
    if ctx.g.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&m)?)?;
        return Ok(());
    }
    for l in &m.lines {
        writeln!(out, "{l}")?;
    }
    for s in &m.skipped {
        eprintln!("binfmtctl: note: {} left out: {}", s.system, s.reason);
    }
    Ok(())
}
