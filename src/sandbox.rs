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
//!            fresh /proc; rootfs mounts (proc, ro sys, tmpfs /dev with bound nodes,
//!            devpts, shm, tmpfs /tmp /run, resolv.conf, --bind); chroot; spawn the
//!            command; forward signals; reap; exit with the command's status
//! ```
//!
//! Nothing is mounted outside the private mount namespace, so nothing can be left on the host,
//! whatever happens to binfmtctl (the namespace goes when its last process does, and when
//! stage 2 dies the kernel kills everything in its pid namespace). `/dev` inside is a tmpfs, so
//! `rm -rf ROOTFS` afterwards can never reach the host's devices.
//!
//! User namespaces: `Rootless` maps the caller's uid/gid to 0 (allowed for anyone); `Identity`
//! (as root) maps every id to itself, so dpkg can chown to any user while the namespace still
//! gets its own binfmt_misc instance (Linux >= 6.7): the host's binfmt_misc is never touched.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};
use serde::{Deserialize, Serialize};

use crate::kernel::{BinfmtFs, DEFAULT_ROOT, ProcBinfmt};
use crate::registration::Registration;

/// The environment variable carrying the spec to the helper stages.
pub const SPEC_ENV: &str = "BINFMTCTL_SANDBOX_SPEC";
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
    /// Absolute path inside the rootfs.
    pub target: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootSetup {
    pub dir: PathBuf,
    pub binds: Vec<Bind>,
    /// Bind the host's /etc/resolv.conf over the rootfs's.
    pub resolv_conf: bool,
}

/// Everything the helper stages need, passed to them as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub userns: Userns,
    /// Records to register in a private binfmt_misc instance (needs a user namespace).
    pub binfmt: Vec<String>,
    pub root: Option<RootSetup>,
    pub command: Vec<String>,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Spec {
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

/// Runs the spec and returns the command's exit status (128 + n for a signal).
/// Called by the top-level command; may spawn helper stages of `self_exe`.
pub fn run(spec: &Spec, self_exe: &Path) -> io::Result<i32> {
    let json = serde_json::to_string(spec).map_err(io::Error::other)?;
    if spec.userns == Userns::Identity {
        // The maps of an identity-mapped namespace must be written from the parent namespace.
        let mut child = Command::new(self_exe)
            .arg("__sandbox")
            .env(SPEC_ENV, &json)
            .spawn()?;
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
        fs::write(format!("/proc/{pid}/uid_map"), full)
            .map_err(|e| setup_err("writing uid_map", e))?;
        fs::write(format!("/proc/{pid}/gid_map"), full)
            .map_err(|e| setup_err("writing gid_map", e))?;
        let _guard = forward_signals(Pid::from_raw(pid as i32))?;
        let status = child.wait()?;
        return Ok(exit_code(status));
    }
    stage1(spec, self_exe)
}

/// `__sandbox`: stage 1 in a spawned helper (identity mode).
pub fn helper_stage1(self_exe: &Path) -> i32 {
    let spec = match read_spec() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // Die with the parent (binfmtctl run), which holds the terminal and the exit status.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    match stage1(&spec, self_exe) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

/// `__sandbox-init`: stage 2, PID 1 of the new pid namespace.
pub fn helper_stage2() -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let spec = match read_spec() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match stage2(&spec) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(e: io::Error) -> i32 {
    eprintln!("binfmtctl: sandbox: {e}");
    EXIT_SETUP
}

fn read_spec() -> io::Result<Spec> {
    let json =
        std::env::var(SPEC_ENV).map_err(|_| io::Error::other(format!("{SPEC_ENV} is not set")))?;
    serde_json::from_str(&json).map_err(io::Error::other)
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
            // The parent writes our maps; wait for them.
            let deadline = Instant::now() + HANDSHAKE;
            while fs::read_to_string("/proc/self/uid_map")?.trim().is_empty() {
                if Instant::now() > deadline {
                    return Err(io::Error::other("the parent did not write the uid map"));
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
    let json = serde_json::to_string(spec).map_err(io::Error::other)?;
    let mut child = Command::new(self_exe)
        .arg("__sandbox-init")
        .env(SPEC_ENV, json)
        .spawn()
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
        setup_root(root)?;
        rustix::process::chroot(&root.dir)
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
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(setup_err("waiting for the command", e)),
        }
    }
}

/// The mounts of an emulated chroot, all inside our private mount namespace.
fn setup_root(root: &RootSetup) -> io::Result<()> {
    let r = &root.dir;
    let mk = |rel: &str| {
        let p = r.join(rel);
        fs::create_dir_all(&p).map_err(|e| setup_err(format!("creating {}", p.display()), e))?;
        Ok::<PathBuf, io::Error>(p)
    };
    let nfx = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let m = |src: &str, target: &Path, fstype: &str, flags: MountFlags, data: Option<&str>| {
        let data = data.map(|d| std::ffi::CString::new(d).expect("no NUL"));
        rustix::mount::mount(src, target, fstype, flags, data.as_deref())
            .map_err(|e| setup_err(format!("mounting {fstype} on {}", target.display()), e))
    };
    // proc: a fresh one for this pid namespace.
    m("proc", &mk("proc")?, "proc", nfx, None)?;
    // sys: a fresh read-only sysfs (no cgroup or other submounts) where we may mount one
    // (root); in a user namespace, which may not, the host's tree bound with its top read-only.
    let sys = mk("sys")?;
    if m("sysfs", &sys, "sysfs", nfx | MountFlags::RDONLY, None).is_err() {
        rustix::mount::mount_bind_recursive("/sys", &sys)
            .map_err(|e| setup_err("binding /sys", e))?;
        let _ = rustix::mount::mount_remount(&sys, MountFlags::BIND | MountFlags::RDONLY | nfx, "");
    }
    // dev: a small tmpfs with the harmless nodes bound from the host; never devtmpfs.
    let dev = mk("dev")?;
    m(
        "tmpfs",
        &dev,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some("mode=755,size=64k"),
    )?;
    for node in DEV_NODES {
        let host = Path::new("/dev").join(node);
        if !host.exists() {
            continue;
        }
        let target = dev.join(node);
        fs::File::create(&target)?;
        rustix::mount::mount_bind(&host, &target)
            .map_err(|e| setup_err(format!("binding /dev/{node}"), e))?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts)?;
    // When our terminal is a pty of the host's devpts, the command must find it under
    // /dev/pts (ttyname, job control): bind that instance. Otherwise a new, empty one.
    let tty_on_host_pts = fs::read_link("/proc/self/fd/0")
        .is_ok_and(|p| p.starts_with("/dev/pts/"))
        && rustix::termios::isatty(std::io::stdin());
    if tty_on_host_pts {
        rustix::mount::mount_bind("/dev/pts", &pts)
            .map_err(|e| setup_err("binding /dev/pts", e))?;
    } else {
        m(
            "devpts",
            &pts,
            "devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        )?;
    }
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))?;
    let shm = dev.join("shm");
    fs::create_dir(&shm)?;
    m("tmpfs", &shm, "tmpfs", nfx, Some("mode=1777"))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(name))?;
    }
    m(
        "tmpfs",
        &mk("tmp")?,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some("mode=1777"),
    )?;
    m(
        "tmpfs",
        &mk("run")?,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some("mode=755"),
    )?;
    let root_fd = rustix::fs::open(
        r,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if root.resolv_conf && Path::new("/etc/resolv.conf").exists() {
        // A rootfs we may not write (rootless, root-owned) and that has no resolv.conf keeps
        // none: we never fail a run over DNS configuration.
        match create_in_root(&root_fd, "etc/resolv.conf", false) {
            Ok(target) => bind_to_fd(Path::new("/etc/resolv.conf"), &target, true)?,
            Err(e) => eprintln!("binfmtctl: warning: not providing /etc/resolv.conf: {e}"),
        }
    }
    for b in &root.binds {
        let rel = b.target.trim_start_matches('/');
        let target = create_in_root(&root_fd, rel, fs::metadata(&b.source)?.is_dir())?;
        bind_to_fd(&b.source, &target, b.readonly)?;
    }
    Ok(())
}

/// Opens `rel` inside the rootfs as an `O_PATH` fd, resolving every symlink as if the rootfs
/// were `/` (RESOLVE_IN_ROOT), creating it (and its parents) when missing. A symlink such as
/// `etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf` therefore lands in the rootfs's
/// (tmpfs) /run, never on the host's.
fn create_in_root(root: &OwnedFd, rel: &str, dir: bool) -> io::Result<OwnedFd> {
    let open = |path: &str, flags: OFlags| {
        // openat2 refuses a mode without O_CREAT.
        let mode = if flags.contains(OFlags::CREATE) {
            Mode::from_raw_mode(0o644)
        } else {
            Mode::empty()
        };
        rustix::fs::openat2(
            root.as_fd(),
            path,
            flags | OFlags::CLOEXEC,
            mode,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    };
    if let Ok(fd) = open(rel, OFlags::PATH) {
        return Ok(fd);
    }
    // Follow a dangling symlink by hand (still resolved in the root) to the path to create.
    let mut target = rel.to_owned();
    for _ in 0..40 {
        match rustix::fs::readlinkat(root.as_fd(), target.as_str(), Vec::new()) {
            Ok(link) => {
                let link = link.to_string_lossy().into_owned();
                target = if let Some(abs) = link.strip_prefix('/') {
                    abs.to_owned()
                } else {
                    let parent = Path::new(&target).parent().unwrap_or(Path::new(""));
                    parent.join(link).to_string_lossy().into_owned()
                };
            }
            Err(_) => break,
        }
    }
    let path = Path::new(&target);
    let mut acc = PathBuf::new();
    for c in path.parent().into_iter().flat_map(Path::components) {
        acc.push(c);
        let s = acc.to_string_lossy();
        if open(&s, OFlags::PATH | OFlags::DIRECTORY).is_err() {
            rustix::fs::mkdirat(root.as_fd(), s.as_ref(), Mode::from_raw_mode(0o755))
                .map_err(|e| setup_err(format!("creating /{s} in the rootfs"), e))?;
        }
    }
    if dir {
        rustix::fs::mkdirat(root.as_fd(), target.as_str(), Mode::from_raw_mode(0o755))
            .map_err(|e| setup_err(format!("creating /{target} in the rootfs"), e))?;
    } else {
        drop(
            open(&target, OFlags::CREATE | OFlags::WRONLY)
                .map_err(|e| setup_err(format!("creating /{target} in the rootfs"), e))?,
        );
    }
    open(&target, OFlags::PATH).map_err(|e| setup_err(format!("/{target} in the rootfs"), e))
}

/// Bind-mounts `source` onto the file or directory an `O_PATH` fd refers to.
fn bind_to_fd(source: &Path, target: &OwnedFd, readonly: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let t = format!("/proc/self/fd/{}", target.as_raw_fd());
    // Where the fd points, already resolved inside the rootfs: after the bind, the fd itself
    // refers to what the new mount covers, so the remount goes through this path.
    let resolved = fs::read_link(&t)?;
    rustix::mount::mount_bind_recursive(source, &t)
        .map_err(|e| setup_err(format!("binding {}", source.display()), e))?;
    if readonly {
        rustix::mount::mount_remount(&resolved, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|e| setup_err(format!("making {} read-only", source.display()), e))?;
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
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(EXIT_SETUP)
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
