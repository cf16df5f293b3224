//! Building and running foreign code in an emulated chroot: `rootfs create` (`create_rootfs`:
//! `rootfs_plan`, then `bootstrap`), `run` and the emulated and hybrid builds (`prepare`,
//! `run`). Each takes the binfmt_misc seam and the host facts and a plain request; what it has
//! to say on the way (notes for stderr, the host registration `--install-missing` asks for, the
//! stages of `rootfs create`) goes through `Events`, which the CLI implements.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::BinfmtFs;
use crate::binfmt::registration::{Flags, Registration};
use crate::emulation::sandbox::{Bind, RootSetup, Spec, Userns};
use crate::error::{Classify, ErrorKind};

use super::{Host, Search};

/// `run --accelerate[=force]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerate {
    /// Only when the host's cross gcc and binutils have the rootfs's versions.
    On,
    /// Even when the versions differ.
    Force,
}

/// What `run` (and the emulated and hybrid builds) asked for, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub rootfs: PathBuf,
    pub arch: Option<String>,
    pub rootless: bool,
    /// `SRC[:DST[:ro]]` each.
    pub bind: Vec<String>,
    pub workdir: Option<String>,
    /// `NAME=VALUE` each.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub install_missing: bool,
    /// `--host-handlers`: as root, use the host's handler for the rootfs's arch even when it is
    /// one binfmtctl would not have registered (no `P`, an interpreter that fails the checks).
    pub host_handlers: bool,
    /// `--cpu MODEL[,props]`: QEMU_CPU inside the sandbox, the model checked against the
    /// interpreter's own `-cpu help`.
    pub cpu: Option<String>,
    pub keep_privileges: bool,
    pub accelerate: Option<Accelerate>,
    pub command: Vec<String>,
}

/// What `rootfs create` asked for.
#[derive(Debug, Clone)]
pub struct RootfsRequest {
    pub arch: String,
    pub suite: String,
    pub include: Vec<String>,
    pub variant: String,
    pub mirror: Option<String>,
    pub dir: PathBuf,
    /// Errors only from the bootstrap tool (`-q` or `--json`): it draws no progress of its own.
    pub quiet: bool,
    /// `--allow-expired`: take Release files past their `Valid-Until` (a dated snapshot mirror).
    pub allow_expired: bool,
}

/// The mirror mmdebstrap and debootstrap use when none is given.
const TOOLS_MIRROR: &str = "http://deb.debian.org/debian";

/// Whether the bootstrap may take Release files past their `Valid-Until`, and what allows it:
/// `--allow-expired`; or apt on this host (its files under `root`), for the mirror the tool
/// will use (the given one, or the tools' default) when apt's sources name that mirror: that
/// source's `check-valid-until=no`, else apt's `Acquire::Check-Valid-Until "false"` — as
/// `qemu fetch` decides (`ArchiveOptions::archive_at`). apt's files are read only then; a
/// setting in them that cannot be read is bad input (exit 2).
pub fn valid_until_waiver(
    root: &Path,
    mirror: Option<&str>,
    allow_expired: bool,
) -> Result<Option<String>, crate::qemu::apt::AptError> {
    if allow_expired {
        return Ok(Some("--allow-expired".to_owned()));
    }
    let mirror = mirror.unwrap_or(TOOLS_MIRROR).trim_end_matches('/');
    let Some(src) = crate::qemu::apt::source(root)? else {
        return Ok(None);
    };
    if src.uri.trim_end_matches('/') != mirror {
        return Ok(None);
    }
    src.waives_valid_until(root)
}

/// What the operations report on the way.
pub trait Events {
    /// A line for stderr (the CLI prefixes `binfmtctl: `).
    fn note(&mut self, line: &str);
    /// Register the arch's handler on the host (and report it): `--install-missing`, or a
    /// bootstrap on a kernel without private binfmt_misc instances.
    fn install(&mut self, arch: &Arch) -> anyhow::Result<()>;
    /// The observer of long work (unpacking a tarball rootfs, the bootstrap): by default none.
    fn progress(&self) -> std::sync::Arc<dyn crate::progress::Progress + Send> {
        std::sync::Arc::new(crate::progress::Silent)
    }
    /// `rootfs create` is about to bootstrap, or has: by default nobody is told.
    fn rootfs(&mut self, _req: &RootfsRequest, _stage: RootfsStage<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Where `rootfs create` is (`Events::rootfs`).
pub enum RootfsStage<'a> {
    /// Checked and planned; the bootstrap starts next.
    Starting(&'a Bootstrap),
    /// The bootstrap succeeded: the rootfs is there.
    Created(&'a Bootstrap),
}

#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    #[error("--bind {bind}: unknown option {option:?}; only :ro")]
    BindOption { bind: String, option: String },
    #[error("--bind {bind}: the source {source_path} does not exist or is unreadable ({cause})")]
    BindSource {
        bind: String,
        source_path: String,
        cause: std::io::Error,
    },
    #[error("--env {0}: expected NAME=VALUE")]
    Env(String),
    #[error("arch mismatch: the rootfs is {rootfs} (its {from}), but --arch says {given}")]
    ArchMismatch {
        rootfs: String,
        from: String,
        given: String,
    },
    #[error(
        "--bind {source_path}:{target}: --accelerate keeps its files under {dir} in the sandbox's own /run; bind elsewhere"
    )]
    AccelerateBind {
        source_path: String,
        target: String,
        dir: &'static str,
    },
    #[error(
        "--bind {source_path}:{target}: {target} resolves (through the rootfs's symlinks) to {resolved}, {why}; bind elsewhere"
    )]
    BindResolves {
        source_path: String,
        target: String,
        resolved: String,
        why: &'static str,
    },
    #[error(
        "--accelerate: the rootfs is {0}, which this host runs natively: nothing is emulated, so there is nothing to speed up"
    )]
    AccelerateNative(String),
    #[error(
        "--cpu {cpu}: {interpreter} knows no such CPU model; it knows: {known} (see `{interpreter} -cpu help`)"
    )]
    CpuUnknown {
        cpu: String,
        interpreter: String,
        known: String,
    },
    #[error("--cpu: cannot ask {interpreter} for its CPU models: {cause}")]
    CpuHelp { interpreter: String, cause: String },
    #[error("--cpu: the rootfs is {0}, which this host runs natively: no emulated CPU to choose")]
    CpuNative(String),
    #[error("--user needs root: in rootless mode only one user (you, as root) exists")]
    UserRootless,
    /// No usable static interpreter for a private instance.
    #[error("{arch}: {refusal}")]
    NoInterpreter { arch: String, refusal: String },
    #[error(
        "{what} needs a private binfmt_misc instance, which Linux {release} lacks (needs >= 6.7)"
    )]
    NoPrivateBinfmt { what: String, release: String },
    #[error(
        "the handler {name} lacks the F flag, so it cannot work inside the chroot: run `binfmtctl install {arch}`"
    )]
    NoFixBinary { name: String, arch: String },
    #[error(
        "running as root of a user namespace that maps only some ids (see /proc/self/uid_map), where no {0} handler is registered: pass --rootless (or register one here: binfmtctl install {0})"
    )]
    PartialUserns(String),
    #[error("rootfs create needs root (dpkg must create files owned by many users)")]
    CreateNeedsRoot,
    #[error("{0} exists and is not empty: pick a new directory")]
    NotEmpty(PathBuf),
    #[error(
        "neither mmdebstrap nor debootstrap is installed: apt-get install mmdebstrap arch-test"
    )]
    NoBootstrapper,
    #[error("mmdebstrap needs arch-test for a foreign arch: apt-get install arch-test")]
    NoArchTest,
    #[error(
        "rootfs create needs every uid and gid (dpkg chowns to many users), but this user namespace maps only some (see /proc/self/uid_map): run it as root outside any user namespace"
    )]
    CreateNeedsAllIds,
    #[error("{tool} failed with exit status {code}")]
    BootstrapFailed { tool: String, code: i32 },
}

impl Classify for EmulateError {
    fn kind(&self) -> ErrorKind {
        use EmulateError::*;
        match self {
            BindOption { .. }
            | BindSource { .. }
            | Env(_)
            | ArchMismatch { .. }
            | AccelerateBind { .. }
            | BindResolves { .. }
            | AccelerateNative(_)
            | UserRootless
            | CpuUnknown { .. }
            | CpuNative(_)
            | NoInterpreter { .. }
            | NotEmpty(_) => ErrorKind::BadInput,
            NoPrivateBinfmt { .. }
            | NoFixBinary { .. }
            | PartialUserns(_)
            | CreateNeedsRoot
            | NoBootstrapper
            | NoArchTest
            | CreateNeedsAllIds => ErrorKind::Environment,
            BootstrapFailed { .. } | CpuHelp { .. } => ErrorKind::Failed,
        }
    }
}

fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// The registration record for a private binfmt_misc instance: the arch's checked, static
/// interpreter with F (opened at registration, so it works inside the chroot).
pub fn private_handler(host: &Host, search: &Search, arch: &Arch) -> anyhow::Result<String> {
    let req = host.requirements(true)?;
    let d = host.discover(arch, &search.dirs(), &req);
    let c = d.chosen().ok_or_else(|| EmulateError::NoInterpreter {
        arch: arch.name.clone(),
        refusal: d.refusal(),
    })?;
    // The resolved path: the file itself, never a symlink.
    let reg = arch.registration(&c.facts.resolved.to_string_lossy(), Flags::DEFAULT);
    reg.to_record()
        .with_context(|| format!("the record for {}", reg.name))
}

pub fn require_private_binfmt(what: &str) -> Result<(), EmulateError> {
    let release = kernel_release();
    if crate::emulation::sandbox::kernel_has_private_binfmt(&release) {
        Ok(())
    } else {
        Err(EmulateError::NoPrivateBinfmt {
            what: what.to_owned(),
            release,
        })
    }
}

/// A bootstrap ready to start: the sandbox spec, and what the CLI says about it.
pub struct Bootstrap {
    pub spec: Spec,
    /// The tool's name (it runs by its absolute path).
    pub tool: String,
    pub arch: String,
    /// The rootfs directory, absolute.
    pub target: PathBuf,
    /// Emulated in a private binfmt_misc instance.
    pub private: bool,
}

/// Everything `rootfs create` needs, checked before anything starts (on a kernel without
/// private instances, the arch's handler is registered on the host through `events`).
fn rootfs_plan(
    host: &Host,
    search: &Search,
    req: &RootfsRequest,
    events: &mut dyn Events,
) -> anyhow::Result<Bootstrap> {
    let arch = host.table.resolve(&req.arch)?;
    if !rustix::process::geteuid().is_root() {
        return Err(EmulateError::CreateNeedsRoot.into());
    }
    let dir = &req.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(EmulateError::NotEmpty(dir.clone()).into());
    }
    let (tool, program) =
        crate::emulation::rootfs::find_bootstrapper().ok_or(EmulateError::NoBootstrapper)?;
    let native = host.is_native(&arch.name).is_some();
    let private =
        !native && crate::emulation::sandbox::kernel_has_private_binfmt(&kernel_release());
    // The tool runs with the caller's environment (proxies, mirrors) but a PATH of only the
    // directories nobody else can add a program to: it runs apt, dpkg, arch-test by name.
    let path = crate::emulation::rootfs::trusted_path(
        &std::env::var_os("PATH").unwrap_or_default(),
        crate::host::trusted_uid(),
    );
    if !native
        && tool == crate::emulation::rootfs::Bootstrapper::Mmdebstrap
        && crate::host::find_in_path(&path, "arch-test", Path::is_file).is_none()
    {
        return Err(EmulateError::NoArchTest.into());
    }
    let (userns, binfmt) = if private {
        if !crate::emulation::sandbox::can_map_every_id() {
            return Err(EmulateError::CreateNeedsAllIds.into());
        }
        (Userns::Identity, vec![private_handler(host, search, arch)?])
    } else {
        if !native {
            // Older kernels: the handler must be on the host.
            events.install(arch)?;
        }
        (Userns::None, Vec::new())
    };
    let target = std::path::absolute(dir)?;
    let waiver = valid_until_waiver(Path::new("/"), req.mirror.as_deref(), req.allow_expired)?;
    if let Some(by) = &waiver {
        events.note(&format!(
            "warning: {}'s Release files are taken past their Valid-Until, as {by} allows: a mirror serving an outdated copy could hide security updates",
            req.suite
        ));
    }
    let opts = crate::emulation::rootfs::BootstrapOptions {
        suite: &req.suite,
        variant: &req.variant,
        include: &req.include,
        mirror: req.mirror.as_deref(),
        quiet: req.quiet,
        no_check_valid_until: waiver.is_some(),
    };
    let command =
        crate::emulation::rootfs::bootstrap_command(tool, &program, arch, &opts, &target, private)?;
    // The tool runs by its absolute path; messages name it by its name.
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| command[0].clone());
    // The bootstrap tool runs on the host's files (no chroot), with the caller's environment
    // (proxies, mirrors) and the trusted PATH; PID 1 of its sandbox keeps none.
    let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k != "PATH").collect();
    if std::env::var_os("PATH").is_some() {
        env.push(("PATH".into(), path.to_string_lossy().into_owned()));
    }
    let spec = Spec {
        userns,
        binfmt,
        root: None,
        command,
        env,
        workdir: None,
        uid: None,
        gid: None,
    };
    Ok(Bootstrap {
        spec,
        tool: name,
        arch: arch.name.clone(),
        target,
        private,
    })
}

/// `rootfs create`: checked and planned (`rootfs_plan`), then bootstrapped; `events` hears
/// of each stage.
pub fn create_rootfs(
    host: &Host,
    search: &Search,
    req: &RootfsRequest,
    events: &mut dyn Events,
) -> anyhow::Result<()> {
    let plan = rootfs_plan(host, search, req, events)?;
    events.rootfs(req, RootfsStage::Starting(&plan))?;
    bootstrap(&plan, &*events.progress())?;
    events.rootfs(req, RootfsStage::Created(&plan))
}

/// Runs a planned bootstrap to its end. The tool's stages are its own to show (mmdebstrap
/// prints each phase and, on a terminal, its own progress bars): `progress` is told the step
/// is the terminal's (`Unit::External`), so nothing else draws meanwhile.
fn bootstrap(plan: &Bootstrap, progress: &dyn crate::progress::Progress) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    progress.begin(
        &format!("{}: bootstrapping {}", plan.tool, plan.arch),
        None,
        crate::progress::Unit::External,
    );
    let code =
        crate::emulation::sandbox::run(&plan.spec, &exe).context("cannot start the bootstrap")?;
    progress.end();
    if code != 0 {
        return Err(EmulateError::BootstrapFailed {
            tool: plan.tool.clone(),
            code,
        }
        .into());
    }
    Ok(())
}

/// An emulated chroot ready to start: the spec, and the rootfs it runs in (for a tarball, a
/// lease on its cache entry that must outlive the run).
pub struct Emulated {
    pub spec: Spec,
    _rootfs: crate::emulation::rootfs::Rootfs,
}

/// `--bind SRC[:DST[:ro]]`.
fn parse_bind(b: &str) -> anyhow::Result<Bind> {
    let mut parts = b.splitn(3, ':');
    let src = parts.next().unwrap_or_default();
    let dst = parts.next().filter(|d| !d.is_empty()).unwrap_or(src);
    let readonly = match parts.next() {
        None => false,
        Some("ro") => true,
        Some(o) => {
            return Err(EmulateError::BindOption {
                bind: b.to_owned(),
                option: o.to_owned(),
            }
            .into());
        }
    };
    let source = std::fs::canonicalize(src).map_err(|cause| EmulateError::BindSource {
        bind: b.to_owned(),
        source_path: src.to_owned(),
        cause,
    })?;
    let target =
        crate::emulation::sandbox::bind_target(dst).with_context(|| format!("--bind {b}"))?;
    Ok(Bind {
        source,
        target,
        readonly,
    })
}

/// The sandbox's environment: `base` with each `--env NAME=VALUE` set (a later one wins).
fn with_env(
    mut env: Vec<(String, String)>,
    given: &[String],
) -> Result<Vec<(String, String)>, EmulateError> {
    for kv in given {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| EmulateError::Env(kv.clone()))?;
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    Ok(env)
}

/// Where each `--bind` target leads inside the rootfs, through its symlinks: a bind that would
/// cover the rootfs's top, one of the file systems the sandbox mounts for itself, or (with
/// `--accelerate`) its injection is refused here, before anything starts, with exit 2. The
/// sandbox makes the same check again on the object it resolved (`sandbox::Made`), which is
/// what guarantees it; this one gives the early, clear error.
fn check_bind_targets(root: &Path, binds: &[Bind], accelerate: bool) -> anyhow::Result<()> {
    // Debug builds only: `BINFMTCTL_FAILPOINT=skip:bind-precheck` leaves the refusal to the
    // sandbox's own check, so the tests prove that one holds by itself.
    if cfg!(debug_assertions)
        && std::env::var("BINFMTCTL_FAILPOINT").is_ok_and(|f| f == "skip:bind-precheck")
    {
        return Ok(());
    }
    let tree = crate::confined::Tree::open(root)
        .with_context(|| format!("opening the rootfs {}", root.display()))?;
    for b in binds {
        let resolved = tree.leads_to(&b.target);
        // A target that exists must be of the source's kind (a directory on a directory, a
        // file on a regular file).
        if let Some(kind) = tree.file_type_in_root(&b.target) {
            let src_dir = std::fs::metadata(&b.source).is_ok_and(|m| m.is_dir());
            let fits = if src_dir {
                kind == rustix::fs::FileType::Directory
            } else {
                kind == rustix::fs::FileType::RegularFile
            };
            if !fits {
                return Err(EmulateError::BindResolves {
                    source_path: b.source.display().to_string(),
                    target: b.target.clone(),
                    resolved,
                    why: if src_dir {
                        "which is not a directory, and a directory is bound only on a directory"
                    } else {
                        "which is not a regular file, and a file is bound only on a regular file"
                    },
                }
                .into());
            }
        }
        let acc = crate::emulation::accelerate::DIR;
        let why = if resolved == "/" {
            Some("the rootfs's top directory")
        } else if ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run"]
            .contains(&resolved.as_str())
        {
            Some("where the sandbox mounts its own file system")
        } else if accelerate && (resolved == acc || resolved.starts_with(&format!("{acc}/"))) {
            Some("where --accelerate keeps its files")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(EmulateError::BindResolves {
                source_path: b.source.display().to_string(),
                target: b.target.clone(),
                resolved,
                why,
            }
            .into());
        }
    }
    Ok(())
}

/// Everything `run` and the emulated and hybrid builds need, validated before anything starts.
pub fn prepare(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    req: &RunRequest,
    events: &mut dyn Events,
) -> anyhow::Result<Emulated> {
    // Usage first: nothing is unpacked for a command line that cannot run.
    let binds = req
        .bind
        .iter()
        .map(|b| parse_bind(b))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = crate::emulation::rootfs::UnpackOptions {
        keep_privileges: req.keep_privileges,
    };
    let rootfs = crate::emulation::rootfs::resolve(
        &req.rootfs,
        &crate::emulation::rootfs::default_cache(),
        opts,
        &*events.progress(),
    )?;
    if let Some(d) = rootfs.dropped
        && d != crate::emulation::rootfs::Dropped::default()
    {
        events.note(&format!(
            "note: unpacked {} without privileges: cleared setuid/setgid on {} files, skipped {} device nodes (pass --keep-privileges to keep them)",
            req.rootfs.display(),
            d.setid,
            d.devices
        ));
    }
    let root = rootfs.dir.clone();
    crate::emulation::sandbox::check_mount_points(&root)?;
    check_bind_targets(&root, &binds, req.accelerate.is_some())?;
    let detected = crate::emulation::rootfs::detect_arch(host.table, &root);
    let arch = rootfs_arch(host, req, detected)?;
    let native = host.is_native(&arch.name).is_some();
    // --accelerate is checked before anything is registered or mounted.
    let accelerate = match req.accelerate {
        None => Vec::new(),
        Some(mode) => accelerate_items(arch, &root, &binds, native, mode, events)?,
    };
    let root_user = rustix::process::geteuid().is_root();
    let rootless = req.rootless || !root_user;
    let (uid, gid, home) = match &req.user {
        None => (None, None, "/root".to_owned()),
        Some(_) if rootless => return Err(EmulateError::UserRootless.into()),
        Some(u) => {
            let (uid, gid, home) = crate::emulation::rootfs::lookup_user(&root, u)?;
            (Some(uid), Some(gid), home)
        }
    };
    let mut env = with_env(Spec::default_env(&home), &req.env)?;
    let (userns, binfmt) = if rootless {
        require_private_binfmt("--rootless")?;
        let binfmt = if native {
            Vec::new()
        } else {
            vec![private_handler(host, search, arch)?]
        };
        (Userns::Rootless, binfmt)
    } else {
        root_handler(fs, host, search, arch, native, req, events)?
    };
    if let Some(cpu) = &req.cpu {
        if native {
            return Err(EmulateError::CpuNative(arch.name.clone()).into());
        }
        let interpreter = match binfmt.first() {
            Some(record) => Registration::parse_record(record)?.interpreter,
            None => {
                let (entries, enabled) = crate::binfmt::kernel::view(fs)?;
                let header = crate::inspection::probe::representative_header(arch);
                crate::inspection::inspect::kernel_choice(&entries, enabled, &header, "/x")
                    .map(|k| k.entry.registration.interpreter.clone())
                    .unwrap_or_default()
            }
        };
        check_cpu(Path::new(&interpreter), cpu)?;
        env.retain(|(k, _)| k != "QEMU_CPU");
        env.push(("QEMU_CPU".into(), cpu.clone()));
    }
    let spec = Spec {
        userns,
        binfmt,
        root: Some(RootSetup {
            dir: root,
            binds,
            resolv_conf: true,
            accelerate,
        }),
        command: req.command.clone(),
        env,
        workdir: req.workdir.clone(),
        uid,
        gid,
    };
    Ok(Emulated {
        spec,
        _rootfs: rootfs,
    })
}

/// The rootfs's arch: detected from its files, checked against `--arch` when given.
fn rootfs_arch(
    host: &Host,
    req: &RunRequest,
    detected: Result<(&'static Arch, String), crate::emulation::rootfs::RootfsError>,
) -> anyhow::Result<&'static Arch> {
    Ok(match (&req.arch, detected) {
        (Some(a), Ok((d, from))) => {
            let a = host.table.resolve(a)?;
            if a.name != d.name {
                return Err(EmulateError::ArchMismatch {
                    rootfs: d.name.clone(),
                    from: from.to_string(),
                    given: a.name.clone(),
                }
                .into());
            }
            a
        }
        (Some(a), Err(_)) => host.table.resolve(a)?,
        (None, Ok((d, _))) => d,
        (None, Err(e)) => return Err(e.into()),
    })
}

/// `--accelerate`'s injection, checked before anything is registered or mounted: never with a
/// bind onto `/run` (the injection lives in the sandbox's own tmpfs there) nor for an arch the
/// host runs natively; its lines go to `events`.
fn accelerate_items(
    arch: &Arch,
    root: &Path,
    binds: &[Bind],
    native: bool,
    mode: Accelerate,
    events: &mut dyn Events,
) -> anyhow::Result<Vec<crate::emulation::accelerate::Item>> {
    // The injection lives in the sandbox's own tmpfs /run: a bind there would put it
    // in a host directory.
    if let Some(b) = binds
        .iter()
        .find(|b| b.target == "/run" || b.target.starts_with(crate::emulation::accelerate::DIR))
    {
        return Err(EmulateError::AccelerateBind {
            source_path: b.source.display().to_string(),
            target: b.target.clone(),
            dir: crate::emulation::accelerate::DIR,
        }
        .into());
    }
    if native {
        return Err(EmulateError::AccelerateNative(arch.name.clone()).into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let inj = accelerate_plan(arch, root, mode == Accelerate::Force, &path)?;
    events.note(&format!("accelerate: {}", inj.summary));
    for line in &inj.notes {
        events.note(&format!("accelerate: {line}"));
    }
    for (file, pkg) in &inj.left_emulated {
        events.note(&format!(
            "accelerate: the rootfs's {file} stays emulated (no native counterpart on the host: apt-get install {pkg})"
        ));
    }
    Ok(inj.items)
}

/// The CPU models an interpreter knows, from its `-cpu help` (QEMU lists one per line: indented
/// names, or prefixed by the arch's family as `x86 Haswell`, `s390 z14`, `PowerPC e500`,
/// `MIPS '4Kc'`).
pub fn cpu_models(help: &str) -> Vec<String> {
    const FAMILIES: &[&str] = &["x86", "s390", "PowerPC", "MIPS", "Sparc", "ppc", "sparc"];
    help.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Available"))
        .filter_map(|l| {
            let mut t = l.split_whitespace();
            let first = t.next()?;
            let name = if FAMILIES.contains(&first) {
                t.next()?
            } else {
                first
            };
            Some(name.trim_matches('\'').to_owned())
        })
        .collect()
}

/// `--cpu MODEL[,props]`: MODEL must be one the interpreter knows.
fn check_cpu(interpreter: &Path, cpu: &str) -> Result<(), EmulateError> {
    let model = cpu.split(',').next().unwrap_or_default();
    let mut cmd = std::process::Command::new(interpreter);
    cmd.args(["-cpu", "help"]).env_clear();
    let out = crate::inspection::selftest::run(cmd).map_err(|e| EmulateError::CpuHelp {
        interpreter: interpreter.display().to_string(),
        cause: e.to_string(),
    })?;
    let models = cpu_models(&String::from_utf8_lossy(&out.stdout));
    if model.is_empty() || !models.iter().any(|m| m == model) {
        let mut shown: Vec<&str> = models.iter().map(String::as_str).take(40).collect();
        if models.len() > shown.len() {
            shown.push("...");
        }
        return Err(EmulateError::CpuUnknown {
            cpu: cpu.to_owned(),
            interpreter: interpreter.display().to_string(),
            known: shown.join(", "),
        });
    }
    Ok(())
}

/// As root, the handler a chroot of `arch` runs under. The host's, when it has one binfmtctl
/// would have registered itself (F, P, an interpreter that passes install's checks). Otherwise a
/// private binfmt_misc instance in an identity-mapped user namespace (Linux >= 6.7) holding
/// binfmtctl's own checked entry, so the run neither depends on nor changes the host's entries
/// (a foreign F-only entry, as tonistiigi/binfmt registers, loses argv[0]: busybox applets fail).
/// `--install-missing` registers a missing handler on the host instead; `--host-handlers` takes
/// the host's entry as it is (it must have F).
fn root_handler(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    arch: &Arch,
    native: bool,
    req: &RunRequest,
    events: &mut dyn Events,
) -> anyhow::Result<(Userns, Vec<String>)> {
    let use_host = || -> anyhow::Result<(Userns, Vec<String>)> { Ok((Userns::None, Vec::new())) };
    if native {
        return use_host();
    }
    let (entries, enabled) = crate::binfmt::kernel::view(fs)?;
    let header = crate::inspection::probe::representative_header(arch);
    let Some(k) = crate::inspection::inspect::kernel_choice(&entries, enabled, &header, "/x")
    else {
        if req.install_missing {
            events.install(arch)?;
            return use_host();
        }
        require_private_binfmt(&format!(
            "emulating {} without a handler on the host (run `binfmtctl install {}` or pass --install-missing)",
            arch.name, arch.name
        ))?;
        if !crate::emulation::sandbox::can_map_every_id() {
            return Err(EmulateError::PartialUserns(arch.name.clone()).into());
        }
        events.note(&format!(
            "no {} handler on the host: emulating in a private binfmt_misc instance (the host's is untouched)",
            arch.name
        ));
        return Ok((Userns::Identity, vec![private_handler(host, search, arch)?]));
    };
    let reg = &k.entry.registration;
    let no_fix_binary = || EmulateError::NoFixBinary {
        name: reg.name.clone(),
        arch: arch.name.clone(),
    };
    if req.host_handlers {
        return if reg.flags.fix_binary {
            use_host()
        } else {
            Err(no_fix_binary().into())
        };
    }
    // With F the kernel runs the file it opened at registration: check it as install would.
    // Without F the interpreter is looked up inside the chroot, which is a flaw of its own.
    let problems = if reg.flags.fix_binary {
        let facts = host.interpreter_facts(Path::new(&reg.interpreter), Some(&arch.qemu));
        crate::qemu::interpreter::check(&facts, &host.requirements(true)?)
    } else {
        Vec::new()
    };
    let flaws = handler_flaws(&reg.flags, &reg.interpreter, &problems);
    if flaws.is_empty() {
        return use_host();
    }
    let what = format!(
        "the host's {} handler {} {}",
        arch.name,
        reg.name,
        flaws.join("; ")
    );
    let private = require_private_binfmt("a private instance")
        .and_then(|()| {
            if crate::emulation::sandbox::can_map_every_id() {
                Ok(())
            } else {
                Err(EmulateError::PartialUserns(arch.name.clone()))
            }
        })
        .map_err(anyhow::Error::from)
        .and_then(|()| private_handler(host, search, arch));
    match private {
        Ok(record) => {
            events.note(&format!(
                "warning: {what}: emulating in a private binfmt_misc instance with binfmtctl's own checked entry instead (the host's entries are untouched; --host-handlers uses the host's)"
            ));
            Ok((Userns::Identity, vec![record]))
        }
        Err(_) if !reg.flags.fix_binary => Err(no_fix_binary().into()),
        Err(e) => {
            events.note(&format!(
                "warning: {what}; using it anyway, as no private instance can stand in for it here ({e:#})"
            ));
            use_host()
        }
    }
}

/// Why a host entry is not one binfmtctl would have registered itself, each as a phrase
/// (`binfmtctl doctor`'s `interpreter-not-visible`, `no-preserve-argv0`, `interpreter-unsafe`):
/// empty when a chroot can rely on it. `problems`: what install's checks say of its interpreter.
fn handler_flaws(
    flags: &Flags,
    interpreter: &str,
    problems: &[crate::qemu::interpreter::Problem],
) -> Vec<String> {
    let mut flaws = Vec::new();
    if !flags.fix_binary {
        flaws.push(format!(
            "lacks the F flag, so its interpreter {interpreter} would have to exist inside the rootfs"
        ));
    }
    if !flags.preserve_argv0 {
        flaws.push(
            "lacks the P flag, so programs lose their argv[0] (busybox applets fail)".to_owned(),
        );
    }
    flaws.extend(
        problems
            .iter()
            .map(|p| format!("runs {interpreter}, which {p}")),
    );
    flaws
}

/// Runs a prepared chroot: the command's exit status.
pub fn run(emulated: &Emulated) -> anyhow::Result<i32> {
    let exe = std::env::current_exe()?;
    crate::emulation::sandbox::run(&emulated.spec, &exe).context("cannot start the emulated chroot")
}

/// The `--accelerate` injection for a rootfs directory, or why the host's toolchain cannot
/// stand in for the rootfs's. `path_env`: the PATH the host's toolchain is looked up on.
pub fn accelerate_plan(
    arch: &Arch,
    root: &Path,
    force: bool,
    path_env: &OsStr,
) -> Result<crate::emulation::accelerate::Injection, crate::emulation::accelerate::AccelError> {
    crate::emulation::accelerate::plan(&crate::emulation::accelerate::Request {
        arch,
        root,
        force,
        path_env,
        host_status: Path::new("/var/lib/dpkg/status"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_models_of_every_help_format() {
        let aarch64 = "Available CPUs:\n  a64fx\n  cortex-a53\n  max\n";
        assert_eq!(cpu_models(aarch64), ["a64fx", "cortex-a53", "max"]);
        let x86 = "Available CPUs:\nx86 486                   (alias configured by machine type)\nx86 Haswell-v4\n";
        assert_eq!(cpu_models(x86), ["486", "Haswell-v4"]);
        assert_eq!(
            cpu_models("any\nrv64\nsifive-e51\n"),
            ["any", "rv64", "sifive-e51"]
        );
        assert_eq!(
            cpu_models("s390 z14   IBM z14 GA1\nMIPS '4Kc'\nPowerPC e500  PVR 1\n"),
            ["z14", "4Kc", "e500"]
        );
    }

    fn kind(e: &anyhow::Error) -> ErrorKind {
        crate::exit::kind_of(e)
    }

    #[test]
    fn binds() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().display().to_string();
        let b = parse_bind(&src).unwrap();
        assert_eq!(b.source, std::fs::canonicalize(d.path()).unwrap());
        assert_eq!(b.target, src);
        assert!(!b.readonly);
        let b = parse_bind(&format!("{src}:/src:ro")).unwrap();
        assert_eq!((b.target.as_str(), b.readonly), ("/src", true));
        // An empty DST means SRC.
        assert_eq!(parse_bind(&format!("{src}::ro")).unwrap().target, src);

        let e = parse_bind(&format!("{src}:/src:rw")).unwrap_err();
        assert_eq!(kind(&e), ErrorKind::BadInput);
        assert_eq!(
            e.to_string(),
            format!("--bind {src}:/src:rw: unknown option \"rw\"; only :ro")
        );
        let missing = d.path().join("nope").display().to_string();
        let e = parse_bind(&format!("{missing}:/src")).unwrap_err();
        assert_eq!(kind(&e), ErrorKind::BadInput);
        assert!(
            e.to_string().starts_with(&format!(
                "--bind {missing}:/src: the source {missing} does not exist or is unreadable ("
            )),
            "{e}"
        );
        // The root of the rootfs cannot be replaced (the sandbox's rule, with the flag named).
        let e = parse_bind(&format!("{src}:/")).unwrap_err();
        assert_eq!(kind(&e), ErrorKind::BadInput);
        assert!(
            format!("{e:#}").starts_with(&format!("--bind {src}:/: ")),
            "{e:#}"
        );
    }

    #[test]
    fn env_flags() {
        let base = vec![
            ("PATH".to_owned(), "/bin".to_owned()),
            ("HOME".into(), "/root".into()),
        ];
        let env = with_env(
            base.clone(),
            &["PATH=/x".into(), "A=b=c".into(), "E=".into()],
        )
        .unwrap();
        assert_eq!(
            env,
            [
                ("HOME".to_owned(), "/root".to_owned()),
                ("PATH".into(), "/x".into()),
                ("A".into(), "b=c".into()),
                ("E".into(), String::new()),
            ]
        );
        for bad in ["NOVALUE", "=v"] {
            let e = with_env(base.clone(), &[bad.into()]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput);
            assert_eq!(e.to_string(), format!("--env {bad}: expected NAME=VALUE"));
        }
    }

    #[test]
    fn which_host_entries_a_chroot_does_not_rely_on() {
        use crate::qemu::interpreter::Problem;
        let flags = |f: &str| Flags::parse(f).unwrap();
        let q = "/usr/bin/qemu-aarch64-static";
        let no_f = format!(
            "lacks the F flag, so its interpreter {q} would have to exist inside the rootfs"
        );
        let no_p = "lacks the P flag, so programs lose their argv[0] (busybox applets fail)";
        let writable = Problem::Writable { mode: 0o777 };
        let cases: &[(&str, &[Problem], Vec<String>)] = &[
            // What binfmtctl registers (and C on top): fine.
            ("PF", &[], vec![]),
            ("POCF", &[], vec![]),
            // tonistiigi/binfmt's default.
            ("F", &[], vec![no_p.to_owned()]),
            ("P", &[], vec![no_f.clone()]),
            ("", &[], vec![no_f.clone(), no_p.to_owned()]),
            (
                "PF",
                std::slice::from_ref(&writable),
                vec![format!("runs {q}, which {writable}")],
            ),
        ];
        for (f, problems, want) in cases {
            assert_eq!(&handler_flaws(&flags(f), q, problems), want, "flags {f:?}");
        }
    }

    #[test]
    fn error_kinds() {
        assert_eq!(EmulateError::UserRootless.kind(), ErrorKind::BadInput);
        assert_eq!(EmulateError::NoBootstrapper.kind(), ErrorKind::Environment);
        assert_eq!(
            EmulateError::PartialUserns("aarch64".into()).kind(),
            ErrorKind::Environment
        );
        assert_eq!(
            EmulateError::BootstrapFailed {
                tool: "mmdebstrap".into(),
                code: 1
            }
            .to_string(),
            "mmdebstrap failed with exit status 1"
        );
    }

    /// `rootfs create` waives `Valid-Until` as `qemu fetch` does: `--allow-expired` always;
    /// apt's words only for the mirror the tool uses, when apt's sources name it (the source's
    /// own option over apt's global setting); an unreadable setting is bad input.
    #[test]
    fn rootfs_valid_until_waived_as_apt_or_the_flag_says() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let apt = r.join("etc/apt");
        std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
        std::fs::create_dir_all(apt.join("apt.conf.d")).unwrap();
        let sources = apt.join("sources.list.d/debian.sources");
        let conf = apt.join("apt.conf.d/99snapshot");
        std::fs::write(
            &sources,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\nComponents: main\n",
        )
        .unwrap();
        assert_eq!(valid_until_waiver(r, None, false).unwrap(), None);
        assert_eq!(
            valid_until_waiver(r, None, true).unwrap().as_deref(),
            Some("--allow-expired")
        );
        std::fs::write(&conf, "Acquire::Check-Valid-Until \"false\";\n").unwrap();
        let by_apt = format!(
            "apt's Acquire::Check-Valid-Until \"false\" at {}:1",
            conf.display()
        );
        // The tools' default mirror is apt's here, given or not.
        assert_eq!(
            valid_until_waiver(r, None, false).unwrap(),
            Some(by_apt.clone())
        );
        assert_eq!(
            valid_until_waiver(r, Some("http://deb.debian.org/debian/"), false).unwrap(),
            Some(by_apt)
        );
        assert_eq!(
            valid_until_waiver(r, Some("http://mirror.example/debian"), false).unwrap(),
            None,
            "apt's setting is not about another mirror"
        );
        std::fs::write(
            &sources,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\nCheck-Valid-Until: yes\n",
        )
        .unwrap();
        assert_eq!(valid_until_waiver(r, None, false).unwrap(), None);
        std::fs::write(&conf, "Acquire {\n  Check-Valid-Until \"false\";\n").unwrap();
        std::fs::write(
            &sources,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\n",
        )
        .unwrap();
        let e = valid_until_waiver(r, None, false).unwrap_err();
        assert_eq!(crate::error::Classify::kind(&e), ErrorKind::BadInput);
        assert!(
            e.to_string().starts_with(&format!("{}:2:", conf.display())),
            "{e}"
        );
    }
}
