//! `build`: which way to build for a foreign arch (`choose`, pure), the facts it decides on
//! (`cross_vars`, `hybrid_check`) and the cross build itself (`run_cross`). The emulated and
//! hybrid ways run through `ops::emulate`.

use std::path::{Path, PathBuf};

use crate::binfmt::arch::Arch;
use crate::error::{Classify, ErrorKind};

use super::{Host, Search};

/// The strategy the user asked for (`--strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Auto,
    Cross,
    Emulate,
    Hybrid,
}

/// The way a build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The host's cross toolchain, at native speed.
    Cross,
    /// An emulated chroot of the rootfs.
    Emulate,
    /// The emulated chroot with the host's native cross compiler (`run --accelerate`).
    Hybrid,
}

/// Why `auto` chose what it chose (the line `build` prints on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The host's native toolchain (named) matches the rootfs's compiler.
    HybridMatches { toolchain: String },
    /// A cross toolchain for the arch is installed.
    CrossInstalled { arch: String },
    /// The host runs the rootfs's arch natively: its chroot needs no emulation, and hybrid
    /// has nothing to speed up.
    Native { arch: String },
    /// No cross toolchain (why), and hybrid cannot serve either (why not, when it was tried).
    NoCross {
        why: String,
        no_hybrid: Option<String>,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::HybridMatches { toolchain } => write!(
                f,
                "hybrid (the host's native {toolchain} matches the rootfs's compiler: emulated chroot, native compiler)"
            ),
            Reason::Native { arch } => write!(
                f,
                "emulate ({arch} runs natively on this host: the chroot runs the rootfs's own compiler at native speed; hybrid has nothing to speed up)"
            ),
            Reason::CrossInstalled { arch } => write!(
                f,
                "cross ({} {arch} cross toolchain is installed; it runs at native speed)",
                if arch.starts_with(['a', 'e', 'i', 'o', 'u', 'x']) {
                    "an"
                } else {
                    "a"
                }
            ),
            Reason::NoCross { why, no_hybrid } => {
                write!(f, "emulate ({why}")?;
                if let Some(e) = no_hybrid {
                    write!(f, "; no hybrid: {e}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// The strategy a build runs with, and (for `auto`) why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub strategy: Strategy,
    pub reason: Option<Reason>,
}

impl Strategy {
    /// The `--accelerate` mode the emulated chroot runs with: hybrid only when the versions
    /// match (never forced).
    pub fn accelerate(self) -> Option<crate::ops::emulate::Accelerate> {
        (self == Strategy::Hybrid).then_some(crate::ops::emulate::Accelerate::On)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `--strategy cross` (or auto without a rootfs) with no cross toolchain.
    #[error("{0}")]
    NoCross(String),
    #[error("{why}; or pass --rootfs to build in an emulated chroot")]
    NothingAvailable { why: String },
    #[error("--strategy {strategy} needs --rootfs (create one with `binfmtctl rootfs create`)")]
    NeedsRootfs { strategy: &'static str },
    #[error("--src: {0}")]
    Src(std::io::Error),
    /// A `--rootfs` that cannot be used, whichever strategy would run.
    #[error("--rootfs {path}: {why}")]
    Rootfs { path: PathBuf, why: String },
    /// The build command cannot be started.
    #[error("{program}: {cause}")]
    Spawn {
        program: String,
        cause: std::io::Error,
    },
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::NoCross(_) | BuildError::NothingAvailable { .. } => ErrorKind::Environment,
            BuildError::NeedsRootfs { .. }
            | BuildError::Src(_)
            | BuildError::Spawn { .. }
            | BuildError::Rootfs { .. } => ErrorKind::BadInput,
        }
    }
}

/// A `--rootfs` given to `build` must be usable whichever strategy runs (before, a missing one
/// or one of another arch was silently ignored when cross won): it must exist, and a directory
/// must be of the build's arch (a tarball's arch is checked when it is unpacked).
fn usable_rootfs(
    host: &Host,
    arch: &crate::binfmt::arch::Arch,
    rootfs: &Path,
) -> Result<(), BuildError> {
    let bad = |why: String| BuildError::Rootfs {
        path: rootfs.to_owned(),
        why,
    };
    let meta = std::fs::metadata(rootfs).map_err(|e| {
        bad(format!(
            "{e}: give a root file system (directory or tarball) of {}, or leave --rootfs out to cross-compile",
            arch.name
        ))
    })?;
    if meta.is_dir() {
        match crate::emulation::rootfs::detect_arch(host.table, rootfs) {
            Ok((found, from)) if found.name != arch.name => {
                return Err(bad(format!(
                    "it is {} (its {from}), but --arch says {}",
                    found.name, arch.name
                )));
            }
            Ok(_) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    Ok(())
}

/// The build's strategy. `cross`: whether a cross toolchain serves the arch (or why not);
/// `rootfs`: whether --rootfs was given; `hybrid`: for `auto` with a rootfs, whether hybrid
/// can serve (the native toolchain's name, or why not); `native`: whether the host runs the arch
/// natively (then `auto` with a rootfs builds in its chroot, which nothing emulates, and never
/// picks hybrid; an explicit `hybrid` is left to the run, which refuses it). Pure: the facts
/// are gathered before.
pub fn choose(
    requested: Requested,
    arch: &str,
    cross: Result<(), &str>,
    rootfs: bool,
    hybrid: Option<Result<&str, &str>>,
    native: bool,
) -> Result<Choice, BuildError> {
    let chosen = |strategy, reason| Ok(Choice { strategy, reason });
    match (requested, cross, rootfs) {
        (Requested::Cross, Err(why), _) => Err(BuildError::NoCross(why.to_owned())),
        (Requested::Cross, Ok(()), _) => chosen(Strategy::Cross, None),
        (Requested::Emulate, _, false) => Err(BuildError::NeedsRootfs {
            strategy: "emulate",
        }),
        (Requested::Hybrid, _, false) => Err(BuildError::NeedsRootfs { strategy: "hybrid" }),
        (Requested::Emulate, _, true) => chosen(Strategy::Emulate, None),
        (Requested::Hybrid, _, true) => chosen(Strategy::Hybrid, None),
        (Requested::Auto, _, true) if native => chosen(
            Strategy::Emulate,
            Some(Reason::Native {
                arch: arch.to_owned(),
            }),
        ),
        (Requested::Auto, _, true) if matches!(hybrid, Some(Ok(_))) => chosen(
            Strategy::Hybrid,
            Some(Reason::HybridMatches {
                toolchain: hybrid.and_then(Result::ok).unwrap_or_default().to_owned(),
            }),
        ),
        (Requested::Auto, Ok(()), _) => chosen(
            Strategy::Cross,
            Some(Reason::CrossInstalled {
                arch: arch.to_owned(),
            }),
        ),
        (Requested::Auto, Err(why), true) => chosen(
            Strategy::Emulate,
            Some(Reason::NoCross {
                why: why.to_owned(),
                no_hybrid: hybrid.and_then(Result::err).map(str::to_owned),
            }),
        ),
        (Requested::Auto, Err(why), false) => Err(BuildError::NothingAvailable {
            why: why.to_owned(),
        }),
    }
}

/// The cross toolchain for an arch and its environment, or why there is none. Test binaries
/// run through our emulator (any checked interpreter; F is not needed here).
pub fn cross_vars(
    host: &Host,
    search: &Search,
    arch: &Arch,
    path_env: &std::ffi::OsStr,
) -> Result<(crate::emulation::cross::Toolchain, Vec<(String, String)>), String> {
    let tc = crate::emulation::cross::find(arch, path_env, Path::new("/usr")).ok_or_else(|| {
        format!(
            "no cross toolchain for {} found on PATH: {}",
            arch.name,
            crate::emulation::cross::package_hint(arch)
        )
    })?;
    let runner = host
        .requirements(false)
        .ok()
        .map(|req| host.discover(arch, &search.dirs(), &req))
        .and_then(|d| d.chosen().map(|c| c.facts.path.clone()));
    let vars = crate::emulation::cross::env(&tc, runner.as_deref());
    Ok((tc, vars))
}

/// Whether hybrid can serve a build with this rootfs (a directory; a tarball is judged once
/// unpacked, by the run itself): the native toolchain's name, or why not.
pub fn hybrid_check(
    arch: &Arch,
    rootfs: &Path,
    path_env: &std::ffi::OsStr,
) -> Result<String, String> {
    if !rootfs.is_dir() {
        return Err(format!(
            "{} is not a directory (pass --strategy hybrid to try it on a tarball)",
            rootfs.display()
        ));
    }
    let root = std::fs::canonicalize(rootfs).map_err(|e| e.to_string())?;
    let inj = crate::ops::emulate::accelerate_plan(arch, &root, false, path_env)
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    Ok(inj
        .summary
        .strip_prefix("native ")
        .and_then(|s| s.split(" from the host").next())
        .unwrap_or(&inj.summary)
        .to_owned())
}

/// The source directory (default: the current one), absolute.
pub fn source_dir(src: Option<&Path>) -> Result<PathBuf, BuildError> {
    std::fs::canonicalize(src.unwrap_or(Path::new("."))).map_err(BuildError::Src)
}

/// Runs the build command on the host in `src` with the cross toolchain's environment: its
/// exit status as a shell reports it.
pub fn run_cross(
    command: &[String],
    src: &Path,
    vars: Vec<(String, String)>,
) -> Result<i32, BuildError> {
    let (prog, rest) = command.split_first().ok_or_else(|| BuildError::Spawn {
        program: String::new(),
        cause: std::io::Error::other("no command"),
    })?;
    let status = std::process::Command::new(prog)
        .args(rest)
        .current_dir(src)
        .envs(vars)
        .status()
        .map_err(|cause| BuildError::Spawn {
            program: prog.clone(),
            cause,
        })?;
    Ok(crate::error::exit_status_code(status).unwrap_or(crate::error::signal_exit_code(0)))
}

/// `build`'s request.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The arch, in any spelling.
    pub arch: String,
    pub strategy: Requested,
    /// The rootfs of the emulated and hybrid paths (directory or tarball).
    pub rootfs: Option<PathBuf>,
    /// The source directory (default: the current one); bound at /src in the chroot.
    pub src: Option<PathBuf>,
    pub command: Vec<String>,
    /// Use the host's handler even when binfmtctl would not register it (`--host-handlers`).
    pub host_handlers: bool,
    /// `--cpu MODEL`: QEMU_CPU for the emulated paths.
    pub cpu: Option<String>,
}

/// `build`: the strategy chosen (the reason, when there is one, goes to `events` as a note),
/// then the build run with the cross toolchain on the host or in the emulated chroot of the
/// rootfs with the source at /src. Returns the build command's exit status.
pub fn build(
    fs: &dyn crate::binfmt::kernel::BinfmtFs,
    host: &Host,
    search: &Search,
    req: &BuildRequest,
    events: &mut dyn super::emulate::Events,
) -> anyhow::Result<i32> {
    use super::emulate as em;
    let arch = host.table.resolve(&req.arch)?;
    let src = source_dir(req.src.as_deref())?;
    if let Some(r) = &req.rootfs {
        usable_rootfs(host, arch, r)?;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cross = cross_vars(host, search, arch, &path);
    // With a rootfs, auto tries hybrid first: the chroot's faithfulness at native speed; not
    // for an arch the host runs natively, whose chroot emulates nothing.
    let native = host.is_native(&arch.name).is_some();
    let hybrid = match (req.strategy, &req.rootfs) {
        (Requested::Auto, Some(r)) if !native => Some(hybrid_check(arch, r, &path)),
        _ => None,
    };
    let choice = choose(
        req.strategy,
        &arch.name,
        cross.as_ref().map(|_| ()).map_err(String::as_str),
        req.rootfs.is_some(),
        hybrid
            .as_ref()
            .map(|h| h.as_deref().map_err(String::as_str)),
        native,
    )?;
    if let Some(reason) = &choice.reason {
        events.note(&format!("build: {reason}"));
    }
    match (choice.strategy, cross, &req.rootfs) {
        (Strategy::Cross, Ok((_, vars)), _) => Ok(run_cross(&req.command, &src, vars)?),
        (Strategy::Cross, Err(why), _) => Err(BuildError::NoCross(why).into()),
        (strategy, _, Some(rootfs)) => {
            let run = em::RunRequest {
                rootfs: rootfs.clone(),
                arch: Some(arch.name.clone()),
                bind: vec![format!("{}:/src", src.display())],
                workdir: Some("/src".into()),
                accelerate: strategy.accelerate(),
                command: req.command.clone(),
                host_handlers: req.host_handlers,
                cpu: req.cpu.clone(),
                ..Default::default()
            };
            let emulated = em::prepare(fs, host, search, &run, events)?;
            Ok(em::run(&emulated)?)
        }
        (_, _, None) => unreachable!("choose requires --rootfs for the emulated strategies"),
    }
}

/// `cross env`: the environment build systems read for cross-compiling to `arch`.
pub fn cross_env(
    host: &Host,
    search: &Search,
    arch: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let arch = host.table.resolve(arch)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let (_, vars) = cross_vars(host, search, arch, &path).map_err(BuildError::NoCross)?;
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_CROSS: Result<(), &str> = Err("no cross toolchain for aarch64 found on PATH: x");

    #[test]
    fn auto_prefers_hybrid_when_the_versions_match() {
        for cross in [Ok(()), NO_CROSS] {
            let c = choose(
                Requested::Auto,
                "aarch64",
                cross,
                true,
                Some(Ok("gcc-12 12.2")),
                false,
            )
            .unwrap();
            assert_eq!(c.strategy, Strategy::Hybrid);
            assert_eq!(
                c.reason.unwrap().to_string(),
                "hybrid (the host's native gcc-12 12.2 matches the rootfs's compiler: emulated chroot, native compiler)"
            );
            assert_eq!(
                c.strategy.accelerate(),
                Some(crate::ops::emulate::Accelerate::On)
            );
        }
    }

    #[test]
    fn auto_takes_cross_when_hybrid_cannot_serve() {
        // Versions differ (hybrid refused), or no rootfs at all: the toolchain.
        for (rootfs, hybrid) in [(true, Some(Err("versions differ"))), (false, None)] {
            let c = choose(Requested::Auto, "aarch64", Ok(()), rootfs, hybrid, false).unwrap();
            assert_eq!(c.strategy, Strategy::Cross);
            assert_eq!(
                c.reason.unwrap().to_string(),
                "cross (an aarch64 cross toolchain is installed; it runs at native speed)"
            );
            assert_eq!(c.strategy.accelerate(), None);
        }
    }

    #[test]
    fn auto_emulates_without_a_toolchain_and_says_why_not_hybrid() {
        let c = choose(
            Requested::Auto,
            "aarch64",
            NO_CROSS,
            true,
            Some(Err("versions differ")),
            false,
        )
        .unwrap();
        assert_eq!(c.strategy, Strategy::Emulate);
        assert_eq!(
            c.reason.unwrap().to_string(),
            "emulate (no cross toolchain for aarch64 found on PATH: x; no hybrid: versions differ)"
        );
        let c = choose(Requested::Auto, "aarch64", NO_CROSS, true, None, false).unwrap();
        assert_eq!(
            c.reason.unwrap().to_string(),
            "emulate (no cross toolchain for aarch64 found on PATH: x)"
        );
        assert_eq!(c.strategy.accelerate(), None);
    }

    /// A rootfs of an arch the host runs natively (i386 on x86_64): auto never picks hybrid
    /// (the run would refuse it), even when a cross gcc of the same version is installed and
    /// the hybrid check passed; it builds in the chroot and says why.
    #[test]
    fn auto_never_picks_hybrid_for_a_native_arch() {
        for cross in [Ok(()), NO_CROSS] {
            for hybrid in [Some(Ok("gcc-12 12.2")), Some(Err("x")), None] {
                let c = choose(Requested::Auto, "i386", cross, true, hybrid, true).unwrap();
                assert_eq!(c.strategy, Strategy::Emulate);
                assert_eq!(c.strategy.accelerate(), None);
                assert_eq!(
                    c.reason.unwrap().to_string(),
                    "emulate (i386 runs natively on this host: the chroot runs the rootfs's own compiler at native speed; hybrid has nothing to speed up)"
                );
            }
        }
        // Without a rootfs, the cross toolchain as before.
        let c = choose(Requested::Auto, "i386", Ok(()), false, None, true).unwrap();
        assert_eq!(c.strategy, Strategy::Cross);
        // Hybrid asked for explicitly: left to the run, which refuses it with its message.
        let c = choose(Requested::Hybrid, "i386", Ok(()), true, None, true).unwrap();
        assert_eq!(c.strategy, Strategy::Hybrid);
    }

    #[test]
    fn auto_without_toolchain_or_rootfs_is_refused() {
        let e = choose(Requested::Auto, "aarch64", NO_CROSS, false, None, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Environment);
        assert_eq!(
            e.to_string(),
            "no cross toolchain for aarch64 found on PATH: x; or pass --rootfs to build in an emulated chroot"
        );
    }

    #[test]
    fn explicit_strategies() {
        let c = choose(Requested::Cross, "aarch64", Ok(()), true, None, false).unwrap();
        assert_eq!((c.strategy, c.reason), (Strategy::Cross, None));
        let e = choose(Requested::Cross, "aarch64", NO_CROSS, true, None, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Environment);
        assert_eq!(
            e.to_string(),
            "no cross toolchain for aarch64 found on PATH: x"
        );
        // Hybrid asked for: tried even when the versions may differ (the run decides; it is
        // never forced).
        let c = choose(Requested::Hybrid, "aarch64", NO_CROSS, true, None, false).unwrap();
        assert_eq!((c.strategy, c.reason), (Strategy::Hybrid, None));
        assert_eq!(
            c.strategy.accelerate(),
            Some(crate::ops::emulate::Accelerate::On)
        );
        let c = choose(Requested::Emulate, "aarch64", Ok(()), true, None, false).unwrap();
        assert_eq!((c.strategy, c.reason), (Strategy::Emulate, None));
        for (r, name) in [
            (Requested::Emulate, "emulate"),
            (Requested::Hybrid, "hybrid"),
        ] {
            let e = choose(r, "aarch64", Ok(()), false, None, false).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput);
            assert_eq!(
                e.to_string(),
                format!(
                    "--strategy {name} needs --rootfs (create one with `binfmtctl rootfs create`)"
                )
            );
        }
    }
}
