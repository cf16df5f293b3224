//! The command line: clap derive structs (no I/O in parsing), one function per subcommand,
//! human and `--json` rendering, and the mapping from errors to exit codes.
//!
//! The operations that register, remove and report entries live beneath this layer in
//! `crate::ops` (they take the binfmt_misc seam, the host and options, and return typed
//! reports); the functions here turn options into their requests and their reports into text
//! or JSON. Every operation validates its whole request before the first write to
//! binfmt_misc; then it takes the instance lock, snapshots the kernel, plans, applies and
//! reads back (see `plan`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::json;

use crate::binfmt::arch::{Arch, Table};
use crate::binfmt::kernel::{KernelEntry, ProcBinfmt};
use crate::binfmt::plan::{self, Verdict};
use crate::binfmt::registration::{Entry, Flags, Matcher};
use crate::error::ErrorKind;
use crate::host::{HostFacts, NativeArch};
use crate::ops;
use crate::qemu::interpreter::{self, Discovery, Requirements};

pub mod doctor;
mod emulate;
pub mod exit;
pub mod generate;
mod nix;
mod qemu;
mod register;
mod switch;
mod verify;

pub(crate) use self::nix::NixCommand;
use emulate::*;
use qemu::*;
use register::*;
use switch::*;
use verify::*;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub const EXIT_ENVIRONMENT: u8 = 3;

const EXIT_CODES_HELP: &str = "\
Exit codes (docs/exit-codes.md):
  0  success (including: nothing needed to change)
  1  the operation failed; whatever this run changed was rolled back
  2  bad usage or bad input (unknown arch, bad flags, refused or missing interpreter,
     a native arch requested); nothing was changed
  3  the environment cannot do it (binfmt_misc not mounted and not mountable, not
     permitted, kernel too old); nothing was changed
  128+N  interrupted by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129) while writing
     binfmt_misc; whatever this run changed was rolled back";

#[derive(Debug, Parser)]
#[command(
    name = "binfmtctl",
    version,
    about = "Register QEMU user-mode emulators with the kernel's binfmt_misc, safely",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// Same as `install ARCHES`, then prints `status --json` (the form used as a container
    /// entrypoint); takes the options of `install`
    #[arg(long, value_name = "ARCHES", conflicts_with = "uninstall")]
    pub(crate) install: Option<String>,

    /// Same as `uninstall TARGETS`, then prints `status --json`
    #[arg(long, value_name = "TARGETS")]
    pub(crate) uninstall: Option<String>,

    /// The options of the `--install` form (also accepted before a subcommand they apply to)
    #[command(flatten)]
    pub(crate) top: TopOpts,

    #[command(flatten)]
    pub output: Output,
}

/// The options every subcommand takes.
#[derive(Debug, Args, Clone, Default)]
pub struct Output {
    /// Machine-readable output, errors included (schemas in docs/json.md)
    #[arg(long, global = true)]
    pub json: bool,

    /// More logging (-v info, -vv debug with every kernel write)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// `--binfmt-misc`, for the subcommands that read or write binfmt_misc.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct KernelOpt {
    /// Where binfmt_misc is (or is to be) mounted [default: /proc/sys/fs/binfmt_misc]
    #[arg(long, value_name = "PATH")]
    pub binfmt_misc: Option<PathBuf>,
}

/// `--qemu-path` and `--trust-unmapped-owner`, for the subcommands that look for and check
/// interpreters.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct SearchOpt {
    /// Directory to search for qemu-<cpu>-static / qemu-<cpu> (repeatable; replaces the
    /// default search path /usr/bin, /usr/local/bin, /usr/libexec/qemu)
    #[arg(long, value_name = "DIR")]
    pub qemu_path: Vec<PathBuf>,

    /// Inside a user namespace, count interpreter files and directories whose owner is not
    /// mapped into it (they show as the overflow uid) as root's. Nothing inside the namespace
    /// can prove whose they are: you vouch that they are the host's root
    #[arg(long)]
    pub trust_unmapped_owner: bool,
}

/// `--trust-unmapped-owner` alone, for the subcommands that check interpreters they do not
/// search for (`qemu use`: the stored version is the search).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TrustOpt {
    /// Inside a user namespace, count interpreter files and directories whose owner is not
    /// mapped into it (they show as the overflow uid) as root's. Nothing inside the namespace
    /// can prove whose they are: you vouch that they are the host's root
    #[arg(long)]
    pub trust_unmapped_owner: bool,
}

/// `--dry-run`, for the subcommands that change binfmt_misc.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct DryRunOpt {
    /// Print the plan; write nothing (not even a mount)
    #[arg(long)]
    pub dry_run: bool,
}

/// `--config`, for `apply` and `install --persist`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ConfigOpt {
    /// The config file read by `apply` and written by `install --persist`
    /// [default: /etc/binfmtctl/config.toml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Overrides of the native-arch decision, for the subcommands that make it.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct NativeOpt {
    /// Count these compat arches as native (never register them), whatever the probe says
    #[arg(long, value_name = "ARCHES", value_delimiter = ',')]
    pub native: Vec<String>,

    /// Count these compat arches as not native (emulate them), whatever the probe says
    #[arg(long, value_name = "ARCHES", value_delimiter = ',')]
    pub not_native: Vec<String>,
}

/// `--qemu-store`, for the subcommands that read the QEMU store (`binfmtctl qemu`).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct StoreOpt {
    /// The QEMU store (`binfmtctl qemu`) [default: /var/lib/binfmtctl/qemu]
    #[arg(long, value_name = "DIR")]
    pub qemu_store: Option<PathBuf>,
}

/// The options accepted before a subcommand (and by the `--install` form). Each must apply
/// to the subcommand it goes with.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct TopOpts {
    #[command(flatten)]
    pub install: InstallOpts,
    #[command(flatten)]
    pub kernel: KernelOpt,
    #[command(flatten)]
    pub search: SearchOpt,
    #[command(flatten)]
    pub dry_run: DryRunOpt,
    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub native: NativeOpt,
    #[command(flatten)]
    pub store: StoreOpt,
}

/// The settings a command runs with, after merging the options given before and after the
/// subcommand (after wins).
#[derive(Debug, Clone)]
pub(crate) struct Global {
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

/// The binfmt_misc flags, for the subcommands that build registrations.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct FlagOpts {
    /// binfmt_misc flags, any of P (preserve argv[0]), O (open binary), C (credentials),
    /// F (fix binary) [default: FP]
    #[arg(long, value_name = "FLAGS")]
    pub flags: Option<String>,

    /// Add C (and O): setuid binaries run the emulator with their own credentials, which
    /// sudo inside an emulated chroot needs; a privilege decision for you to make
    #[arg(long)]
    pub credentials: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub(crate) struct InstallOpts {
    #[command(flatten)]
    pub flag_opts: FlagOpts,

    /// Leave an existing entry with our name alone even when it differs from ours
    #[arg(long)]
    pub keep_existing: bool,

    /// Also add the arches to the config file, so `apply` (the boot unit) keeps them
    #[arg(long)]
    pub persist: bool,

    /// Also tell Nix: add the arches' Nix systems to extra-platforms (docs/nix.md)
    #[arg(long)]
    pub nix: bool,

    /// Register interpreters from this stored QEMU version (`binfmtctl qemu list`) instead of
    /// the system's
    #[arg(long, value_name = "VERSION")]
    pub qemu: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Register emulators: ARCHES is a comma list in any common spelling, or `all`
    Install {
        #[arg(value_name = "ARCHES", required = true, value_delimiter = ',')]
        arches: Vec<String>,
        #[command(flatten)]
        opts: InstallOpts,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
        #[command(flatten)]
        config: ConfigOpt,
        #[command(flatten)]
        native: NativeOpt,
        #[command(flatten)]
        store: StoreOpt,
    },
    /// Remove entries: arch names, entry names, globs like 'qemu-mips*', or `all` (qemu-* only)
    Uninstall {
        #[arg(value_name = "TARGETS", required = true, value_delimiter = ',')]
        targets: Vec<std::ffi::OsString>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// Switch entries on, keeping them as they are: arch names (our qemu-* entries) or exact
    /// entry names
    Enable {
        #[arg(value_name = "ARCHES|NAMES", required = true, value_delimiter = ',')]
        targets: Vec<String>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// Switch entries off without removing them: arch names (our qemu-* entries) or exact
    /// entry names
    Disable {
        #[arg(value_name = "ARCHES|NAMES", required = true, value_delimiter = ',')]
        targets: Vec<String>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// Show the entries, what the machine can run, and whether ours match the table
    Status {
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        native: NativeOpt,
        #[command(flatten)]
        store: StoreOpt,
    },
    /// Find and check the QEMU interpreter for each arch (default: all)
    Interpreters {
        #[arg(value_name = "ARCHES", value_delimiter = ',')]
        arches: Vec<String>,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        native: NativeOpt,
        #[command(flatten)]
        store: StoreOpt,
    },
    /// What is this binary, and what will the kernel do with it
    Inspect {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// Why a foreign program does or does not run here, and how to fix it: the machine, these
    /// files, or every ELF file of a root file system (exit 1 when something will not run)
    Doctor {
        /// Files to judge (programs, libraries, scripts)
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Judge every ELF file of this root file system (a directory), as run inside it
        #[arg(long, value_name = "DIR")]
        rootfs: Option<PathBuf>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// Which architectures does a root file system (directory) or image (.tar, .tar.gz,
    /// .tar.zst) need, and which of them lack a handler now
    Scan {
        #[arg(value_name = "DIR|TARBALL")]
        path: PathBuf,
        /// Also list every ELF file with its arch
        #[arg(long)]
        files: bool,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// Prove emulation works end to end with a tiny probe program per arch (default: every
    /// registered qemu-* handler; `all`: every arch we have a probe for)
    Test {
        #[arg(value_name = "ARCHES", value_delimiter = ',')]
        arches: Vec<String>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// Foreign root file systems
    #[command(subcommand)]
    Rootfs(RootfsCommand),
    /// Run a command in an emulated chroot of a foreign rootfs (private mount namespace; the
    /// command's exit status is binfmtctl's)
    Run {
        #[command(flatten)]
        args: RunArgs,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// The native path: cross toolchains
    #[command(subcommand)]
    Cross(CrossCommand),
    /// Build for an arch: with a cross toolchain (cross), inside an emulated chroot of --rootfs
    /// with the source bound at /src (emulate), or whichever is available (auto: cross first)
    Build {
        #[command(flatten)]
        args: BuildArgs,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// Reconcile the kernel to the config file (--config, default /etc/binfmtctl/config.toml);
    /// --remove takes out exactly what it declares (the systemd unit's stop)
    Apply {
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
        #[command(flatten)]
        config: ConfigOpt,
        #[command(flatten)]
        native: NativeOpt,
        #[command(flatten)]
        store: StoreOpt,
    },
    /// Write registrations as files other tools read: binfmt.d (systemd-binfmt), update-binfmts
    /// (binfmt-support's import format) or json
    Export {
        #[arg(long, value_parser = ["binfmt.d", "update-binfmts", "json"])]
        format: String,
        /// Write one file per entry into DIR instead of printing
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(value_name = "ARCHES", required = true, value_delimiter = ',')]
        arches: Vec<String>,
        #[command(flatten)]
        flag_opts: FlagOpts,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
    /// Read binfmt.d files (or the *.conf files of a directory) and show, or with --register
    /// register, their entries
    Import {
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        /// Register the entries, after the checks install makes (nothing is written unless
        /// every entry passes them)
        #[arg(long)]
        register: bool,
        /// Allow entries with flag C: setuid programs then run the interpreter with their
        /// owner's credentials (root's, for setuid-root files)
        #[arg(long)]
        allow_credentials: bool,
        /// Allow extension (E) entries: they run their interpreter for every file with that
        /// name ending, whatever it contains
        #[arg(long)]
        allow_extension: bool,
        /// Inside a user namespace, count interpreter files and directories whose owner is
        /// not mapped into it as root's: you vouch that they are the host's root
        #[arg(long)]
        trust_unmapped_owner: bool,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// Nix: its view of the emulated systems, and remote-builder lines (docs/nix.md)
    #[command(subcommand)]
    Nix(NixCommand),
    /// Internal: sandbox stage 1 (used by run and rootfs create)
    #[command(name = "__sandbox", hide = true)]
    SandboxStage1 {
        /// The inherited memfd holding the spec
        #[arg(long)]
        spec_fd: i32,
        /// The pid of the process that started this one
        #[arg(long)]
        parent: i32,
    },
    /// Internal: sandbox stage 2, PID 1 of the sandbox's pid namespace
    #[command(name = "__sandbox-init", hide = true)]
    SandboxStage2 {
        #[arg(long)]
        spec_fd: i32,
        #[arg(long)]
        parent: i32,
    },
    /// Internal: run a probe in a new mount namespace chrooted into ROOT (used by `test`)
    #[command(name = "__probe-chroot", hide = true)]
    ProbeChroot {
        root: PathBuf,
        program: String,
        argv0: String,
    },
    /// Internal: exec a probe, in a fresh binfmt_misc instance with no entries (used to
    /// decide which compat arches run natively)
    #[command(name = "__probe-native", hide = true)]
    ProbeNative { programs: Vec<PathBuf> },
    /// Internal: write the man pages or the shell completions into DIR (packaging/deb/build.sh)
    #[command(name = "__generate", hide = true)]
    Generate {
        #[arg(value_enum)]
        what: generate::Artifact,
        dir: PathBuf,
        /// The date in the man pages' footer (YYYY-MM-DD)
        #[arg(long)]
        date: Option<String>,
    },
    /// Static QEMU versions from Debian's archive: versions, fetch, list, use, verify, gc
    Qemu {
        #[command(subcommand)]
        cmd: QemuCommand,
        #[command(flatten)]
        store: QemuStoreOpt,
    },
    /// List the architecture table with every name each arch answers to
    Arches {
        /// Render it as Markdown (this is docs/arch-table.md)
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RootfsCommand {
    /// Create a Debian rootfs for an arch with mmdebstrap (or debootstrap). Foreign arches are
    /// emulated in a private binfmt_misc instance (Linux >= 6.7), so the host's is untouched
    Create {
        /// The arch, in any spelling
        #[arg(long)]
        arch: String,
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Extra packages (comma list or repeated)
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// mmdebstrap/debootstrap variant
        #[arg(long, default_value = "minbase")]
        variant: String,
        /// Mirror URL (default: the tool's own, from the host's apt sources)
        #[arg(long)]
        mirror: Option<String>,
        /// Directory to create (must not exist or be empty)
        dir: PathBuf,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CrossCommand {
    /// Print the environment build systems read for cross-compiling to ARCH
    Env {
        #[arg(long)]
        arch: String,
        #[arg(long, default_value = "sh", value_parser = ["sh", "fish", "json"])]
        format: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Strategy {
    Auto,
    Cross,
    Emulate,
    /// The emulated chroot with the host's native cross compiler (`run --accelerate`)
    Hybrid,
}

/// `run --accelerate[=force]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accelerate {
    /// Only when the host's cross gcc and binutils have the rootfs's versions
    On,
    /// Even when the versions differ
    Force,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[arg(long)]
    pub arch: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: Strategy,
    /// Rootfs for the emulated and hybrid paths (directory or tarball)
    #[arg(long, value_name = "DIR|TARBALL")]
    pub rootfs: Option<PathBuf>,
    /// Source directory (default: the current one); bound at /src for the emulated path
    #[arg(long, value_name = "DIR")]
    pub src: Option<PathBuf>,
    /// As root, the emulated and hybrid paths use the host's handler even when it lacks P or
    /// its interpreter fails install's checks (see run --host-handlers)
    #[arg(long)]
    pub host_handlers: bool,
    /// The build command
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The rootfs: a directory, or a .tar/.tar.gz/.tar.zst (unpacked once into a cache)
    #[arg(long, value_name = "DIR|TARBALL")]
    pub rootfs: PathBuf,
    /// The rootfs's arch (default: detected from its /bin/sh)
    #[arg(long)]
    pub arch: Option<String>,
    /// No root needed (Linux >= 6.7): a user namespace with its own binfmt_misc; the host's
    /// binfmt_misc is untouched
    #[arg(long)]
    pub rootless: bool,
    /// Bind SRC (host) at DST (rootfs; default SRC); append :ro for read-only
    #[arg(long, value_name = "SRC[:DST[:ro]]")]
    pub bind: Vec<String>,
    /// Working directory inside the rootfs
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Environment variable for the command (repeatable)
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// User to run as (name from the rootfs's /etc/passwd, or uid[:gid])
    #[arg(long)]
    pub user: Option<String>,
    /// Register the arch's handler on the host if it is missing (root mode)
    #[arg(long)]
    pub install_missing: bool,
    /// As root, use the host's handler for the rootfs's arch even when it lacks P or its
    /// interpreter fails install's checks (default: a private binfmt_misc instance with
    /// binfmtctl's own entry, and a warning)
    #[arg(long)]
    pub host_handlers: bool,
    /// Unpack a tarball rootfs with its setuid/setgid bits and device nodes (default: dropped,
    /// so the cache hands out no privileges); kept in a cache entry of its own
    #[arg(long)]
    pub keep_privileges: bool,
    /// Compile natively: the host's cross gcc and binutils of the rootfs's versions stand in
    /// for the rootfs's own, with the rootfs as sysroot; everything else stays emulated.
    /// `=force`: even when the versions differ
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "on",
        value_name = "force"
    )]
    pub accelerate: Option<Accelerate>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The command run in the sandbox exited with this status: binfmtctl exits with it too.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct ChildExit(pub i32);

/// A request the user got wrong, found by the command layer itself (domain errors say their
/// own kind): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(pub String);

impl crate::error::Classify for BadInput {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// The machine cannot do it: exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unsupported(pub String);

impl crate::error::Classify for Unsupported {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}

/// The exit code for an error: the sandboxed command's own status, else the kind of the
/// outermost error in the chain that says its kind (`exit::kind_of`).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(ChildExit(code)) = err.chain().find_map(|c| c.downcast_ref::<ChildExit>()) {
        return u8::try_from(*code).unwrap_or(EXIT_FAILED);
    }
    // Interrupted by a signal (after rollback): 128 + its number, as a shell reports it.
    if let Some(signal) = err
        .chain()
        .find_map(|c| match c.downcast_ref::<plan::ApplyError>() {
            Some(a) => match *a.failure {
                plan::ApplyFailure::Interrupted { signal } => Some(signal),
                _ => None,
            },
            None => None,
        })
    {
        return u8::try_from(crate::error::signal_exit_code(signal)).unwrap_or(EXIT_FAILED);
    }
    crate::cli::exit::kind_of(err).exit_code()
}

/// Which option groups a subcommand takes; the options given before the subcommand must be
/// among them.
#[derive(Default)]
struct Takes<'a> {
    kernel: Option<&'a KernelOpt>,
    search: Option<&'a SearchOpt>,
    /// `--trust-unmapped-owner` without `--qemu-path`.
    trust: Option<&'a TrustOpt>,
    dry_run: Option<&'a DryRunOpt>,
    config: Option<&'a ConfigOpt>,
    native: Option<&'a NativeOpt>,
    install: Option<&'a InstallOpts>,
    flags: Option<&'a FlagOpts>,
    store: Option<&'a StoreOpt>,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Install { .. } => "install",
            Command::Uninstall { .. } => "uninstall",
            Command::Enable { .. } => "enable",
            Command::Disable { .. } => "disable",
            Command::Status { .. } => "status",
            Command::Interpreters { .. } => "interpreters",
            Command::Inspect { .. } => "inspect",
            Command::Doctor { .. } => "doctor",
            Command::Scan { .. } => "scan",
            Command::Test { .. } => "test",
            Command::Rootfs(_) => "rootfs",
            Command::Run { .. } => "run",
            Command::Cross(_) => "cross",
            Command::Build { .. } => "build",
            Command::Apply { .. } => "apply",
            Command::Export { .. } => "export",
            Command::Import { .. } => "import",
            Command::SandboxStage1 { .. } => "__sandbox",
            Command::SandboxStage2 { .. } => "__sandbox-init",
            Command::ProbeChroot { .. } => "__probe-chroot",
            Command::ProbeNative { .. } => "__probe-native",
            Command::Generate { .. } => "__generate",
            Command::Nix(_) => "nix",
            Command::Qemu { .. } => "qemu",
            Command::Arches { .. } => "arches",
        }
    }

    fn takes(&self) -> Takes<'_> {
        match self {
            Command::Install {
                opts,
                kernel,
                search,
                dry_run,
                config,
                native,
                store,
                ..
            } => Takes {
                kernel: Some(kernel),
                search: Some(search),
                trust: None,
                dry_run: Some(dry_run),
                config: Some(config),
                native: Some(native),
                install: Some(opts),
                flags: None,
                store: Some(store),
            },
            Command::Uninstall {
                kernel, dry_run, ..
            }
            | Command::Enable {
                kernel, dry_run, ..
            }
            | Command::Disable {
                kernel, dry_run, ..
            }
            | Command::Import {
                kernel, dry_run, ..
            } => Takes {
                kernel: Some(kernel),
                dry_run: Some(dry_run),
                ..Takes::default()
            },
            Command::Status {
                kernel,
                native,
                store,
            } => Takes {
                kernel: Some(kernel),
                native: Some(native),
                store: Some(store),
                ..Takes::default()
            },
            Command::Inspect { kernel, native, .. }
            | Command::Doctor { kernel, native, .. }
            | Command::Scan { kernel, native, .. }
            | Command::Test { kernel, native, .. } => Takes {
                kernel: Some(kernel),
                native: Some(native),
                ..Takes::default()
            },
            Command::Interpreters {
                search,
                native,
                store,
                ..
            } => Takes {
                search: Some(search),
                native: Some(native),
                store: Some(store),
                ..Takes::default()
            },
            Command::Rootfs(RootfsCommand::Create { search, native, .. }) => Takes {
                search: Some(search),
                native: Some(native),
                ..Takes::default()
            },
            Command::Run {
                kernel,
                search,
                native,
                ..
            }
            | Command::Build {
                kernel,
                search,
                native,
                ..
            } => Takes {
                kernel: Some(kernel),
                search: Some(search),
                native: Some(native),
                ..Takes::default()
            },
            Command::Apply {
                kernel,
                search,
                dry_run,
                config,
                native,
                store,
                ..
            } => Takes {
                kernel: Some(kernel),
                search: Some(search),
                dry_run: Some(dry_run),
                config: Some(config),
                native: Some(native),
                store: Some(store),
                ..Takes::default()
            },
            Command::Qemu { cmd, .. } => cmd.takes(),
            Command::Export {
                flag_opts,
                search,
                native,
                ..
            } => Takes {
                search: Some(search),
                native: Some(native),
                flags: Some(flag_opts),
                ..Takes::default()
            },
            Command::Cross(_)
            | Command::SandboxStage1 { .. }
            | Command::SandboxStage2 { .. }
            | Command::ProbeChroot { .. }
            | Command::ProbeNative { .. }
            | Command::Generate { .. }
            | Command::Nix(_)
            | Command::Arches { .. } => Takes::default(),
        }
    }
}

fn given_flags(o: &FlagOpts) -> bool {
    o.flags.is_some() || o.credentials
}

/// Merges the options given before the subcommand (`top`) with the subcommand's own (which
/// win); an option given before a subcommand that does not take it is bad usage.
fn settings(
    top: &TopOpts,
    output: &Output,
    takes: &Takes,
    cmd: &str,
) -> Result<(Global, InstallOpts)> {
    let mut stray = Vec::new();
    if top.kernel.binfmt_misc.is_some() && takes.kernel.is_none() {
        stray.push("--binfmt-misc");
    }
    if !top.search.qemu_path.is_empty() && takes.search.is_none() {
        stray.push("--qemu-path");
    }
    if top.search.trust_unmapped_owner && takes.search.is_none() && takes.trust.is_none() {
        stray.push("--trust-unmapped-owner");
    }
    if top.dry_run.dry_run && takes.dry_run.is_none() {
        stray.push("--dry-run");
    }
    if top.config.config.is_some() && takes.config.is_none() {
        stray.push("--config");
    }
    if (!top.native.native.is_empty() || !top.native.not_native.is_empty())
        && takes.native.is_none()
    {
        stray.push("--native/--not-native");
    }
    if takes.install.is_none() {
        if takes.flags.is_none() && given_flags(&top.install.flag_opts) {
            stray.push("--flags/--credentials");
        }
        if top.install.keep_existing || top.install.persist || top.install.nix {
            stray.push("--keep-existing/--persist/--nix");
        }
    }
    if top.store.qemu_store.is_some() && takes.store.is_none() && cmd != "qemu" {
        stray.push("--qemu-store");
    }
    if takes.install.is_none() && top.install.qemu.is_some() {
        stray.push("--qemu");
    }
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
    let qemu_path = match takes.search {
        Some(s) if !s.qemu_path.is_empty() => s.qemu_path.clone(),
        _ => top.search.qemu_path.clone(),
    };
    let (native, not_native) = match takes.native {
        Some(n) if !n.native.is_empty() || !n.not_native.is_empty() => {
            (n.native.clone(), n.not_native.clone())
        }
        _ => (top.native.native.clone(), top.native.not_native.clone()),
    };
    let g = Global {
        binfmt_misc: pick_path(
            takes.kernel.map(|k| &k.binfmt_misc),
            &top.kernel.binfmt_misc,
            crate::binfmt::kernel::DEFAULT_ROOT,
        ),
        qemu_path,
        dry_run: top.dry_run.dry_run || takes.dry_run.is_some_and(|d| d.dry_run),
        config: pick_path(
            takes.config.map(|c| &c.config),
            &top.config.config,
            crate::config::DEFAULT_PATH,
        ),
        json: output.json,
        quiet: output.quiet,
        native,
        not_native,
        probe_compat: takes.native.is_some(),
        trust_unmapped_owner: top.search.trust_unmapped_owner
            || takes.search.is_some_and(|s| s.trust_unmapped_owner)
            || takes.trust.is_some_and(|t| t.trust_unmapped_owner),
        qemu_store: takes
            .store
            .and_then(|s| s.qemu_store.clone())
            .or_else(|| top.store.qemu_store.clone()),
    };
    // Install options: the subcommand's, completed by those given before it.
    let mut opts = top.install.clone();
    let sub_flags = takes.install.map(|i| &i.flag_opts).or(takes.flags);
    if let Some(f) = sub_flags {
        if f.flags.is_some() {
            opts.flag_opts.flags.clone_from(&f.flags);
        }
        opts.flag_opts.credentials |= f.credentials;
    }
    if let Some(i) = takes.install {
        opts.keep_existing |= i.keep_existing;
        opts.persist |= i.persist;
        opts.nix |= i.nix;
        if i.qemu.is_some() {
            opts.qemu.clone_from(&i.qemu);
        }
    }
    Ok((g, opts))
}

/// Runs the parsed command line. Output goes to `out`; errors are returned for `main`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let Cli {
        command,
        install: install_list,
        uninstall: uninstall_list,
        top,
        output,
    } = cli;
    let split = |list: &str| -> Vec<String> { list.split(',').map(str::to_owned).collect() };
    let command = match (command, install_list, uninstall_list) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(BadInput(
                "--install/--uninstall and a subcommand do not go together: use one form".into(),
            )
            .into());
        }
        // The container-entrypoint forms: do it, then the JSON status people script against.
        (None, Some(list), _) => {
            let (g, opts) = settings(
                &top,
                &output,
                &Takes {
                    kernel: Some(&top.kernel),
                    search: Some(&top.search),
                    trust: None,
                    dry_run: Some(&top.dry_run),
                    config: Some(&top.config),
                    native: Some(&top.native),
                    install: Some(&top.install),
                    flags: None,
                    store: Some(&top.store),
                },
                "--install",
            )?;
            let mut ctx = Ctx::new(&g)?;
            ctx.use_stored_qemu(opts.qemu.as_deref())?;
            install_cmd(&ctx, &split(&list), &opts, out)?;
            return status(&ctx, true, out);
        }
        (None, None, Some(list)) => {
            let (mut g, _) = settings(
                &top,
                &output,
                &Takes {
                    kernel: Some(&top.kernel),
                    dry_run: Some(&top.dry_run),
                    ..Takes::default()
                },
                "--uninstall",
            )?;
            // The status printed after it decides the natives as `status` does.
            g.probe_compat = true;
            let targets: Vec<std::ffi::OsString> = list.split(',').map(Into::into).collect();
            let ctx = Ctx::new(&g)?;
            uninstall(&ctx, &targets, out)?;
            self::nix::sync(&ctx, &[], out)?;
            return status(&ctx, true, out);
        }
        (None, None, None) => Command::Status {
            kernel: KernelOpt::default(),
            native: NativeOpt::default(),
            store: StoreOpt::default(),
        },
        (Some(c), None, None) => c,
    };
    // The hidden helpers run before any host fact is gathered.
    match &command {
        Command::SandboxStage1 { spec_fd, parent } => {
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            std::process::exit(crate::emulation::sandbox::helper_stage1(
                &exe, *spec_fd, *parent,
            ))
        }
        Command::SandboxStage2 { spec_fd, parent } => {
            std::process::exit(crate::emulation::sandbox::helper_stage2(*spec_fd, *parent))
        }
        Command::ProbeChroot {
            root,
            program,
            argv0,
        } => {
            let (code, msg) = crate::inspection::selftest::chroot_exec(root, program, argv0);
            eprintln!("{msg}");
            std::process::exit(code)
        }
        Command::Generate { what, dir, date } => {
            for path in generate::generate(*what, dir, date.as_deref())? {
                writeln!(out, "{}", path.display())?;
            }
            return Ok(());
        }
        Command::ProbeNative { programs } => {
            let (code, msg) = crate::host::probe_native_helper(programs);
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            std::process::exit(code)
        }
        _ => {}
    }
    let (mut g, opts) = settings(&top, &output, &command.takes(), command.name())?;
    if let Command::Import {
        trust_unmapped_owner: true,
        ..
    } = command
    {
        g.trust_unmapped_owner = true;
    }
    if let Command::Qemu { store, .. } = &command
        && store.qemu_store.is_some()
    {
        g.qemu_store.clone_from(&store.qemu_store);
    }
    let mut ctx = Ctx::new(&g)?;
    ctx.use_stored_qemu(opts.qemu.as_deref())?;
    let ctx = &ctx;
    match command {
        Command::Install { arches, .. } => install_cmd(ctx, &arches, &opts, out),
        Command::Uninstall { targets, .. } => {
            uninstall(ctx, &targets, out)?;
            self::nix::sync(ctx, &[], out)
        }
        Command::Enable { targets, .. } => switch(ctx, &targets, true, out),
        Command::Disable { targets, .. } => switch(ctx, &targets, false, out),
        Command::Status { .. } => status(ctx, ctx.g.json, out),
        Command::Interpreters { arches, .. } => interpreters(ctx, &arches, out),
        Command::Arches { markdown } => arches(ctx, markdown, out),
        Command::Inspect { files, .. } => inspect(ctx, &files, out),
        Command::Doctor { files, rootfs, .. } => doctor::run(
            &ctx.fs,
            &ctx.host,
            ctx.g.json,
            &files,
            rootfs.as_ref(),
            ctx.g
                .qemu_store
                .clone()
                .unwrap_or_else(|| crate::qemu::store::DEFAULT_ROOT.into()),
            out,
        ),
        Command::Test { arches, .. } => selftest(ctx, &arches, out),
        Command::Scan { path, files, .. } => scan(ctx, &path, files, out),
        Command::Rootfs(RootfsCommand::Create {
            arch,
            suite,
            include,
            variant,
            mirror,
            dir,
            ..
        }) => rootfs_create(
            ctx,
            &ops::emulate::RootfsRequest {
                arch,
                suite,
                include,
                variant,
                mirror,
                dir,
            },
            out,
        ),
        Command::Run { args, .. } => run_in_rootfs(ctx, &args, out),
        Command::Apply { remove, .. } => apply(ctx, remove, out),
        Command::Export {
            format,
            dir,
            arches,
            ..
        } => export(ctx, &arches, &opts, &format, dir.as_deref(), out),
        Command::Import {
            paths,
            register,
            allow_credentials,
            allow_extension,
            ..
        } => import(
            ctx,
            &paths,
            register,
            ops::import::ImportOptions {
                allow_credentials,
                allow_extension,
                dry_run: ctx.g.dry_run,
            },
            out,
        ),
        Command::Cross(CrossCommand::Env { arch, format }) => cross_env(ctx, &arch, &format, out),
        Command::Build { args, .. } => build(ctx, &args, out),
        Command::Qemu { cmd, .. } => qemu_cmd(ctx, &cmd, out),
        Command::Nix(NixCommand::Status) => self::nix::status(ctx, out),
        Command::Nix(NixCommand::Machines {
            host,
            max_jobs,
            ssh_key,
            host_key,
        }) => self::nix::machines(
            ctx,
            &crate::ops::nix::MachinesRequest {
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
        | Command::Generate { .. } => unreachable!("handled above"),
    }
}

/// What every command needs: the table, the host as the operations see it, the kernel seam,
/// the options.
struct Ctx<'g> {
    table: &'static Table,
    host: ops::Host,
    fs: ProcBinfmt,
    g: &'g Global,
    /// `--qemu VERSION`: the store directory interpreters come from instead of the search path.
    qemu_bin: Option<ops::StoredBin>,
    /// The store's shared lock while `qemu_bin` is registered (not on a dry run): gc cannot
    /// remove the version before the command ends.
    _store_lock: Option<crate::qemu::store::StoreLock>,
}

impl<'g> Ctx<'g> {
    fn new(g: &'g Global) -> Result<Ctx<'g>> {
        let table = Table::builtin();
        let mut facts = HostFacts::gather();
        let over = crate::host::NativeOverride::resolve(table, &facts, &g.native, &g.not_native)?;
        if g.probe_compat
            && let Ok(exe) = std::env::current_exe()
        {
            facts.probe_compat(table, &exe);
        }
        let native = facts.native_with(table, &over);
        Ok(Ctx {
            table,
            host: ops::Host {
                table,
                facts,
                native,
                trust_unmapped_owner: g.trust_unmapped_owner,
                files: ops::Files::default(),
            },
            fs: ProcBinfmt::new(&g.binfmt_misc),
            g,
            qemu_bin: None,
            _store_lock: None,
        })
    }

    /// `--qemu VERSION`: take the interpreters from that stored version (exit 2 when the store
    /// does not have it).
    fn use_stored_qemu(&mut self, version: Option<&str>) -> Result<()> {
        if let Some(v) = version {
            let (lock, s) = resolve_stored(self, v)?;
            self._store_lock = lock;
            self.qemu_bin = Some(ops::StoredBin::of(&s));
        }
        Ok(())
    }

    fn is_native(&self, arch: &str) -> Option<&NativeArch> {
        self.host.is_native(arch)
    }

    /// Where interpreters are looked for (`--qemu-path`, `--qemu`).
    fn search(&self) -> ops::Search {
        ops::Search {
            qemu_path: self.g.qemu_path.clone(),
            qemu_bin: self.qemu_bin.clone(),
        }
    }

    /// The interpreter search path, made absolute: the kernel needs an absolute interpreter.
    fn search_dirs(&self) -> Vec<PathBuf> {
        self.search().dirs()
    }

    fn requirements(&self, need_static: bool) -> Result<Requirements> {
        Ok(self.host.requirements(need_static)?)
    }
}

/// One line of a report.
#[derive(Debug, Serialize)]
struct Row {
    action: Verdict,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<EntryJson>,
}

impl Row {
    fn human(&self) -> String {
        let mut s = format!("{:<15} {:<18}", self.action.as_str(), self.name);
        if let Some(i) = &self.interpreter {
            s += &format!(" {i}");
        }
        if let Some(f) = &self.flags {
            s += &format!(" flags={f}");
        }
        if let Some(v) = &self.version {
            s += &format!(" (QEMU {})", v.split_whitespace().next().unwrap_or(v));
        }
        if let Some(p) = &self.previous {
            s += &format!(" [was {} flags={}]", p.interpreter, p.flags);
        }
        if let Some(r) = &self.reason {
            // No column padding before the reason: "refused  qemu-x86_64: runs natively ...".
            s = format!("{}: {r}", s.trim_end());
        }
        s.trim_end().to_owned()
    }
}

/// An entry as `status --json` and reports show it.
#[derive(Debug, Serialize)]
struct EntryJson {
    name: String,
    enabled: bool,
    arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<String>,
    interpreter: String,
    flags: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    magic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extension: Option<String>,
    /// For entries named qemu-<arch>: does the pattern match our table? (null for others)
    matches_table: Option<bool>,
    /// The entry's pattern accepts this host's own executables: with it enabled, native
    /// programs run through its interpreter (or fail).
    captures_native: bool,
    /// Where the interpreter comes from: `system` or `store <version>` (status only).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

fn entry_json(table: &Table, guard: &plan::NativeGuard, e: &Entry) -> EntryJson {
    let r = &e.registration;
    let by_name = table.arch_of_entry(&r.name);
    let arch = ops::arch_of(table, r);
    let (kind, offset, magic, mask, extension) = match &r.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => (
            "magic",
            Some(*offset),
            Some(crate::input::hex(magic)),
            mask.as_deref().map(crate::input::hex),
            None,
        ),
        Matcher::Extension(x) => ("extension", None, None, None, Some(x.clone())),
    };
    EntryJson {
        name: r.name.clone(),
        enabled: e.enabled,
        arch: arch.map_or_else(|| "unknown".to_owned(), |a| a.name.clone()),
        platform: arch.and_then(|a| a.platform().map(str::to_owned)),
        interpreter: r.interpreter.clone(),
        flags: r.flags.to_string(),
        kind,
        offset,
        magic,
        mask,
        extension,
        matches_table: by_name.map(|(_, m)| m.same_pattern(&r.matcher)),
        captures_native: guard.captures(r).is_some(),
        source: None,
    }
}

fn flags_from(opts: &InstallOpts) -> Result<Flags> {
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

fn arches(ctx: &Ctx, markdown: bool, out: &mut dyn Write) -> Result<()> {
    if markdown {
        write!(out, "{}", crate::binfmt::arch::render_markdown(ctx.table))?;
        return Ok(());
    }
    if ctx.g.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"arches": ctx.table.arches}))?
        )?;
        return Ok(());
    }
    for a in &ctx.table.arches {
        let names = a.all_names();
        writeln!(out, "{:<13} {}", a.name, names[1..].join(" "))?;
    }
    Ok(())
}

/// For `main`: format an error chain as one message with the fix at the end: each cause once
/// (an error that already quotes its source, such as a failed apply with its rollback, is not
/// followed by that source again).
pub fn render_error(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg += ": ";
        }
        msg += &text;
    }
    msg
}

/// With `--json`: the error object (docs/json.md, "Errors"), as the one JSON document on
/// stdout. `printed` is what the command wrote to stdout before it failed (a report of what
/// was refused or rolled back): each JSON document in it goes into `output`.
pub fn error_json(err: &anyhow::Error, printed: &[u8]) -> serde_json::Value {
    let (kind, code) = match err.chain().find_map(|c| c.downcast_ref::<ChildExit>()) {
        Some(_) => ("command-exited".to_owned(), exit_code(err)),
        None => {
            let k = crate::cli::exit::kind_of(err);
            (
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                k.exit_code(),
            )
        }
    };
    let output: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(printed)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect();
    json!({
        "error": {
            "kind": kind,
            "exit_code": code,
            "message": render_error(err),
            "causes": err.chain().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "output": output,
    })
}

/// Parses the command line. clap's own errors exit 2 (usage); with `--json` anywhere on the
/// command line they are reported as the error object too.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let json = std::env::args_os()
                .skip(1)
                .take_while(|a| a != "--")
                .any(|a| a == "--json");
            if !json || matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
                e.exit()
            }
            let msg = e.render().to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            let v = json!({
                "error": {
                    "kind": ErrorKind::BadInput,
                    "exit_code": EXIT_USAGE,
                    "message": first,
                    "causes": [first],
                },
                "output": [],
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            eprint!("{msg}");
            std::process::exit(i32::from(EXIT_USAGE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("binfmtctl").chain(args.iter().copied()))
    }

    /// The settings a parsed command line runs with.
    fn settings_of(c: &Cli) -> Result<(Global, InstallOpts)> {
        let cmd = c.command.as_ref().expect("a subcommand");
        settings(&c.top, &c.output, &cmd.takes(), cmd.name())
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = parse(&["install", "arm64,riscv64"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Install { ref arches, .. }) if arches == &["arm64", "riscv64"])
        );
        let c = parse(&["install", "arm64", "riscv64", "--flags", "F", "--dry-run"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Install { ref arches, .. }) if arches.len() == 2)
        );
        let (g, opts) = settings_of(&c).unwrap();
        assert_eq!(opts.flag_opts.flags.as_deref(), Some("F"));
        assert!(g.dry_run);
        // The container-entrypoint form, with the options of install.
        let c = parse(&["--install", "arm64", "--json", "--flags", "F", "--persist"]).unwrap();
        assert_eq!(c.install.as_deref(), Some("arm64"));
        assert!(c.output.json);
        assert_eq!(c.top.install.flag_opts.flags.as_deref(), Some("F"));
        assert!(c.top.install.persist);
        let c = parse(&["--uninstall", "qemu-*"]).unwrap();
        assert_eq!(c.uninstall.as_deref(), Some("qemu-*"));
        let c = parse(&["status", "--binfmt-misc", "/x"]).unwrap();
        assert_eq!(settings_of(&c).unwrap().0.binfmt_misc, PathBuf::from("/x"));
        let c = parse(&["interpreters", "--qemu-path", "/a", "--qemu-path", "/b"]).unwrap();
        assert_eq!(settings_of(&c).unwrap().0.qemu_path.len(), 2);
        assert!(parse(&[]).unwrap().command.is_none());
        assert_eq!(parse(&["-vv", "status"]).unwrap().output.verbose, 2);
        assert!(parse(&["--json", "status"]).unwrap().output.json);
        assert!(parse(&["status", "--json"]).unwrap().output.json);
        // Options before the subcommand still work where they apply; after wins.
        let c = parse(&["--dry-run", "install", "arm64"]).unwrap();
        assert!(settings_of(&c).unwrap().0.dry_run);
        let c = parse(&["--config", "/c", "apply"]).unwrap();
        assert_eq!(settings_of(&c).unwrap().0.config, PathBuf::from("/c"));
        let c = parse(&[
            "--config",
            "/c",
            "install",
            "arm64",
            "--persist",
            "--config",
            "/d",
        ])
        .unwrap();
        let (g, opts) = settings_of(&c).unwrap();
        assert_eq!(g.config, PathBuf::from("/d"));
        assert!(opts.persist);
        let c = parse(&[
            "--flags",
            "F",
            "export",
            "--format",
            "json",
            "arm64",
            "--credentials",
        ])
        .unwrap();
        let (_, opts) = settings_of(&c).unwrap();
        assert_eq!(opts.flag_opts.flags.as_deref(), Some("F"));
        assert!(opts.flag_opts.credentials);
        let (g, _) = settings_of(&parse(&["status"]).unwrap()).unwrap();
        assert_eq!(
            g.binfmt_misc,
            PathBuf::from(crate::binfmt::kernel::DEFAULT_ROOT)
        );
        assert_eq!(g.config, PathBuf::from(crate::config::DEFAULT_PATH));
        let c = parse(&["disable", "arm64,qemu-riscv64", "--dry-run"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Disable { ref targets, .. }) if targets.len() == 2)
        );
    }

    /// `qemu use` checks the stored interpreters as install does, so in a user namespace it
    /// takes --trust-unmapped-owner (after the subcommand or before it), and not --qemu-path.
    #[test]
    fn qemu_use_takes_trust_unmapped_owner() {
        for args in [
            &["qemu", "use", "10.0", "--trust-unmapped-owner"][..],
            &["--trust-unmapped-owner", "qemu", "use", "10.0"][..],
        ] {
            let c = parse(args).unwrap();
            let (g, _) = settings_of(&c).unwrap();
            assert!(g.trust_unmapped_owner, "{args:?}");
        }
        // --qemu-path is not among its options: clap refuses it (exit 2), and given before
        // the subcommand it is a stray option, also bad usage.
        let e = parse(&["qemu", "use", "10.0", "--qemu-path", "/usr/bin"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{e}");
        assert_eq!(e.exit_code(), 2);
        let c = parse(&["--qemu-path", "/usr/bin", "qemu", "use", "10.0"]).unwrap();
        let e = settings_of(&c).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE);
        assert!(
            format!("{e:#}").contains("--qemu-path does not apply to `qemu`"),
            "{e:#}"
        );
        use clap::CommandFactory;
        let help = Cli::command()
            .find_subcommand_mut("qemu")
            .and_then(|q| q.find_subcommand_mut("use"))
            .map(|u| u.render_long_help().to_string())
            .unwrap();
        assert!(help.contains("--trust-unmapped-owner"), "{help}");
        assert!(!help.contains("--qemu-path"), "{help}");
        // gc still does not take it.
        let c = parse(&["--trust-unmapped-owner", "qemu", "gc"]).unwrap();
        assert!(settings_of(&c).is_err());
    }

    #[test]
    fn rejects_bad_usage() {
        assert!(parse(&["install"]).is_err(), "arches are required");
        assert!(parse(&["--install", "arm64", "--uninstall", "arm64"]).is_err());
        assert!(parse(&["install", "arm64", "--bogus"]).is_err());
        assert!(parse(&["-q", "-v", "status"]).is_err());
        let mixed = parse(&["--install", "arm64", "status"]).unwrap();
        let e = run(mixed, &mut Vec::new()).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE);
        // Each subcommand takes only its own options ...
        assert!(parse(&["inspect", "x", "--flags", "F"]).is_err());
        assert!(parse(&["status", "--persist"]).is_err());
        assert!(parse(&["arches", "--binfmt-misc", "/x"]).is_err());
        assert!(parse(&["export", "--format", "json", "arm64", "--dry-run"]).is_err());
        // ... and those given before it must apply to it.
        for args in [
            &["--flags", "F", "status"][..],
            &["--persist", "inspect", "x"],
            &["--qemu-path", "/a", "status"],
            &["--config", "/c", "status"],
            &["--binfmt-misc", "/x", "arches"],
            &["--keep-existing", "export", "--format", "json", "arm64"],
        ] {
            let c = parse(args).unwrap();
            let e = settings_of(&c).unwrap_err();
            assert_eq!(exit_code(&e), EXIT_USAGE, "{args:?}");
            assert!(e.to_string().contains("does not apply to"), "{e}");
        }
    }

    #[test]
    fn each_help_shows_only_its_options() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        let longs = |name: &str| -> Vec<String> {
            cmd.find_subcommand(name)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_owned))
                .collect()
        };
        let inspect = longs("inspect");
        for absent in [
            "flags",
            "persist",
            "credentials",
            "keep-existing",
            "qemu-path",
            "config",
            "dry-run",
        ] {
            assert!(
                !inspect.iter().any(|l| l == absent),
                "inspect shows --{absent}"
            );
        }
        for present in ["binfmt-misc", "json", "verbose", "quiet"] {
            assert!(
                inspect.iter().any(|l| l == present),
                "inspect lacks --{present}"
            );
        }
        let install = longs("install");
        for present in [
            "flags",
            "persist",
            "credentials",
            "keep-existing",
            "qemu-path",
            "config",
            "dry-run",
            "binfmt-misc",
            "native",
            "not-native",
        ] {
            assert!(
                install.iter().any(|l| l == present),
                "install lacks --{present}"
            );
        }
        assert_eq!(
            longs("arches"),
            ["markdown", "json", "verbose", "quiet", "help"]
        );
    }

    #[test]
    fn flags_option() {
        let o = |flags: Option<&str>, credentials| InstallOpts {
            flag_opts: FlagOpts {
                flags: flags.map(str::to_owned),
                credentials,
            },
            keep_existing: false,
            persist: false,
            nix: false,
            qemu: None,
        };
        assert_eq!(flags_from(&o(None, false)).unwrap().to_string(), "PF");
        assert_eq!(flags_from(&o(None, true)).unwrap().to_string(), "POCF");
        assert_eq!(flags_from(&o(Some("F"), false)).unwrap().to_string(), "F");
        let e = flags_from(&o(Some("FZ"), false)).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE);
    }

    #[test]
    fn exit_codes_by_cause() {
        assert_eq!(exit_code(&anyhow::Error::new(BadInput("x".into()))), 2);
        assert_eq!(exit_code(&anyhow::Error::new(Unsupported("x".into()))), 3);
        let k = crate::binfmt::kernel::KernelError::Mount {
            root: "/x".into(),
            errno: rustix::io::Errno::PERM,
        };
        assert_eq!(
            exit_code(&anyhow::Error::new(k).context("while installing")),
            3
        );
        let k = crate::binfmt::kernel::KernelError::Register {
            name: "q".into(),
            errno: rustix::io::Errno::INVAL,
        };
        assert_eq!(exit_code(&anyhow::Error::new(k)), 1);
        assert_eq!(exit_code(&anyhow!("other")), 1);
        assert_eq!(
            exit_code(&anyhow::Error::new(ChildExit(7)).context("run")),
            7
        );
        // Domain errors say their own kind, under any context, and keep their chain.
        let cfg = crate::config::ConfigError::Missing {
            path: "/etc/x.toml".into(),
        };
        let e = anyhow::Error::new(cfg).context("apply");
        assert_eq!(exit_code(&e), 2);
        assert!(render_error(&e).contains("/etc/x.toml does not exist"));
        let e = anyhow::Error::new(crate::emulation::cross::CrossError::Format("zsh".into()));
        assert_eq!(exit_code(&e), 2);
        let reg = Table::builtin()
            .get("aarch64")
            .unwrap()
            .registration("relative/qemu", Flags::DEFAULT);
        let e =
            anyhow::Error::new(crate::binfmt::interop::to_binfmt_d(&reg, "aarch64").unwrap_err());
        assert_eq!(exit_code(&e), 2);
        assert_eq!(
            e.chain().count(),
            2,
            "the record error stays the source: {e:#}"
        );
    }

    #[test]
    fn each_cause_is_said_once() {
        let k = crate::binfmt::kernel::KernelError::Register {
            name: "qemu-riscv64".into(),
            errno: rustix::io::Errno::IO,
        };
        let e = anyhow::Error::new(crate::binfmt::plan::ApplyError {
            failure: Box::new(crate::binfmt::plan::ApplyFailure::Kernel(k)),
            rolled_back: vec!["qemu-aarch64".into()],
            rollback_errors: vec![],
        })
        .context("install failed");
        let m = render_error(&e);
        assert_eq!(
            m.matches("registering qemu-riscv64 failed").count(),
            1,
            "{m}"
        );
        assert!(
            m.starts_with("install failed: registering qemu-riscv64 failed"),
            "{m}"
        );
        assert!(m.contains("rolled back: qemu-aarch64"), "{m}");
        assert_eq!(exit_code(&e), 1);
    }

    #[test]
    fn error_object() {
        let e = anyhow::Error::new(
            crate::binfmt::arch::Table::builtin()
                .resolve("zzz")
                .unwrap_err(),
        )
        .context("install");
        let v = error_json(&e, b"{\"results\": []}\n");
        assert_eq!(v["error"]["kind"], "bad-input");
        assert_eq!(v["error"]["exit_code"], 2);
        assert_eq!(v["error"]["causes"].as_array().unwrap().len(), 2);
        assert_eq!(v["output"][0]["results"], json!([]));
        let v = error_json(&anyhow::Error::new(ChildExit(5)), b"");
        assert_eq!(v["error"]["kind"], "command-exited");
        assert_eq!(v["error"]["exit_code"], 5);
        assert_eq!(v["output"], json!([]));
    }

    /// Each cause once: errors that print their source are not followed by it again.
    #[test]
    fn error_chain_is_rendered_without_repeats() {
        let io = std::io::Error::other("invalid gzip header");
        let e = anyhow::Error::new(crate::inspection::scan::ScanError::Archive {
            path: "x.tar.gz".into(),
            source: io,
        })
        .context("scan failed");
        assert_eq!(
            render_error(&e),
            "scan failed: reading the archive x.tar.gz failed: invalid gzip header"
        );
        let e = anyhow!("inner").context("outer");
        assert_eq!(render_error(&e), "outer: inner");
    }

    #[test]
    fn globs() {
        assert!(ops::uninstall::glob_match(b"qemu-mips*", b"qemu-mips64el"));
        assert!(ops::uninstall::glob_match(b"qemu-*", b"qemu-aarch64"));
        assert!(!ops::uninstall::glob_match(b"qemu-*", b"python3.11"));
        assert!(ops::uninstall::glob_match(b"qemu-?rm", b"qemu-arm"));
        assert!(!ops::uninstall::glob_match(b"qemu-?rm", b"qemu-armeb"));
    }
}
