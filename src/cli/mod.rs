//! The command line: clap derive structs (no I/O in parsing), one function per subcommand,
//! human and `--json` rendering, and the mapping from errors to exit codes.
//!
//! Every command validates its whole request (arch names, flags, interpreters, records)
//! before the first write to binfmt_misc; then it takes the instance lock, snapshots the
//! kernel, plans, applies and reads back (see `plan`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::json;

use crate::arch::{Arch, ENTRY_PREFIX, Table, UnknownArch};
use crate::host::{HostFacts, NativeArch};
use crate::interpreter::{self, Discovery, Requirements};
use crate::kernel::{BinfmtFs, KernelEntry, KernelError, ProcBinfmt};
use crate::plan::{self, Action, ApplyError, Desired, Plan};
use crate::registration::{Entry, Flags, FlagsError, Matcher};

mod emulate;
mod qemu;
mod register;
mod verify;

use emulate::*;
use qemu::*;
use register::*;
use verify::*;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_ENVIRONMENT: u8 = 3;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (including: nothing needed to change)
  1  the operation failed; whatever this run changed was rolled back
  2  bad usage or bad input (unknown arch, bad flags, refused or missing interpreter,
     a native arch requested); nothing was changed
  3  the environment cannot do it (binfmt_misc not mounted and not mountable, not
     permitted, kernel too old); nothing was changed";

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

    /// Same as `install ARCHES` (the form used as a container entrypoint)
    #[arg(long, value_name = "ARCHES", conflicts_with = "uninstall")]
    pub install: Option<String>,

    /// Same as `uninstall TARGETS`
    #[arg(long, value_name = "TARGETS")]
    pub uninstall: Option<String>,

    #[command(flatten)]
    pub install_opts: InstallOpts,

    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Where binfmt_misc is (or is to be) mounted
    #[arg(long, global = true, value_name = "PATH", default_value = crate::kernel::DEFAULT_ROOT)]
    pub binfmt_misc: PathBuf,

    /// Directory to search for qemu-<cpu>-static / qemu-<cpu> (repeatable; replaces the
    /// default search path /usr/bin, /usr/local/bin, /usr/libexec/qemu)
    #[arg(long, global = true, value_name = "DIR")]
    pub qemu_path: Vec<PathBuf>,

    /// The QEMU store (`binfmtctl qemu`) [default: /var/lib/binfmtctl/qemu]
    #[arg(long, global = true, value_name = "DIR")]
    pub qemu_store: Option<PathBuf>,

    /// Print the plan; write nothing (not even a mount)
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// The config file read by `apply` and written by `install --persist`
    #[arg(long, global = true, value_name = "PATH", default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Machine-readable output (schema in docs/json.md)
    #[arg(long, global = true)]
    pub json: bool,

    /// More logging (-v info, -vv debug with every kernel write)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct InstallOpts {
    /// binfmt_misc flags, any of P (preserve argv[0]), O (open binary), C (credentials),
    /// F (fix binary) [default: FP]
    #[arg(long, global = true, value_name = "FLAGS")]
    pub flags: Option<String>,

    /// Add C (and O): setuid binaries run the emulator with their own credentials, which
    /// sudo inside an emulated chroot needs; a privilege decision for you to make
    #[arg(long, global = true)]
    pub credentials: bool,

    /// Leave an existing entry with our name alone even when it differs from ours
    #[arg(long, global = true)]
    pub keep_existing: bool,

    /// Also add the arches to the config file, so `apply` (the boot unit) keeps them
    #[arg(long, global = true)]
    pub persist: bool,

    /// Register interpreters from this stored QEMU version (`binfmtctl qemu list`) instead of
    /// the system's
    #[arg(long, global = true, value_name = "VERSION")]
    pub qemu: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register emulators: ARCHES is a comma list in any common spelling, or `all`
    Install {
        #[arg(value_name = "ARCHES", required = true, value_delimiter = ',')]
        arches: Vec<String>,
    },
    /// Remove entries: arch names, entry names, globs like 'qemu-mips*', or `all` (qemu-* only)
    Uninstall {
        #[arg(value_name = "TARGETS", required = true, value_delimiter = ',')]
        targets: Vec<String>,
    },
    /// Show the entries, what the machine can run, and whether ours match the table
    Status,
    /// Find and check the QEMU interpreter for each arch (default: all)
    Interpreters {
        #[arg(value_name = "ARCHES", value_delimiter = ',')]
        arches: Vec<String>,
    },
    /// What is this binary, and what will the kernel do with it
    Inspect {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Which architectures does a root file system (directory) or image (.tar, .tar.gz,
    /// .tar.zst) need, and which of them lack a handler now
    Scan {
        #[arg(value_name = "DIR|TARBALL")]
        path: PathBuf,
        /// Also list every ELF file with its arch
        #[arg(long)]
        files: bool,
    },
    /// Prove emulation works end to end with a tiny probe program per arch (default: every
    /// registered qemu-* handler; `all`: every arch we have a probe for)
    Test {
        #[arg(value_name = "ARCHES", value_delimiter = ',')]
        arches: Vec<String>,
    },
    /// Foreign root file systems
    #[command(subcommand)]
    Rootfs(RootfsCommand),
    /// Run a command in an emulated chroot of a foreign rootfs (private mount namespace; the
    /// command's exit status is binfmtctl's)
    Run(RunArgs),
    /// The native path: cross toolchains
    #[command(subcommand)]
    Cross(CrossCommand),
    /// Build for an arch: with a cross toolchain (cross), inside an emulated chroot of --rootfs
    /// with the source bound at /src (emulate), or whichever is available (auto: cross first)
    Build(BuildArgs),
    /// Reconcile the kernel to the config file (--config, default /etc/binfmtctl/config.toml);
    /// --remove takes out exactly what it declares (the systemd unit's stop)
    Apply {
        #[arg(long)]
        remove: bool,
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
    },
    /// Read binfmt.d files (or the *.conf files of a directory) and show, or with --register
    /// register, their entries
    Import {
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        #[arg(long)]
        register: bool,
    },
    /// Internal: sandbox stage 1 (used by run and rootfs create)
    #[command(name = "__sandbox", hide = true)]
    SandboxStage1,
    /// Internal: sandbox stage 2, PID 1 of the sandbox's pid namespace
    #[command(name = "__sandbox-init", hide = true)]
    SandboxStage2,
    /// Internal: run a probe in a new mount namespace chrooted into ROOT (used by `test`)
    #[command(name = "__probe-chroot", hide = true)]
    ProbeChroot {
        root: PathBuf,
        program: String,
        argv0: String,
    },
    /// Static QEMU versions from Debian's archive: versions, fetch, list, use, verify, gc
    #[command(subcommand)]
    Qemu(QemuCommand),
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
        /// Mirror URL (default: the tool's own, from the host's apt sources)
        #[arg(long)]
        mirror: Option<String>,
        /// Directory to create (must not exist or be empty)
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrossCommand {
    /// Print the environment build systems read for cross-compiling to ARCH
    Env {
        #[arg(long)]
        arch: String,
        #[arg(long, default_value = "sh", value_parser = ["sh", "fish", "json"])]
        format: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    Auto,
    Cross,
    Emulate,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(long)]
    pub arch: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: Strategy,
    /// Rootfs for the emulated path (directory or tarball)
    #[arg(long, value_name = "DIR|TARBALL")]
    pub rootfs: Option<PathBuf>,
    /// Source directory (default: the current one); bound at /src for the emulated path
    #[arg(long, value_name = "DIR")]
    pub src: Option<PathBuf>,
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
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The command run in the sandbox exited with this status: binfmtctl exits with it too.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct ChildExit(pub i32);

/// A request the user got wrong: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The machine cannot do it: exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// The exit code for an error, by the most specific cause in its chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(ChildExit(code)) = cause.downcast_ref::<ChildExit>() {
            return u8::try_from(*code).unwrap_or(EXIT_FAILED);
        }
        if cause.is::<BadInput>() || cause.is::<UnknownArch>() || cause.is::<FlagsError>() {
            return EXIT_USAGE;
        }
        if cause.is::<Unsupported>() {
            return EXIT_ENVIRONMENT;
        }
        if let Some(k) = cause.downcast_ref::<KernelError>() {
            return if k.is_environment() {
                EXIT_ENVIRONMENT
            } else {
                EXIT_FAILED
            };
        }
        if cause.is::<ApplyError>() {
            return EXIT_FAILED;
        }
        if let Some(q) = cause.downcast_ref::<crate::qemu::QemuError>() {
            return if q.is_usage() {
                EXIT_USAGE
            } else if q.is_environment() {
                EXIT_ENVIRONMENT
            } else {
                EXIT_FAILED
            };
        }
    }
    EXIT_FAILED
}

/// Runs the parsed command line. Output goes to `out`; errors are returned for `main`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    if cli.command.is_some() && (cli.install.is_some() || cli.uninstall.is_some()) {
        return Err(BadInput(
            "--install/--uninstall and a subcommand do not go together: use one form".into(),
        )
        .into());
    }
    let mut ctx = Ctx::new(&cli.global);
    if let Some(v) = &cli.install_opts.qemu {
        let s = store_of(&ctx)
            .resolve(v)
            .map_err(|e| anyhow::Error::new(crate::qemu::QemuError::from(e)))?;
        ctx.qemu_bin = Some(s.bin());
    }
    match (cli.command, cli.install, cli.uninstall) {
        (Some(Command::Install { arches }), _, _) => {
            install_cmd(&ctx, &arches, &cli.install_opts, out)
        }
        (None, Some(list), _) => {
            // The container-entrypoint form: install, then the JSON status people script against.
            let arches: Vec<String> = list.split(',').map(str::to_owned).collect();
            install_cmd(&ctx, &arches, &cli.install_opts, out)?;
            status_json(&cli.global, out)
        }
        (Some(Command::Uninstall { targets }), _, _) => uninstall(&ctx, &targets, out),
        (None, None, Some(list)) => {
            let targets: Vec<String> = list.split(',').map(str::to_owned).collect();
            uninstall(&ctx, &targets, out)?;
            status_json(&cli.global, out)
        }
        (Some(Command::Status), _, _) | (None, None, None) => status(&ctx, out),
        (Some(Command::Interpreters { arches }), _, _) => interpreters(&ctx, &arches, out),
        (Some(Command::Qemu(cmd)), _, _) => qemu_cmd(&ctx, &cmd, out),
        (Some(Command::Arches { markdown }), _, _) => arches(&ctx, markdown, out),
        (Some(Command::Inspect { files }), _, _) => inspect(&ctx, &files, out),
        (Some(Command::Test { arches }), _, _) => selftest(&ctx, &arches, out),
        (Some(Command::Scan { path, files }), _, _) => scan(&ctx, &path, files, out),
        (
            Some(Command::Rootfs(RootfsCommand::Create {
                arch,
                suite,
                include,
                variant,
                mirror,
                dir,
            })),
            _,
            _,
        ) => rootfs_create(
            &ctx,
            &arch,
            &suite,
            &include,
            &variant,
            mirror.as_deref(),
            &dir,
            out,
        ),
        (Some(Command::Run(args)), _, _) => run_in_rootfs(&ctx, &args, out),
        (Some(Command::Apply { remove }), _, _) => apply(&ctx, remove, out),
        (
            Some(Command::Export {
                format,
                dir,
                arches,
            }),
            _,
            _,
        ) => export(
            &ctx,
            &arches,
            &cli.install_opts,
            &format,
            dir.as_deref(),
            out,
        ),
        (Some(Command::Import { paths, register }), _, _) => import(&ctx, &paths, register, out),
        (Some(Command::Cross(CrossCommand::Env { arch, format })), _, _) => {
            cross_env(&ctx, &arch, &format, out)
        }
        (Some(Command::Build(args)), _, _) => build(&ctx, &args, out),
        (Some(Command::SandboxStage1), _, _) => {
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            std::process::exit(crate::sandbox::helper_stage1(&exe))
        }
        (Some(Command::SandboxStage2), _, _) => std::process::exit(crate::sandbox::helper_stage2()),
        (
            Some(Command::ProbeChroot {
                root,
                program,
                argv0,
            }),
            _,
            _,
        ) => {
            let (code, msg) = crate::selftest::chroot_exec(&root, &program, &argv0);
            eprintln!("{msg}");
            std::process::exit(code)
        }
    }
}

/// What every command needs: the table, the host, the kernel seam, the options.
struct Ctx<'g> {
    table: &'static Table,
    host: HostFacts,
    native: Vec<NativeArch>,
    fs: ProcBinfmt,
    g: &'g Global,
    /// `--qemu VERSION`: the store directory interpreters come from instead of the search path.
    qemu_bin: Option<PathBuf>,
}

impl<'g> Ctx<'g> {
    fn new(g: &'g Global) -> Ctx<'g> {
        let table = Table::builtin();
        let host = HostFacts::gather();
        let native = host.native(table);
        Ctx {
            table,
            host,
            native,
            fs: ProcBinfmt::new(&g.binfmt_misc),
            g,
            qemu_bin: None,
        }
    }

    fn is_native(&self, arch: &str) -> Option<&NativeArch> {
        self.native.iter().find(|n| n.arch == arch)
    }

    /// The interpreter search path, made absolute: the kernel needs an absolute interpreter.
    fn search_dirs(&self) -> Vec<PathBuf> {
        if let Some(bin) = &self.qemu_bin {
            return vec![bin.clone()];
        }
        if self.g.qemu_path.is_empty() {
            interpreter::DEFAULT_SEARCH
                .iter()
                .map(PathBuf::from)
                .collect()
        } else {
            self.g
                .qemu_path
                .iter()
                .map(|d| {
                    std::fs::canonicalize(d)
                        .or_else(|_| std::path::absolute(d))
                        .unwrap_or_else(|_| d.clone())
                })
                .collect()
        }
    }

    fn requirements(&self, need_static: bool) -> Result<Requirements> {
        let host = self.host.host_arch(self.table).ok_or_else(|| {
            Unsupported(format!("unknown host architecture {:?}", self.host.machine))
        })?;
        Ok(Requirements {
            host_class: host.class,
            host_endian: host.endian,
            host_machine: host.machine,
            extra_owner: self
                .host
                .in_user_namespace
                .then_some(self.host.overflow_uid),
            need_static,
        })
    }

    fn resolve_list(&self, names: &[String]) -> Result<(bool, Vec<&'static Arch>)> {
        let mut all = false;
        let mut arches: Vec<&Arch> = Vec::new();
        let mut unknown = Vec::new();
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if n.eq_ignore_ascii_case("all") {
                all = true;
                continue;
            }
            match self.table.resolve(n) {
                Ok(a) if !arches.iter().any(|x| x.name == a.name) => arches.push(a),
                Ok(_) => {}
                Err(e) => unknown.push(e.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(BadInput(unknown.join("\n")).into());
        }
        if all {
            arches = self.table.arches.iter().collect();
        } else if arches.is_empty() {
            return Err(
                BadInput("no architecture given: name one or more, or `all`".into()).into(),
            );
        }
        Ok((all, arches))
    }

    /// Makes sure binfmt_misc is mounted (mounting it if needed and allowed); returns whether
    /// we mounted it.
    fn ensure_mounted(&self) -> Result<bool> {
        if self.fs.is_mounted() {
            return Ok(false);
        }
        require_cap_sys_admin(&format!(
            "mount binfmt_misc at {}",
            self.g.binfmt_misc.display()
        ))?;
        self.fs
            .mount()
            .context("binfmt_misc is not mounted and mounting it failed")?;
        tracing::info!(root = %self.g.binfmt_misc.display(), "mounted binfmt_misc");
        // The entries of an instance live only while some mount of it exists (seen on 6.1 and
        // 6.18): a mount made in a mount namespace that will go away takes them along.
        if in_container() {
            eprintln!(
                "binfmtctl: warning: binfmt_misc was not mounted in this container; its entries last only while some mount of it exists, so if the host has none either (systemd mounts it at /proc/sys/fs/binfmt_misc), they vanish when the container exits"
            );
        } else if private_mount_ns_without_host_mount() {
            eprintln!(
                "binfmtctl: warning: binfmt_misc was mounted in a private mount namespace (a sandboxed service?) while the host's has no mount of it: the entries vanish when this namespace ends; mount it on the host first (systemd: proc-sys-fs-binfmt_misc.mount)"
            );
        }
        Ok(true)
    }

    /// For commands that must see the entries (status, uninstall): mount binfmt_misc when it
    /// is not mounted and we may (mounting changes no registration). Returns whether it is
    /// mounted now.
    fn mount_to_read(&self) -> bool {
        if self.fs.is_mounted() {
            return true;
        }
        if self.g.dry_run || require_cap_sys_admin("mount").is_err() {
            return false;
        }
        match self.fs.mount() {
            Ok(()) => {
                tracing::info!(root = %self.g.binfmt_misc.display(), "mounted binfmt_misc to read its entries");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot mount binfmt_misc");
                false
            }
        }
    }

    fn snapshot(&self) -> Result<Vec<KernelEntry>> {
        if !self.fs.is_mounted() {
            return Ok(Vec::new());
        }
        Ok(self.fs.list()?)
    }
}

/// Are we in a mount namespace other than PID 1's, and does PID 1's have no binfmt_misc mount?
/// (Readable as root; false when we cannot tell.)
fn private_mount_ns_without_host_mount() -> bool {
    let ours = std::fs::read_link("/proc/self/ns/mnt");
    let init = std::fs::read_link("/proc/1/ns/mnt");
    match (ours, init) {
        (Ok(a), Ok(b)) if a != b => std::fs::read_to_string("/proc/1/mounts").is_ok_and(|m| {
            !m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("binfmt_misc"))
        }),
        _ => false,
    }
}

/// Podman and Docker mark their containers with these files.
fn in_container() -> bool {
    std::path::Path::new("/run/.containerenv").exists()
        || std::path::Path::new("/.dockerenv").exists()
}

fn require_cap_sys_admin(what: &str) -> Result<()> {
    use caps::{CapSet, Capability};
    let ok = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(true);
    if ok {
        Ok(())
    } else {
        Err(Unsupported(format!(
            "cannot {what}: it needs CAP_SYS_ADMIN; run as root (or, on Linux >= 6.7, inside a user namespace with its own mount namespace)"
        ))
        .into())
    }
}

/// One line of a report.
#[derive(Debug, Serialize)]
struct Row {
    action: String,
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
    fn new(action: &str, name: String, arch: Option<&str>) -> Row {
        Row {
            action: action.to_owned(),
            name,
            arch: arch.map(str::to_owned),
            interpreter: None,
            version: None,
            flags: None,
            reason: None,
            previous: None,
        }
    }

    fn human(&self) -> String {
        let mut s = format!("{:<15} {:<18}", self.action, self.name);
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_json(table: &Table, host_header: &[u8], e: &Entry) -> EntryJson {
    let r = &e.registration;
    let by_name = r
        .name
        .strip_prefix(ENTRY_PREFIX)
        .and_then(|cpu| table.get(cpu))
        .filter(|a| a.entry_name() == r.name);
    let arch = by_name.or_else(|| table.arch_of_matcher(&r.matcher));
    let (kind, offset, magic, mask, extension) = match &r.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => (
            "magic",
            Some(*offset),
            Some(hex(magic)),
            mask.as_deref().map(hex),
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
        matches_table: by_name.map(|a| a.matcher().same_pattern(&r.matcher)),
        captures_native: !host_header.is_empty() && r.matcher.matches_header(host_header),
        source: None,
    }
}

fn flags_from(opts: &InstallOpts) -> Result<Flags> {
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
        write!(out, "{}", crate::arch::render_markdown(ctx.table))?;
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

/// For `main`: format an error chain as one message with the fix at the end.
pub fn render_error(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// Parses the command line; clap's own errors exit 2 (usage).
pub fn parse() -> Cli {
    Cli::parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("binfmtctl").chain(args.iter().copied()))
    }

    #[test]
    fn parses_the_documented_forms() {
        let c = parse(&["install", "arm64,riscv64"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Install { ref arches }) if arches == &["arm64", "riscv64"])
        );
        let c = parse(&["install", "arm64", "riscv64", "--flags", "F", "--dry-run"]).unwrap();
        assert!(matches!(c.command, Some(Command::Install { ref arches }) if arches.len() == 2));
        assert_eq!(c.install_opts.flags.as_deref(), Some("F"));
        assert!(c.global.dry_run);
        let c = parse(&["--install", "arm64", "--json"]).unwrap();
        assert_eq!(c.install.as_deref(), Some("arm64"));
        assert!(c.global.json);
        let c = parse(&["--uninstall", "qemu-*"]).unwrap();
        assert_eq!(c.uninstall.as_deref(), Some("qemu-*"));
        let c = parse(&[
            "status",
            "--binfmt-misc",
            "/x",
            "--qemu-path",
            "/a",
            "--qemu-path",
            "/b",
        ])
        .unwrap();
        assert_eq!(c.global.binfmt_misc, PathBuf::from("/x"));
        assert_eq!(c.global.qemu_path.len(), 2);
        assert!(parse(&[]).unwrap().command.is_none());
        assert_eq!(parse(&["-vv", "status"]).unwrap().global.verbose, 2);
        assert!(parse(&["--json", "status"]).unwrap().global.json);
        let c = parse(&["--dry-run", "install", "arm64"]).unwrap();
        assert!(c.global.dry_run);
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
    }

    #[test]
    fn flags_option() {
        let o = |flags: Option<&str>, credentials| InstallOpts {
            flags: flags.map(str::to_owned),
            credentials,
            keep_existing: false,
            persist: false,
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
        let k = KernelError::Mount {
            root: "/x".into(),
            errno: rustix::io::Errno::PERM,
        };
        assert_eq!(
            exit_code(&anyhow::Error::new(k).context("while installing")),
            3
        );
        let k = KernelError::Register {
            name: "q".into(),
            errno: rustix::io::Errno::INVAL,
        };
        assert_eq!(exit_code(&anyhow::Error::new(k)), 1);
        assert_eq!(exit_code(&anyhow!("other")), 1);
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"qemu-mips*", b"qemu-mips64el"));
        assert!(glob_match(b"qemu-*", b"qemu-aarch64"));
        assert!(!glob_match(b"qemu-*", b"python3.11"));
        assert!(glob_match(b"qemu-?rm", b"qemu-arm"));
        assert!(!glob_match(b"qemu-?rm", b"qemu-armeb"));
    }
}
