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
    let ctx = Ctx::new(&cli.global);
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
        }
    }

    fn is_native(&self, arch: &str) -> Option<&NativeArch> {
        self.native.iter().find(|n| n.arch == arch)
    }

    /// The interpreter search path, made absolute: the kernel needs an absolute interpreter.
    fn search_dirs(&self) -> Vec<PathBuf> {
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
            s += &format!(": {r}");
        }
        s
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

/// The validated registrations for a request (natives skipped or refused, interpreters found
/// and checked, native-capture guard, kernel grammar), with the report rows so far. Shared by
/// install, apply and export.
struct Prepared {
    rows: Vec<Row>,
    notes: Vec<String>,
    desired: Vec<Desired>,
    versions: Vec<Option<String>>,
}

fn prepare(ctx: &Ctx, names: &[String], flags: Flags, out: &mut dyn Write) -> Result<Prepared> {
    let (all, arches) = ctx.resolve_list(names)?;
    let req = ctx.requirements(flags.fix_binary)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if flags.credentials {
        notes.push(
            "flag C: setuid binaries run the emulator with their own credentials (needed for sudo in emulated chroots)".into(),
        );
    }
    if !flags.fix_binary {
        notes.push(
            "without flag F the interpreter is looked up at each exec, so emulation fails inside chroots and containers that lack it".into(),
        );
    }
    let mut refused = Vec::new();
    let mut desired = Vec::new();
    let mut versions = Vec::new();
    // Natives are never registered; then find and check every interpreter.
    for a in arches {
        if let Some(n) = ctx.is_native(&a.name) {
            let mut row = Row::new("skipped-native", a.entry_name(), Some(&a.name));
            row.reason = Some(format!("runs natively on this host ({})", n.evidence));
            if !all {
                refused.push(format!(
                    "{}: runs natively on this host ({}); a handler would capture the host's own binaries",
                    a.name, n.evidence
                ));
                row.action = "refused".into();
            }
            rows.push(row);
            continue;
        }
        let d: Discovery = interpreter::discover(a, &ctx.search_dirs(), &req);
        let Some(c) = d.chosen() else {
            if all && d.candidates.is_empty() {
                let mut row = Row::new("skipped", a.entry_name(), Some(&a.name));
                row.reason = Some("no interpreter installed".into());
                rows.push(row);
            } else {
                let mut row = Row::new("refused", a.entry_name(), Some(&a.name));
                row.reason = Some(d.refusal());
                refused.push(format!("{}: {}", a.name, d.refusal()));
                rows.push(row);
            }
            continue;
        };
        let path = c.facts.path.to_string_lossy().into_owned();
        let reg = a.registration(&path, flags);
        // Guard: the pattern must not accept the host's executables or the interpreter.
        let mut headers = vec![(
            "this host's own executables".to_owned(),
            ctx.host.exe_header.clone(),
        )];
        if let Ok(h) = crate::elf::read_prefix(&c.facts.path) {
            headers.push((format!("the interpreter {path}"), h));
        }
        if let Some(what) = plan::captures_native(&reg, &headers) {
            let mut row = Row::new("refused", reg.name.clone(), Some(&a.name));
            row.reason = Some(format!("its pattern would capture {what}"));
            refused.push(format!("{}: its pattern would capture {what}", a.name));
            rows.push(row);
            continue;
        }
        // The record must be one the kernel accepts.
        reg.to_record()
            .map_err(|e| BadInput(format!("{}: {e}", reg.name)))?;
        desired.push(Desired {
            arch: a.name.clone(),
            registration: reg,
        });
        versions.push(c.facts.version.clone());
    }
    if !refused.is_empty() {
        emit_report(ctx, out, &rows, &[], &notes)?;
        return Err(BadInput(format!(
            "nothing was changed; refused:\n  {}",
            refused.join("\n  ")
        ))
        .into());
    }
    Ok(Prepared {
        rows,
        notes,
        desired,
        versions,
    })
}

fn install(ctx: &Ctx, names: &[String], opts: &InstallOpts, out: &mut dyn Write) -> Result<()> {
    let flags = flags_from(opts)?;
    let p = prepare(ctx, names, flags, out)?;
    reconcile(ctx, p, opts.keep_existing, out)
}

/// Plans the prepared registrations against the kernel, applies, reads back, reports.
fn reconcile(ctx: &Ctx, p: Prepared, keep_existing: bool, out: &mut dyn Write) -> Result<()> {
    let Prepared {
        mut rows,
        mut notes,
        desired,
        versions,
    } = p;
    // Dry run: against what is there, mounting nothing.
    if ctx.g.dry_run {
        if !ctx.fs.is_mounted() {
            notes.push(format!(
                "binfmt_misc is not mounted at {}: would mount it",
                ctx.g.binfmt_misc.display()
            ));
        }
        let plan = plan::plan_install(&desired, &ctx.snapshot()?, keep_existing);
        report_plan(ctx, &plan, &versions, &mut rows, &mut notes, true);
        return emit_report(ctx, out, &rows, &plan.overlaps, &notes);
    }
    if !desired.is_empty() {
        require_cap_sys_admin("register binfmt_misc entries")?;
        if ctx.ensure_mounted()? {
            notes.push(format!(
                "mounted binfmt_misc at {}",
                ctx.g.binfmt_misc.display()
            ));
        }
    }
    let _lock = if desired.is_empty() {
        None
    } else {
        Some(ctx.fs.lock()?)
    };
    let plan = plan::plan_install(&desired, &ctx.snapshot()?, keep_existing);
    // Apply, read back, roll back on failure.
    let applied = plan::apply(&ctx.fs, &plan);
    if applied.is_err() {
        // Report what was attempted, then the error (with its rollback) goes to main.
        report_plan(ctx, &plan, &versions, &mut rows, &mut notes, true);
        emit_report(ctx, out, &rows, &plan.overlaps, &notes)?;
        return applied.context("install failed");
    }
    report_plan(ctx, &plan, &versions, &mut rows, &mut notes, false);
    emit_report(ctx, out, &rows, &plan.overlaps, &notes)
}

fn install_cmd(ctx: &Ctx, names: &[String], opts: &InstallOpts, out: &mut dyn Write) -> Result<()> {
    install(ctx, names, opts, out)?;
    if opts.persist && !ctx.g.dry_run {
        crate::config::persist(&ctx.g.config, names, ctx.table)
            .map_err(|e| anyhow::Error::new(BadInput(e.to_string())))?;
        writeln!(
            out,
            "note: added {} to {}",
            names.join(", "),
            ctx.g.config.display()
        )?;
    }
    Ok(())
}

/// The status as JSON, whatever --json said (after the --install/--uninstall forms).
fn status_json(g: &Global, out: &mut dyn Write) -> Result<()> {
    let g = Global {
        json: true,
        ..g.clone()
    };
    status(&Ctx::new(&g), out)
}

/// `apply`: reconcile the kernel to the config file; `--remove`: remove what it declares.
fn apply(ctx: &Ctx, remove: bool, out: &mut dyn Write) -> Result<()> {
    let cfg = crate::config::load(&ctx.g.config, ctx.table).map_err(|e| match e {
        crate::config::ConfigError::Read { .. } => anyhow::Error::new(Unsupported(e.to_string())),
        other => anyhow::Error::new(BadInput(other.to_string())),
    })?;
    if remove {
        let names: Vec<String> = if cfg.arches.iter().any(|a| a == "all") {
            vec!["all".into()]
        } else {
            cfg.arches.clone()
        };
        return uninstall(ctx, &names, out);
    }
    // The config's search path applies unless --qemu-path was given.
    let g;
    let sub;
    let ctx = if ctx.g.qemu_path.is_empty() && !cfg.qemu_path.is_empty() {
        g = Global {
            qemu_path: cfg.qemu_path.clone(),
            ..ctx.g.clone()
        };
        sub = Ctx::new(&g);
        &sub
    } else {
        ctx
    };
    let p = prepare(ctx, &cfg.arches, cfg.flags, out)?;
    reconcile(ctx, p, cfg.keep_existing, out)
}

fn export(
    ctx: &Ctx,
    names: &[String],
    opts: &InstallOpts,
    format: &str,
    dir: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let flags = flags_from(opts)?;
    let p = prepare(ctx, names, flags, &mut std::io::sink())?;
    let files: Vec<(String, String)> = match format {
        "binfmt.d" => p
            .desired
            .iter()
            .map(|d| {
                Ok((
                    format!("{}.conf", d.registration.name),
                    crate::interop::to_binfmt_d(&d.registration, &d.arch)?,
                ))
            })
            .collect::<std::result::Result<_, String>>(),
        "update-binfmts" => p
            .desired
            .iter()
            .map(|d| {
                Ok((
                    d.registration.name.clone(),
                    crate::interop::to_update_binfmts(&d.registration, "binfmtctl")?,
                ))
            })
            .collect::<std::result::Result<_, String>>(),
        "json" => {
            let v: Vec<serde_json::Value> = p
                .desired
                .iter()
                .map(|d| {
                    let e = Entry {
                        registration: d.registration.clone(),
                        enabled: true,
                    };
                    let mut j =
                        serde_json::to_value(entry_json(ctx.table, &ctx.host.exe_header, &e))
                            .unwrap_or_default();
                    j["record"] = json!(d.registration.to_record().unwrap_or_default());
                    j
                })
                .collect();
            Ok(vec![(
                "binfmtctl.json".into(),
                serde_json::to_string_pretty(&json!({"registrations": v}))? + "\n",
            )])
        }
        other => {
            return Err(BadInput(format!(
                "unknown format {other:?}: use binfmt.d, update-binfmts or json"
            ))
            .into());
        }
    }
    .map_err(BadInput)?;
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            for (name, text) in &files {
                let path = d.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                writeln!(out, "wrote {}", path.display())?;
            }
        }
        None => {
            for (_, text) in &files {
                write!(out, "{text}")?;
            }
        }
    }
    Ok(())
}

fn import(ctx: &Ctx, paths: &[PathBuf], register: bool, out: &mut dyn Write) -> Result<()> {
    let mut imported = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            crate::interop::conf_files(p).with_context(|| format!("reading {}", p.display()))?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| BadInput(format!("cannot read {}: {e}", f.display())))?;
            imported.extend(
                crate::interop::parse_binfmt_d(&f, &text).map_err(|e| BadInput(e.to_string()))?,
            );
        }
    }
    if !register {
        if ctx.g.json {
            let v: Vec<serde_json::Value> = imported
                .iter()
                .map(|i| {
                    let e = Entry {
                        registration: i.registration.clone(),
                        enabled: true,
                    };
                    let mut j =
                        serde_json::to_value(entry_json(ctx.table, &ctx.host.exe_header, &e))
                            .unwrap_or_default();
                    j["file"] = json!(i.path);
                    j["line"] = json!(i.line);
                    j
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json!({"registrations": v}))?
            )?;
        } else {
            for i in &imported {
                let e = Entry {
                    registration: i.registration.clone(),
                    enabled: true,
                };
                let j = entry_json(ctx.table, &ctx.host.exe_header, &e);
                let table = match j.matches_table {
                    Some(true) => "matches our table",
                    Some(false) => "DIFFERS from our table",
                    None => "not ours",
                };
                writeln!(
                    out,
                    "{}:{}: {} arch={} flags={} {} ({table}){}",
                    i.path.display(),
                    i.line,
                    j.name,
                    j.arch,
                    j.flags,
                    j.interpreter,
                    if j.captures_native {
                        " WARNING: captures this host's own binaries"
                    } else {
                        ""
                    }
                )?;
            }
        }
        return Ok(());
    }
    // Registering: the same guards as install, then the same reconcile.
    let mut desired = Vec::new();
    for i in &imported {
        let r = &i.registration;
        if r.matcher.matches_header(&ctx.host.exe_header) {
            return Err(BadInput(format!(
                "{}:{}: {} would capture this host's own binaries; not registering anything",
                i.path.display(),
                i.line,
                r.name
            ))
            .into());
        }
        desired.push(Desired {
            arch: r.name.clone(),
            registration: r.clone(),
        });
    }
    let versions = vec![None; desired.len()];
    reconcile(
        ctx,
        Prepared {
            rows: Vec::new(),
            notes: Vec::new(),
            desired,
            versions,
        },
        false,
        out,
    )
}

fn report_plan(
    ctx: &Ctx,
    plan: &Plan,
    versions: &[Option<String>],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    dry_run: bool,
) {
    for (a, version) in plan.actions.iter().zip(versions) {
        let arch = match a {
            Action::Register { arch, .. }
            | Action::Keep { arch, .. }
            | Action::Enable { arch, .. }
            | Action::Replace { arch, .. }
            | Action::KeepExisting { arch, .. } => Some(arch.as_str()),
            Action::Remove { .. } => None,
        };
        let mut row = Row::new(a.verb(dry_run), a.name().to_owned(), arch);
        match a {
            Action::Register { new, .. } | Action::Replace { new, .. } => {
                row.interpreter = Some(new.interpreter.clone());
                row.flags = Some(new.flags.to_string());
            }
            Action::Keep { current, .. } | Action::Enable { current, .. } => {
                row.interpreter = Some(current.registration.interpreter.clone());
                row.flags = Some(current.registration.flags.to_string());
            }
            Action::KeepExisting {
                current, wanted, ..
            } => {
                row.interpreter = Some(current.registration.interpreter.clone());
                row.flags = Some(current.registration.flags.to_string());
                row.reason = Some(format!(
                    "differs from ours ({} flags={}); left as is because of --keep-existing",
                    wanted.interpreter, wanted.flags
                ));
            }
            Action::Remove { .. } => {}
        }
        if let Action::Replace { old, .. } = a {
            row.previous = Some(entry_json(ctx.table, &ctx.host.exe_header, old));
        }
        row.version = version.clone();
        rows.push(row);
    }
    for o in &plan.overlaps {
        notes.push(format!(
            "{} overlaps {} ({}, {}): the kernel will run {} for files both match",
            o.ours,
            o.other,
            o.other_interpreter,
            if o.other_enabled {
                "enabled"
            } else {
                "disabled"
            },
            o.winner
        ));
    }
}

fn summary(rows: &[Row]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for r in rows {
        let n = m.entry(r.action.clone()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    m
}

fn emit_report(
    ctx: &Ctx,
    out: &mut dyn Write,
    rows: &[Row],
    overlaps: &[plan::Overlap],
    notes: &[String],
) -> Result<()> {
    if ctx.g.json {
        let v = json!({
            "dry_run": ctx.g.dry_run,
            "binfmt_misc": ctx.g.binfmt_misc,
            "results": rows,
            "overlaps": overlaps,
            "notes": notes,
            "summary": summary(rows),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if !ctx.g.quiet {
        for r in rows {
            writeln!(out, "{}", r.human())?;
        }
        for n in notes {
            writeln!(out, "note: {n}")?;
        }
    }
    let s: Vec<String> = summary(rows)
        .into_iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    if !ctx.g.quiet || rows.iter().any(|r| r.action == "refused") {
        writeln!(
            out,
            "summary: {}",
            if s.is_empty() {
                "nothing to do".into()
            } else {
                s.join(", ")
            }
        )?;
    }
    Ok(())
}

/// A `*`/`?` glob over entry names.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&pat[1..], s) || (!s.is_empty() && glob_match(pat, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob_match(&pat[1..], &s[1..]),
        _ => false,
    }
}

fn uninstall(ctx: &Ctx, targets: &[String], out: &mut dyn Write) -> Result<()> {
    ctx.mount_to_read();
    let current = ctx.snapshot()?;
    let names_now: Vec<&str> = current
        .iter()
        .map(|k| k.entry.registration.name.as_str())
        .collect();
    let mut wanted: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    let mut absent = Vec::new();
    let mut unknown = Vec::new();
    let add = |n: &str, wanted: &mut Vec<String>| {
        if !wanted.iter().any(|w| w == n) {
            wanted.push(n.to_owned());
        }
    };
    for t in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if t.eq_ignore_ascii_case("all") {
            for n in names_now.iter().filter(|n| n.starts_with(ENTRY_PREFIX)) {
                add(n, &mut wanted);
            }
        } else if t.contains(['*', '?']) {
            for n in names_now
                .iter()
                .filter(|n| glob_match(t.as_bytes(), n.as_bytes()))
            {
                add(n, &mut wanted);
            }
        } else if names_now.contains(&t) {
            add(t, &mut wanted);
        } else {
            match ctx.table.resolve(t) {
                Ok(a) => {
                    let n = a.entry_name();
                    if names_now.contains(&n.as_str()) {
                        add(&n, &mut wanted);
                    } else {
                        absent.push(Row::new("absent", n, Some(&a.name)));
                    }
                }
                Err(e) => unknown.push(e.to_string()),
            }
        }
    }
    if !unknown.is_empty() {
        return Err(BadInput(unknown.join("\n")).into());
    }
    let dry = ctx.g.dry_run;
    let mut notes = Vec::new();
    if !ctx.fs.is_mounted() {
        notes.push(format!(
            "binfmt_misc is not mounted at {}: nothing is registered",
            ctx.g.binfmt_misc.display()
        ));
    }
    let render = |plan: &Plan, rows: &mut Vec<Row>| {
        for a in &plan.actions {
            if let Action::Remove { entry } = a {
                let mut r = Row::new(a.verb(dry), a.name().to_owned(), None);
                let j = entry_json(ctx.table, &ctx.host.exe_header, entry);
                r.arch = Some(j.arch.clone());
                r.interpreter = Some(j.interpreter.clone());
                r.flags = Some(j.flags.clone());
                rows.push(r);
            }
        }
    };
    if dry || wanted.is_empty() {
        let plan = plan::plan_uninstall(&wanted, &current);
        render(&plan, &mut rows);
        rows.extend(absent);
        return emit_report(ctx, out, &rows, &[], &notes);
    }
    require_cap_sys_admin("remove binfmt_misc entries")?;
    let _lock = ctx.fs.lock()?;
    let plan = plan::plan_uninstall(&wanted, &ctx.fs.list()?);
    let applied = plan::apply(&ctx.fs, &plan);
    render(&plan, &mut rows);
    rows.extend(absent);
    emit_report(ctx, out, &rows, &[], &notes)?;
    applied.context("uninstall failed")
}

fn status(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let mounted = ctx.mount_to_read();
    let entries = if mounted { ctx.fs.list()? } else { Vec::new() };
    let enabled = if mounted {
        ctx.fs.global_enabled()?
    } else {
        false
    };
    let json_entries: Vec<EntryJson> = entries
        .iter()
        .map(|k| entry_json(ctx.table, &ctx.host.exe_header, &k.entry))
        .collect();
    // Native first, then every arch an enabled entry emulates (when binfmt_misc is enabled).
    let mut supported: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        if !supported.iter().any(|s| s == p) {
            supported.push(p.to_owned());
        }
    };
    for n in &ctx.native {
        if let Some(a) = ctx.table.get(&n.arch) {
            a.oci.iter().for_each(|p| push(p));
        }
    }
    if enabled {
        // In table order, so the list is stable whatever order entries were registered in.
        for a in &ctx.table.arches {
            if json_entries.iter().any(|e| e.enabled && e.arch == a.name) {
                a.oci.iter().for_each(|p| push(p));
            }
        }
    }
    let emulators: Vec<&str> = json_entries
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    if ctx.g.json {
        let v = json!({
            "supported": supported,
            "emulators": emulators,
            "entries": json_entries,
            "native": ctx.native,
            "binfmt_misc": {"path": ctx.g.binfmt_misc, "mounted": mounted, "enabled": enabled},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if !mounted {
        writeln!(
            out,
            "binfmt_misc: not mounted at {} (binfmtctl install mounts it)",
            ctx.g.binfmt_misc.display()
        )?;
    } else {
        writeln!(
            out,
            "binfmt_misc: {} ({})",
            ctx.g.binfmt_misc.display(),
            if enabled {
                "enabled"
            } else {
                "DISABLED: no entry is used"
            }
        )?;
    }
    for e in json_entries.iter().filter(|e| e.captures_native) {
        writeln!(
            out,
            "WARNING: entry {} ({}) matches this host's own executables: native programs run through {}{}; remove it with `binfmtctl uninstall {}`",
            e.name,
            if e.enabled { "enabled" } else { "disabled" },
            e.interpreter,
            if e.enabled { "" } else { " once enabled" },
            e.name
        )?;
    }
    let natives: Vec<String> = ctx.native.iter().map(|n| n.arch.clone()).collect();
    writeln!(out, "native: {}", natives.join(", "))?;
    writeln!(out, "supported: {}", supported.join(", "))?;
    if json_entries.is_empty() {
        writeln!(out, "no entries")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<8} {:<12} {:<5} {:<8} INTERPRETER",
        "ENTRY", "ENABLED", "ARCH", "FLAGS", "TABLE"
    )?;
    for e in &json_entries {
        let table = match e.matches_table {
            Some(true) => "matches",
            Some(false) => "DIFFERS",
            None => "-",
        };
        writeln!(
            out,
            "{:<20} {:<8} {:<12} {:<5} {:<8} {}",
            e.name,
            if e.enabled { "yes" } else { "no" },
            e.arch,
            e.flags,
            table,
            e.interpreter
        )?;
    }
    Ok(())
}

fn interpreters(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let arches: Vec<&Arch> = if names.is_empty() {
        ctx.table.arches.iter().collect()
    } else {
        ctx.resolve_list(names)?.1
    };
    let flags_need_static = true;
    let req = ctx.requirements(flags_need_static)?;
    let dirs = ctx.search_dirs();
    let found: Vec<(Discovery, Option<&NativeArch>)> = arches
        .iter()
        .map(|a| {
            (
                interpreter::discover(a, &dirs, &req),
                ctx.is_native(&a.name),
            )
        })
        .collect();
    if ctx.g.json {
        let v: Vec<serde_json::Value> = found
            .iter()
            .map(|(d, native)| {
                let chosen = d.chosen();
                json!({
                    "arch": d.arch,
                    "native": native.is_some(),
                    "status": if chosen.is_some() { "ok" } else if d.candidates.is_empty() { "missing" } else { "refused" },
                    "interpreter": chosen.map(|c| &c.facts.path),
                    "version": chosen.and_then(|c| c.facts.version.as_ref()),
                    "candidates": d.candidates,
                    "searched": d.searched,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"interpreters": v}))?
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<13} {:<8} {:<36} {:<8} NOTES",
        "ARCH", "STATUS", "INTERPRETER", "VERSION"
    )?;
    for (d, native) in &found {
        let (status, path, version, notes) = match d.chosen() {
            Some(c) => (
                "ok",
                c.facts.path.display().to_string(),
                c.facts
                    .version
                    .as_deref()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("?")
                    .to_owned(),
                String::new(),
            ),
            None if d.candidates.is_empty() => ("missing", "-".into(), "-".into(), String::new()),
            None => ("refused", "-".into(), "-".into(), d.refusal()),
        };
        let notes = match native {
            Some(_) => format!(
                "native on this host; never registered{}",
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("; {notes}")
                }
            ),
            None => notes,
        };
        writeln!(
            out,
            "{:<13} {:<8} {:<36} {:<8} {}",
            d.arch, status, path, version, notes
        )?;
    }
    Ok(())
}

/// The kernel's entries (newest first) and whether binfmt_misc as a whole is enabled; empty and
/// false when it is not mounted.
fn kernel_view(ctx: &Ctx) -> Result<(Vec<KernelEntry>, bool)> {
    if !ctx.fs.is_mounted() {
        return Ok((Vec::new(), false));
    }
    Ok((ctx.fs.list()?, ctx.fs.global_enabled()?))
}

fn inspect(ctx: &Ctx, files: &[PathBuf], out: &mut dyn Write) -> Result<()> {
    use crate::inspect::{path_exists, report};
    use std::os::unix::fs::FileExt;
    let (entries, enabled) = kernel_view(ctx)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for path in files {
        let one = || -> std::result::Result<crate::inspect::Report, String> {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
            let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
            if !meta.is_file() {
                return Err("not a regular file".into());
            }
            let mut header = vec![0u8; crate::registration::BINPRM_BUF_SIZE];
            let n = file
                .read_at(&mut header, 0)
                .map_err(|e| format!("cannot read: {e}"))?;
            header.truncate(n);
            let facts = crate::elf::inspect_file(&file).map_err(|e| match e {
                crate::elf::ElfError::NotElf => {
                    let start: String = String::from_utf8_lossy(&header[..n.min(16)])
                        .chars()
                        .map(|c| if c.is_control() { '.' } else { c })
                        .collect();
                    format!("not an ELF file (starts with {start:?})")
                }
                other => other.to_string(),
            })?;
            let machine = crate::inspect::Machine {
                table: ctx.table,
                native: &ctx.native,
                entries: &entries,
                binfmt_enabled: enabled,
                interp_exists: &path_exists,
            };
            Ok(report(&machine, &path.to_string_lossy(), &header, &facts))
        };
        match one() {
            Ok(r) => results.push((path, Ok(r))),
            Err(e) => {
                failed += 1;
                results.push((path, Err(e)))
            }
        }
    }
    if ctx.g.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(p, r)| match r {
                Ok(r) => {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["path"] = json!(p);
                    v["ok"] = json!(true);
                    v
                }
                Err(e) => json!({"path": p, "ok": false, "error": e}),
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"files": v}))?
        )?;
    } else {
        for (p, r) in &results {
            match r {
                Err(e) => writeln!(out, "{}: {e}", p.display())?,
                Ok(r) => {
                    writeln!(out, "{}", p.display())?;
                    let names = match &r.arch {
                        Some(a) => {
                            let mut extra: Vec<String> = r.platform.iter().cloned().collect();
                            if !r.debian.is_empty() {
                                extra.push(format!("Debian {}", r.debian.join("/")));
                            }
                            format!("{a} ({})", extra.join("; "))
                        }
                        None => "no QEMU arch".into(),
                    };
                    writeln!(
                        out,
                        "  ELF {}-bit {}-endian {}, machine {} = {names}",
                        r.class, r.endian, r.e_type, r.machine
                    )?;
                    let mut line = vec![format!("OS ABI {}", r.os_abi)];
                    if !r.abi.is_empty() {
                        line.push(format!("ABI {}", r.abi.join(", ")));
                    }
                    line.push(match &r.interp {
                        None => "static".into(),
                        Some(i) => format!(
                            "dynamic, interpreter {i}{}",
                            if r.interp_present == Some(false) {
                                " (missing here)"
                            } else {
                                ""
                            }
                        ),
                    });
                    if let Some(b) = &r.build_id {
                        line.push(format!("build id {b}"));
                    }
                    writeln!(out, "  {}", line.join("; "))?;
                    writeln!(out, "  kernel: {}", r.verdict)?;
                    for w in &r.warnings {
                        writeln!(out, "  warning: {w}")?;
                    }
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be inspected", files.len());
    }
    Ok(())
}

fn scan(ctx: &Ctx, path: &std::path::Path, list: bool, out: &mut dyn Write) -> Result<()> {
    let (entries, enabled) = kernel_view(ctx)?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let started = std::time::Instant::now();
    let s = crate::scan::scan(ctx.table, path, threads).map_err(|e| match e {
        crate::scan::ScanError::NotTree { .. } | crate::scan::ScanError::Open { .. } => {
            anyhow::Error::new(BadInput(e.to_string()))
        }
        other => anyhow::Error::new(other),
    })?;
    let elapsed = started.elapsed();
    let native: Vec<String> = ctx.native.iter().map(|n| n.arch.clone()).collect();
    // The handler the kernel would pick for an executable of this arch: asked with our probe's
    // header, which is what such executables look like to binfmt_misc.
    let handler_of = |arch: &str| {
        let a = ctx.table.get(arch)?;
        let header = crate::probe::representative_header(a);
        crate::inspect::kernel_choice(&entries, enabled, &header, "/x")
            .map(|k| k.entry.registration.name.clone())
    };
    let (counts, unknown) = crate::scan::summarize(&s, ctx.table, &native, &handler_of);
    if ctx.g.json {
        let mut v = json!({
            "path": path,
            "files": s.files,
            "elf_files": s.elf.len(),
            "special_files": s.special,
            "arches": counts,
            "unknown": unknown,
            "errors": s.errors.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            "seconds": elapsed.as_secs_f64(),
        });
        if list {
            v["elf"] = json!(s.elf);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} files, {} ELF, {} links/special files not opened ({:.2} s)",
        path.display(),
        s.files,
        s.elf.len(),
        s.special,
        elapsed.as_secs_f64()
    )?;
    if !counts.is_empty() {
        writeln!(
            out,
            "{:<13} {:>7} {:>7}  {:<28} EXAMPLES",
            "ARCH", "FILES", "PROGRAMS", "ON THIS HOST"
        )?;
    }
    for c in &counts {
        let how = if c.native {
            "native".to_owned()
        } else {
            match &c.handler {
                Some(h) => format!("emulated by {h}"),
                None => format!(
                    "NO HANDLER: binfmtctl install {}",
                    c.platform.as_deref().unwrap_or(&c.arch)
                ),
            }
        };
        writeln!(
            out,
            "{:<13} {:>7} {:>7}  {:<28} {}",
            c.arch,
            c.files,
            c.executables,
            how,
            c.examples.join(" ")
        )?;
    }
    for u in &unknown {
        writeln!(
            out,
            "ELF machine {} ({}-bit {:?}): {} files with no QEMU user-mode emulator, e.g. {}",
            u.machine,
            u.class,
            u.endian,
            u.files,
            u.examples.join(" ")
        )?;
    }
    if !s.errors.is_empty() {
        writeln!(
            out,
            "{} files could not be read, e.g. {}: {}",
            s.errors.len(),
            s.errors[0].0,
            s.errors[0].1
        )?;
    }
    if list {
        for f in &s.elf {
            writeln!(
                out,
                "{}\t{}",
                f.arch.as_deref().unwrap_or("unknown"),
                f.path
            )?;
        }
    }
    Ok(())
}

/// The registration record for a private binfmt_misc instance: the arch's checked, static
/// interpreter with F (opened at registration, so it works inside the chroot).
fn private_handler(ctx: &Ctx, arch: &Arch) -> Result<String> {
    let req = ctx.requirements(true)?;
    let d = interpreter::discover(arch, &ctx.search_dirs(), &req);
    let c = d
        .chosen()
        .ok_or_else(|| BadInput(format!("{}: {}", arch.name, d.refusal())))?;
    let reg = arch.registration(&c.facts.path.to_string_lossy(), Flags::DEFAULT);
    Ok(reg.to_record().map_err(|e| BadInput(e.to_string()))?)
}

fn require_private_binfmt(what: &str) -> Result<()> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    if crate::sandbox::kernel_has_private_binfmt(&release) {
        Ok(())
    } else {
        Err(Unsupported(format!(
            "{what} needs a private binfmt_misc instance, which Linux {release} lacks (needs >= 6.7)"
        ))
        .into())
    }
}

#[allow(clippy::too_many_arguments)]
fn rootfs_create(
    ctx: &Ctx,
    arch: &str,
    suite: &str,
    include: &[String],
    variant: &str,
    mirror: Option<&str>,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> Result<()> {
    use crate::sandbox::{Spec, Userns};
    let arch = ctx.table.resolve(arch)?;
    if !rustix::process::geteuid().is_root() {
        return Err(Unsupported(
            "rootfs create needs root (dpkg must create files owned by many users)".into(),
        )
        .into());
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(BadInput(format!(
            "{} exists and is not empty: pick a new directory",
            dir.display()
        ))
        .into());
    }
    let (tool, _) = crate::rootfs::find_bootstrapper().ok_or_else(|| {
        Unsupported(
            "neither mmdebstrap nor debootstrap is installed: apt-get install mmdebstrap arch-test"
                .into(),
        )
    })?;
    let native = ctx.is_native(&arch.name).is_some();
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let private = !native && crate::sandbox::kernel_has_private_binfmt(&release);
    if !native && tool == crate::rootfs::Bootstrapper::Mmdebstrap && which("arch-test").is_none() {
        return Err(Unsupported(
            "mmdebstrap needs arch-test for a foreign arch: apt-get install arch-test".into(),
        )
        .into());
    }
    let (userns, binfmt) = if private {
        (Userns::Identity, vec![private_handler(ctx, arch)?])
    } else {
        if !native {
            // Older kernels: the handler must be on the host.
            install(
                ctx,
                std::slice::from_ref(&arch.name),
                &InstallOpts::default(),
                out,
            )?;
        }
        (Userns::None, Vec::new())
    };
    let target = std::path::absolute(dir)?;
    let opts = crate::rootfs::BootstrapOptions {
        suite,
        variant,
        include,
        mirror,
    };
    let command =
        crate::rootfs::bootstrap_command(tool, arch, &opts, &target, private).map_err(BadInput)?;
    writeln!(
        out,
        "creating a {suite} {variant} rootfs for {} in {} with {}{}",
        arch.name,
        target.display(),
        command[0],
        if private {
            " (emulated in a private binfmt_misc instance)"
        } else {
            ""
        }
    )?;
    out.flush()?;
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    env.retain(|(k, _)| k != crate::sandbox::SPEC_ENV);
    let spec = Spec {
        userns,
        binfmt,
        root: None,
        command: command.clone(),
        env,
        workdir: None,
        uid: None,
        gid: None,
    };
    let exe = std::env::current_exe()?;
    let code = crate::sandbox::run(&spec, &exe).context("cannot start the bootstrap")?;
    if code != 0 {
        anyhow::bail!("{} failed with exit status {code}", command[0]);
    }
    writeln!(
        out,
        "created {} ({} {})",
        target.display(),
        arch.name,
        suite
    )?;
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Everything `run` and `build --strategy emulate` need, validated before anything starts.
fn emulated_spec(ctx: &Ctx, args: &RunArgs, out: &mut dyn Write) -> Result<crate::sandbox::Spec> {
    use crate::sandbox::{Bind, RootSetup, Spec, Userns};
    let root = crate::rootfs::resolve(&args.rootfs, &crate::rootfs::default_cache()).map_err(
        |e| match e {
            crate::rootfs::RootfsError::NotRootfs { .. }
            | crate::rootfs::RootfsError::Io { .. } => anyhow::Error::new(BadInput(e.to_string())),
            other => anyhow::Error::new(other),
        },
    )?;
    let detected = crate::rootfs::detect_arch(ctx.table, &root);
    let arch = match (&args.arch, detected) {
        (Some(a), Ok((d, from))) => {
            let a = ctx.table.resolve(a)?;
            if a.name != d.name {
                return Err(BadInput(format!(
                    "arch mismatch: the rootfs is {} (its {from}), but --arch says {}",
                    d.name, a.name
                ))
                .into());
            }
            a
        }
        (Some(a), Err(_)) => ctx.table.resolve(a)?,
        (None, Ok((d, _))) => d,
        (None, Err(e)) => return Err(BadInput(e.to_string()).into()),
    };
    let root_user = rustix::process::geteuid().is_root();
    let rootless = args.rootless || !root_user;
    let native = ctx.is_native(&arch.name).is_some();
    let mut binds = Vec::new();
    for b in &args.bind {
        let mut parts = b.splitn(3, ':');
        let src = parts.next().unwrap_or_default();
        let dst = parts.next().filter(|d| !d.is_empty()).unwrap_or(src);
        let readonly = match parts.next() {
            None => false,
            Some("ro") => true,
            Some(o) => {
                return Err(BadInput(format!("--bind {b}: unknown option {o:?}; only :ro")).into());
            }
        };
        let source = std::fs::canonicalize(src).map_err(|e| {
            BadInput(format!(
                "--bind {b}: the source {src} does not exist or is unreadable ({e})"
            ))
        })?;
        if !dst.starts_with('/') {
            return Err(BadInput(format!(
                "--bind {b}: the target {dst} must be an absolute path in the rootfs"
            ))
            .into());
        }
        binds.push(Bind {
            source,
            target: dst.to_owned(),
            readonly,
        });
    }
    let (uid, gid, home) = match &args.user {
        None => (None, None, "/root".to_owned()),
        Some(_) if rootless => {
            return Err(BadInput(
                "--user needs root: in rootless mode only one user (you, as root) exists".into(),
            )
            .into());
        }
        Some(u) => {
            let (uid, gid, home) = crate::rootfs::lookup_user(&root, u).map_err(BadInput)?;
            (Some(uid), Some(gid), home)
        }
    };
    let mut env = crate::sandbox::Spec::default_env(&home);
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| BadInput(format!("--env {kv}: expected NAME=VALUE")))?;
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let (userns, binfmt) = if rootless {
        require_private_binfmt("--rootless")?;
        let binfmt = if native {
            Vec::new()
        } else {
            vec![private_handler(ctx, arch)?]
        };
        (Userns::Rootless, binfmt)
    } else {
        // Root: use the host's handler when there is one (it must have F); without one, a
        // private instance in an identity-mapped user namespace (Linux >= 6.7), or with
        // --install-missing, register it on the host.
        let mut private = false;
        if !native {
            let (entries, enabled) = kernel_view(ctx)?;
            let header = crate::probe::representative_header(arch);
            match crate::inspect::kernel_choice(&entries, enabled, &header, "/x") {
                Some(k) if !k.entry.registration.flags.fix_binary => {
                    return Err(Unsupported(format!(
                        "the handler {} lacks the F flag, so it cannot work inside the chroot: run `binfmtctl install {}`",
                        k.entry.registration.name, arch.name
                    ))
                    .into());
                }
                Some(_) => {}
                None if args.install_missing => install(
                    ctx,
                    std::slice::from_ref(&arch.name),
                    &InstallOpts::default(),
                    out,
                )?,
                None => {
                    require_private_binfmt(&format!(
                        "emulating {} without a handler on the host (run `binfmtctl install {}` or pass --install-missing)",
                        arch.name, arch.name
                    ))?;
                    eprintln!(
                        "binfmtctl: no {} handler on the host: emulating in a private binfmt_misc instance (the host's is untouched)",
                        arch.name
                    );
                    private = true;
                }
            }
        }
        if private {
            (Userns::Identity, vec![private_handler(ctx, arch)?])
        } else {
            (Userns::None, Vec::new())
        }
    };
    Ok(Spec {
        userns,
        binfmt,
        root: Some(RootSetup {
            dir: root,
            binds,
            resolv_conf: true,
        }),
        command: args.command.clone(),
        env,
        workdir: args.workdir.clone(),
        uid,
        gid,
    })
}

/// The cross toolchain for an arch and its environment, or why there is none.
fn cross_vars(
    ctx: &Ctx,
    arch: &Arch,
) -> std::result::Result<(crate::cross::Toolchain, Vec<(String, String)>), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let tc = crate::cross::find(arch, &path, std::path::Path::new("/usr")).ok_or_else(|| {
        format!(
            "no cross toolchain for {} found on PATH: {}",
            arch.name,
            crate::cross::package_hint(arch)
        )
    })?;
    // Test binaries run through our emulator (any checked interpreter; F is not needed here).
    let runner = ctx
        .requirements(false)
        .ok()
        .map(|req| interpreter::discover(arch, &ctx.search_dirs(), &req))
        .and_then(|d| d.chosen().map(|c| c.facts.path.clone()));
    let vars = crate::cross::env(&tc, runner.as_deref());
    Ok((tc, vars))
}

fn cross_env(ctx: &Ctx, arch: &str, format: &str, out: &mut dyn Write) -> Result<()> {
    let arch = ctx.table.resolve(arch)?;
    let (_, vars) = cross_vars(ctx, arch).map_err(Unsupported)?;
    write!(
        out,
        "{}",
        crate::cross::render(&vars, format).map_err(BadInput)?
    )?;
    Ok(())
}

fn build(ctx: &Ctx, args: &BuildArgs, out: &mut dyn Write) -> Result<()> {
    let arch = ctx.table.resolve(&args.arch)?;
    let src = std::fs::canonicalize(args.src.as_deref().unwrap_or(std::path::Path::new(".")))
        .map_err(|e| BadInput(format!("--src: {e}")))?;
    let cross = cross_vars(ctx, arch);
    let strategy = match (args.strategy, &cross, &args.rootfs) {
        (Strategy::Cross, Err(why), _) => return Err(Unsupported(why.clone()).into()),
        (Strategy::Emulate, _, None) => {
            return Err(BadInput(
                "--strategy emulate needs --rootfs (create one with `binfmtctl rootfs create`)"
                    .into(),
            )
            .into());
        }
        (Strategy::Auto, Ok(_), _) => {
            eprintln!(
                "binfmtctl: build: cross (a {} cross toolchain is installed; it runs at native speed)",
                arch.name
            );
            Strategy::Cross
        }
        (Strategy::Auto, Err(why), Some(_)) => {
            eprintln!("binfmtctl: build: emulate ({why})");
            Strategy::Emulate
        }
        (Strategy::Auto, Err(why), None) => {
            return Err(Unsupported(format!(
                "{why}; or pass --rootfs to build in an emulated chroot"
            ))
            .into());
        }
        (s, _, _) => s,
    };
    let code = if strategy == Strategy::Cross {
        let (_, vars) = cross.map_err(Unsupported)?;
        let (prog, rest) = args.command.split_first().expect("clap requires a command");
        let status = std::process::Command::new(prog)
            .args(rest)
            .current_dir(&src)
            .envs(vars)
            .status()
            .map_err(|e| BadInput(format!("{prog}: {e}")))?;
        use std::os::unix::process::ExitStatusExt;
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    } else {
        let run = RunArgs {
            rootfs: args.rootfs.clone().expect("checked above"),
            arch: Some(arch.name.clone()),
            rootless: false,
            bind: vec![format!("{}:/src", src.display())],
            workdir: Some("/src".into()),
            env: Vec::new(),
            user: None,
            install_missing: false,
            command: args.command.clone(),
        };
        let spec = emulated_spec(ctx, &run, out)?;
        crate::sandbox::run(&spec, &std::env::current_exe()?)
            .context("cannot start the emulated chroot")?
    };
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}

fn run_in_rootfs(ctx: &Ctx, args: &RunArgs, out: &mut dyn Write) -> Result<()> {
    let spec = emulated_spec(ctx, args, out)?;
    out.flush()?;
    let exe = std::env::current_exe()?;
    let code = crate::sandbox::run(&spec, &exe).context("cannot start the emulated chroot")?;
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}

fn selftest(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    use crate::selftest::{ArchResult, Env, Status, Workdir, test_arch};
    let (entries, enabled) = kernel_view(ctx)?;
    let targets: Vec<(&Arch, bool)> = if names.is_empty() {
        let mut v: Vec<(&Arch, bool)> = Vec::new();
        for a in &ctx.table.arches {
            if entries
                .iter()
                .any(|k| k.entry.registration.name == a.entry_name())
            {
                v.push((a, true));
            }
        }
        if v.is_empty() {
            anyhow::bail!(
                "no qemu-* handler is registered, so nothing was tested: run `binfmtctl install ARCHES` first, or `binfmtctl test all`"
            );
        }
        v
    } else {
        let (all, arches) = ctx.resolve_list(names)?;
        arches.into_iter().map(|a| (a, !all)).collect()
    };
    let work = Workdir::new().context("cannot create a directory for the probes")?;
    let self_exe = std::env::current_exe().context("cannot find binfmtctl's own executable")?;
    let env = Env {
        entries: &entries,
        binfmt_enabled: enabled,
        host_machine: &ctx.host.machine,
        self_exe: &self_exe,
        work: &work,
    };
    let results: Vec<ArchResult> = targets
        .iter()
        .map(|(a, explicit)| test_arch(a, ctx.is_native(&a.name).is_some(), *explicit, &env))
        .collect();
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (pass, fail, skip) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skipped),
    );
    if ctx.g.json {
        let v = json!({
            "results": results,
            "summary": {"pass": pass, "fail": fail, "skipped": skip},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for r in &results {
            if !(ctx.g.quiet && r.status == Status::Pass) {
                writeln!(out, "{}", r.human())?;
            }
        }
        writeln!(out, "summary: {pass} pass, {fail} fail, {skip} skipped")?;
    }
    if fail > 0 {
        anyhow::bail!("emulation test failed for {fail} arch(es)");
    }
    Ok(())
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
