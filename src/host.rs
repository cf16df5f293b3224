//! What this machine is: its native architecture (decided from the header of our own
//! executable, the best evidence there is of what the kernel runs natively), the compat
//! architectures it runs without emulation, and whether we run inside a user namespace.
//!
//! Compat arches (i386 on x86_64, arm on aarch64, …) are decided by running the arch's own
//! probe (`probe`) where no binfmt_misc handler can take it. Runs and exits as the probe does:
//! native. `ENOEXEC`: the kernel has no loader for it (e.g. an arm64 CPU without AArch32), not
//! native. The probes carry a non-zero EI_PAD (`COMPAT_PROBE_PAD`), which the kernel's ELF
//! loader ignores and the usual patterns refuse, so where binfmt_misc is mounted here, usually
//! none of its entries can take them (none can at boot): then they run right here, and a probe
//! that ran counts (native). Anything else — even ENOEXEC, which a handler this process cannot
//! see gives when its interpreter will not load — is asked again of a helper process
//! (`__probe-native`), which also runs them where an entry could take them: it makes a new
//! user + mount namespace, mounts a fresh binfmt_misc instance there (Linux >= 6.7; an
//! instance with no entries hides the host's from exec in that namespace), and execs them
//! there. A handler the view missed can only make a probe run here, a wrong "native" that
//! leaves the arch out; never a wrong "not native". Where no
//! private instance can be made (Linux < 6.7, no user namespaces) the helper runs the probes
//! beside the one instance there is, unless one of its entries would take them. Where the
//! probe still tells nothing the kernel config (`CONFIG_COMPAT`, `CONFIG_IA32_EMULATION` and
//! `ia32_emulation=`) decides — except for arches whose CPUs may lack the mode
//! (`compat_cpu_optional`: arm on arm64), which only a probe that ran counts native; it is
//! read only then. The user can override either way (`--native`, `--not-native`). Run here,
//! the probes are close-on-exec memory files; the helper gets them in a private temporary
//! directory, or in memory files it inherits where none is writable. Needs no privilege where
//! unprivileged user namespaces are allowed.
//!
//! I/O: `HostFacts::gather` (reads `/proc/self/exe`, `/proc/config.gz` or
//! `/boot/config-<release>`, `/proc/cmdline`, `/proc/self/uid_map`), `HostFacts::start_probes`
//! (runs the probes, or the helper) and `HostFacts::decide_natives` (their verdicts, for a
//! command's `ops::Natives`, decided when first asked for); `HostFacts::native` is pure unless
//! the config was left unread (`gather_without_config`) and an arch is left to it, so tests
//! feed it fabricated facts.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::binfmt::arch::{Arch, Table};
use crate::binfmt::registration::BINPRM_BUF_SIZE;

/// The first `name` in the directories of `path_var` (a PATH value) that `accept` takes.
pub fn find_in_path(
    path_var: &std::ffi::OsStr,
    name: &str,
    accept: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|d| d.join(name))
        .find(|p| accept(p))
}

/// The program `name` in `path_var` (a PATH value) that binfmtctl may run as root: the first
/// one on the path that passes `program_is_safe`, owned by root or us (inside a user
/// namespace also by the overflow uid, which every unmapped owner, host root among them,
/// shows as; the directory checks still apply). An unsafe one is skipped, as if it were not
/// there. Every program binfmtctl runs by name (`nix`, `systemctl`, the bootstrap tool, the
/// cross compiler) is found here and run by the absolute path returned.
pub fn find_safe_program(path_var: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    find_safe_program_by(path_var?, name, trusted_uid())
}

/// `find_safe_program` with the owners to trust given (`trusted_uid` there): the first `name`
/// in `path_var` that passes `program_is_safe`, as an absolute path (a relative PATH entry is
/// taken from the current directory, as it was checked).
pub fn find_safe_program_by(
    path_var: &std::ffi::OsStr,
    name: &str,
    trusted: impl Fn(u32) -> bool,
) -> Option<PathBuf> {
    let found = find_in_path(path_var, name, |p| program_is_safe(p, &trusted))?;
    std::path::absolute(found).ok()
}

/// The owners whose programs binfmtctl runs: root, ourselves, and inside a user namespace the
/// overflow uid (owners the namespace does not map, host root among them, show as it).
pub fn trusted_uid() -> impl Fn(u32) -> bool {
    let me = rustix::process::geteuid().as_raw();
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let overflow = (!is_identity_map(&uid_map))
        .then(|| std::fs::read_to_string("/proc/sys/kernel/overflowuid").ok())
        .flatten()
        .and_then(|s| s.trim().parse::<u32>().ok());
    move |uid| uid == 0 || uid == me || Some(uid) == overflow
}

/// `find_safe_program` on this process's PATH.
pub fn which_safe(name: &str) -> Option<PathBuf> {
    find_safe_program(std::env::var_os("PATH").as_deref(), name)
}

/// May binfmtctl run `path`? The file must be a regular executable that neither group nor
/// others may write, and the whole path must be as safe as an interpreter's
/// (`qemu::interpreter::resolve`): the file, every directory and every symlink on the way
/// owned by a trusted uid, and no directory writable by group or others unless sticky. So a
/// program someone planted in a group- or world-writable directory on root's PATH, or one a
/// user owns, is never run as root.
pub fn program_is_safe(path: &Path, trusted: impl Fn(u32) -> bool) -> bool {
    use crate::qemu::interpreter::NodeKind;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    let mode = m.permissions().mode();
    if !m.is_file() || mode & 0o111 == 0 || mode & 0o022 != 0 || !trusted(m.uid()) {
        return false;
    }
    let Ok(abs) = std::path::absolute(path) else {
        return false;
    };
    let Ok((_, chain)) = crate::qemu::interpreter::resolve(&abs) else {
        return false;
    };
    chain.iter().all(|n| {
        trusted(n.uid)
            && match n.kind {
                NodeKind::Directory => n.mode & 0o022 == 0 || n.mode & 0o1000 != 0,
                NodeKind::File => n.mode & 0o022 == 0,
                NodeKind::Symlink => true,
            }
    })
}

const CONTAINER_MOUNT_WARNING: &str = "binfmt_misc was not mounted in this container; its entries last only while some mount of it exists, so if the host has none either (systemd mounts it at /proc/sys/fs/binfmt_misc), they vanish when the container exits";
const PRIVATE_NS_MOUNT_WARNING: &str = "binfmt_misc was mounted in a private mount namespace (a sandboxed service?) while the host's has no mount of it: the entries vanish when this namespace ends; mount it on the host first (systemd: proc-sys-fs-binfmt_misc.mount)";

/// Why a binfmt_misc mount made just now may not outlive this process, if it may not: the
/// entries of an instance live only while some mount of it exists, and a mount in a container
/// or a private mount namespace goes away with it.
pub fn mount_lifetime_warning() -> Option<&'static str> {
    if in_container() {
        Some(CONTAINER_MOUNT_WARNING)
    } else if private_mount_ns_without_host_mount() {
        Some(PRIVATE_NS_MOUNT_WARNING)
    } else {
        None
    }
}

/// Podman and Docker mark their containers with these files.
pub fn in_container() -> bool {
    Path::new("/run/.containerenv").exists() || Path::new("/.dockerenv").exists()
}

/// Are we in a mount namespace other than PID 1's, and does PID 1's have no binfmt_misc mount?
/// (Readable as root; false when we cannot tell.)
pub fn private_mount_ns_without_host_mount() -> bool {
    let ours = std::fs::read_link("/proc/self/ns/mnt");
    let init = std::fs::read_link("/proc/1/ns/mnt");
    match (ours, init) {
        (Ok(a), Ok(b)) if a != b => procfs::process::Process::new(1)
            .and_then(|p| p.mountinfo())
            .is_ok_and(|m| !m.into_iter().any(|mi| mi.fs_type == "binfmt_misc")),
        _ => false,
    }
}

/// Facts read from the running system.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The first bytes of our own executable (what the kernel's matcher would see).
    pub exe_header: Vec<u8>,
    /// `uname -m`.
    pub machine: String,
    /// The kernel config, when `/proc/config.gz` or `/boot/config-<release>` is readable
    /// (`procfs::kernel_config`).
    pub kernel_config: Option<std::collections::HashMap<String, procfs::ConfigSetting>>,
    /// The kernel config was not read (`gather_without_config`): the natives read it only
    /// if an arch is left to it (`native_with`).
    pub config_unread: bool,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// True when `/proc/self/uid_map` is not the identity map of the initial user namespace.
    pub in_user_namespace: bool,
    /// `/proc/sys/kernel/overflowuid`: how unmapped owners (e.g. host root) appear in a user
    /// namespace.
    pub overflow_uid: u32,
    /// In a user namespace: whether `overflow_uid` itself is mapped (read once here, for
    /// `ops::Host::owners`, which every interpreter check asks).
    pub overflow_uid_mapped: bool,
    /// Linux release (`uname -r`).
    pub kernel_release: String,
    /// What running each compat arch's probe with no handler able to take it said
    /// (`start_probes`, `decide_natives`); absent arches were not probed.
    pub compat_probes: Vec<(String, ProbeVerdict)>,
}

/// What running an arch's probe where no binfmt_misc handler can take it showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum ProbeVerdict {
    /// It ran and exited as the probe does: the kernel runs this arch itself.
    Ran { machine: String },
    /// exec failed with ENOEXEC: the kernel has no loader for it.
    NoLoader,
    /// The probe could not be run in a way that proves anything (reason in words).
    Unknown { reason: String },
}

/// The user's say on which compat arches are native, over the evidence.
#[derive(Debug, Clone, Default)]
pub struct NativeOverride {
    pub native: Vec<String>,
    pub not_native: Vec<String>,
}

/// `--native` / `--not-native` that cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error(transparent)]
    Unknown(#[from] crate::binfmt::arch::UnknownArch),
    #[error(
        "{option} {given}: {arch} is not a compat arch of this host (those are: {compat}); only they can be either"
    )]
    NotCompat {
        option: &'static str,
        given: String,
        arch: String,
        compat: String,
    },
    #[error("{0} is named by both --native and --not-native: name it in one")]
    Both(String),
}

impl crate::error::Classify for OverrideError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

impl NativeOverride {
    /// `--native` / `--not-native` (arch names in any spelling): each must name a compat arch
    /// of this host, and not both.
    pub fn resolve(
        table: &Table,
        host: &HostFacts,
        native: &[String],
        not_native: &[String],
    ) -> Result<NativeOverride, OverrideError> {
        let compat: &[String] = host.host_arch(table).map_or(&[], |h| &h.compat);
        let resolve = |names: &[String], option: &'static str| {
            let mut v = Vec::new();
            for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                let a = table.resolve(n)?;
                if !compat.contains(&a.name) {
                    return Err(OverrideError::NotCompat {
                        option,
                        given: n.to_owned(),
                        arch: a.name.clone(),
                        compat: if compat.is_empty() {
                            "none".into()
                        } else {
                            compat.join(", ")
                        },
                    });
                }
                v.push(a.name.clone());
            }
            Ok(v)
        };
        let native = resolve(native, "--native")?;
        let not_native = resolve(not_native, "--not-native")?;
        if let Some(both) = native.iter().find(|n| not_native.contains(n)) {
            return Err(OverrideError::Both(both.clone()));
        }
        Ok(NativeOverride { native, not_native })
    }
}

/// One arch the host runs without emulation, and why we believe it (defined with the
/// kernel's matching, which needs it; decided here).
pub use crate::inspection::inspect::NativeArch;

impl HostFacts {
    pub fn gather() -> HostFacts {
        let mut f = HostFacts::gather_without_config();
        f.kernel_config = procfs::kernel_config().ok();
        f.config_unread = false;
        f
    }

    /// The natives with the user's override, from the verdicts of the compat probes `started`
    /// (`start_probes`); the kernel config only if an arch is left to it (`native_with`).
    pub fn decide_natives(
        mut self,
        table: &Table,
        over: &NativeOverride,
        started: Option<StartedProbes>,
    ) -> Vec<NativeArch> {
        if let Some(p) = started {
            self.compat_probes = p.finish();
        }
        self.native_with(table, over)
    }

    /// `gather` without the kernel config (left `None`; `decide_natives` reads it).
    pub fn gather_without_config() -> HostFacts {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy().into_owned();
        let exe_header = std::fs::File::open("/proc/self/exe")
            .and_then(|f| {
                let mut b = Vec::with_capacity(BINPRM_BUF_SIZE);
                f.take(BINPRM_BUF_SIZE as u64).read_to_end(&mut b)?;
                Ok(b)
            })
            .unwrap_or_default();
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let overflow_uid = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534);
        HostFacts {
            exe_header,
            machine: uname.machine().to_string_lossy().into_owned(),
            kernel_config: None,
            config_unread: true,
            cmdline: std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
            in_user_namespace: !is_identity_map(&uid_map),
            overflow_uid,
            overflow_uid_mapped: crate::qemu::interpreter::uid_is_mapped(&uid_map, overflow_uid),
            kernel_release: release,
            compat_probes: Vec::new(),
        }
    }

    /// Starts the probe of every compat arch of the host (`None`: it has none; see the module
    /// doc), to be waited for with `StartedProbes::finish`: they run while the caller goes on.
    /// `self_exe` is binfmtctl, re-executed as the `__probe-native` helper where needed.
    pub fn start_probes(&self, table: &Table, self_exe: &Path) -> Option<StartedProbes> {
        let host = self.host_arch(table)?;
        let compat: Vec<&Arch> = host.compat.iter().filter_map(|c| table.get(c)).collect();
        (!compat.is_empty()).then(|| start_probes(&compat, self_exe))
    }

    /// The host's own arch: the table entry whose pattern matches our executable; `uname -m`
    /// when none does (e.g. an unusual ELF header).
    pub fn host_arch<'t>(&self, table: &'t Table) -> Option<&'t Arch> {
        table
            .arch_of_header(&self.exe_header)
            .or_else(|| table.resolve(&self.machine).ok())
    }

    /// Every arch this host runs natively: its own, plus the compat arches it runs, decided
    /// by the user's override, else the probe's verdict, else the kernel config. Where all
    /// of them are silent we count a compat arch as native: registering a handler for an arch
    /// the kernel runs itself would capture those binaries, which is worse than leaving a
    /// handler out.
    pub fn native(&self, table: &Table) -> Vec<NativeArch> {
        self.native_with(table, &NativeOverride::default())
    }

    /// `native`, with the user's override.
    pub fn native_with(&self, table: &Table, over: &NativeOverride) -> Vec<NativeArch> {
        let Some(host) = self.host_arch(table) else {
            return Vec::new();
        };
        let mut out = vec![NativeArch {
            arch: host.name.clone(),
            evidence: format!(
                "the host's own executables are {} (uname -m: {})",
                host.name, self.machine
            ),
        }];
        // The config is read only when an arch is left to it: inflating and parsing it is
        // some 1 ms, and the user's word or a probe that ran or got ENOEXEC decides without it.
        let read = || self.compat_enabled(host, procfs::kernel_config().ok().as_ref());
        let hint = if self.config_unread {
            Hint::lazy(&read)
        } else {
            let (on, why) = self.compat_enabled(host, self.kernel_config.as_ref());
            Hint::known(on, why)
        };
        for c in &host.compat {
            let probe = self
                .compat_probes
                .iter()
                .find(|(a, _)| a == c)
                .map(|(_, v)| v);
            let (native, evidence) = decide_compat(c, probe, &hint, host.compat_cpu_optional, over);
            if native {
                out.push(NativeArch {
                    arch: c.clone(),
                    evidence,
                });
            }
        }
        out
    }

    /// Is the compat layer of `host` on, by the kernel config `cfg` (`None`: not readable)
    /// and the command line, and what tells us so.
    fn compat_enabled(
        &self,
        host: &Arch,
        cfg: Option<&std::collections::HashMap<String, procfs::ConfigSetting>>,
    ) -> (bool, String) {
        let Some(opt) = host.compat_config.as_deref() else {
            return (true, "assumed: no kernel option is known for it".into());
        };
        let Some(cfg) = cfg else {
            return (
                true,
                format!("assumed: the kernel config is not readable, so {opt} may be on"),
            );
        };
        let set = |name: &str| cfg.get(name) == Some(&procfs::ConfigSetting::Yes);
        if !set(opt) {
            return (false, format!("kernel built without {opt}"));
        }
        if opt == "CONFIG_IA32_EMULATION" {
            // Linux >= 6.7 can switch ia32 emulation at boot: ia32_emulation=<bool>.
            let arg = self
                .cmdline
                .split_whitespace()
                .find_map(|a| a.strip_prefix("ia32_emulation="));
            let default_off = set("CONFIG_IA32_EMULATION_DEFAULT_DISABLED");
            let on = match arg {
                Some(v) => matches!(v, "1" | "y" | "Y" | "on" | "true"),
                None => !default_off,
            };
            if !on {
                return (false, format!("{opt}=y but ia32 emulation is off at boot"));
            }
        }
        (true, format!("kernel config {opt}=y"))
    }
}

/// The kernel config's word on the host's compat layer (`HostFacts::compat_enabled`) and what
/// tells so: known, or worked out when first asked for.
pub struct Hint<'a> {
    value: std::cell::OnceCell<(bool, String)>,
    work: Option<&'a dyn Fn() -> (bool, String)>,
}

impl<'a> Hint<'a> {
    pub fn known(on: bool, why: impl Into<String>) -> Hint<'static> {
        Hint {
            value: std::cell::OnceCell::from((on, why.into())),
            work: None,
        }
    }

    fn lazy(work: &'a dyn Fn() -> (bool, String)) -> Hint<'a> {
        Hint {
            value: std::cell::OnceCell::new(),
            work: Some(work),
        }
    }

    /// The hint, worked out now if it was not yet.
    fn get(&self) -> &(bool, String) {
        self.value
            .get_or_init(|| self.work.map_or((true, String::new()), |w| w()))
    }

    /// "; hint: …" beside a verdict that did not need it, when the hint was given (the config
    /// was read anyway); a hint worked out for another arch is not shown, so the evidence does
    /// not depend on the order of the arches.
    fn beside(&self) -> String {
        match (self.work, self.value.get()) {
            (None, Some((_, why))) => format!("; hint: {why}"),
            _ => String::new(),
        }
    }
}

/// Is the compat arch `arch` native: the user's override, else the probe's verdict (with the
/// config shown beside it when known), else the config hint. Where CPUs may lack the compat mode although
/// the kernel has it (`cpu_optional`: arm on arm64), the hint cannot tell and a silent probe
/// counts the arch as not native: a handler for it then runs its programs (emulated), where
/// counting it native on a CPU without the mode would leave them failing with ENOEXEC.
/// Returns the decision and its evidence.
pub fn decide_compat(
    arch: &str,
    probe: Option<&ProbeVerdict>,
    hint: &Hint,
    cpu_optional: bool,
    over: &NativeOverride,
) -> (bool, String) {
    let named = |list: &[String]| list.iter().any(|n| n == arch);
    if named(&over.native) {
        return (true, "--native says so".into());
    }
    if named(&over.not_native) {
        return (false, "--not-native says so".into());
    }
    match probe {
        Some(ProbeVerdict::Ran { machine }) => {
            return (
                true,
                format!(
                    "its probe ran natively (uname -m {machine}) with no binfmt_misc entry to take it{}",
                    hint.beside()
                ),
            );
        }
        Some(ProbeVerdict::NoLoader) => {
            return (
                false,
                format!(
                    "its probe cannot run natively (exec: ENOEXEC, no binfmt_misc entry to take it){}",
                    hint.beside()
                ),
            );
        }
        _ => {}
    }
    let (hint_on, hint_why) = hint.get();
    match probe {
        Some(ProbeVerdict::Unknown { reason }) if cpu_optional && *hint_on => (
            false,
            format!(
                "not proven: only a probe that runs proves the CPU has the mode, and it could not tell: {reason}; hint: {hint_why} (--native {arch} if it does)"
            ),
        ),
        None if cpu_optional && *hint_on => (
            false,
            format!(
                "not proven: only a probe that runs proves the CPU has the mode, and none ran; hint: {hint_why} (--native {arch} if it does)"
            ),
        ),
        Some(ProbeVerdict::Unknown { reason }) => (
            *hint_on,
            format!("{hint_why} (the probe could not tell: {reason})"),
        ),
        _ => (*hint_on, hint_why.clone()),
    }
}

/// The compat probes of `HostFacts::start_probes`, running; `finish` waits for them.
pub struct StartedProbes {
    arches: Vec<String>,
    /// binfmtctl, re-executed as the helper.
    self_exe: PathBuf,
    /// Each arch's probe (`None`: none could be made).
    images: Vec<Option<Vec<u8>>>,
    running: Running,
    /// The probes as files (or memory files), kept until they have run.
    _files: ProbeFiles,
}

enum Running {
    /// Here, one process each (in the order of the probes that could be made).
    Here(Vec<std::io::Result<std::process::Child>>),
    /// Through the `__probe-native` helper.
    Helper(std::io::Result<std::process::Child>),
    /// Nothing could run, for this reason.
    Failed(String),
}

impl StartedProbes {
    /// Waits for the probes: each arch with its verdict. A probe run here counts only when it
    /// ran (native): anything else — ENOEXEC too, which a handler this process cannot see
    /// gives when its interpreter will not load — is asked again of the helper, whose private
    /// instance has no handler at all.
    pub fn finish(self) -> Vec<(String, ProbeVerdict)> {
        let made: Vec<(&str, &[u8])> = self
            .arches
            .iter()
            .zip(&self.images)
            .filter_map(|(a, i)| Some((a.as_str(), i.as_deref()?)))
            .collect();
        let verdicts = match self.running {
            Running::Failed(why) => vec![ProbeVerdict::Unknown { reason: why }; made.len()],
            Running::Helper(child) => helper_verdicts(child, made.len()),
            Running::Here(children) => {
                let mut here: Vec<ProbeVerdict> = children
                    .into_iter()
                    .map(|c| verdict(c.and_then(crate::inspection::selftest::wait_for)))
                    .collect();
                let again: Vec<usize> = (0..here.len())
                    .filter(|&i| !matches!(here[i], ProbeVerdict::Ran { .. }))
                    .collect();
                if !again.is_empty() {
                    // The helper cannot open this process's close-on-exec memory files: it is
                    // given files of its own.
                    let files = ProbeFiles::for_helper(again.iter().map(|&i| made[i]));
                    let vs = match &files.paths {
                        Ok(paths) => helper_verdicts(
                            crate::inspection::selftest::start(helper_command(
                                &self.self_exe,
                                paths,
                            )),
                            again.len(),
                        ),
                        Err(why) => vec![
                            ProbeVerdict::Unknown {
                                reason: why.clone()
                            };
                            again.len()
                        ],
                    };
                    for (i, v) in again.iter().zip(vs) {
                        here[*i] = v;
                    }
                }
                here
            }
        };
        let mut verdicts = verdicts.into_iter();
        self.arches
            .into_iter()
            .zip(&self.images)
            .map(|(a, image)| {
                let v = match image {
                    None => ProbeVerdict::Unknown {
                        reason: "no probe for this arch".into(),
                    },
                    Some(_) => verdicts.next().unwrap_or(ProbeVerdict::Unknown {
                        reason: "no verdict".into(),
                    }),
                };
                (a, v)
            })
            .collect()
    }
}

/// The `__probe-native` helper (binfmtctl, `self_exe`) for these probes.
fn helper_command<'p>(
    self_exe: &Path,
    probes: impl IntoIterator<Item = &'p PathBuf>,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(self_exe);
    cmd.arg("__probe-native")
        .args(probes)
        .env_remove("BINFMTCTL_FAILPOINT");
    cmd
}

/// The helper's verdicts, one per line in the order of its probes (`n` of them).
fn helper_verdicts(child: std::io::Result<std::process::Child>, n: usize) -> Vec<ProbeVerdict> {
    let unknown = |reason: String| vec![ProbeVerdict::Unknown { reason }; n];
    let o = match child.and_then(crate::inspection::selftest::wait_for) {
        Err(e) => return unknown(format!("cannot run the helper: {e}")),
        Ok(o) => o,
    };
    if o.code != Some(0) {
        return unknown(match o.stderr.trim() {
            "" => format!("the helper failed ({:?})", o.code),
            why => why.to_owned(),
        });
    }
    let mut lines = o.stdout.split(|b| *b == b'\n');
    (0..n)
        .map(|_| {
            lines
                .next()
                .and_then(|l| serde_json::from_slice(l).ok())
                .unwrap_or_else(|| ProbeVerdict::Unknown {
                    reason: "the helper gave no verdict".into(),
                })
        })
        .collect()
}

/// Probes as files something can exec, kept while they run: close-on-exec memory files run
/// here, or, for the helper, a private directory (inheritable memory files where none is
/// writable).
struct ProbeFiles {
    /// One per probe, in order; or why none could be made.
    paths: Result<Vec<PathBuf>, String>,
    _work: Option<crate::inspection::selftest::Workdir>,
    _memfds: Vec<std::os::fd::OwnedFd>,
}

impl ProbeFiles {
    /// Close-on-exec memory files, run here by `/proc/self/fd/N` (exec opens the file before
    /// it closes them, and a probe is no script); `None` where one cannot be made.
    fn here<'i>(probes: impl Iterator<Item = (&'i str, &'i [u8])>) -> Option<ProbeFiles> {
        ProbeFiles::in_memory(probes, true).ok()
    }

    /// Memory files (`memory_program`), one per probe.
    fn in_memory<'i>(
        probes: impl Iterator<Item = (&'i str, &'i [u8])>,
        cloexec: bool,
    ) -> std::io::Result<ProbeFiles> {
        let mut memfds = Vec::new();
        let mut paths = Vec::new();
        for (name, bytes) in probes {
            let fd = memory_program(name, bytes, cloexec)?;
            paths.push(fd_path(&fd));
            memfds.push(fd);
        }
        Ok(ProbeFiles {
            paths: Ok(paths),
            _work: None,
            _memfds: memfds,
        })
    }

    /// Files for the helper: in a private directory under `$TMPDIR`, else (no directory is
    /// writable) memory files it inherits and runs by `/proc/self/fd/N`.
    fn for_helper<'i>(probes: impl Iterator<Item = (&'i str, &'i [u8])>) -> ProbeFiles {
        ProbeFiles::for_helper_in(&std::env::temp_dir(), probes)
    }

    /// `for_helper`, with the private directory under `base`.
    fn for_helper_in<'i>(
        base: &Path,
        probes: impl Iterator<Item = (&'i str, &'i [u8])>,
    ) -> ProbeFiles {
        let probes: Vec<(&str, &[u8])> = probes.collect();
        let work = crate::inspection::selftest::Workdir::in_dir(base);
        // A directory on a noexec mount would only make every probe fail: memory files then.
        let noexec = work.as_ref().is_ok_and(|w| {
            rustix::fs::statvfs(&w.path)
                .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC))
        });
        if let (Ok(w), false) = (&work, noexec) {
            let written: std::io::Result<Vec<PathBuf>> = probes
                .iter()
                .map(|(name, bytes)| w.write_exec(&format!("probe-{name}"), bytes))
                .collect();
            if let Ok(paths) = written {
                return ProbeFiles {
                    paths: Ok(paths),
                    _work: work.ok(),
                    _memfds: Vec::new(),
                };
            }
        }
        ProbeFiles::in_memory(probes.into_iter(), false).unwrap_or_else(|e| {
            let dir = work
                .as_ref()
                .err()
                .map_or(String::new(), |w| format!("{w}; "));
            ProbeFiles {
                paths: Err(format!(
                    "cannot write the probes: {dir}no memory file either: {e}"
                )),
                _work: None,
                _memfds: Vec::new(),
            }
        })
    }
}

/// The path by which this process (or a child that inherits it) reaches `fd`.
fn fd_path(fd: &std::os::fd::OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(fd)
    ))
}

/// Makes each arch's probe and starts them: here from memory files, or through the
/// `__probe-native` helper (the module doc says when).
fn start_probes(arches: &[&Arch], self_exe: &Path) -> StartedProbes {
    let images: Vec<Option<Vec<u8>>> = arches
        .iter()
        .map(|a| crate::inspection::probe::build(a).map(|bytes| mark_compat_probe(&bytes)))
        .collect();
    let made = || {
        arches
            .iter()
            .zip(&images)
            .filter_map(|(a, i)| Some((a.name.as_str(), i.as_deref()?)))
    };
    // The usual case: binfmt_misc is mounted here and none of its entries can take a probe
    // (none at boot; the usual patterns refuse the probes' EI_PAD). They run here then, from
    // memory files: no helper to exec, no namespaces, no directory to make and remove. The
    // instance exec consults may still hold more than this view (a parent's, an entry added
    // meanwhile), so only a probe that ran counts from here (`finish`).
    let here = visible_and_free(made().map(|(_, bytes)| bytes))
        .then(|| ProbeFiles::here(made()))
        .flatten();
    let (files, running) = match here {
        Some(files) => {
            let paths = files.paths.as_deref().unwrap_or_default();
            let running = Running::Here(paths.iter().map(|p| start_one(p)).collect());
            (files, running)
        }
        None => {
            let files = ProbeFiles::for_helper(made());
            let running = match &files.paths {
                Ok(paths) if paths.is_empty() => Running::Failed("no probe could be made".into()),
                Ok(paths) => Running::Helper(crate::inspection::selftest::start(helper_command(
                    self_exe, paths,
                ))),
                Err(why) => Running::Failed(why.clone()),
            };
            (files, running)
        }
    };
    StartedProbes {
        arches: arches.iter().map(|a| a.name.clone()).collect(),
        self_exe: self_exe.to_owned(),
        images,
        running,
        _files: files,
    }
}

/// The `__probe-native` helper's status when it cannot make a private instance to probe in:
/// the environment cannot do it (exit 3).
const NO_PRIVATE_INSTANCE: i32 = crate::error::ErrorKind::Environment.exit_code() as i32;

/// The hidden `__probe-native` helper: a new user + mount namespace with a fresh binfmt_misc
/// instance of its own (no entries, so no handler can take any exec), then each program is
/// run; prints one `ProbeVerdict` (JSON) per program on stdout. Returns the exit status and a
/// message for stderr.
pub fn probe_native_helper(programs: &[PathBuf]) -> (i32, String) {
    use nix::sched::{CloneFlags, unshare};
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let root = Path::new(crate::binfmt::kernel::DEFAULT_ROOT);
    let mut shared: Option<(Vec<crate::binfmt::kernel::KernelEntry>, bool)> = None;
    if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        // No user namespace (a seccomp filter, a sysctl): the probes run beside the instance
        // we are in, when none of its entries can take them.
        match shared_instance_view(root) {
            Ok(view) => shared = Some(view),
            Err(why) => {
                return (
                    NO_PRIVATE_INSTANCE,
                    format!(
                        "no user namespace (unshare: {e}), and the binfmt_misc instance cannot be read: {why}"
                    ),
                );
            }
        }
    } else {
        // Map ourselves to root, as `unshare --map-root-user` does (needed to mount).
        let maps = std::fs::write("/proc/self/setgroups", "deny")
            .and_then(|()| std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")))
            .and_then(|()| std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")));
        if let Err(e) = maps {
            return (
                NO_PRIVATE_INSTANCE,
                format!("cannot map ids in a user namespace: {e}"),
            );
        }
    }
    if shared.is_none() && root.is_dir() {
        // Without binfmt_misc in the kernel there is no such directory and no handler at all.
        use crate::binfmt::kernel::FreshInstanceError;
        match crate::binfmt::kernel::mount_fresh_instance(root) {
            Ok(()) => {}
            Err(FreshInstanceError::NotFresh(why)) => return (NO_PRIVATE_INSTANCE, why),
            Err(FreshInstanceError::Mount(e)) => match shared_instance_view(root) {
                // Linux < 6.7 has one instance for all: the probes run in it when none of its
                // entries can take them (the probes' EI_PAD byte keeps the usual patterns off).
                Ok(view) => shared = Some(view),
                Err(why) => {
                    return (
                        NO_PRIVATE_INSTANCE,
                        format!("{e}; and the shared one cannot be read: {why}"),
                    );
                }
            },
        }
    }
    let mut out = String::new();
    for v in run_each(programs, shared.as_ref()) {
        out += &serde_json::to_string(&v).unwrap_or_default();
        out.push('\n');
    }
    print!("{out}");
    (0, String::new())
}

/// Is binfmt_misc mounted at its usual place, with no entry that would take any of `probes`?
fn visible_and_free<'i>(mut probes: impl Iterator<Item = &'i [u8]>) -> bool {
    let root = Path::new(crate::binfmt::kernel::DEFAULT_ROOT);
    crate::binfmt::kernel::BinfmtFs::is_mounted(&crate::binfmt::kernel::ProcBinfmt::new(root))
        && shared_instance_view(root).is_ok_and(|view| {
            // Run by `/proc/self/fd/N`: a name with no extension, as the kernel sees it.
            probes.all(|bytes| taken_by_image(&view, bytes, Path::new("/proc/self/fd/0")).is_none())
        })
}

/// A binfmt_misc instance as `kernel::view` reads it: its entries, and whether it is enabled.
type InstanceView = (Vec<crate::binfmt::kernel::KernelEntry>, bool);

/// The entry of `view` that would take the program at `p`, as the kernel would choose.
fn taken_by(view: &InstanceView, p: &Path) -> Option<String> {
    taken_by_image(view, &read_header(p), p)
}

/// `taken_by`, for a program starting with `bytes`, run as `p`.
fn taken_by_image(view: &InstanceView, bytes: &[u8], p: &Path) -> Option<String> {
    let (entries, enabled) = view;
    let mut header = bytes[..bytes.len().min(BINPRM_BUF_SIZE)].to_vec();
    header.resize(BINPRM_BUF_SIZE, 0);
    crate::inspection::inspect::kernel_choice(entries, *enabled, &header, &p.to_string_lossy())
        .map(|k| crate::binfmt::registration::display_name(&k.name))
}

/// Runs each probe; one verdict each. `shared`: the instance they run beside (no private one),
/// whose entries are checked first: a probe one of them would take is not run.
/// All of them are started, then waited for: they run side by side.
fn run_each(programs: &[PathBuf], shared: Option<&InstanceView>) -> Vec<ProbeVerdict> {
    let started: Vec<Result<_, ProbeVerdict>> = programs
        .iter()
        .map(|p| match shared.and_then(|view| taken_by(view, p)) {
            Some(name) => Err(ProbeVerdict::Unknown {
                reason: format!(
                    "no private binfmt_misc instance (Linux < 6.7), and the entry {name} of the shared one would take the probe"
                ),
            }),
            None => Ok(start_one(p)),
        })
        .collect();
    started
        .into_iter()
        .map(|s| {
            s.map_or_else(
                |v| v,
                |child| verdict(child.and_then(crate::inspection::selftest::wait_for)),
            )
        })
        .collect()
}

/// Starts one probe, with an empty environment.
fn start_one(p: &Path) -> std::io::Result<std::process::Child> {
    let mut cmd = std::process::Command::new(p);
    std::os::unix::process::CommandExt::arg0(&mut cmd, crate::inspection::probe::ARGV0);
    cmd.env_clear();
    crate::inspection::selftest::start(cmd)
}

/// How a probe ended is its verdict.
fn verdict(ended: std::io::Result<crate::inspection::selftest::Outcome>) -> ProbeVerdict {
    match ended {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOEXEC.raw_os_error()) => {
            ProbeVerdict::NoLoader
        }
        Err(e) => ProbeVerdict::Unknown {
            reason: format!("exec: {e}"),
        },
        Ok(o) if o.code == Some(i32::from(crate::inspection::probe::ARGV0.as_bytes()[0])) => {
            ProbeVerdict::Ran {
                machine: crate::inspection::probe::reported_machine(&o.stdout),
            }
        }
        Ok(o) => ProbeVerdict::Unknown {
            reason: format!(
                "it ran but did not exit as the probe does (status {:?}, signal {:?})",
                o.code, o.signal
            ),
        },
    }
}

/// EI_PAD bytes (9..16 of the ELF identification) the compat probes carry: the kernel's ELF
/// loader ignores them, while the usual binfmt_misc patterns (ours, Debian's, systemd's)
/// require them zero, so no such entry takes these probes even where the one shared
/// binfmt_misc instance of Linux < 6.7 has entries.
pub const COMPAT_PROBE_PAD: &[u8; 7] = b"nativ?\x01";

/// A probe with `COMPAT_PROBE_PAD` in its EI_PAD bytes.
pub fn mark_compat_probe(probe: &[u8]) -> Vec<u8> {
    let mut v = probe.to_vec();
    if v.len() >= 16 {
        v[9..16].copy_from_slice(COMPAT_PROBE_PAD);
    }
    v
}

/// An executable memory file holding `bytes`: close-on-exec (run here) or inheritable (for
/// the helper).
fn memory_program(
    name: &str,
    bytes: &[u8],
    cloexec: bool,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let name = format!("binfmtctl-probe-{name}");
    // Close-on-exec while writable: no child started meanwhile keeps it open for writing.
    // Executable even where `vm.memfd_noexec` seals memory files by default (MFD_EXEC, Linux
    // >= 6.3; older kernels refuse the flag and make them executable anyway).
    let fd = match memfd_create(&name, MemfdFlags::CLOEXEC | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => memfd_create(&name, MemfdFlags::CLOEXEC)?,
        r => r?,
    };
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, bytes)?;
    // Kept open for reading only (inheritable unless `cloexec`): exec refuses a file open for
    // writing (ETXTBSY) on the kernels that deny write access during exec.
    use rustix::fs::{Mode, OFlags, open};
    let read = OFlags::RDONLY
        | if cloexec {
            OFlags::CLOEXEC
        } else {
            OFlags::empty()
        };
    let written = std::os::fd::OwnedFd::from(f);
    let reading = open(fd_path(&written), read, Mode::empty())?;
    drop(written);
    Ok(reading)
}

/// The entries of the binfmt_misc instance mounted at `root` (the shared one, before Linux
/// 6.7) and whether it is enabled; nothing mounted there: none (no entry can be seen, and with
/// the probes' EI_PAD the usual ones would not match anyway).
fn shared_instance_view(
    root: &Path,
) -> Result<(Vec<crate::binfmt::kernel::KernelEntry>, bool), String> {
    let fs = crate::binfmt::kernel::ProcBinfmt::new(root);
    crate::binfmt::kernel::view(&fs).map_err(|e| e.to_string())
}

/// The first bytes of a file, as the kernel's matcher sees them (zero-filled past the end).
fn read_header(p: &Path) -> Vec<u8> {
    let mut b = Vec::with_capacity(BINPRM_BUF_SIZE);
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.take(BINPRM_BUF_SIZE as u64).read_to_end(&mut b);
    }
    b.resize(BINPRM_BUF_SIZE, 0);
    b
}

/// Is this `/proc/self/uid_map` text the initial namespace's (every uid maps to itself)?
pub fn is_identity_map(uid_map: &str) -> bool {
    let f: Vec<&str> = uid_map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `systemctl` (or `nix`) planted earlier on root's PATH in a directory others can write
    /// is skipped: the safe one further on is what is run, by its absolute path.
    #[test]
    fn a_program_planted_earlier_on_path_is_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        let d = tempfile::tempdir().unwrap();
        mode(d.path(), 0o755);
        let (planted, safe) = (d.path().join("tmpbin"), d.path().join("bin"));
        for dir in [&planted, &safe] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("systemctl"), "#!/bin/sh\n").unwrap();
            mode(&dir.join("systemctl"), 0o755);
        }
        mode(&safe, 0o755);
        mode(&planted, 0o777);
        let path = std::env::join_paths([&planted, &safe]).unwrap();
        assert_eq!(
            find_safe_program(Some(&path), "systemctl"),
            Some(safe.join("systemctl"))
        );
        // Only the planted one on the path: none is run.
        let only = std::env::join_paths([&planted]).unwrap();
        assert_eq!(find_safe_program(Some(&only), "systemctl"), None);
        // A sticky world-writable directory (like /tmp) is fine: only the owner can swap.
        mode(&planted, 0o1777);
        assert_eq!(
            find_safe_program(Some(&path), "systemctl"),
            Some(planted.join("systemctl"))
        );
        assert_eq!(find_safe_program(None, "systemctl"), None);
    }

    /// A kernel config as `procfs` reads it from a config file's text.
    pub(crate) fn kernel_config(
        text: &str,
    ) -> std::collections::HashMap<String, procfs::ConfigSetting> {
        use procfs::FromBufRead;
        procfs::KernelConfig::from_buf_read(text.as_bytes())
            .unwrap()
            .0
    }

    fn x86_64_facts(config: Option<&str>, cmdline: &str) -> HostFacts {
        let mut hdr = vec![0u8; 64];
        hdr[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        hdr[16] = 3;
        hdr[18] = 62;
        HostFacts {
            exe_header: hdr,
            machine: "x86_64".into(),
            kernel_config: config.map(kernel_config),
            cmdline: cmdline.into(),
            ..Default::default()
        }
    }

    fn names(v: Vec<NativeArch>) -> Vec<String> {
        v.into_iter().map(|n| n.arch).collect()
    }

    #[test]
    fn x86_64_with_ia32() {
        let t = Table::builtin();
        let f = x86_64_facts(Some("CONFIG_X=y\nCONFIG_IA32_EMULATION=y\n"), "quiet");
        assert_eq!(names(f.native(t)), ["x86_64", "i386", "i486"]);
    }

    #[test]
    fn x86_64_without_ia32_or_disabled_at_boot() {
        let t = Table::builtin();
        let f = x86_64_facts(Some("# CONFIG_IA32_EMULATION is not set\n"), "");
        assert_eq!(names(f.native(t)), ["x86_64"]);
        let f = x86_64_facts(Some("CONFIG_IA32_EMULATION=y\n"), "ia32_emulation=false");
        assert_eq!(names(f.native(t)), ["x86_64"]);
        let cfg = "CONFIG_IA32_EMULATION=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n";
        assert_eq!(names(x86_64_facts(Some(cfg), "").native(t)), ["x86_64"]);
        let on = x86_64_facts(Some(cfg), "ia32_emulation=1").native(t);
        assert_eq!(names(on), ["x86_64", "i386", "i486"]);
    }

    fn verdict(machine: &str) -> ProbeVerdict {
        ProbeVerdict::Ran {
            machine: machine.into(),
        }
    }

    #[test]
    fn the_probe_beats_the_config_and_the_user_beats_both() {
        let t = Table::builtin();
        let over = NativeOverride::default();
        // An arm64 host whose CPU has no AArch32: the config says compat, the probe says no.
        let mut f = x86_64_facts(Some("CONFIG_COMPAT=y\n"), "");
        f.exe_header[18] = 183; // EM_AARCH64
        f.machine = "aarch64".into();
        let host = f.host_arch(t).unwrap();
        assert_eq!(host.name, "aarch64");
        assert!(!host.compat.is_empty(), "aarch64 has compat arches");
        let (on, why) = f.compat_enabled(host, f.kernel_config.as_ref());
        assert!(on, "the config alone says native");
        let hint = Hint::known(on, why);
        f.compat_probes = host
            .compat
            .iter()
            .map(|c| (c.clone(), ProbeVerdict::NoLoader))
            .collect();
        assert_eq!(names(f.native_with(t, &over)), ["aarch64"]);
        let (_, why) = decide_compat("arm", Some(&ProbeVerdict::NoLoader), &hint, true, &over);
        assert!(
            why.contains("ENOEXEC") && why.contains("hint: kernel config CONFIG_COMPAT=y"),
            "{why}"
        );
        // x86_64 built without ia32: the probe ran anyway, so it is native (the evidence wins).
        let mut f = x86_64_facts(Some("# CONFIG_IA32_EMULATION is not set\n"), "");
        f.compat_probes = vec![("i386".into(), verdict("x86_64"))];
        let n = f.native_with(t, &over);
        assert_eq!(names(n.clone()), ["x86_64", "i386"]);
        assert!(
            n[1].evidence.contains("hint: kernel built without"),
            "{}",
            n[1].evidence
        );
        // A probe that could not tell leaves it to the config.
        let mut f = x86_64_facts(Some("CONFIG_IA32_EMULATION=y\n"), "");
        let unknown = ProbeVerdict::Unknown {
            reason: "no user namespace".into(),
        };
        f.compat_probes = vec![("i386".into(), unknown.clone()), ("i486".into(), unknown)];
        let n = f.native_with(t, &over);
        assert_eq!(names(n.clone()), ["x86_64", "i386", "i486"]);
        assert!(
            n[1].evidence
                .contains("the probe could not tell: no user namespace")
        );
        // The user's word beats the probe, both ways.
        f.compat_probes = vec![("i386".into(), verdict("x86_64"))];
        let not = NativeOverride {
            native: vec![],
            not_native: vec!["i386".into()],
        };
        assert_eq!(names(f.native_with(t, &not)), ["x86_64", "i486"]);
        f.compat_probes = vec![("i386".into(), ProbeVerdict::NoLoader)];
        let yes = NativeOverride {
            native: vec!["i386".into()],
            not_native: vec![],
        };
        let n = f.native_with(t, &yes);
        assert_eq!(names(n.clone()), ["x86_64", "i386", "i486"]);
        assert_eq!(n[1].evidence, "--native says so");
    }

    /// `gather_without_config` leaves the config unread: a probe that ran or got ENOEXEC
    /// decides without it (no hint beside the verdict), and an arch left to the config has it
    /// read then.
    #[test]
    fn the_config_is_read_only_for_an_arch_left_to_it() {
        let t = Table::builtin();
        let over = NativeOverride::default();
        // What would be read is not what `kernel_config` holds: it is never looked at.
        let mut f = x86_64_facts(Some("# CONFIG_IA32_EMULATION is not set\n"), "");
        f.config_unread = true;
        f.compat_probes = vec![
            ("i386".into(), verdict("x86_64")),
            ("i486".into(), ProbeVerdict::NoLoader),
        ];
        let n = f.native_with(t, &over);
        assert_eq!(names(n.clone()), ["x86_64", "i386"]);
        assert_eq!(
            n[1].evidence,
            "its probe ran natively (uname -m x86_64) with no binfmt_misc entry to take it"
        );
        // Left to the config: it is worked out then, once.
        let asked = std::cell::Cell::new(0);
        let work = || {
            asked.set(asked.get() + 1);
            (
                false,
                "kernel built without CONFIG_IA32_EMULATION".to_owned(),
            )
        };
        let hint = Hint::lazy(&work);
        let (native, why) = decide_compat("i386", Some(&verdict("x86_64")), &hint, false, &over);
        assert!(native && !why.contains("hint"), "{why}");
        assert_eq!(asked.get(), 0);
        let unknown = ProbeVerdict::Unknown {
            reason: "no user namespace".into(),
        };
        let (native, why) = decide_compat("i486", Some(&unknown), &hint, false, &over);
        assert!(!native);
        assert_eq!(
            why,
            "kernel built without CONFIG_IA32_EMULATION (the probe could not tell: no user namespace)"
        );
        assert_eq!(asked.get(), 1);
        // Not shown beside a later verdict either: the evidence does not depend on the order.
        let (native, why) =
            decide_compat("i386", Some(&ProbeVerdict::NoLoader), &hint, false, &over);
        assert!(!native && !why.contains("hint"), "{why}");
        assert_eq!(asked.get(), 1);
        // Gathered with the config, the hint is shown beside every verdict.
        let mut f = HostFacts::gather();
        assert!(!f.config_unread);
        f.kernel_config = Some(kernel_config("# CONFIG_IA32_EMULATION is not set\n"));
        f.exe_header = x86_64_facts(None, "").exe_header;
        f.machine = "x86_64".into();
        f.compat_probes = vec![("i386".into(), verdict("x86_64"))];
        let n = f.native_with(t, &over);
        assert!(
            n[1].evidence
                .ends_with("; hint: kernel built without CONFIG_IA32_EMULATION"),
            "{}",
            n[1].evidence
        );
    }

    /// The helper's probes: a new file of our own in a private directory, else (no directory
    /// can be made) a memory file the helper inherits (not close-on-exec), open read-only.
    #[test]
    fn the_helper_gets_files_it_can_open() {
        let i386 = Table::builtin().get("i386").unwrap();
        let bytes = mark_compat_probe(&crate::inspection::probe::build(i386).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let files = ProbeFiles::for_helper_in(dir.path(), [("i386", &bytes[..])].into_iter());
        let paths = files.paths.as_ref().unwrap();
        assert!(paths[0].starts_with(dir.path()) && paths[0].ends_with("probe-i386"));
        assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
        let work = paths[0].parent().unwrap().to_owned();
        drop(files);
        assert!(!work.exists(), "the private directory goes with them");

        let gone = dir.path().join("gone");
        let files = ProbeFiles::for_helper_in(&gone, [("i386", &bytes[..])].into_iter());
        let paths = files.paths.as_ref().unwrap();
        assert!(paths[0].starts_with("/proc/self/fd/"), "{paths:?}");
        assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes);
        let fd = &files._memfds[0];
        let fd_flags = rustix::io::fcntl_getfd(fd).unwrap();
        assert!(
            !fd_flags.contains(rustix::io::FdFlags::CLOEXEC),
            "inherited by the helper"
        );
        let fl = rustix::fs::fcntl_getfl(fd).unwrap();
        assert_eq!(fl & rustix::fs::OFlags::RWMODE, rustix::fs::OFlags::RDONLY);
        // Run here: close-on-exec, read-only.
        let here = ProbeFiles::here([("i386", &bytes[..])].into_iter()).unwrap();
        let fd = &here._memfds[0];
        assert!(
            rustix::io::fcntl_getfd(fd)
                .unwrap()
                .contains(rustix::io::FdFlags::CLOEXEC)
        );
        let fl = rustix::fs::fcntl_getfl(fd).unwrap();
        assert_eq!(fl & rustix::fs::OFlags::RWMODE, rustix::fs::OFlags::RDONLY);
    }

    fn aarch64_facts(config: Option<&str>, machine: &str) -> HostFacts {
        let mut f = x86_64_facts(config, "");
        f.exe_header[18] = 183; // EM_AARCH64
        f.machine = machine.into();
        f
    }

    /// On arm64, arm is native only when its probe ran: never from `uname -m`, never from the
    /// kernel config alone (a64fx, Neoverse N2, Apple M1 have no AArch32 at EL0 whatever
    /// CONFIG_COMPAT says), and an old kernel whose probe cannot tell counts it not native.
    #[test]
    fn arm64_host_counts_arm_native_only_when_its_probe_ran() {
        let t = Table::builtin();
        let over = NativeOverride::default();
        // uname -m says armv8l (a 32-bit personality): the header still says aarch64.
        let mut f = aarch64_facts(
            Some(
                "CONFIG_COMPAT=y
",
            ),
            "armv8l",
        );
        assert_eq!(f.host_arch(t).unwrap().name, "aarch64");
        // No probe ran (or it could not tell, e.g. Linux 6.1 where an entry took it).
        assert_eq!(names(f.native_with(t, &over)), ["aarch64"]);
        f.compat_probes = vec![(
            "arm".into(),
            ProbeVerdict::Unknown {
                reason: "no private binfmt_misc instance".into(),
            },
        )];
        let n = f.native_with(t, &over);
        assert_eq!(names(n), ["aarch64"]);
        let (native, why) = decide_compat(
            "arm",
            f.compat_probes.first().map(|p| &p.1),
            &Hint::known(true, "kernel config CONFIG_COMPAT=y"),
            true,
            &over,
        );
        assert!(!native);
        assert!(
            why.contains("not proven") && why.contains("--native arm"),
            "{why}"
        );
        // The probe ran: the CPU has AArch32 at EL0.
        f.compat_probes = vec![("arm".into(), verdict("armv8l"))];
        assert_eq!(names(f.native_with(t, &over)), ["aarch64", "arm"]);
        // ENOEXEC: no AArch32.
        f.compat_probes = vec![("arm".into(), ProbeVerdict::NoLoader)];
        assert_eq!(names(f.native_with(t, &over)), ["aarch64"]);
        // The user may say otherwise.
        let yes = NativeOverride {
            native: vec!["arm".into()],
            not_native: vec![],
        };
        assert_eq!(names(f.native_with(t, &yes)), ["aarch64", "arm"]);
        // Without CONFIG_COMPAT nothing runs, whatever the probe could not tell.
        let mut f = aarch64_facts(
            Some(
                "# CONFIG_COMPAT is not set
",
            ),
            "aarch64",
        );
        f.compat_probes = vec![("arm".into(), verdict("armv7l"))];
        assert_eq!(names(f.native_with(t, &over)), ["aarch64", "arm"]);
        f.compat_probes.clear();
        assert_eq!(names(f.native_with(t, &over)), ["aarch64"]);
        // An x86_64 host is unchanged: a silent probe leaves i386 to the config.
        let n = x86_64_facts(
            Some(
                "CONFIG_IA32_EMULATION=y
",
            ),
            "",
        )
        .native(t);
        assert_eq!(names(n), ["x86_64", "i386", "i486"]);
    }

    /// The compat probes carry a non-zero EI_PAD that the usual binfmt_misc patterns refuse,
    /// so on Linux < 6.7 an installed qemu-arm entry does not take the arm probe.
    #[test]
    fn marked_probes_escape_the_usual_entries() {
        let t = Table::builtin();
        for name in ["arm", "i386", "armeb", "riscv32"] {
            let a = t.get(name).unwrap();
            let probe = crate::inspection::probe::build(a).unwrap();
            let mut hdr = probe.clone();
            hdr.resize(BINPRM_BUF_SIZE, 0);
            assert!(
                a.matcher().matches_header(&hdr),
                "{name}: the plain probe matches"
            );
            let mut marked = mark_compat_probe(&probe);
            assert_eq!(marked.len(), probe.len());
            assert_eq!(&marked[9..16], COMPAT_PROBE_PAD);
            assert_eq!(marked[..9], probe[..9]);
            assert_eq!(marked[16..], probe[16..]);
            marked.resize(BINPRM_BUF_SIZE, 0);
            assert!(
                !a.matcher().matches_header(&marked),
                "{name}: the marked probe escapes the table's pattern"
            );
        }
        // Debian's qemu-arm pattern (qemu-user-static's binfmt file) too.
        let debian = crate::binfmt::registration::Registration::parse_record(
            r":qemu-arm:M::\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/arm-binfmt-P:POCF",
        )
        .unwrap();
        let probe = crate::inspection::probe::build(t.get("arm").unwrap()).unwrap();
        let mut marked = mark_compat_probe(&probe);
        marked.resize(BINPRM_BUF_SIZE, 0);
        assert!(!debian.matcher.matches_header(&marked));
    }

    #[test]
    fn unknown_config_assumes_compat() {
        let t = Table::builtin();
        let n = x86_64_facts(None, "").native(t);
        assert_eq!(n[1].arch, "i386");
        assert!(n[1].evidence.starts_with("assumed"), "{}", n[1].evidence);
    }

    #[test]
    fn header_beats_uname() {
        let t = Table::builtin();
        let mut f = x86_64_facts(None, "");
        f.machine = "aarch64".into();
        assert_eq!(f.host_arch(t).unwrap().name, "x86_64");
        f.exe_header.clear();
        assert_eq!(f.host_arch(t).unwrap().name, "aarch64");
    }

    #[test]
    fn uid_map_identity() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1000          1\n"));
    }

    #[test]
    fn native_overrides_name_compat_arches_once() {
        let t = Table::builtin();
        let h = x86_64_facts(None, "");
        let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let o = NativeOverride::resolve(t, &h, &strs(&["i686"]), &[]).unwrap();
        assert_eq!(o.native, ["i386"]);
        let e = NativeOverride::resolve(t, &h, &strs(&["arm64"]), &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--native arm64: aarch64 is not a compat arch of this host"),
            "{e}"
        );
        let e = NativeOverride::resolve(t, &h, &strs(&["i386"]), &strs(&["x86"])).unwrap_err();
        assert!(
            matches!(e, OverrideError::Both(ref a) if a == "i386"),
            "{e}"
        );
        let e = NativeOverride::resolve(t, &h, &[], &strs(&["zzz"])).unwrap_err();
        assert_eq!(
            crate::exit::classify(&e),
            Some(crate::error::ErrorKind::BadInput)
        );
    }
}
