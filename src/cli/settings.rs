//! The settings a command runs with: the options given before the subcommand (`TopOpts`, or
//! the `--install`/`--uninstall` forms) merged with the subcommand's own, which win (as
//! ripgrep turns its low-level arguments into high-level ones). Which option groups a
//! subcommand takes is read from its clap definition (`args`), and their values from clap's
//! `ArgMatches`, so no list of the subcommands' options is kept by hand. An option given
//! before a subcommand that does not take it is bad usage (exit 2). No I/O.

use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches};

use super::args::{
    Cli, ConfigOpt, DryRunOpt, FlagOpts, InstallOpts, KernelOpt, NativeOpt, Output, SearchOpt,
    StoreOpt, TopOpts, TrustOpt,
};
use crate::error::BadInput;
use crate::ops::facade::Flags;

/// A parsed command line: the typed form, and clap's matches that say which options were
/// given where.
#[derive(Debug)]
pub struct Parsed {
    pub cli: Cli,
    matches: ArgMatches,
    /// The clap command parsed with (built along the given subcommands), kept for `settings`.
    cmd: clap::Command,
}

impl Parsed {
    /// Parses `args` (the program name first).
    pub fn try_from_args<I, T>(args: I) -> Result<Parsed, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        Ok(Parsed { cli, matches, cmd })
    }

    /// The settings of the subcommand given (its name, the top-level one, for messages).
    pub fn settings(&self) -> Result<(Global, InstallOpts)> {
        let (mut shape, mut given) = (&self.cmd, &self.matches);
        let mut name = None;
        while let Some((sub, m)) = given.subcommand() {
            let Some(c) = shape.find_subcommand(sub) else {
                break;
            };
            name.get_or_insert(sub);
            (shape, given) = (c, m);
        }
        let takes = Takes::of(shape, given);
        settings(
            &self.cli.top,
            &self.cli.output,
            &takes,
            name.unwrap_or("status"),
        )
    }

    /// The settings of a form without a subcommand (`--install`, `--uninstall`, none: status),
    /// which takes the options of the subcommand `like`, given before any subcommand.
    pub fn settings_like(&self, like: &str, form: &str) -> Result<(Global, InstallOpts)> {
        // Not given, so not built: it lacks only help and the global output options.
        let shape = self
            .cmd
            .find_subcommand(like)
            .unwrap_or_else(|| panic!("no subcommand {like}"));
        let takes = Takes::of(shape, &self.matches);
        settings(&self.cli.top, &self.cli.output, &takes, form)
    }
}

/// The settings a command runs with, after merging the options given before and after the
/// subcommand (after wins).
#[derive(Debug, Clone)]
pub struct Global {
    pub binfmt_misc: PathBuf,
    pub qemu_path: Vec<PathBuf>,
    pub dry_run: bool,
    pub config: PathBuf,
    pub json: bool,
    pub quiet: bool,
    pub native: Vec<String>,
    pub not_native: Vec<String>,
    /// Run the compat arches' probes (the commands that decide what is native); the others
    /// go by the kernel config alone.
    pub probe_compat: bool,
    /// In a user namespace, count unmapped (overflow uid) owners as root's (`--trust-unmapped-owner`).
    pub trust_unmapped_owner: bool,
    /// The QEMU store, when `--qemu-store` was given.
    pub qemu_store: Option<PathBuf>,
}

/// Which option groups a subcommand takes, with their values; the options given before the
/// subcommand must be among them.
#[derive(Default)]
struct Takes {
    kernel: Option<KernelOpt>,
    search: Option<SearchOpt>,
    /// `--trust-unmapped-owner` (with or without `--qemu-path`).
    trust: Option<TrustOpt>,
    dry_run: Option<DryRunOpt>,
    config: Option<ConfigOpt>,
    native: Option<NativeOpt>,
    install: Option<InstallOpts>,
    flags: Option<FlagOpts>,
    store: Option<StoreOpt>,
}

impl Takes {
    /// The groups `shape` (a subcommand as clap defines it) takes, with their values in
    /// `given`.
    fn of(shape: &clap::Command, given: &ArgMatches) -> Takes {
        Takes {
            kernel: group(shape, given),
            search: group(shape, given),
            trust: group(shape, given),
            dry_run: group(shape, given),
            config: group(shape, given),
            native: group(shape, given),
            install: group(shape, given),
            flags: group(shape, given),
            store: group(shape, given),
        }
    }
}

/// The group `T` with its values, when `shape` takes every option of it.
fn group<T: Args + FromArgMatches>(shape: &clap::Command, given: &ArgMatches) -> Option<T> {
    let probe = T::augment_args(clap::Command::new("probe"));
    let takes = probe
        .get_arguments()
        .all(|a| shape.get_arguments().any(|s| s.get_id() == a.get_id()));
    if !takes {
        return None;
    }
    T::from_arg_matches(given).ok()
}

/// The options given before the subcommand that it does not take.
fn stray(top: &TopOpts, takes: &Takes) -> Vec<&'static str> {
    let mut stray = Vec::new();
    if top.register.kernel.binfmt_misc.is_some() && takes.kernel.is_none() {
        stray.push("--binfmt-misc");
    }
    if !top.register.search.qemu_path.is_empty() && takes.search.is_none() {
        stray.push("--qemu-path");
    }
    if top.register.search.trust.trust_unmapped_owner && takes.trust.is_none() {
        stray.push("--trust-unmapped-owner");
    }
    if top.register.dry_run.dry_run && takes.dry_run.is_none() {
        stray.push("--dry-run");
    }
    if top.register.config.config.is_some() && takes.config.is_none() {
        stray.push("--config");
    }
    if (!top.register.native.native.is_empty() || !top.register.native.not_native.is_empty())
        && takes.native.is_none()
    {
        stray.push("--native/--not-native");
    }
    if takes.install.is_none() {
        let flags = &top.install.flag_opts;
        if takes.flags.is_none() && (flags.flags.is_some() || flags.credentials) {
            stray.push("--flags/--credentials");
        }
        if top.install.keep_existing || top.install.persist || top.install.nix {
            stray.push("--keep-existing/--persist/--nix");
        }
    }
    if top.register.store.qemu_store.is_some() && takes.store.is_none() {
        stray.push("--qemu-store");
    }
    if takes.install.is_none() && top.install.qemu.is_some() {
        stray.push("--qemu");
    }
    stray
}

/// Merges the options given before the subcommand (`top`) with the subcommand's own (which
/// win); an option given before a subcommand that does not take it is bad usage.
fn settings(
    top: &TopOpts,
    output: &Output,
    takes: &Takes,
    cmd: &str,
) -> Result<(Global, InstallOpts)> {
    let stray = stray(top, takes);
    if !stray.is_empty() {
        return Err(BadInput(format!(
            "{} does not apply to `{cmd}`: see `binfmtctl {cmd} --help` for its options",
            stray.join(", ")
        ))
        .into());
    }
    let pick_path = |sub: Option<&Option<PathBuf>>, top: &Option<PathBuf>, default: &str| {
        sub.and_then(Option::clone)
            .or_else(|| top.clone())
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let qemu_path = match &takes.search {
        Some(s) if !s.qemu_path.is_empty() => s.qemu_path.clone(),
        _ => top.register.search.qemu_path.clone(),
    };
    let (native, not_native) = match &takes.native {
        Some(n) if !n.native.is_empty() || !n.not_native.is_empty() => {
            (n.native.clone(), n.not_native.clone())
        }
        _ => (
            top.register.native.native.clone(),
            top.register.native.not_native.clone(),
        ),
    };
    let g = Global {
        binfmt_misc: pick_path(
            takes.kernel.as_ref().map(|k| &k.binfmt_misc),
            &top.register.kernel.binfmt_misc,
            crate::ops::facade::BINFMT_MISC_ROOT,
        ),
        qemu_path,
        dry_run: top.register.dry_run.dry_run || takes.dry_run.as_ref().is_some_and(|d| d.dry_run),
        config: pick_path(
            takes.config.as_ref().map(|c| &c.config),
            &top.register.config.config,
            crate::ops::facade::CONFIG_PATH,
        ),
        json: output.json,
        quiet: output.quiet,
        native,
        not_native,
        probe_compat: takes.native.is_some(),
        trust_unmapped_owner: top.register.search.trust.trust_unmapped_owner
            || takes.trust.as_ref().is_some_and(|t| t.trust_unmapped_owner),
        qemu_store: takes
            .store
            .as_ref()
            .and_then(|s| s.qemu_store.clone())
            .or_else(|| top.register.store.qemu_store.clone()),
    };
    // Install options: the subcommand's, completed by those given before it.
    let mut opts = top.install.clone();
    let sub_flags = takes
        .install
        .as_ref()
        .map(|i| &i.flag_opts)
        .or(takes.flags.as_ref());
    if let Some(f) = sub_flags {
        if f.flags.is_some() {
            opts.flag_opts.flags.clone_from(&f.flags);
        }
        opts.flag_opts.credentials |= f.credentials;
    }
    if let Some(i) = &takes.install {
        opts.keep_existing |= i.keep_existing;
        opts.persist |= i.persist;
        opts.nix |= i.nix;
        if i.qemu.is_some() {
            opts.qemu.clone_from(&i.qemu);
        }
    }
    Ok((g, opts))
}

/// The binfmt_misc flags of `--flags` and `--credentials` (default FP).
pub fn flags_from(opts: &InstallOpts) -> Result<Flags> {
    let opts = &opts.flag_opts;
    let mut f = match &opts.flags {
        Some(s) => Flags::parse(s)?,
        None => Flags::DEFAULT,
    };
    if opts.credentials {
        f.credentials = true;
    }
    Ok(f.normalized())
}
