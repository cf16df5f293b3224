//! `binfmtctl test`: prove, per architecture, that emulation works end to end.
//!
//! For each arch we write its probe (`probe`) to a private temporary directory and execute it
//! *through the kernel* (never by calling QEMU ourselves), then check:
//! - `handler`: which entry the kernel will pick for it (`inspect::kernel_choice`);
//! - `runs`: it ran, exited normally and reported the `uname -m` expected for the arch;
//! - `argv0`: with the P flag, argv[0] arrives intact (the probe exits with its first byte);
//! - `chroot`: it runs again in a fresh mount namespace chrooted into a directory holding only
//!   the probe — which works only when the F flag pinned the interpreter at registration.
//!
//! A native arch is run directly and must not be taken by any entry.
//!
//! The chroot step re-executes binfmtctl with a hidden subcommand (`__probe-chroot`) that calls
//! unshare(CLONE_NEWNS) and chroot(2) in its own process, then execs the probe; no `unsafe` code
//! (no pre_exec) is needed. Needs CAP_SYS_ADMIN and CAP_SYS_CHROOT, as root or in a user
//! namespace; without them that check is reported as not run.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::KernelEntry;
use crate::inspection::probe;

/// How long one probe run may take (QEMU starts in milliseconds; this only catches hangs).
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// The exit status of the chroot helper when exec itself failed (as a shell reports it).
pub const EXEC_FAILED: i32 = 127;
/// Exit status of the chroot helper when unshare/chroot were not permitted.
pub const CHROOT_NOT_PERMITTED: i32 = 126;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// `true` passed, `false` failed, `null` not run.
    pub ok: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchResult {
    pub arch: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ArchResult {
    pub fn skipped(arch: &str, reason: impl Into<String>) -> ArchResult {
        ArchResult {
            arch: arch.to_owned(),
            status: Status::Skipped,
            handler: None,
            checks: Vec::new(),
            reason: Some(reason.into()),
        }
    }

    fn failed(
        arch: &str,
        handler: Option<String>,
        checks: Vec<Check>,
        reason: String,
    ) -> ArchResult {
        ArchResult {
            arch: arch.to_owned(),
            status: Status::Fail,
            handler,
            checks,
            reason: Some(reason),
        }
    }

    /// One line for people.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{:<8} {:<12}",
            match self.status {
                Status::Pass => "pass",
                Status::Fail => "FAIL",
                Status::Skipped => "skipped",
            },
            self.arch
        );
        if let Some(h) = &self.handler {
            s += &format!(" {h}:");
        }
        let parts: Vec<String> = self
            .checks
            .iter()
            .map(|c| match c.ok {
                Some(true) => c.detail.clone(),
                Some(false) => format!("{} FAILED: {}", c.name, c.detail),
                None => format!("{} not run: {}", c.name, c.detail),
            })
            .collect();
        if !parts.is_empty() {
            s += &format!(" {}", parts.join(", "));
        }
        // A failed check already says why; the reason is for failures without checks.
        let failed_check = self.checks.iter().any(|c| c.ok == Some(false));
        if let Some(r) = &self.reason
            && self.status != Status::Pass
            && !failed_check
        {
            s += &format!(" — {r}");
        }
        s
    }
}

/// What `uname -m` reports for an arch under QEMU (or natively on its own hardware).
pub fn expected_machines(arch: &str) -> &'static [&'static str] {
    match arch {
        "arm" => &["armv7l", "armv6l", "armv5tel", "armv8l"],
        "armeb" => &["armv7b", "armv5teb"],
        "i386" | "i486" => &["i686", "i586", "i486", "i386"],
        "mips" | "mipsel" => &["mips"],
        // n32 runs on a 64-bit CPU.
        "mips64" | "mips64el" | "mipsn32" | "mipsn32el" => &["mips64"],
        "hppa" => &["parisc"],
        "x86_64" => &["x86_64"],
        "aarch64" => &["aarch64"],
        "aarch64_be" => &["aarch64_be"],
        "riscv64" => &["riscv64"],
        "riscv32" => &["riscv32"],
        "ppc64le" => &["ppc64le"],
        "ppc64" => &["ppc64"],
        "ppc" => &["ppc"],
        "s390x" => &["s390x"],
        "loongarch64" => &["loongarch64"],
        "m68k" => &["m68k"],
        "alpha" => &["alpha"],
        // QEMU reports sh4 for both byte orders.
        "sh4" | "sh4eb" => &["sh4"],
        _ => &[],
    }
}

/// Runs an arch's probe with `interpreter` directly (not through the kernel): proves that this
/// interpreter file emulates the arch before anything is registered with it (`qemu use`).
/// The machine the probe reported, or why it failed. `None` probe for the arch: `Ok` empty.
pub fn probe_interpreter(interpreter: &Path, arch: &Arch) -> Result<String, String> {
    let Some(bytes) = probe::build(arch) else {
        return Ok(String::new());
    };
    let work = Workdir::new().map_err(|e| format!("cannot make a directory for the probe: {e}"))?;
    let path = work
        .write_exec(&format!("probe-{}", arch.name), &bytes)
        .map_err(|e| format!("cannot write the probe: {e}"))?;
    let mut cmd = Command::new(interpreter);
    cmd.arg(&path).env_clear();
    let out = run(cmd).map_err(|e| format!("{}: {e}", interpreter.display()))?;
    let machine = probe::reported_machine(&out.stdout);
    let want = expected_machines(&arch.name);
    match (out.code, out.signal) {
        (Some(_), _) if want.is_empty() || want.contains(&machine.as_str()) => Ok(machine),
        (Some(c), _) => Err(format!(
            "its {} probe reported {machine:?} (exit {c}), not {}",
            arch.name,
            want.join(" or ")
        )),
        (_, Some(sig)) => Err(format!(
            "its {} probe died of signal {sig}{}",
            arch.name,
            if out.stderr.is_empty() {
                String::new()
            } else {
                format!(": {}", out.stderr.trim())
            }
        )),
        _ => Err(format!("its {} probe did not exit", arch.name)),
    }
}

/// A private directory for probes, removed on drop.
pub struct Workdir {
    pub path: PathBuf,
}

impl Workdir {
    pub fn new() -> io::Result<Workdir> {
        Workdir::in_dir(&std::env::temp_dir())
    }

    /// A private directory under `base`.
    pub fn in_dir(base: &Path) -> io::Result<Workdir> {
        for i in 0..100u32 {
            let path = base.join(format!("binfmtctl-test-{}-{i}", std::process::id()));
            // Made 0700 (no moment in which others may enter); a name someone made first is
            // passed over.
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
                    return Ok(Workdir { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("cannot create a temporary directory"))
    }

    /// Writes an executable file.
    pub fn write_exec(&self, rel: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let p = self.path.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d)?;
        }
        // A new file of our own: never one already there, never through a link.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)?;
        io::Write::write_all(&mut f, bytes)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
        Ok(p)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The outcome of one process run.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs a command with a timeout, capturing its output.
pub fn run(cmd: Command) -> io::Result<Outcome> {
    wait_for(start(cmd)?)
}

/// Starts a command for `wait_for`, its output captured (several can run at once).
pub fn start(mut cmd: Command) -> io::Result<std::process::Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Waits for a command `start` started, with a timeout, and takes its output.
pub fn wait_for(mut child: std::process::Child) -> io::Result<Outcome> {
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    // The probes write 65 bytes; read after exit cannot deadlock on a full pipe.
    let deadline = Instant::now() + RUN_TIMEOUT;
    // A pidfd becomes readable the moment the child exits (Linux >= 5.3): no polling delay,
    // which every install pays once per probe. Where there is none, try_wait every 2 ms.
    let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    });
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        match &pidfd {
            Some(fd) => wait_readable(fd, left),
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let mut stdout = Vec::new();
    let mut stderr = String::new();
    out.read_to_end(&mut stdout)?;
    err.read_to_string(&mut stderr)?;
    Ok(Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
    })
}

/// Waits until `fd` (a pidfd) is readable, at most `left`; an interrupted wait just returns
/// (the caller checks the child again).
fn wait_readable(fd: &std::os::fd::OwnedFd, left: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: left.subsec_nanos().into(),
    };
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let _ = poll(&mut fds, Some(&timeout));
}

/// The hidden `__probe-chroot` helper: new mount namespace, chroot into `root`, exec.
/// Returns only on failure, with the exit status to use.
pub fn chroot_exec(root: &Path, program: &str, argv0: &str) -> (i32, String) {
    use nix::sched::{CloneFlags, unshare};
    // A mount namespace of our own, so the chroot cannot be escaped into the caller's mounts and
    // nothing we do is seen outside; we mount nothing, so no mount can be left behind.
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
        return (CHROOT_NOT_PERMITTED, format!("unshare(CLONE_NEWNS): {e}"));
    }
    if let Err(e) = rustix::process::chroot(root) {
        return (
            CHROOT_NOT_PERMITTED,
            format!("chroot({}): {e}", root.display()),
        );
    }
    if let Err(e) = std::env::set_current_dir("/") {
        return (CHROOT_NOT_PERMITTED, format!("chdir(/): {e}"));
    }
    let err = Command::new(program).arg0(argv0).env_clear().exec();
    (EXEC_FAILED, format!("exec {program}: {err}"))
}

/// Everything `test_arch` needs to know about the machine.
pub struct Env<'a> {
    pub entries: &'a [KernelEntry],
    pub binfmt_enabled: bool,
    pub host_machine: &'a str,
    pub self_exe: &'a Path,
    pub work: &'a Workdir,
}

fn argv0_byte() -> i32 {
    i32::from(probe::ARGV0.as_bytes()[0])
}

/// Tests one arch. `native` says the host runs it without emulation; `explicit` says the user
/// named it (then a missing handler is a failure, not a skip).
pub fn test_arch(arch: &Arch, native: bool, explicit: bool, env: &Env) -> ArchResult {
    let name = arch.name.as_str();
    let Some(bytes) = probe::build(arch) else {
        return ArchResult::skipped(name, "no probe for this arch yet");
    };
    let dir = format!("{name}/run");
    let path = match env.work.write_exec(&format!("{dir}/probe-{name}"), &bytes) {
        Ok(p) => p,
        Err(e) => {
            return ArchResult::failed(name, None, vec![], format!("cannot write the probe: {e}"));
        }
    };
    let exec_path = path.to_string_lossy().into_owned();
    let choice = crate::inspection::inspect::kernel_choice(
        env.entries,
        env.binfmt_enabled,
        &bytes,
        &exec_path,
    );
    let mut checks = Vec::new();

    if native {
        if let Some(k) = choice {
            let n = &k.entry.registration.name;
            checks.push(Check {
                name: "native",
                ok: Some(false),
                detail: format!("{n} captures it"),
            });
            return ArchResult::failed(
                name,
                Some(n.clone()),
                checks,
                format!(
                    "the host runs {name} natively, but {n} takes its binaries: `binfmtctl uninstall {n}`"
                ),
            );
        }
        let want = [env.host_machine];
        let label = Some("native, no handler".to_owned());
        return finish(name, label, checks, run_checks(&path, &want, true), None);
    }

    let Some(k) = choice else {
        let ours = arch.entry_name();
        let disabled = env
            .entries
            .iter()
            .any(|k| k.entry.registration.name == ours && !k.entry.enabled);
        let reason = if !env.binfmt_enabled {
            "binfmt_misc is disabled as a whole (its status file says disabled)".to_owned()
        } else if disabled {
            format!("{ours} is registered but disabled: `binfmtctl install {name}` enables it")
        } else {
            format!("no handler: run `binfmtctl install {name}`")
        };
        if explicit || disabled {
            return ArchResult::failed(name, None, vec![], reason);
        }
        return ArchResult::skipped(name, reason);
    };
    let r = &k.entry.registration;
    let handler = format!("{} ({}, flags {})", r.name, r.interpreter, r.flags);
    let want = expected_machines(name);
    checks.extend(run_checks(&path, want, r.flags.preserve_argv0));
    // The empty chroot: a directory holding only the probe.
    let root = env.work.path.join(format!("{name}/chroot"));
    let chroot_check = match env.work.write_exec(&format!("{name}/chroot/probe"), &bytes) {
        Err(e) => Check {
            name: "chroot",
            ok: Some(false),
            detail: format!("cannot prepare {}: {e}", root.display()),
        },
        Ok(_) => chroot_check(
            env.self_exe,
            &root,
            want,
            r.flags.fix_binary,
            r.flags.preserve_argv0,
        ),
    };
    checks.push(chroot_check);
    finish(name, Some(handler), checks, Vec::new(), None)
}

fn finish(
    arch: &str,
    handler: Option<String>,
    mut checks: Vec<Check>,
    more: Vec<Check>,
    reason: Option<String>,
) -> ArchResult {
    checks.extend(more);
    let failed: Vec<&Check> = checks.iter().filter(|c| c.ok == Some(false)).collect();
    let status = if failed.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let reason = if failed.is_empty() {
        reason
    } else {
        Some(
            failed
                .iter()
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    ArchResult {
        arch: arch.to_owned(),
        status,
        handler,
        checks,
        reason,
    }
}

/// Runs the probe at `path` directly (through the kernel) and checks output and argv[0].
fn run_checks(path: &Path, want: &[&str], preserve_argv0: bool) -> Vec<Check> {
    let mut cmd = Command::new(path);
    cmd.arg0(probe::ARGV0).env_clear();
    let o = match run(cmd) {
        Ok(o) => o,
        Err(e) => {
            return vec![Check {
                name: "runs",
                ok: Some(false),
                detail: exec_error_words(&e),
            }];
        }
    };
    outcome_checks(&o, want, preserve_argv0, "runs")
}

fn exec_error_words(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) if n == rustix::io::Errno::NOEXEC.raw_os_error() => {
            "the kernel has no handler for it (ENOEXEC)".into()
        }
        Some(n) if n == rustix::io::Errno::NOENT.raw_os_error() => {
            "exec failed with ENOENT: the handler's interpreter cannot be found".into()
        }
        Some(n) if n == rustix::io::Errno::ACCESS.raw_os_error() => {
            "exec failed with EACCES (noexec temporary directory? set TMPDIR)".into()
        }
        _ => format!("exec failed: {e}"),
    }
}

fn outcome_checks(
    o: &Outcome,
    want: &[&str],
    preserve_argv0: bool,
    what: &'static str,
) -> Vec<Check> {
    let machine = probe::reported_machine(&o.stdout);
    if let Some(sig) = o.signal {
        return vec![Check {
            name: what,
            ok: Some(false),
            detail: format!("killed by signal {sig}{}", stderr_tail(&o.stderr)),
        }];
    }
    let ran = !machine.is_empty();
    let mut v = vec![Check {
        name: what,
        ok: Some(ran && want.contains(&machine.as_str())),
        detail: if !ran {
            format!("no output, exit {:?}{}", o.code, stderr_tail(&o.stderr))
        } else if want.contains(&machine.as_str()) {
            format!("{what}: uname -m {machine}")
        } else {
            format!("uname -m says {machine:?}, expected one of {want:?}")
        },
    }];
    if ran {
        let slash = i32::from(b'/');
        let (ok, detail) = match (preserve_argv0, o.code) {
            (true, Some(c)) if c == argv0_byte() => (true, "argv[0] intact".to_owned()),
            (true, c) => (
                false,
                format!("P is set but argv[0] did not arrive (exit {c:?})"),
            ),
            (false, Some(c)) if c == slash => {
                (true, "argv[0] replaced by the path (no P flag)".to_owned())
            }
            (false, c) => (false, format!("unexpected exit {c:?}")),
        };
        v.push(Check {
            name: "argv0",
            ok: Some(ok),
            detail,
        });
    }
    v
}

fn stderr_tail(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(" ({})", t.lines().last().unwrap_or(t))
    }
}

fn chroot_check(
    self_exe: &Path,
    root: &Path,
    want: &[&str],
    fix_binary: bool,
    preserve_argv0: bool,
) -> Check {
    let mut cmd = Command::new(self_exe);
    cmd.arg("__probe-chroot")
        .arg(root)
        .arg("/probe")
        .arg(probe::ARGV0);
    let o = match run(cmd) {
        Ok(o) => o,
        Err(e) => {
            return Check {
                name: "chroot",
                ok: Some(false),
                detail: format!("helper did not run: {e}"),
            };
        }
    };
    match o.code {
        Some(CHROOT_NOT_PERMITTED) => Check {
            name: "chroot",
            ok: None,
            detail: format!("needs root or a user namespace ({})", o.stderr.trim()),
        },
        Some(EXEC_FAILED) => Check {
            name: "chroot",
            ok: Some(false),
            detail: if fix_binary {
                format!("did not run in an empty chroot: {}", o.stderr.trim())
            } else {
                format!(
                    "did not run in an empty chroot ({}): the handler lacks the F flag, so the interpreter is looked up inside the chroot; re-register it with F (binfmtctl install)",
                    o.stderr.trim()
                )
            },
        },
        _ => {
            let checks = outcome_checks(&o, want, preserve_argv0, "chroot");
            let bad: Vec<&Check> = checks.iter().filter(|c| c.ok != Some(true)).collect();
            if bad.is_empty() {
                Check {
                    name: "chroot",
                    ok: Some(true),
                    detail: "works in an empty chroot".into(),
                }
            } else {
                Check {
                    name: "chroot",
                    ok: Some(false),
                    detail: bad
                        .iter()
                        .map(|c| c.detail.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_has_expected_machines() {
        for a in probe::available() {
            assert!(!expected_machines(a).is_empty(), "{a}");
        }
    }

    #[test]
    fn outcome_interpretation() {
        let o = |code, out: &[u8]| Outcome {
            code: Some(code),
            signal: None,
            stdout: out.to_vec(),
            stderr: String::new(),
        };
        let c = outcome_checks(&o(98, b"aarch64\0\0"), &["aarch64"], true, "runs");
        assert!(c.iter().all(|c| c.ok == Some(true)), "{c:?}");
        let c = outcome_checks(&o(47, b"aarch64\0"), &["aarch64"], true, "runs");
        assert_eq!(c[1].ok, Some(false), "P set but argv0 lost");
        let c = outcome_checks(&o(47, b"aarch64\0"), &["aarch64"], false, "runs");
        assert_eq!(c[1].ok, Some(true), "no P: argv0 is the path");
        let c = outcome_checks(&o(98, b"x86_64\0"), &["aarch64"], true, "runs");
        assert_eq!(c[0].ok, Some(false), "wrong machine");
        let c = outcome_checks(&o(1, b""), &["aarch64"], true, "runs");
        assert_eq!((c.len(), c[0].ok), (1, Some(false)), "no output");
    }

    #[test]
    fn an_interpreter_is_proved_by_running_the_probe() {
        let t = crate::binfmt::arch::Table::builtin();
        let a = t.get("aarch64").unwrap();
        // A program that is no emulator: it runs, but the probe never reports.
        let e = probe_interpreter(Path::new("/bin/true"), a).unwrap_err();
        assert!(e.contains("its aarch64 probe reported \"\""), "{e}");
        let e = probe_interpreter(Path::new("/nonexistent/qemu-aarch64"), a).unwrap_err();
        assert!(e.starts_with("/nonexistent/qemu-aarch64: "), "{e}");
        // Debian's static QEMU, where installed (scripts/deps.sh installs it for the suite).
        let real = Path::new("/usr/bin/qemu-aarch64-static");
        if real.exists() {
            assert_eq!(probe_interpreter(real, a).as_deref(), Ok("aarch64"));
        } else {
            eprintln!(
                "skipped the real interpreter: {} is not installed",
                real.display()
            );
        }
    }
}
