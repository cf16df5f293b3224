//! The command line as clap defines it: `Cli`, its subcommands and the option groups they
//! flatten. Parsing does no I/O. Each subcommand takes only its options (its help shows only
//! those); the options accepted before a subcommand (`TopOpts`, and the `--install` form) are
//! checked and merged with the subcommand's own in `settings`, which learns which groups a
//! subcommand takes from these definitions through clap, so nothing here is listed twice.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES_HELP: &str = "\
Exit codes (docs/exit-codes.md):
  0  success (including: nothing needed to change)
  1  the operation failed; whatever this run changed was rolled back
  2  bad usage or bad input (unknown arch, bad flags, refused or missing interpreter,
     a native arch requested); nothing was changed
  3  the environment cannot do it (binfmt_misc not mounted and not mountable, not
     permitted, kernel too old); nothing was changed
  128+N  interrupted by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129) while writing
     binfmt_misc; whatever this run changed was rolled back
  run and build exit with the status of the command they ran, once it ran";

#[derive(Debug, Parser)]
#[command(
    name = "binfmtctl",
    version,
    about = "Register QEMU user-mode emulators with the kernel's binfmt_misc, safely",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Same as `install ARCHES`, then prints `status --json` (the form used as a container
    /// entrypoint); takes the options of `install`
    #[arg(long, value_name = "ARCHES", conflicts_with = "uninstall")]
    pub install: Option<String>,

    /// Same as `uninstall TARGETS`, then prints `status --json`
    #[arg(long, value_name = "TARGETS")]
    pub uninstall: Option<String>,

    /// The options of the `--install` form (also accepted before a subcommand they apply to)
    #[command(flatten)]
    pub top: TopOpts,

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

    /// No warnings or notes; commands that change things print only errors (and the summary
    /// when something was refused), test only failures and its summary; listings and reports (status,
    /// inspect, export, cross env, ...) still print what they were asked for
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// `--binfmt-misc`, for the subcommands that read or write binfmt_misc.
#[derive(Debug, Args, Clone, Default)]
pub struct KernelOpt {
    /// Where binfmt_misc is (or is to be) mounted [default: /proc/sys/fs/binfmt_misc]
    #[arg(long, value_name = "PATH")]
    pub binfmt_misc: Option<PathBuf>,
}

/// `--qemu-path` and `--trust-unmapped-owner`, for the subcommands that look for and check
/// interpreters.
#[derive(Debug, Args, Clone, Default)]
pub struct SearchOpt {
    /// Directory to search for qemu-<cpu>-static / qemu-<cpu> (repeatable; replaces the
    /// default search path /usr/bin, /usr/local/bin, /usr/libexec/qemu, /run/binfmt: docs/distros.md)
    #[arg(long, value_name = "DIR")]
    pub qemu_path: Vec<PathBuf>,

    #[command(flatten)]
    pub trust: TrustOpt,
}

/// `--trust-unmapped-owner`, for the subcommands that check interpreters: with `--qemu-path`
/// (`SearchOpt`), or alone where they do not search for them (`qemu use`: the stored version
/// is the search).
#[derive(Debug, Args, Clone, Default)]
pub struct TrustOpt {
    /// Inside a user namespace, count interpreter files and directories whose owner is not
    /// mapped into it (they show as the overflow uid) as root's. Nothing inside the namespace
    /// can prove whose they are: you vouch that they are the host's root
    #[arg(long)]
    pub trust_unmapped_owner: bool,
}

/// `--dry-run`, for the subcommands that change binfmt_misc.
#[derive(Debug, Args, Clone, Default)]
pub struct DryRunOpt {
    /// Print the plan; write nothing (not even a mount)
    #[arg(long)]
    pub dry_run: bool,
}

/// `--config`, for `apply` and `install --persist`.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigOpt {
    /// The config file read by `apply` and written by `install --persist`
    /// [default: /etc/binfmtctl/config.toml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Overrides of the native-arch decision, for the subcommands that make it.
#[derive(Debug, Args, Clone, Default)]
pub struct NativeOpt {
    /// Count these compat arches as native (never register them), whatever the probe says
    #[arg(long, value_name = "ARCHES", value_delimiter = ',')]
    pub native: Vec<String>,

    /// Count these compat arches as not native (emulate them), whatever the probe says
    #[arg(long, value_name = "ARCHES", value_delimiter = ',')]
    pub not_native: Vec<String>,
}

/// `--qemu-store`, for the subcommands that read the QEMU store (`binfmtctl qemu`).
#[derive(Debug, Args, Clone, Default)]
pub struct StoreOpt {
    /// The QEMU store (`binfmtctl qemu`) [default: /var/lib/binfmtctl/qemu]
    #[arg(long, value_name = "DIR")]
    pub qemu_store: Option<PathBuf>,
}

/// The options accepted before a subcommand (and by the `--install` form). Each must apply
/// to the subcommand it goes with.
#[derive(Debug, Args, Clone, Default)]
pub struct TopOpts {
    #[command(flatten)]
    pub install: InstallOpts,
    #[command(flatten)]
    pub register: RegisterOpts,
}

/// The options of the subcommands that register what is asked for (`install`, `apply`),
/// besides install's own.
#[derive(Debug, Args, Clone, Default)]
pub struct RegisterOpts {
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

/// The binfmt_misc flags, for the subcommands that build registrations.
#[derive(Debug, Args, Clone, Default)]
pub struct FlagOpts {
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
pub struct InstallOpts {
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

/// The subcommands. A variant's `#[command(flatten)]` option groups declare its options;
/// `settings` reads which groups it takes, and their values, through clap (`ArgMatches`),
/// merged with those given before the subcommand, so the dispatcher reads only the
/// subcommand's own arguments from the variant.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register emulators: ARCHES is a comma list in any common spelling, or `all`
    Install {
        /// Arches to register: a comma list in any spelling (arm64, linux/arm/v7, riscv64gc-unknown-linux-gnu, ...), or all
        #[arg(value_name = "ARCHES", required = true, value_delimiter = ',')]
        arches: Vec<String>,
        #[command(flatten)]
        opts: InstallOpts,
        #[command(flatten)]
        register: RegisterOpts,
    },
    /// Remove entries: arch names, entry names, globs like 'qemu-mips*', or `all` (qemu-* only)
    Uninstall {
        /// Arch names, exact entry names (anyone's), globs like 'qemu-mips*' (qemu-* entries only), or all (qemu-* only)
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
        /// Arch names (our qemu-* entries), exact entry names (any tool's), or all (qemu-* only)
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
        /// Arch names (our qemu-* entries), exact entry names (any tool's), or all (qemu-* only)
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
        /// Arches to look at, comma-separated (default: every arch of the table)
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
        /// ELF files to inspect
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
        /// A root file system: a directory, or a .tar, .tar.gz or .tar.zst archive
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
        /// Registered arches to test, comma-separated, or all (default: every registered qemu-* entry)
        #[arg(value_name = "ARCHES", value_delimiter = ',')]
        arches: Vec<String>,
        /// Every check must run: one that cannot (the empty-chroot check, F's proof, needs
        /// root or a user namespace) fails the arch, exit 1
        #[arg(long)]
        strict: bool,
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
    /// Build for an arch with a cross toolchain, in an emulated chroot, or both (hybrid)
    ///
    /// Build for an arch: with a cross toolchain (cross), inside an emulated chroot of --rootfs
    /// with the source bound at /src (emulate), in that chroot with the host's native cross
    /// compiler (hybrid), or whichever fits (auto: with a --rootfs, hybrid when the host's cross
    /// gcc matches the rootfs's, else cross when installed, else emulate; without, cross)
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
        register: RegisterOpts,
    },
    /// Write registrations as files other tools read: binfmt.d (systemd-binfmt), update-binfmts
    /// (binfmt-support's import format) or json
    Export {
        #[arg(long, value_parser = ["binfmt.d", "update-binfmts", "json"])]
        format: String,
        /// Write one file per entry into DIR instead of printing (DIR is created if missing,
        /// and says so)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// With --dir: replace files of the same name that export did not write (refused
        /// otherwise, exit 2, before anything is written)
        #[arg(long, requires = "dir")]
        force: bool,
        /// Arches to export, comma-separated, or all
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
        /// binfmt.d files, or directories whose *.conf files are read
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
        what: crate::ops::facade::Artifact,
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
pub enum RootfsCommand {
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
        /// Mirror URL (default: the tool's own, http://deb.debian.org/debian)
        #[arg(long)]
        mirror: Option<String>,
        /// Take Release files past their Valid-Until (a dated snapshot mirror), with a warning.
        /// Without it, only when the host's apt says so for the mirror used
        /// (Acquire::Check-Valid-Until "false", or the source's check-valid-until=no)
        #[arg(long)]
        allow_expired: bool,
        /// Directory to create (must not exist or be empty)
        dir: PathBuf,
        #[command(flatten)]
        search: SearchOpt,
        #[command(flatten)]
        native: NativeOpt,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrossCommand {
    /// Print the environment build systems read for cross-compiling to ARCH
    Env {
        #[arg(long)]
        arch: String,
        /// Default sh; --json is --format json
        #[arg(long, value_parser = ["sh", "fish", "json"])]
        format: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// With --rootfs: hybrid when the host's cross gcc matches the rootfs's, else cross when
    /// installed, else emulate (emulate for a rootfs the host runs natively); without: cross
    Auto,
    /// The host's cross toolchain (`cross env`)
    Cross,
    /// Inside the emulated chroot of --rootfs, the source bound at /src
    Emulate,
    /// The emulated chroot with the host's native toolchains and build tools (`run --accelerate`)
    Hybrid,
}

/// `run --accelerate[=force]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accelerate {
    /// Only when the host's toolchains have the rootfs's versions
    On,
    /// Even when the versions differ
    Force,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
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
    /// The CPU model QEMU emulates (sets QEMU_CPU in the sandbox; checked against the
    /// interpreter's `-cpu help`): e.g. max, cortex-a76, Haswell, or with properties rv64,v=true
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// The build command
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
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
    /// The CPU model QEMU emulates (sets QEMU_CPU in the sandbox; checked against the
    /// interpreter's `-cpu help`): e.g. max, cortex-a76, Haswell, or with properties rv64,v=true
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// Unpack a tarball rootfs with its setuid/setgid bits and device nodes (default: dropped,
    /// so the cache hands out no privileges); kept in a cache entry of its own
    #[arg(long)]
    pub keep_privileges: bool,
    /// Build natively: the host's cross gcc and binutils, clang, Rust (rustc, cargo) and build
    /// tools (sh, make, sed, grep, coreutils, ...) of the rootfs's versions stand in for the
    /// rootfs's own, against the rootfs's headers and libraries; uname, dpkg and the programs
    /// built stay emulated. `=force`: even when the compilers' versions differ
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
#[derive(Debug, Subcommand)]
pub enum QemuCommand {
    /// What Debian's archive offers (per suite) and what the local store holds
    #[command(mut_arg("config", |a| a.help("The config file whose qemu_mirror and qemu_keyring are read (--mirror and --keyring win) [default: /etc/binfmtctl/config.toml]")))]
    Versions {
        #[command(flatten)]
        net: NetOpts,
        #[command(flatten)]
        config: ConfigOpt,
    },
    /// Download, verify (InRelease signature → Packages hash → .deb hash), unpack and store a
    /// QEMU version: a number (10.0), a suite (trixie, bookworm-backports) or `latest`
    #[command(mut_arg("config", |a| a.help("The config file whose qemu_mirror and qemu_keyring are read (--mirror and --keyring win) [default: /etc/binfmtctl/config.toml]")))]
    #[command(mut_arg("dry_run", |a| a.help("Make every check (download, signature, hashes, unpack) in a scratch directory; store nothing")))]
    Fetch {
        /// A version (10.0, 10.0.13), a suite (trixie, bookworm-backports) or latest
        #[arg(
            value_name = "VERSION|SUITE|latest",
            required_unless_present = "from_deb"
        )]
        spec: Option<String>,
        /// Store the interpreters of a .deb you already have (recorded as unverified)
        #[arg(long, value_name = "FILE", conflicts_with = "spec")]
        from_deb: Option<PathBuf>,
        #[command(flatten)]
        net: NetOpts,
        #[command(flatten)]
        config: ConfigOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// The store: version, suite, package, .deb sha256, which entries use it; and the
    /// system's own QEMU
    List {
        #[command(flatten)]
        kernel: KernelOpt,
    },
    /// Switch every registered qemu-* entry to a stored version, all or nothing
    Use {
        /// The stored version to switch to (binfmtctl qemu list), or `system` for the system's QEMU
        /// (the default search path)
        #[arg(value_name = "VERSION")]
        version: String,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        trust: TrustOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// Re-hash every stored file against its manifest (detects tampering)
    Verify,
    /// Remove stored versions that no entry uses (or only the VERSIONs named, refusing any in use)
    Gc {
        /// Stored versions to remove (default: every version no entry uses)
        #[arg(value_name = "VERSION")]
        versions: Vec<String>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
}

/// `--qemu-store` for `binfmtctl qemu` and each of its subcommands.
#[derive(Debug, Args, Clone, Default)]
pub struct QemuStoreOpt {
    /// The QEMU store [default: /var/lib/binfmtctl/qemu]
    #[arg(long, global = true, value_name = "DIR")]
    pub qemu_store: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct NetOpts {
    /// A Debian mirror URL [default: the config's qemu_mirror, else apt's]
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// OpenPGP keyring trusted for InRelease [default: the config's qemu_keyring, else the
    /// system's debian-archive-keyring.gpg, else the copy built into binfmtctl]
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Suites to consider (repeatable) [default: bookworm, bookworm-backports, trixie, forky,
    /// sid; a version number is looked up in bookworm, trixie, bookworm-backports, forky, sid]
    #[arg(long, value_name = "SUITE")]
    pub suite: Vec<String>,
    /// Seconds a connection or a single read may stall before giving up
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Keep verified indexes and .debs here, keyed by sha256, for later fetches
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Take an InRelease past its Valid-Until (a dated snapshot mirror), with a warning; it is
    /// recorded in the manifest. Without it, only a mirror from apt's sources whose apt says
    /// so (Acquire::Check-Valid-Until "false", or the source's check-valid-until=no) is
    /// read past that date
    #[arg(long)]
    pub allow_expired: bool,
}

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
