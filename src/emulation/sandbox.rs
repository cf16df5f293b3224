//! Private namespaces for emulated work: the emulated chroot (`run`, `build`) and the
//! rootfs bootstrap (`rootfs create`).
//!
//! binfmtctl re-executes itself as small helpers, so every privileged step happens in a fresh
//! process and no `pre_exec` (no `unsafe`) is needed:
//!
//! ```text
//! binfmtctl run ──(identity user ns only: spawns, writes the child's uid/gid maps)──┐
//!   stage 1: unshare user? + mount ns; make / private; private binfmt_misc + handler;│
//!            unshare pid ns; spawn stage 2; forward signals; exit with its status  ◄─┘
//!   stage 2 (PID 1 of the new pid ns; dies with its parent via PDEATHSIG):
//!            fresh /proc; the rootfs's mount plan (proc, ro sys, tmpfs /dev with bound
//!            nodes, devpts, shm, tmpfs /tmp /run, resolv.conf, --bind); chroot; spawn the
//!            command; forward signals; reap; exit with the command's status
//! ```
//!
//! The spec travels to each helper in a sealed memfd the helper inherits (its number is on the
//! helper's command line), never in the environment or on the command line, so a command line
//! as long as `execve` accepts works, and the helpers start with an empty environment: PID 1
//! holds nothing of the caller's environment, and the command gets exactly `Spec::env`. Stage
//! 2 closes every inherited descriptor but 0, 1 and 2 before it starts the command.
//!
//! Nothing is mounted outside the private mount namespace, so nothing can be left on the host,
//! whatever happens to binfmtctl (the namespace goes when its last process does, and when
//! stage 2 dies the kernel kills everything in its pid namespace). `/dev` inside is a tmpfs, so
//! `rm -rf ROOTFS` afterwards can never reach the host's devices. Every mount target is
//! resolved inside the rootfs (`openat2`, never following a symlink out of it), and the
//! top-level mount points (`OWN_MOUNT_POINTS`) must be real directories.
//!
//! User namespaces: `Rootless` maps the caller's uid/gid to 0 (allowed for anyone); `Identity`
//! (as root) maps every id to itself, so dpkg can chown to any user while the namespace still
//! gets its own binfmt_misc instance (Linux >= 6.7): the host's binfmt_misc is never touched.
//! Needs CAP_SYS_ADMIN (root) or an unprivileged user namespace (rootless). Man pages:
//! user_namespaces(7), mount_namespaces(7), pid_namespaces(7), memfd_create(2), openat2(2).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags};
use serde::{Deserialize, Serialize};

use crate::binfmt::kernel::{BinfmtFs, DEFAULT_ROOT, ProcBinfmt};
use crate::binfmt::registration::Registration;
use crate::confined::{FileId, Kind, Tree, create_beneath, fd_path, symlink_beneath};

/// Exit status when the command cannot be found in the rootfs (as a shell reports it).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when setting up the sandbox failed (the message says why).
pub const EXIT_SETUP: i32 = 125;
/// How long the identity-map handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Where the host's device nodes come from.
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The rootfs's top-level directories the sandbox mounts its own file systems on. Each must be
/// a directory (or missing: it is created); a symlink there is refused.
pub const OWN_MOUNT_POINTS: &[&str] = &["proc", "sys", "dev", "tmp", "run"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Userns {
    /// Stay in the caller's user namespace (root: uses the host's binfmt_misc handlers).
    None,
    /// Map the caller to root in a new user namespace (unprivileged use).
    Rootless,
    /// As root: map every id to itself in a new user namespace (private binfmt_misc).
    Identity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the rootfs (normalized by `bind_target`).
    pub target: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootSetup {
    pub dir: PathBuf,
    pub binds: Vec<Bind>,
    /// Bind the host's /etc/resolv.conf over the rootfs's.
    pub resolv_conf: bool,
    /// `--accelerate`: the host's native toolchain injected under /run/binfmtctl, applied
    /// after every other mount (`crate::emulation::accelerate`).
    #[serde(default)]
    pub accelerate: Vec<crate::emulation::accelerate::Item>,
}

/// Everything the helper stages need, passed to them as JSON in a memfd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub userns: Userns,
    /// Records to register in a private binfmt_misc instance (needs a user namespace).
    pub binfmt: Vec<String>,
    pub root: Option<RootSetup>,
    pub command: Vec<String>,
    /// The command's whole environment: nothing else of the caller's reaches it.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Spec {
    /// The environment an emulated command gets unless `--env` adds to it: a standard `PATH`,
    /// `HOME` (the user's from the rootfs's /etc/passwd, else /root), and the caller's `TERM`.
    pub fn default_env(home: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOME".to_owned(), home.to_owned()),
        ];
        if let Ok(term) = std::env::var("TERM") {
            env.push(("TERM".into(), term));
        }
        env
    }
}

fn setup_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// A bind target or a rootfs the sandbox cannot use (bad input: nothing was started).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("the target {0} must be an absolute path in the rootfs")]
    RelativeTarget(String),
    #[error("the target {0} contains `..`; name the directory inside the rootfs directly")]
    DotDotTarget(String),
    #[error(
        "the target is the rootfs's root, which cannot be replaced; bind to a directory inside it such as /src"
    )]
    RootTarget,
    #[error("cannot read {}: {error}", path.display())]
    MountPointUnreadable { path: PathBuf, error: String },
    #[error(
        "the rootfs's /{name} is a symlink (to {to}): binfmtctl mounts its own /{name} there and never follows a link out of the rootfs; make it a directory (rm {p} && mkdir {p})",
        p = path.display()
    )]
    MountPointSymlink {
        name: &'static str,
        path: PathBuf,
        to: String,
    },
    #[error(
        "the rootfs's /{name} is not a directory: binfmtctl mounts its own /{name} there; make it one (rm {p} && mkdir {p})",
        p = path.display()
    )]
    MountPointNotDir { name: &'static str, path: PathBuf },
}

impl crate::error::Classify for SandboxError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// A `--bind` target normalized to `/a/b`, or why it cannot be one: it must be absolute, must
/// not be the rootfs's root, and must not contain `..`.
pub fn bind_target(dst: &str) -> Result<String, SandboxError> {
    if !dst.starts_with('/') {
        return Err(SandboxError::RelativeTarget(dst.to_owned()));
    }
    let mut parts = Vec::new();
    for c in dst.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(SandboxError::DotDotTarget(dst.to_owned())),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(SandboxError::RootTarget);
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Why the rootfs at `root` cannot host the sandbox's own mounts: one of `OWN_MOUNT_POINTS` is
/// a symlink (whose target would be resolved outside the rootfs) or not a directory.
pub fn check_mount_points(root: &Path) -> Result<(), SandboxError> {
    for name in OWN_MOUNT_POINTS {
        let path = root.join(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SandboxError::MountPointUnreadable {
                    path,
                    error: e.to_string(),
                });
            }
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Err(SandboxError::MountPointSymlink { name, path, to });
            }
            Ok(m) if !m.is_dir() => return Err(SandboxError::MountPointNotDir { name, path }),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Can this process's user namespace hold an identity-mapped child (every id mapped)? False
/// as root inside a user namespace that maps only some ids (e.g. `unshare --map-root-user`).
pub fn can_map_every_id() -> bool {
    let full = |file: &str| {
        fs::read_to_string(file).is_ok_and(|t| {
            t.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() == 3 && f[0] == "0" && f[2] == "4294967295"
            })
        })
    };
    full("/proc/self/uid_map") && full("/proc/self/gid_map")
}

/// Runs the spec and returns the command's exit status (128 + n for a signal).
/// Called by the top-level command; may spawn helper stages of `self_exe`.
pub fn run(spec: &Spec, self_exe: &Path) -> io::Result<i32> {
    if spec.userns == Userns::Identity {
        // The maps of an identity-mapped namespace must be written from the parent namespace.
        let mut child = spawn_stage(self_exe, "__sandbox", spec, std::process::id())?;
        let pid = child.id();
        let ours = fs::read_link("/proc/self/ns/user")?;
        let deadline = Instant::now() + HANDSHAKE;
        loop {
            match fs::read_link(format!("/proc/{pid}/ns/user")) {
                Ok(ns) if ns != ours => break,
                _ if Instant::now() > deadline => {
                    let _ = child.kill();
                    return Err(io::Error::other(
                        "the sandbox helper did not create its user namespace",
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        let full = "0 0 4294967295";
        let map = |file: &str| {
            fs::write(format!("/proc/{pid}/{file}"), full).map_err(|e| {
                setup_err(
                    format!("writing {file} (an identity map needs root of the initial user namespace; pass --rootless)"),
                    e,
                )
            })
        };
        if let Err(e) = map("uid_map").and_then(|()| map("gid_map")) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let _guard = forward_signals(Pid::from_raw(pid as i32))?;
        let status = child.wait()?;
        return Ok(exit_code(status));
    }
    stage1(spec, self_exe)
}

/// Starts a helper stage of `self_exe` with an empty environment and the spec in a sealed
/// memfd it inherits; `parent` is this process's pid as the helper will see it.
fn spawn_stage(self_exe: &Path, stage: &str, spec: &Spec, parent: u32) -> io::Result<Child> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let json = serde_json::to_vec(spec).map_err(io::Error::other)?;
    let fd = rustix::fs::memfd_create(
        "binfmtctl-sandbox-spec",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| setup_err("memfd_create", e))?;
    let mut f = fs::File::from(fd);
    f.write_all(&json)?;
    rustix::fs::fcntl_add_seals(
        &f,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    // Inheritable for this one spawn only; our copy closes when `f` drops right after.
    rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::empty())?;
    let child = Command::new(self_exe)
        .arg(stage)
        .arg("--spec-fd")
        .arg(f.as_raw_fd().to_string())
        .arg("--parent")
        .arg(parent.to_string())
        .env_clear()
        .spawn()
        .map_err(|e| setup_err(format!("starting {}", self_exe.display()), e));
    drop(f);
    child
}

/// Reads the spec from the inherited memfd `fd` (reopened through /proc, the only way to own
/// an inherited descriptor without `unsafe`), then closes `fd` so nothing started later gets it.
fn read_spec(fd: i32) -> io::Result<Spec> {
    let mut json = Vec::new();
    fs::File::open(format!("/proc/self/fd/{fd}"))
        .and_then(|mut f| f.read_to_end(&mut json))
        .map_err(|e| setup_err(format!("reading the sandbox spec from fd {fd}"), e))?;
    let _ = nix::unistd::close(fd);
    serde_json::from_slice(&json).map_err(io::Error::other)
}

/// `__sandbox`: stage 1 in a spawned helper (identity mode).
pub fn helper_stage1(self_exe: &Path, spec_fd: i32, parent: i32) -> i32 {
    // Die with the parent (binfmtctl run), which holds the terminal and the exit status; if it
    // already died before we could ask, stop here.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() != parent {
        return EXIT_SETUP;
    }
    let spec = match read_spec(spec_fd) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match stage1(&spec, self_exe) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

/// `__sandbox-init`: stage 2, PID 1 of the new pid namespace.
pub fn helper_stage2(spec_fd: i32, parent: i32) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // Our parent is outside our pid namespace (getppid() is 0); the /proc we inherited still
    // shows it. Stage 1 died before PDEATHSIG was armed: stop.
    if parent_in_proc().is_some_and(|p| p != parent) {
        return EXIT_SETUP;
    }
    let spec = match read_spec(spec_fd) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    close_inherited_fds();
    match stage2(&spec) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

/// Closes every descriptor but stdin, stdout and stderr: whatever the caller left open
/// (sockets, pipes, files) stays outside; the command inherits only those three. Called first
/// thing in stage 2, when this process owns no other descriptor.
fn close_inherited_fds() {
    let fds: Vec<i32> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // The listing's own descriptor is closed by now; closing its number again only fails.
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        let _ = nix::unistd::close(fd);
    }
}

/// This process's parent as the mounted /proc sees it (`ppid` of /proc/self/stat).
fn parent_in_proc() -> Option<i32> {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .ok()
        .map(|s| s.ppid)
}

/// This process's pid as the mounted /proc sees it.
fn pid_in_proc() -> u32 {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(std::process::id)
}

fn fail(e: io::Error) -> i32 {
    eprintln!("binfmtctl: sandbox: {e}");
    EXIT_SETUP
}

fn stage1(spec: &Spec, self_exe: &Path) -> io::Result<i32> {
    use nix::sched::{CloneFlags, unshare};
    match spec.userns {
        Userns::None => {
            unshare(CloneFlags::CLONE_NEWNS).map_err(|e| setup_err("unshare(CLONE_NEWNS)", e))?
        }
        Userns::Rootless => {
            let (uid, gid) = (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
                .map_err(|e| setup_err("unshare(CLONE_NEWUSER | CLONE_NEWNS)", e))?;
            // Mapping one's own ids is allowed once setgroups is denied.
            fs::write("/proc/self/setgroups", "deny")
                .map_err(|e| setup_err("/proc/self/setgroups", e))?;
            fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
                .map_err(|e| setup_err("uid_map", e))?;
            fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
                .map_err(|e| setup_err("gid_map", e))?;
        }
        Userns::Identity => {
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
                .map_err(|e| setup_err("unshare(CLONE_NEWUSER | CLONE_NEWNS)", e))?;
            // The parent writes our maps, uid_map first: wait for both. Going on once only
            // uid_map is there races the gid_map write, and a binfmt_misc mounted then has
            // files whose group is unmapped: opening `register` failed with EACCES now and
            // then (the sandbox's exit 125).
            let deadline = Instant::now() + HANDSHAKE;
            let mapped = |f: &str| fs::read_to_string(f).map(|m| !m.trim().is_empty());
            while !(mapped("/proc/self/uid_map")? && mapped("/proc/self/gid_map")?) {
                if Instant::now() > deadline {
                    return Err(io::Error::other(
                        "the parent did not write the uid and gid maps",
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // Nothing we mount may propagate back to the host.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| setup_err("making / private", e))?;
    if !spec.binfmt.is_empty() {
        if spec.userns == Userns::None {
            return Err(io::Error::other(
                "a private binfmt_misc needs a user namespace",
            ));
        }
        let fs = ProcBinfmt::new(DEFAULT_ROOT);
        fs.mount().map_err(io::Error::other)?;
        for record in &spec.binfmt {
            let reg = Registration::parse_record(record).map_err(io::Error::other)?;
            fs.register(&reg).map_err(io::Error::other)?;
        }
    }
    let forwarder = Forwarder::start()?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| setup_err("unshare(CLONE_NEWPID)", e))?;
    let mut child = spawn_stage(self_exe, "__sandbox-init", spec, pid_in_proc())
        .map_err(|e| setup_err("starting the sandbox init", e))?;
    forwarder.set(Pid::from_raw(child.id() as i32));
    Ok(exit_code(child.wait()?))
}

fn stage2(spec: &Spec) -> io::Result<i32> {
    // A /proc that shows this pid namespace (for the tools run directly, e.g. mmdebstrap).
    let nfx = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount("proc", "/proc", "proc", nfx, None)
        .map_err(|e| setup_err("mounting /proc", e))?;
    if let Some(root) = &spec.root {
        let tree = Tree::from_fd(open_root(&root.dir)?, &root.dir);
        let mut made = Made {
            root: FileId::of(tree.fd())?,
            accelerate: !root.accelerate.is_empty(),
            ..Made::default()
        };
        for step in mount_plan(root) {
            step.apply(&tree, &mut made)?;
        }
        // Enter the rootfs we set up, through the descriptor (not its name).
        rustix::process::fchdir(tree.fd())
            .and_then(|()| rustix::process::chroot("."))
            .map_err(|e| setup_err(format!("chroot {}", root.dir.display()), e))?;
        std::env::set_current_dir("/")?;
    }
    if let Some(w) = &spec.workdir {
        std::env::set_current_dir(w).map_err(|e| setup_err(format!("workdir {w}"), e))?;
    }
    let (prog, args) = spec
        .command
        .split_first()
        .ok_or_else(|| io::Error::other("no command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear().envs(spec.env.iter().cloned());
    if let Some(gid) = spec.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = spec.uid {
        cmd.uid(uid);
    }
    // PATH lookup happens in the child's environment, i.e. inside the rootfs.
    let path_env: Option<OsString> = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.into());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!(
                "binfmtctl: {prog}: command not found in the rootfs (PATH={})",
                path_env
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            return Ok(EXIT_NOT_FOUND);
        }
        Err(e) => {
            eprintln!("binfmtctl: {prog}: {e}");
            return Ok(EXIT_NOT_EXECUTABLE);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let _guard = forward_signals(pid)?;
    // As PID 1 we inherit every orphan: reap them all until our command exits.
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Ok(crate::error::signal_exit_code(sig as i32));
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(setup_err("waiting for the command", e)),
        }
    }
}

fn open_root(dir: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| setup_err(format!("opening the rootfs {}", dir.display()), e))
}

/// One step of an emulated chroot's setup, run in order by stage 2 inside the private mount
/// namespace. Paths are relative to the rootfs; none is resolved outside it. To give the
/// command more (a toolchain, a socket), add steps in `mount_plan`.
#[derive(Debug, Clone)]
pub enum MountStep {
    /// A new file system on one of the rootfs's `OWN_MOUNT_POINTS` (created when missing; a
    /// symlink there is refused).
    Fresh {
        dir: &'static str,
        fstype: &'static str,
        flags: MountFlags,
        data: Option<&'static str>,
    },
    /// `/sys`: a fresh read-only sysfs (no cgroup or other submounts) where we may mount one
    /// (root); in a user namespace, which may not, the host's tree bound with its top read-only.
    Sysfs,
    /// A host device node (`/dev/NAME`) bound over an empty file in our tmpfs `/dev`.
    DevNode(&'static str),
    /// `/dev/pts`: the host's devpts when our terminal is one of its ptys (ttyname and job
    /// control need it by name), else a new, empty instance.
    DevPts,
    /// A new directory in our tmpfs `/dev` with a fresh file system on it.
    DevMount {
        dir: &'static str,
        fstype: &'static str,
        flags: MountFlags,
        data: Option<&'static str>,
    },
    /// A symlink in our tmpfs `/dev`.
    DevLink {
        name: &'static str,
        target: &'static str,
    },
    /// The host's /etc/resolv.conf bound over the rootfs's (a symlink there is followed inside
    /// the rootfs); a rootfs that cannot take one goes without, with a warning.
    ResolvConf,
    /// A host file or directory bound at a path inside the rootfs (created when missing).
    Bind(Bind),
    /// `--accelerate`: the native toolchain's tree in our tmpfs /run and the launchers bound
    /// over the rootfs's compiler and binutils files.
    Accelerate(Vec<crate::emulation::accelerate::Item>),
}

/// The mounts of an emulated chroot, in order.
pub fn mount_plan(root: &RootSetup) -> Vec<MountStep> {
    use MountStep::*;
    let nfx = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mut plan = vec![
        Fresh {
            dir: "proc",
            fstype: "proc",
            flags: nfx,
            data: None,
        },
        Sysfs,
        // dev: a small tmpfs with the harmless nodes bound from the host; never devtmpfs.
        Fresh {
            dir: "dev",
            fstype: "tmpfs",
            flags: MountFlags::NOSUID | MountFlags::NOEXEC,
            data: Some("mode=755,size=64k"),
        },
    ];
    plan.extend(DEV_NODES.iter().map(|n| DevNode(n)));
    plan.extend([
        DevPts,
        DevLink {
            name: "ptmx",
            target: "pts/ptmx",
        },
        DevMount {
            dir: "shm",
            fstype: "tmpfs",
            flags: nfx,
            data: Some("mode=1777"),
        },
        DevLink {
            name: "fd",
            target: "/proc/self/fd",
        },
        DevLink {
            name: "stdin",
            target: "/proc/self/fd/0",
        },
        DevLink {
            name: "stdout",
            target: "/proc/self/fd/1",
        },
        DevLink {
            name: "stderr",
            target: "/proc/self/fd/2",
        },
        Fresh {
            dir: "tmp",
            fstype: "tmpfs",
            flags: MountFlags::NOSUID | MountFlags::NODEV,
            data: Some("mode=1777"),
        },
        Fresh {
            dir: "run",
            fstype: "tmpfs",
            flags: MountFlags::NOSUID | MountFlags::NODEV,
            data: Some("mode=755"),
        },
    ]);
    if root.resolv_conf {
        plan.push(ResolvConf);
    }
    plan.extend(root.binds.iter().cloned().map(Bind));
    if !root.accelerate.is_empty() {
        plan.push(Accelerate(root.accelerate.clone()));
    }
    plan
}

fn mount_on(
    src: &str,
    target: &OwnedFd,
    shown: &str,
    fstype: &str,
    flags: MountFlags,
    data: Option<&str>,
) -> io::Result<()> {
    let data = data.map(|d| std::ffi::CString::new(d).expect("no NUL"));
    rustix::mount::mount(src, fd_path(target), fstype, flags, data.as_deref())
        .map_err(|e| setup_err(format!("mounting {fstype} on {shown}"), e))
}

/// Opens (creating it when missing) the directory `rel` under `dir` without following any
/// symlink: a symlink there is an error that says so.
fn own_dir(dir: impl AsFd, rel: &str, shown: &str) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(&dir, rel, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(setup_err(format!("creating {shown}"), e)),
    }
    rustix::fs::openat2(
        dir,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => io::Error::other(format!(
            "{shown} is a symlink: binfmtctl mounts its own file system there and never follows a link out of the rootfs; make it a directory"
        )),
        rustix::io::Errno::NOTDIR => io::Error::other(format!(
            "{shown} is not a directory: binfmtctl mounts its own file system there; make it one"
        )),
        e => setup_err(format!("opening {shown}"), e),
    })
}

/// What the plan has mounted so far, by identity (device and inode of each mount's root), so
/// later steps check the objects they resolve against it rather than path strings.
#[derive(Debug, Default)]
struct Made {
    /// The rootfs's top directory.
    root: FileId,
    /// The roots of the sandbox's own file systems, with their place (`/proc`, `/run`, ...).
    own: Vec<(FileId, String)>,
    /// The sandbox's tmpfs `/run` (where `--accelerate` mounts /run/binfmtctl).
    run: Option<FileId>,
    /// `--accelerate` will mount its tmpfs on /run/binfmtctl after the binds.
    accelerate: bool,
}

impl Made {
    /// With `--accelerate`, is `inner` (a path inside the rootfs) where the injection goes?
    fn in_injection(&self, inner: &str) -> bool {
        let dir = crate::emulation::accelerate::DIR;
        self.accelerate && (inner == dir || inner.starts_with(&format!("{dir}/")))
    }

    /// Records the mount now on `dir` of `parent` (reopened: the old fd names what it covers).
    fn record(&mut self, parent: impl AsFd, dir: &str, shown: String) -> io::Result<()> {
        let top = own_dir(parent, dir, &shown)?;
        let id = FileId::of(&top)?;
        if shown == "/run" {
            self.run = Some(id);
        }
        self.own.push((id, shown));
        Ok(())
    }

    /// Why a bind may not go on the object `target` (resolved inside the rootfs): it is the
    /// rootfs itself or one of the file systems the sandbox mounted for itself (`/proc`,
    /// `/sys`, `/dev`, `/dev/pts`, `/dev/shm`, `/run`), which the command and `--accelerate`
    /// rely on. `/tmp` may be covered.
    fn refuses_bind_on(&self, target: &OwnedFd) -> io::Result<Option<String>> {
        let id = FileId::of(target)?;
        if id == self.root {
            return Ok(Some("the rootfs's top directory".into()));
        }
        Ok(self
            .own
            .iter()
            .find(|(own, shown)| *own == id && shown != "/tmp")
            .map(|(_, shown)| format!("{shown}, where the sandbox mounts its own file system")))
    }
}

impl MountStep {
    fn apply(&self, tree: &Tree, made: &mut Made) -> io::Result<()> {
        let root = tree.fd();
        let dev = || own_dir(root, "dev", "the rootfs's /dev");
        match self {
            MountStep::Fresh {
                dir,
                fstype,
                flags,
                data,
            } => {
                let shown = format!("/{dir}");
                let target = own_dir(root, dir, &format!("the rootfs's {shown}"))?;
                mount_on(fstype, &target, &shown, fstype, *flags, *data)?;
                made.record(root, dir, shown)
            }
            MountStep::Sysfs => sysfs(root, made),
            MountStep::DevNode(node) => {
                let host = Path::new("/dev").join(node);
                if !host.exists() {
                    return Ok(());
                }
                let dev = dev()?;
                let target = rustix::fs::openat(
                    &dev,
                    *node,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(|e| setup_err(format!("creating /dev/{node}"), e))?;
                rustix::mount::mount_bind(&host, fd_path(&target))
                    .map_err(|e| setup_err(format!("binding /dev/{node}"), e))
            }
            MountStep::DevPts => dev_pts(&dev()?, made),
            MountStep::DevMount {
                dir,
                fstype,
                flags,
                data,
            } => {
                let shown = format!("/dev/{dir}");
                let dev = dev()?;
                let target = own_dir(&dev, dir, &shown)?;
                mount_on(fstype, &target, &shown, fstype, *flags, *data)?;
                made.record(&dev, dir, shown)
            }
            MountStep::DevLink { name, target } => rustix::fs::symlinkat(*target, &dev()?, *name)
                .map_err(|e| setup_err(format!("creating /dev/{name}"), e)),
            MountStep::ResolvConf => resolv_conf(tree, made),
            MountStep::Bind(b) => user_bind(tree, made, b),
            MountStep::Accelerate(items) => inject_all(tree, made, items),
        }
    }
}

/// /sys read-only: a new sysfs, else (in a user namespace that may not) a read-only bind.
fn sysfs(root: std::os::fd::BorrowedFd, made: &mut Made) -> io::Result<()> {
    let nfx = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let sys = own_dir(root, "sys", "the rootfs's /sys")?;
    if mount_on(
        "sysfs",
        &sys,
        "/sys",
        "sysfs",
        nfx | MountFlags::RDONLY,
        None,
    )
    .is_err()
    {
        rustix::mount::mount_bind_recursive("/sys", fd_path(&sys))
            .map_err(|e| setup_err("binding /sys", e))?;
        // The fd still names the covered directory: reopen to reach the new mount.
        let top = own_dir(root, "sys", "the rootfs's /sys")?;
        let _ = rustix::mount::mount_remount(
            fd_path(&top),
            MountFlags::BIND | MountFlags::RDONLY | nfx,
            "",
        );
    }
    made.record(root, "sys", "/sys".into())
}

/// /dev/pts: the host's when the command's terminal is on it, else a new instance.
fn dev_pts(dev: &OwnedFd, made: &mut Made) -> io::Result<()> {
    let pts = own_dir(dev, "pts", "/dev/pts")?;
    let tty_on_host_pts = fs::read_link("/proc/self/fd/0")
        .is_ok_and(|p| p.starts_with("/dev/pts/"))
        && rustix::termios::isatty(std::io::stdin());
    if tty_on_host_pts {
        rustix::mount::mount_bind("/dev/pts", fd_path(&pts))
            .map_err(|e| setup_err("binding /dev/pts", e))?;
    } else {
        mount_on(
            "devpts",
            &pts,
            "/dev/pts",
            "devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        )?;
    }
    made.record(dev, "pts", "/dev/pts".into())
}

/// The host's /etc/resolv.conf, bound read-only where the rootfs's leads (never failing a run).
fn resolv_conf(tree: &Tree, made: &Made) -> io::Result<()> {
    if !Path::new("/etc/resolv.conf").exists() {
        return Ok(());
    }
    // A rootfs we may not write (rootless, root-owned) and that has no resolv.conf
    // keeps none: we never fail a run over DNS configuration.
    let leads = tree.leads_to("etc/resolv.conf");
    if made.in_injection(&leads) {
        eprintln!(
            "binfmtctl: warning: not providing /etc/resolv.conf: the rootfs's links lead it to {leads}, where --accelerate keeps its files"
        );
        return Ok(());
    }
    match tree.create_in_root("etc/resolv.conf", Kind::File) {
        Ok(target) => bind_to_fd(Path::new("/etc/resolv.conf"), &target, true),
        Err(e) => {
            eprintln!("binfmtctl: warning: not providing /etc/resolv.conf: {e}");
            Ok(())
        }
    }
}

/// A `--bind` (or build's /src): refused when its target resolves, through the rootfs's
/// symlinks, to the rootfs's top, a file system the sandbox mounted for itself, the injection's
/// directory, or an object of the wrong kind.
fn user_bind(tree: &Tree, made: &Made, b: &Bind) -> io::Result<()> {
    let rel = b.target.trim_start_matches('/');
    if rel.is_empty() {
        return Err(io::Error::other(format!(
            "--bind {}: the target is the rootfs's root",
            b.source.display()
        )));
    }
    let is_dir = fs::metadata(&b.source)
        .map_err(|e| setup_err(format!("--bind {}", b.source.display()), e))?
        .is_dir();
    let shown = format!("--bind {}:{}", b.source.display(), b.target);
    let refuse = |resolved: &str, what: &str| {
        io::Error::other(format!(
            "{shown}: {} resolves (through the rootfs's symlinks) to {resolved}: {what}; bind elsewhere",
            b.target
        ))
    };
    let leads = tree.leads_to(rel);
    if made.in_injection(&leads) {
        return Err(refuse(&leads, "where --accelerate keeps its files"));
    }
    let target = tree
        .create_in_root(rel, if is_dir { Kind::Dir } else { Kind::File })
        .map_err(|e| setup_err(&shown, e))?;
    // The checks are on the object the target resolved to, through whatever
    // symlinks the rootfs holds, never on the target's name.
    let resolved = tree.inner_path(&target).unwrap_or_else(|| leads.clone());
    if let Some(what) = made.refuses_bind_on(&target)? {
        return Err(refuse(&resolved, &what));
    }
    if made.in_injection(&resolved) {
        return Err(refuse(&resolved, "where --accelerate keeps its files"));
    }
    let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&target)?.st_mode);
    let fits = if is_dir {
        kind == rustix::fs::FileType::Directory
    } else {
        kind == rustix::fs::FileType::RegularFile
    };
    if !fits {
        return Err(refuse(
            &resolved,
            &format!(
                "a {} there, and a bind puts {} on {}",
                file_type_name(kind),
                if is_dir { "a directory" } else { "a file" },
                if is_dir {
                    "a directory"
                } else {
                    "a regular file"
                }
            ),
        ));
    }
    bind_to_fd(&b.source, &target, b.readonly)
}

fn file_type_name(t: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType::*;
    match t {
        RegularFile => "regular file",
        Directory => "directory",
        Symlink => "symlink",
        Fifo => "FIFO",
        Socket => "socket",
        CharacterDevice => "character device",
        BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

/// Applies the `--accelerate` injection (after every other mount of the plan). Its tree is
/// made in a fresh tmpfs mounted (by descriptor, `fsmount` + `move_mount`) on the sandbox's own
/// `/run/binfmtctl`, so nothing of it is written to any directory on disk: not the rootfs, not
/// a bound project directory, whatever their symlinks say. Inside that tmpfs nothing is
/// followed through a symlink (`confined::create_beneath`). A cover's target is a regular
/// file of the rootfs, resolved inside it.
fn inject_all(
    root: &Tree,
    made: &Made,
    items: &[crate::emulation::accelerate::Item],
) -> io::Result<()> {
    // /run must still be the tmpfs the plan mounted: a bind whose target resolved to /run
    // (refused in `Bind`) would have put a directory of the user's there.
    let run = root
        .open_beneath("run", OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| setup_err("--accelerate: opening the sandbox's /run", e))?;
    if Some(FileId::of(&run)?) != made.run {
        return Err(io::Error::other(
            "--accelerate: the sandbox's /run is no longer its own tmpfs (a --bind covers it); bind elsewhere",
        ));
    }
    let dir = create_beneath(run.as_fd(), "binfmtctl", Kind::Dir, 0o755)
        .map_err(|e| setup_err("--accelerate: creating /run/binfmtctl", e))?;
    let tmpfs =
        fresh_tmpfs().map_err(|e| setup_err("--accelerate: a tmpfs for /run/binfmtctl", e))?;
    rustix::mount::move_mount(
        &tmpfs,
        "",
        &dir,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| setup_err("--accelerate: mounting /run/binfmtctl", e))?;
    let ours = Tree::from_fd(tmpfs, crate::emulation::accelerate::DIR);
    for item in items {
        inject(root, &ours, item)?;
    }
    Ok(())
}

/// A new tmpfs (mode 755, nosuid, nodev), not attached anywhere yet: its descriptor is the
/// only way to reach it until `move_mount` puts it in place.
fn fresh_tmpfs() -> io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "mode", "755")?;
    rustix::mount::fsconfig_create(&fs)?;
    Ok(rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?)
}

/// Applies one step of the injection inside `ours` (the fresh tmpfs at /run/binfmtctl).
/// A cover goes only on a file of the rootfs itself: a rootfs link that leads, once the
/// sandbox's mounts are in place, onto one of them (a host program bound in /run/binfmtctl,
/// a `--bind` directory's file, /dev) is refused. Told by the mount the object is on.
fn refuse_cover_off_the_rootfs(root: &Tree, target_fd: &OwnedFd, target: &str) -> io::Result<()> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let mnt = |fd: std::os::fd::BorrowedFd| -> io::Result<u64> {
        Ok(statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?.stx_mnt_id)
    };
    if mnt(target_fd.as_fd())? != mnt(root.fd())? {
        return Err(io::Error::other(format!(
            "--accelerate: the rootfs's {target} leads onto a mount of the sandbox (/run/binfmtctl, a --bind, /dev), not to a file of the rootfs"
        )));
    }
    Ok(())
}

fn inject(root: &Tree, ours: &Tree, item: &crate::emulation::accelerate::Item) -> io::Result<()> {
    use crate::emulation::accelerate::Item;
    let rel = |p: &str| -> io::Result<String> {
        let rel = p
            .strip_prefix(crate::emulation::accelerate::DIR)
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .map(|r| r.trim_start_matches('/'))
            .filter(|r| !r.split('/').any(|c| c == ".."));
        rel.map(str::to_owned)
            .ok_or_else(|| io::Error::other(format!("--accelerate: {p} is outside /run/binfmtctl")))
    };
    fn err(p: &str) -> impl Fn(io::Error) -> io::Error + '_ {
        move |e| setup_err(format!("--accelerate: creating {p}"), e)
    }
    let mkdir_p = |r: &str| -> io::Result<()> {
        let mut acc = String::new();
        for c in r.split('/').filter(|c| !c.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            create_beneath(ours.fd(), &acc, Kind::Dir, 0o755)?;
        }
        Ok(())
    };
    match item {
        Item::Dir(p) => mkdir_p(&rel(p)?).map_err(err(p)),
        Item::Launcher { path, bytes } => {
            let fd =
                create_beneath(ours.fd(), &rel(path)?, Kind::File, 0o755).map_err(err(path))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
            fs::File::from(fd).write_all(bytes)
        }
        Item::Symlink { path, target } => {
            symlink_beneath(ours.fd(), &rel(path)?, target).map_err(err(path))
        }
        Item::Bind { source, path, dir } => {
            let r = rel(path)?;
            if *dir {
                mkdir_p(&r).map_err(err(path))?;
            } else {
                drop(create_beneath(ours.fd(), &r, Kind::File, 0o644).map_err(err(path))?);
            }
            let target = ours
                .open_beneath(&r, OFlags::PATH)
                .map_err(|e| setup_err(format!("--accelerate: opening {path}"), e))?;
            bind_to_fd(source, &target, true)
        }
        Item::Cover { target, launcher } => {
            let launcher_fd = ours
                .open_beneath(&rel(launcher)?, OFlags::PATH)
                .map_err(|e| setup_err(format!("--accelerate: opening {launcher}"), e))?;
            let target_fd = root.open_in_root(target, OFlags::PATH).map_err(|e| {
                setup_err(format!("--accelerate: opening the rootfs's {target}"), e)
            })?;
            let st = rustix::fs::fstat(&target_fd)?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            {
                return Err(io::Error::other(format!(
                    "--accelerate: the rootfs's {target} is no longer a regular file"
                )));
            }
            refuse_cover_off_the_rootfs(root, &target_fd, target)?;
            bind_fd_to_fd(&launcher_fd, &target_fd, true)
        }
        Item::CoverName { target, launcher } => {
            let launcher_fd = ours
                .open_beneath(&rel(launcher)?, OFlags::PATH)
                .map_err(|e| setup_err(format!("--accelerate: opening {launcher}"), e))?;
            // The name itself: its directories resolved inside the rootfs, the name not
            // followed (a symlink is covered as it is, not what it leads to).
            let target_fd = root
                .open_in_root(target, OFlags::PATH | OFlags::NOFOLLOW)
                .map_err(|e| {
                    setup_err(format!("--accelerate: opening the rootfs's {target}"), e)
                })?;
            let st = rustix::fs::fstat(&target_fd)?;
            let t = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if t != rustix::fs::FileType::RegularFile && t != rustix::fs::FileType::Symlink {
                return Err(io::Error::other(format!(
                    "--accelerate: the rootfs's {target} is no longer a regular file or symlink"
                )));
            }
            refuse_cover_off_the_rootfs(root, &target_fd, target)?;
            bind_fd_to_fd(&launcher_fd, &target_fd, true)
        }
    }
}

/// Bind-mounts `source` (a host path the caller chose) onto the object an `O_PATH` fd
/// refers to.
fn bind_to_fd(source: &Path, target: &OwnedFd, readonly: bool) -> io::Result<()> {
    use rustix::mount::OpenTreeFlags;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| setup_err(format!("binding {}", source.display()), e))?;
    attach(tree, target, readonly, &source.display().to_string())
}

/// Bind-mounts what the fd `source` refers to onto what `target` refers to.
fn bind_fd_to_fd(source: &OwnedFd, target: &OwnedFd, readonly: bool) -> io::Result<()> {
    use rustix::mount::OpenTreeFlags;
    let tree = rustix::mount::open_tree(
        source,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| setup_err("binding a launcher", e))?;
    attach(tree, target, readonly, "a launcher")
}

/// Attaches a detached mount (from `open_tree`) on `target`, by descriptor on both ends, and
/// makes it read-only through its own descriptor: no path is resolved again in between.
fn attach(tree: OwnedFd, target: &OwnedFd, readonly: bool, shown: &str) -> io::Result<()> {
    rustix::mount::move_mount(
        &tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| setup_err(format!("binding {shown}"), e))?;
    if readonly {
        rustix::mount::mount_remount(fd_path(&tree), MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|e| setup_err(format!("making {shown} read-only"), e))?;
    }
    Ok(())
}

/// Forwards signals to a child once its pid is set. Started before `unshare(CLONE_NEWPID)`,
/// after which this process can no longer create threads.
struct Forwarder {
    target: std::sync::Arc<std::sync::atomic::AtomicI32>,
    _handle: signal_hook::iterator::Handle,
}

impl Forwarder {
    fn start() -> io::Result<Forwarder> {
        let target = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let t = target.clone();
        let handle = forward_signals_to(move || t.load(std::sync::atomic::Ordering::SeqCst))?;
        Ok(Forwarder {
            target,
            _handle: handle,
        })
    }

    fn set(&self, pid: Pid) {
        self.target
            .store(pid.as_raw(), std::sync::atomic::Ordering::SeqCst);
    }
}

fn forward_signals(pid: Pid) -> io::Result<signal_hook::iterator::Handle> {
    forward_signals_to(move || pid.as_raw())
}

/// Forwards the signals a process may be sent by name (`kill`) to the current target. Signals
/// the terminal sends to the whole foreground group (SIGINT, SIGQUIT from the keyboard) already
/// reach the command, so those are only forwarded when a process sent them to us in particular.
fn forward_signals_to(
    target: impl Fn() -> i32 + Send + 'static,
) -> io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    let mut signals =
        SignalsInfo::<WithOrigin>::new([SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGQUIT])?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for origin in signals.forever() {
            let from_terminal =
                origin.process.is_none() && matches!(origin.signal, SIGINT | SIGQUIT);
            if from_terminal {
                continue;
            }
            let pid = target();
            if pid > 0
                && let Ok(sig) = Signal::try_from(origin.signal)
            {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
    });
    Ok(handle)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    crate::error::exit_status_code(status).unwrap_or(EXIT_SETUP)
}

/// Is this kernel new enough for private binfmt_misc instances (Linux >= 6.7)?
pub fn kernel_has_private_binfmt(release: &str) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    matches!((it.next(), it.next()), (Some(maj), Some(min)) if (maj, min) >= (6, 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_version_gate() {
        assert!(kernel_has_private_binfmt("6.18.44-fc-v657"));
        assert!(kernel_has_private_binfmt("6.7.0"));
        assert!(!kernel_has_private_binfmt("6.1.0-28-amd64"));
        assert!(!kernel_has_private_binfmt("5.15.0"));
        assert!(kernel_has_private_binfmt("7.0"));
        assert!(!kernel_has_private_binfmt("garbage"));
    }

    #[test]
    fn bind_targets() {
        assert_eq!(bind_target("/src").unwrap(), "/src");
        assert_eq!(bind_target("//usr/./lib/").unwrap(), "/usr/lib");
        for root in ["/", "//", "/.", "/./."] {
            assert!(
                bind_target(root)
                    .unwrap_err()
                    .to_string()
                    .contains("the rootfs's root"),
                "{root}"
            );
        }
        assert!(
            bind_target("/src/..")
                .unwrap_err()
                .to_string()
                .contains("`..`")
        );
        assert!(
            bind_target("src")
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
    }

    #[test]
    fn own_mount_points_must_be_directories() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            check_mount_points(d.path()),
            Ok(()),
            "missing ones are created"
        );
        fs::create_dir(d.path().join("proc")).unwrap();
        assert_eq!(check_mount_points(d.path()), Ok(()));
        std::os::unix::fs::symlink("/run", d.path().join("run")).unwrap();
        let e = check_mount_points(d.path()).unwrap_err().to_string();
        assert!(e.contains("/run is a symlink (to /run)"), "{e}");
        fs::remove_file(d.path().join("run")).unwrap();
        fs::write(d.path().join("tmp"), "").unwrap();
        let e = check_mount_points(d.path()).unwrap_err().to_string();
        assert!(e.contains("/tmp is not a directory"), "{e}");
    }

    #[test]
    fn the_mount_plan_ends_with_resolv_conf_and_binds() {
        let root = RootSetup {
            dir: "/r".into(),
            binds: vec![Bind {
                source: "/src".into(),
                target: "/src".into(),
                readonly: true,
            }],
            resolv_conf: true,
            accelerate: Vec::new(),
        };
        let plan = mount_plan(&root);
        let fresh: Vec<&str> = plan
            .iter()
            .filter_map(|s| match s {
                MountStep::Fresh { dir, .. } => Some(*dir),
                _ => None,
            })
            .collect();
        assert_eq!(fresh, ["proc", "dev", "tmp", "run"]);
        assert!(matches!(plan[plan.len() - 2], MountStep::ResolvConf));
        assert!(matches!(&plan[plan.len() - 1], MountStep::Bind(b) if b.readonly));
        // Every own mount point is mounted by the plan.
        for p in OWN_MOUNT_POINTS {
            assert!(*p == "sys" || fresh.contains(p), "{p}");
        }
    }

    #[test]
    fn spec_round_trips_as_json() {
        let s = Spec {
            userns: Userns::Rootless,
            binfmt: vec![":qemu-aarch64:M::\\x7f::/usr/bin/q:F".into()],
            root: Some(RootSetup {
                dir: "/r".into(),
                binds: vec![Bind {
                    source: "/src".into(),
                    target: "/src".into(),
                    readonly: false,
                }],
                resolv_conf: true,
                accelerate: Vec::new(),
            }),
            command: vec!["uname".into(), "-m".into()],
            env: Spec::default_env("/root"),
            workdir: None,
            uid: None,
            gid: None,
        };
        let back: Spec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.command, s.command);
        assert_eq!(back.userns, Userns::Rootless);
        assert_eq!(back.root.unwrap().binds[0].target, "/src");
    }
}
