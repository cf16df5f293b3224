//! Nix: `install --nix` (and `[nix]` in the config for `apply`) keeps binfmtctl's include file
//! in Nix's configuration in step with the registered handlers; `uninstall` and
//! `apply --remove` take out what they added; `nix status` shows Nix's view against the
//! kernel's; `nix machines` prints `/etc/nix/machines` lines for this host as a remote builder.
//! The file handling is in `crate::nix`.

use super::*;
use crate::inspection::selftest;
use crate::nix::{self as nixcfg, NixError, Paths, Record, View};

#[derive(Debug, Subcommand)]
pub enum NixCommand {
    /// Nix's view of this machine (system, extra-platforms, sandbox) against the handlers that
    /// really work, with warnings and fixes
    Status,
    /// Print the /etc/nix/machines line(s) that make this host a remote builder for the
    /// systems it builds natively or through working handlers
    Machines {
        /// The store URI other machines reach this host by (ssh-ng://builder1, ssh://root@b1 …)
        #[arg(long, value_name = "URI")]
        host: String,
        /// Builds at a time [default: the number of CPUs]
        #[arg(long, value_name = "N")]
        max_jobs: Option<u32>,
        /// The SSH private key the clients use (path on the client) [default: -]
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<String>,
        /// This host's SSH public host key, for the line's host-key field
        /// [default: /etc/ssh/ssh_host_ed25519_key.pub when readable]
        #[arg(long, value_name = "FILE")]
        host_key: Option<PathBuf>,
    },
}

const DEFAULT_HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

/// `NixError` says its own kind (`Classify`): environment (exit 3) or bad input (exit 2).
fn nix_err(e: NixError) -> anyhow::Error {
    e.into()
}

/// Nix's program and configuration directory; exit 3 when Nix is not installed.
fn nix_program() -> Result<PathBuf> {
    nixcfg::find_nix(std::env::var_os("PATH").as_deref())
        .ok_or_else(|| nix_err(NixError::NotInstalled))
}

/// Nix's settings as Nix reads them; a configuration Nix rejects is bad input.
fn nix_view(nix: &std::path::Path, paths: &Paths) -> Result<View> {
    nixcfg::show_config(nix, &paths.dir).map_err(nix_err)
}

/// Before `install --nix` / `apply` with `[nix]` changes anything: Nix is there, its
/// configuration is one Nix and we can read, and we may write it.
pub(super) fn precheck() -> Result<()> {
    let nix = nix_program()?;
    let paths = Paths::from_env();
    nixcfg::precheck(&paths).map_err(nix_err)?;
    nix_view(&nix, &paths)?;
    Ok(())
}

/// Where notes go: the report's stream, or stderr when the report is JSON.
fn note(ctx: &Ctx, out: &mut dyn Write, msg: &str) -> Result<()> {
    if ctx.g.json {
        eprintln!("binfmtctl: note: {msg}");
    } else if !ctx.g.quiet {
        writeln!(out, "note: {msg}")?;
    }
    Ok(())
}

/// Brings binfmtctl.conf in line with the kernel: records for `add` (arch names whose entries
/// were just installed), and no record for an arch whose entry is gone. Does nothing when the
/// file does not exist and nothing is to be added (plain `uninstall` without Nix).
pub(super) fn sync(ctx: &Ctx, add: &[String], out: &mut dyn Write) -> Result<()> {
    let paths = Paths::from_env();
    if add.is_empty() && !paths.include.exists() {
        return Ok(());
    }
    if ctx.g.dry_run {
        let systems: Vec<String> = add
            .iter()
            .filter_map(|a| ctx.table.get(a))
            .flat_map(|a| a.nix.iter().cloned())
            .collect();
        if !systems.is_empty() {
            note(
                ctx,
                out,
                &format!(
                    "would add {} to Nix's extra platforms in {}",
                    systems.join(" "),
                    paths.include.display()
                ),
            )?;
        }
        return Ok(());
    }
    // The kernel has changed by now: a failure here is a failed operation (exit 1), and says
    // what did and did not happen.
    let after = |e: NixError| {
        anyhow::anyhow!(
            "the handlers were changed, but Nix's configuration was not: {e}; then run `binfmtctl install ARCHES --nix` again"
        )
    };
    let old = nixcfg::load_managed(&paths).map_err(after)?;
    let mut m = old.clone();
    let entries = crate::binfmt::kernel::snapshot(&ctx.fs)?;
    let enabled_entry = |name: &str| {
        entries
            .iter()
            .map(|k| &k.entry)
            .find(|e| e.registration.name == name && e.enabled)
    };
    let mut nameless: Vec<&str> = Vec::new();
    for name in add {
        let Some(a) = ctx.table.get(name) else {
            continue;
        };
        // Only what is registered now (`install all` names every arch).
        let Some(e) = enabled_entry(&a.entry_name()) else {
            continue;
        };
        if a.nix.is_empty() {
            nameless.push(a.name.as_str());
            continue;
        }
        let r = &e.registration;
        m.arches.insert(
            a.name.clone(),
            Record {
                systems: a.nix.clone(),
                sandbox: (!r.flags.fix_binary).then(|| r.interpreter.clone()),
            },
        );
    }
    if !nameless.is_empty() {
        note(
            ctx,
            out,
            &format!(
                "Nix has no system name for {} (docs/nix.md): Nix is not told about them",
                nameless.join(", ")
            ),
        )?;
    }
    m.arches
        .retain(|arch, _| enabled_entry(&format!("{ENTRY_PREFIX}{arch}")).is_some());
    if m == old {
        return Ok(());
    }
    let (changed, undo) = nixcfg::write(&paths, &m).map_err(after)?;
    // Nix must accept the result and see our systems; otherwise put everything back.
    if let Some(nix) = nixcfg::find_nix(std::env::var_os("PATH").as_deref()) {
        match nixcfg::show_config(&nix, &paths.dir) {
            Err(e) => {
                let restored = undo.restore();
                anyhow::bail!(
                    "Nix rejects the configuration binfmtctl wrote, so it was put back ({}): {e}",
                    match restored {
                        Ok(()) => "restored".to_owned(),
                        Err(r) => format!("restoring failed too: {r}"),
                    }
                );
            }
            Ok(view) => {
                let missing: Vec<String> = m
                    .platforms()
                    .into_iter()
                    .filter(|p| !view.accepts(p))
                    .collect();
                if !missing.is_empty() {
                    eprintln!(
                        "binfmtctl: warning: Nix still does not accept {} after the change: a later `extra-platforms = ...` line in {} overrides it; change that line to `extra-platforms = ...` before the include, or to `extra-extra-platforms = ...`",
                        missing.join(" "),
                        paths.conf.display()
                    );
                }
            }
        }
    }
    for p in &changed.wrote {
        note(ctx, out, &format!("wrote {}", p.display()))?;
    }
    for p in &changed.removed {
        note(ctx, out, &format!("removed {}", p.display()))?;
    }
    let platforms = m.platforms();
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
    restart_daemon(ctx, &paths, out)
}

/// For `status`: when binfmtctl.conf exists, the arches it tells Nix about whose handler is
/// gone or disabled, and registered handlers of arches with a Nix system it does not list.
/// (`nix status` is the full check, with Nix's own view and the probes.)
pub(super) fn status_hints(ctx: &Ctx, entries: &[KernelEntry]) -> Vec<String> {
    let paths = Paths::from_env();
    if !paths.include.exists() {
        return Vec::new();
    }
    let m = match nixcfg::load_managed(&paths) {
        Ok(m) => m,
        Err(e) => return vec![e.to_string()],
    };
    let enabled = |name: &str| {
        entries
            .iter()
            .any(|k| k.entry.registration.name == name && k.entry.enabled)
    };
    let mut w = Vec::new();
    for (arch, r) in &m.arches {
        if !enabled(&format!("{ENTRY_PREFIX}{arch}")) {
            w.push(format!(
                "Nix builds {} ({}) but {ENTRY_PREFIX}{arch} is not registered and enabled: `binfmtctl install {arch} --nix`, or `binfmtctl uninstall {arch}` to take it out of Nix",
                r.systems.join(" "),
                paths.include.display()
            ));
        }
    }
    for a in &ctx.table.arches {
        if !a.nix.is_empty() && !m.arches.contains_key(&a.name) && enabled(&a.entry_name()) {
            w.push(format!(
                "{} is registered but Nix is not told (no {} in {}): `binfmtctl install {} --nix`",
                a.entry_name(),
                a.nix.join(" "),
                paths.include.display(),
                a.name
            ));
        }
    }
    w
}

/// nix-daemon reads its configuration at start: restart it when it runs with this
/// configuration directory, and say so.
fn restart_daemon(ctx: &Ctx, paths: &Paths, out: &mut dyn Write) -> Result<()> {
    let ours: Vec<u32> = nixcfg::daemon_pids()
        .into_iter()
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let dir = env
                .split(|b| *b == 0)
                .find_map(|kv| kv.strip_prefix(b"NIX_CONF_DIR="))
                .map_or_else(
                    || PathBuf::from(nixcfg::DEFAULT_CONF_DIR),
                    |d| PathBuf::from(String::from_utf8_lossy(d).into_owned()),
                );
            std::path::absolute(&dir).ok() == std::path::absolute(&paths.dir).ok()
        })
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    if std::path::Path::new("/run/systemd/system").exists() {
        let ok = std::process::Command::new("systemctl")
            .args(["try-restart", "nix-daemon.service"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            tracing::info!("restarted nix-daemon.service");
            return note(
                ctx,
                out,
                "restarted nix-daemon.service (systemctl try-restart) so it reads the new settings",
            );
        }
    }
    eprintln!(
        "binfmtctl: warning: nix-daemon (pid {}) reads its settings only at start: restart it",
        ours.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// What the kernel does with one arch's programs, proved with its probe.
#[derive(Debug, Clone, Serialize)]
struct Handler {
    arch: String,
    /// `native`, `works`, `fails`, `no-handler`, `unverified` (no probe for the arch)
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    detail: String,
}

struct Prober<'c, 'g> {
    ctx: &'c Ctx<'g>,
    entries: Vec<KernelEntry>,
    enabled: bool,
    work: selftest::Workdir,
    self_exe: PathBuf,
}

impl<'c, 'g> Prober<'c, 'g> {
    fn new(ctx: &'c Ctx<'g>) -> Result<Prober<'c, 'g>> {
        let (entries, enabled) = kernel_view(ctx)?;
        Ok(Prober {
            ctx,
            entries,
            enabled,
            work: selftest::Workdir::new().context("cannot create a directory for the probes")?,
            self_exe: std::env::current_exe().context("cannot find binfmtctl's own executable")?,
        })
    }

    fn handler(&self, a: &Arch) -> Handler {
        let mut h = Handler {
            arch: a.name.clone(),
            state: "no-handler",
            entry: None,
            interpreter: None,
            flags: None,
            detail: String::new(),
        };
        if self.ctx.is_native(&a.name).is_some() {
            h.state = "native";
            h.detail = "runs natively".into();
            return h;
        }
        let header = crate::inspection::probe::representative_header(a);
        let Some(k) =
            crate::inspection::inspect::kernel_choice(&self.entries, self.enabled, &header, "/x")
        else {
            h.detail = format!("no handler: `binfmtctl install {} --nix`", a.name);
            return h;
        };
        let r = &k.entry.registration;
        h.entry = Some(r.name.clone());
        h.interpreter = Some(r.interpreter.clone());
        h.flags = Some(r.flags.to_string());
        if crate::inspection::probe::build(a).is_none() {
            h.state = "unverified";
            h.detail = "registered, but binfmtctl has no probe to prove it works".into();
            return h;
        }
        let env = selftest::Env {
            entries: &self.entries,
            binfmt_enabled: self.enabled,
            host_machine: &self.ctx.host.facts.machine,
            self_exe: &self.self_exe,
            work: &self.work,
        };
        let res = selftest::test_arch(a, false, true, &env);
        let runs = res.checks.iter().find(|c| c.name == "runs");
        match runs {
            Some(c) if c.ok == Some(true) => {
                h.state = "works";
                h.detail = c.detail.clone();
            }
            _ => {
                h.state = "fails";
                h.detail = runs.map_or_else(
                    || res.reason.clone().unwrap_or_default(),
                    |c| c.detail.clone(),
                );
            }
        }
        h
    }
}

/// A system Nix accepts or binfmtctl could give it.
#[derive(Debug, Serialize)]
struct SystemRow {
    system: String,
    /// Nix accepts derivations for it now.
    accepted: bool,
    /// `system`, `extra-platforms`, or `handler` (only a handler: Nix does not accept it).
    source: &'static str,
    /// binfmtctl.conf lists it.
    from_binfmtctl: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    handler: Option<Handler>,
    /// What is wrong, if anything, with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// `x86_64-v3-linux` and friends: micro-architecture levels of a native system.
fn native_variant(system: &str, native_systems: &[String]) -> bool {
    native_systems.iter().any(|n| {
        let (cpu, rest) = n.split_once('-').unwrap_or((n, ""));
        system
            .strip_prefix(&format!("{cpu}-v"))
            .and_then(|s| s.split_once('-'))
            .is_some_and(|(lvl, os)| lvl.chars().all(|c| c.is_ascii_digit()) && os == rest)
    })
}

fn native_systems(ctx: &Ctx, view: &View) -> Vec<String> {
    let mut v = vec![view.system.clone()];
    for n in &ctx.host.native {
        if let Some(a) = ctx.table.get(&n.arch) {
            for s in &a.nix {
                if !v.contains(s) {
                    v.push(s.clone());
                }
            }
        }
    }
    v
}

pub(super) fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let nix = nix_program()?;
    let paths = Paths::from_env();
    let conf_lines = match std::fs::read_to_string(&paths.conf) {
        Ok(t) => nixcfg::parse(&paths.conf, &t).map_err(nix_err)?,
        Err(_) => Vec::new(),
    };
    let included = nixcfg::includes(&paths.conf, &conf_lines, &paths.include);
    let managed = nixcfg::load_managed(&paths).map_err(nix_err)?;
    let view = nix_view(&nix, &paths)?;
    let native = native_systems(ctx, &view);
    let prober = Prober::new(ctx)?;
    let mut rows: Vec<SystemRow> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let ours = managed.platforms();
    let mut systems: Vec<(String, &'static str)> = vec![(view.system.clone(), "system")];
    for p in &view.extra_platforms {
        if !systems.iter().any(|(s, _)| s == p) {
            systems.push((p.clone(), "extra-platforms"));
        }
    }
    // Systems with a registered handler that Nix does not accept.
    for a in &ctx.table.arches {
        if a.nix.is_empty() || ctx.is_native(&a.name).is_some() {
            continue;
        }
        let header = crate::inspection::probe::representative_header(a);
        if crate::inspection::inspect::kernel_choice(&prober.entries, prober.enabled, &header, "/x")
            .is_some()
        {
            for s in &a.nix {
                if !systems.iter().any(|(x, _)| x == s) {
                    systems.push((s.clone(), "handler"));
                }
            }
        }
    }
    let mut probed: Vec<Handler> = Vec::new();
    for (system, source) in systems {
        let mut row = SystemRow {
            accepted: source != "handler",
            from_binfmtctl: ours.contains(&system),
            system: system.clone(),
            source,
            handler: None,
            problem: None,
        };
        if source == "system" || native.contains(&system) || native_variant(&system, &native) {
            row.handler = Some(Handler {
                arch: nixcfg::arch_of_system(ctx.table, &system)
                    .map_or_else(|| "-".into(), |a| a.name.clone()),
                state: "native",
                entry: None,
                interpreter: None,
                flags: None,
                detail: "runs natively".into(),
            });
            rows.push(row);
            continue;
        }
        let Some(a) = nixcfg::arch_of_system(ctx.table, &system) else {
            row.problem = Some(format!(
                "Nix accepts {system}, which binfmtctl has no arch for: nothing here can run its builders unless you know better"
            ));
            warnings.push(row.problem.clone().unwrap_or_default());
            rows.push(row);
            continue;
        };
        let h = match probed.iter().find(|h| h.arch == a.name) {
            Some(h) => h.clone(),
            None => {
                let h = prober.handler(a);
                probed.push(h.clone());
                h
            }
        };
        row.problem = match (row.accepted, h.state) {
            (true, "works" | "unverified") => {
                let no_f = h.flags.as_deref().is_some_and(|f| !f.contains('F'));
                let interp = h.interpreter.clone().unwrap_or_default();
                (no_f && view.sandboxed() && !view.in_sandbox(&interp)).then(|| {
                    format!(
                        "{} has no F flag and {interp} is not in Nix's sandbox-paths, so {system} builds fail in the sandbox: `binfmtctl install {} --nix` (adds it), or register it with F",
                        h.entry.clone().unwrap_or_default(),
                        a.name
                    )
                })
            }
            (true, _) => Some(format!(
                "Nix accepts {system} builds but no working handler runs {} programs ({}): `binfmtctl install {} --nix`, or take {system} out of extra-platforms",
                a.name, h.detail, a.name
            )),
            (false, "works") => Some(format!(
                "{} works but Nix does not build {system}: `binfmtctl install {} --nix`",
                h.entry.clone().unwrap_or_default(),
                a.name
            )),
            (false, _) => None,
        };
        if let Some(p) = &row.problem {
            warnings.push(p.clone());
        }
        row.handler = Some(h);
        rows.push(row);
    }
    if paths.include.exists() && !included {
        warnings.push(format!(
            "{} exists but {} does not include it, so Nix ignores it: add `{}` to {}",
            paths.include.display(),
            paths.conf.display(),
            nixcfg::INCLUDE_LINE,
            paths.conf.display()
        ));
    }
    if ctx.g.json {
        let v = json!({
            "nix": nix,
            "conf_dir": paths.dir,
            "nix_conf": paths.conf,
            "include_file": paths.include,
            "included": included,
            "binfmtctl": managed,
            "system": view.system,
            "extra_platforms": view.extra_platforms,
            "sandbox": view.sandbox,
            "sandbox_paths": view.sandbox_paths,
            "system_features": view.system_features,
            "systems": rows,
            "warnings": warnings,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "nix: {} (configuration {})",
        nix.display(),
        paths.dir.display()
    )?;
    writeln!(
        out,
        "binfmtctl.conf: {}",
        match (paths.include.exists(), included) {
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
    writeln!(out, "system: {}", view.system)?;
    writeln!(out, "extra-platforms: {}", view.extra_platforms.join(" "))?;
    writeln!(
        out,
        "sandbox: {}{}",
        view.sandbox,
        if view.sandbox_paths.is_empty() {
            String::new()
        } else {
            format!(" (paths: {})", view.sandbox_paths.join(" "))
        }
    )?;
    writeln!(
        out,
        "{:<20} {:<9} {:<10} {:<14} DETAIL",
        "SYSTEM", "NIX", "STATE", "HANDLER"
    )?;
    for r in &rows {
        let h = r.handler.as_ref();
        writeln!(
            out,
            "{:<20} {:<9} {:<10} {:<14} {}",
            r.system,
            if r.accepted { "builds" } else { "no" },
            h.map_or("unknown", |h| h.state),
            h.and_then(|h| h.entry.clone())
                .unwrap_or_else(|| "-".into()),
            h.map_or("", |h| h.detail.as_str())
        )?;
    }
    for w in &warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    Ok(())
}

pub(super) fn machines(
    ctx: &Ctx,
    uri: &str,
    max_jobs: Option<u32>,
    ssh_key: Option<&str>,
    host_key: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    if uri.trim().is_empty() || uri.contains(char::is_whitespace) {
        return Err(BadInput(format!(
            "--host {uri:?}: a store URI without blanks, such as ssh-ng://builder1"
        ))
        .into());
    }
    let nix = nix_program()?;
    let paths = Paths::from_env();
    let view = nix_view(&nix, &paths)?;
    let host_key = match host_key {
        Some(p) => Some(crate::input::read_text(p, crate::input::MAX_TEXT).context("--host-key")?),
        None => std::fs::read_to_string(DEFAULT_HOST_KEY).ok(),
    }
    .map(|k| nixcfg::base64(k.trim().as_bytes()));
    let mut native = native_systems(ctx, &view);
    for p in &view.extra_platforms {
        if native_variant(p, &native) && !native.contains(p) {
            native.push(p.clone());
        }
    }
    let prober = Prober::new(ctx)?;
    let mut emulated: Vec<String> = Vec::new();
    let mut skipped: Vec<serde_json::Value> = Vec::new();
    for a in &ctx.table.arches {
        if a.nix.is_empty() || ctx.is_native(&a.name).is_some() {
            continue;
        }
        let header = crate::inspection::probe::representative_header(a);
        if crate::inspection::inspect::kernel_choice(&prober.entries, prober.enabled, &header, "/x")
            .is_none()
        {
            continue;
        }
        let h = prober.handler(a);
        let no_f = h.flags.as_deref().is_some_and(|f| !f.contains('F'));
        let interp = h.interpreter.clone().unwrap_or_default();
        for s in &a.nix {
            let why = if h.state != "works" {
                Some(format!(
                    "{} {}: {}",
                    h.entry.clone().unwrap_or_default(),
                    h.state,
                    h.detail
                ))
            } else if !view.accepts(s) {
                Some(format!(
                    "Nix here does not accept {s}: `binfmtctl install {} --nix`",
                    a.name
                ))
            } else if no_f && view.sandboxed() && !view.in_sandbox(&interp) {
                Some(format!(
                    "{interp} (no F flag) is not in Nix's sandbox: `binfmtctl install {} --nix`",
                    a.name
                ))
            } else {
                None
            };
            match why {
                None => emulated.push(s.clone()),
                Some(w) => skipped.push(json!({"system": s, "reason": w})),
            }
        }
    }
    let jobs = max_jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    if jobs == 0 {
        return Err(BadInput("--max-jobs 0: a builder needs at least one job".into()).into());
    }
    let lines = nixcfg::machine_lines(
        uri,
        &native,
        &emulated,
        &view.system_features,
        jobs,
        ssh_key.map(str::to_owned),
        host_key,
    );
    if ctx.g.json {
        let v = json!({
            "machines": lines,
            "lines": lines.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "native": native,
            "emulated": emulated,
            "skipped": skipped,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    for l in &lines {
        writeln!(out, "{l}")?;
    }
    for s in &skipped {
        eprintln!(
            "binfmtctl: note: {} left out: {}",
            s["system"].as_str().unwrap_or_default(),
            s["reason"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_nix_forms() {
        let p = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("binfmtctl").chain(args.iter().copied()))
        };
        let c = p(&["install", "arm64,riscv64", "--nix"]).unwrap();
        assert!(matches!(c.command, Some(Command::Install { opts, .. }) if opts.nix));
        let c = p(&["nix", "status", "--json"]).unwrap();
        assert!(matches!(c.command, Some(Command::Nix(NixCommand::Status))) && c.output.json);
        let c = p(&[
            "nix",
            "machines",
            "--host",
            "ssh-ng://b1",
            "--max-jobs",
            "4",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Some(Command::Nix(NixCommand::Machines { ref host, max_jobs: Some(4), .. })) if host == "ssh-ng://b1"
        ));
        assert!(p(&["nix", "machines"]).is_err(), "--host is required");
        assert!(p(&["nix", "machines", "--host", "h", "--max-jobs", "x"]).is_err());
    }

    #[test]
    fn microarchitecture_levels_are_native() {
        let native = vec!["x86_64-linux".to_owned(), "i686-linux".to_owned()];
        assert!(native_variant("x86_64-v3-linux", &native));
        assert!(native_variant("x86_64-v1-linux", &native));
        assert!(!native_variant("x86_64-vx-linux", &native));
        assert!(!native_variant("aarch64-linux", &native));
        assert!(!native_variant("x86_64-v2-darwin", &native));
    }
}
