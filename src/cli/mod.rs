//! The command line: clap's definitions (`args`), the settings each command runs with
//! (`settings`: the options given before and after the subcommand merged, checked against what
//! the subcommand takes), the dispatcher `run` that maps each subcommand to its operation in
//! `crate::ops`, and the rendering of the operations' typed reports as text or JSON (`render`
//! and the per-command modules).
//!
//! The operations live beneath this layer: they take the binfmt_misc seam, the host and their
//! options, validate the whole request before the first write to binfmt_misc, and return
//! typed reports. From an error to the exit code is `crate::exit`.

use std::ffi::OsString;
use std::io::Write;

use anyhow::Result;

use crate::error::BadInput;
use crate::ops;

pub mod args;
mod context;
mod emulate;
mod interop;
mod look;
mod nix;
mod qemu;
mod register;
mod render;
pub mod settings;
mod status;

pub use args::Cli;
use args::{Command, CrossCommand, InstallOpts, NixCommand, RootfsCommand};
use context::Ctx;
use settings::Parsed;

/// Parses the command line. On a usage error (or `--help`, `--version`) clap's message is
/// printed and the exit code returned: 2 for bad usage; with `--json` anywhere on the
/// command line the error is reported as the error object too.
pub fn parse() -> Result<Parsed, u8> {
    Parsed::try_from_args(std::env::args_os()).map_err(|e| {
        use clap::error::ErrorKind as K;
        let json = std::env::args_os()
            .skip(1)
            .take_while(|a| a != "--")
            .any(|a| a == "--json");
        // clap suggests hidden subcommands too (`frobnicate` → `__probe-native`): those tips go.
        let hidden_tip = |l: &&str| l.contains("similar subcommand") && l.contains("'__");
        if json && !matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
            let msg = without_lines(&e.render().to_string(), hidden_tip);
            let v = crate::exit::usage_error_json(&crate::exit::usage_message(&msg));
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            eprint!("{msg}");
            return crate::error::ErrorKind::BadInput.exit_code();
        }
        if e.kind() == K::InvalidSubcommand {
            eprint!("{}", without_lines(&e.render().to_string(), hidden_tip));
        } else {
            let _ = e.print();
        }
        u8::try_from(e.exit_code()).unwrap_or(crate::error::ErrorKind::BadInput.exit_code())
    })
}

/// `text` without the lines `drop` picks (and without a blank line left doubled by that).
fn without_lines(text: &str, drop: impl Fn(&&str) -> bool) -> String {
    let mut out = String::new();
    let mut last_blank = false;
    for l in text.lines().filter(|l| !drop(l)) {
        let blank = l.trim().is_empty();
        if !(blank && last_blank) {
            out.push_str(l);
            out.push('\n');
        }
        last_blank = blank;
    }
    out
}

/// Runs the parsed command line. Output goes to `out`; errors are returned for `main`. Returns
/// the exit status: 0, or a hidden helper stage's own.
pub fn run(parsed: Parsed, out: &mut dyn Write) -> Result<u8> {
    if let Some(status) = helper(&parsed.cli.command, out)? {
        return Ok(status);
    }
    let cli = &parsed.cli;
    match (&cli.command, &cli.install, &cli.uninstall) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(BadInput(
            "--install/--uninstall and a subcommand do not go together: use one form".into(),
        )
        .into()),
        // The container-entrypoint forms: do it, then the JSON status people script against.
        (None, Some(list), _) => {
            let (g, opts) = parsed.settings_like("install", "--install")?;
            let mut ctx = Ctx::new(&g)?;
            ctx.use_stored_qemu(opts.qemu.as_deref())?;
            // Standard output is JSON alone: install's own lines go to stderr (with --json,
            // its report is the first of the two documents, docs/json.md).
            let (names, mut err): (Vec<String>, _) = (split(list), std::io::stderr());
            let log: &mut dyn Write = if g.json { &mut *out } else { &mut err };
            register::install(&ctx, &names, &opts, log)?;
            status::status(&ctx, true, out)?;
            Ok(0)
        }
        (None, None, Some(list)) => {
            let (mut g, _) = parsed.settings_like("uninstall", "--uninstall")?;
            // The status printed after it decides the natives as `status` does.
            g.probe_compat = true;
            let (targets, mut err): (Vec<OsString>, _) = (split(list), std::io::stderr());
            let ctx = Ctx::new(&g)?;
            let log: &mut dyn Write = if g.json { &mut *out } else { &mut err };
            register::uninstall(&ctx, &targets, log)?;
            status::status(&ctx, true, out)?;
            Ok(0)
        }
        (None, None, None) => {
            let (g, _) = parsed.settings_like("status", "status")?;
            status::status(&Ctx::new(&g)?, g.json, out)?;
            Ok(0)
        }
        (Some(_), None, None) => {
            let (g, opts) = parsed.settings()?;
            let mut ctx = Ctx::new(&g)?;
            ctx.use_stored_qemu(opts.qemu.as_deref())?;
            let Some(command) = parsed.cli.command else {
                unreachable!("matched Some above")
            };
            dispatch(&ctx, command, &opts, out)?;
            Ok(0)
        }
    }
}

/// The hidden helper stages, run before any host fact is gathered: their exit status, or
/// `None` for the other commands.
fn helper(command: &Option<Command>, out: &mut dyn Write) -> Result<Option<u8>> {
    let status = match command {
        Some(Command::SandboxStage1 { spec_fd, parent }) => {
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            crate::ops::facade::helper_stage1(&exe, *spec_fd, *parent)
        }
        Some(Command::SandboxStage2 { spec_fd, parent }) => {
            crate::ops::facade::helper_stage2(*spec_fd, *parent)
        }
        Some(Command::ProbeChroot {
            root,
            program,
            argv0,
        }) => {
            let (code, msg) = crate::ops::facade::chroot_exec(root, program, argv0);
            eprintln!("{msg}");
            code
        }
        Some(Command::ProbeNative { programs }) => {
            let (code, msg) = crate::ops::facade::probe_native_helper(programs);
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            code
        }
        Some(Command::Generate { what, dir, date }) => {
            let cli = <Cli as clap::CommandFactory>::command();
            for path in crate::ops::facade::generate(&cli, *what, dir, date.as_deref())? {
                writeln!(out, "{}", path.display())?;
            }
            0
        }
        _ => return Ok(None),
    };
    Ok(Some(crate::exit::status_code(status)))
}

/// Why `--json` cannot apply to `command` (docs/cli.md, "JSON"): refused (exit 2) rather than
/// ignored, so a script never parses text it took for JSON.
fn json_refusal(command: &Command) -> Option<String> {
    match command {
        Command::Run { .. } | Command::Build { .. } => Some(
            "--json does not apply to `run` and `build`: standard output is the command's own, \
             and its exit status is binfmtctl's; leave --json out"
                .into(),
        ),
        Command::Export { format, .. } if format != "json" => Some(format!(
            "--json does not apply to `export --format {format}` (it writes {format} files): \
             use --format json, or leave --json out"
        )),
        Command::Cross(CrossCommand::Env {
            format: Some(f), ..
        }) if f != "json" => Some(format!(
            "--json and --format {f} do not go together: `cross env --json` is --format json"
        )),
        _ => None,
    }
}

/// The comma list of the `--install`/`--uninstall` forms.
fn split<T: From<String>>(list: &str) -> Vec<T> {
    list.split(',').map(|s| T::from(s.to_owned())).collect()
}

/// One subcommand to its operation.
fn dispatch(ctx: &Ctx, command: Command, opts: &InstallOpts, out: &mut dyn Write) -> Result<()> {
    if ctx.g.json
        && let Some(why) = json_refusal(&command)
    {
        return Err(BadInput(why).into());
    }
    match command {
        Command::Install { arches, .. } => register::install(ctx, &arches, opts, out),
        Command::Uninstall { targets, .. } => register::uninstall(ctx, &targets, out),
        Command::Enable { ref targets, .. } | Command::Disable { ref targets, .. } => {
            let on = matches!(command, Command::Enable { .. });
            let r = ops::switch::switch(&ctx.fs, &ctx.host, targets, on, ctx.g.dry_run)?;
            render::show(ctx, out, r)
        }
        Command::Status { .. } => status::status(ctx, ctx.g.json, out),
        Command::Interpreters { arches, .. } => status::interpreters(ctx, &arches, out),
        Command::Arches { markdown } => status::arches(ctx, markdown, out),
        Command::Inspect { files, .. } => look::inspect(ctx, &files, out),
        Command::Doctor { files, rootfs, .. } => look::doctor(ctx, &files, rootfs.as_ref(), out),
        Command::Test { arches, strict, .. } => look::selftest(ctx, &arches, strict, out),
        Command::Scan { path, files, .. } => look::scan(ctx, &path, files, out),
        Command::Rootfs(RootfsCommand::Create {
            arch,
            suite,
            include,
            variant,
            mirror,
            allow_expired,
            dir,
            ..
        }) => emulate::rootfs_create(
            ctx,
            &ops::emulate::RootfsRequest {
                arch,
                suite,
                include,
                variant,
                mirror,
                dir,
                quiet: ctx.g.quiet || ctx.g.json,
                allow_expired,
            },
            out,
        ),
        Command::Run { args, .. } => emulate::run_in_rootfs(ctx, &args, out),
        Command::Apply { remove, .. } => register::apply(ctx, remove, out),
        Command::Export {
            format,
            dir,
            force,
            arches,
            ..
        } => interop::export(ctx, &arches, opts, &format, dir.as_deref(), force, out),
        Command::Import {
            paths,
            register: reg,
            allow_credentials,
            allow_extension,
            ..
        } => interop::import(
            ctx,
            &paths,
            reg,
            ops::import::ImportOptions {
                allow_credentials,
                allow_extension,
                dry_run: ctx.g.dry_run,
            },
            out,
        ),
        Command::Cross(CrossCommand::Env { arch, format }) => {
            let format = match format {
                Some(f) => f,
                None if ctx.g.json => "json".into(),
                None => "sh".into(),
            };
            emulate::cross_env(ctx, &arch, &format, out)
        }
        Command::Build { args, .. } => emulate::build(ctx, &args, out),
        Command::Qemu { cmd, .. } => qemu::qemu_cmd(ctx, &cmd, out),
        Command::Nix(NixCommand::Status) => nix::status(ctx, out),
        Command::Nix(NixCommand::Machines {
            host,
            max_jobs,
            ssh_key,
            host_key,
        }) => nix::machines(
            ctx,
            &ops::nix::MachinesRequest {
                uri: host,
                max_jobs,
                ssh_key,
                host_key,
            },
            out,
        ),
        Command::SandboxStage1 { .. }
        | Command::SandboxStage2 { .. }
        | Command::ProbeChroot { .. }
        | Command::ProbeNative { .. }
        | Command::Generate { .. } => unreachable!("helpers run before the dispatch"),
    }
}
