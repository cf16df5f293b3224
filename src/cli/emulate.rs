//! Commands for building and running foreign code: rootfs create, run, cross env, build.

use super::*;

/// The registration record for a private binfmt_misc instance: the arch's checked, static
/// interpreter with F (opened at registration, so it works inside the chroot).
pub(super) fn private_handler(ctx: &Ctx, arch: &Arch) -> Result<String> {
    let req = ctx.requirements(true)?;
    let d = interpreter::discover(arch, &ctx.search_dirs(), &req);
    let c = d
        .chosen()
        .ok_or_else(|| BadInput(format!("{}: {}", arch.name, d.refusal())))?;
    // The resolved path: the file itself, never a symlink.
    let reg = arch.registration(&c.facts.resolved.to_string_lossy(), Flags::DEFAULT);
    reg.to_record()
        .with_context(|| format!("the record for {}", reg.name))
}

pub(super) fn require_private_binfmt(what: &str) -> Result<()> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    if crate::emulation::sandbox::kernel_has_private_binfmt(&release) {
        Ok(())
    } else {
        Err(Unsupported(format!(
            "{what} needs a private binfmt_misc instance, which Linux {release} lacks (needs >= 6.7)"
        ))
        .into())
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn rootfs_create(
    ctx: &Ctx,
    arch: &str,
    suite: &str,
    include: &[String],
    variant: &str,
    mirror: Option<&str>,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> Result<()> {
    use crate::emulation::sandbox::{Spec, Userns};
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
    let (tool, program) = crate::emulation::rootfs::find_bootstrapper().ok_or_else(|| {
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
    let private = !native && crate::emulation::sandbox::kernel_has_private_binfmt(&release);
    if !native
        && tool == crate::emulation::rootfs::Bootstrapper::Mmdebstrap
        && crate::host::which("arch-test").is_none()
    {
        return Err(Unsupported(
            "mmdebstrap needs arch-test for a foreign arch: apt-get install arch-test".into(),
        )
        .into());
    }
    let (userns, binfmt) = if private {
        if !crate::emulation::sandbox::can_map_every_id() {
            return Err(Unsupported(
                "rootfs create needs every uid and gid (dpkg chowns to many users), but this user namespace maps only some (see /proc/self/uid_map): run it as root outside any user namespace".into(),
            )
            .into());
        }
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
    let opts = crate::emulation::rootfs::BootstrapOptions {
        suite,
        variant,
        include,
        mirror,
    };
    let command =
        crate::emulation::rootfs::bootstrap_command(tool, &program, arch, &opts, &target, private)?;
    // The tool runs by its absolute path; messages name it by its name.
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| command[0].clone());
    writeln!(
        out,
        "creating a {suite} {variant} rootfs for {} in {} with {name}{}",
        arch.name,
        target.display(),
        if private {
            " (emulated in a private binfmt_misc instance)"
        } else {
            ""
        }
    )?;
    out.flush()?;
    // The bootstrap tool runs on the host's files (no chroot), with the caller's environment
    // (proxies, mirrors); PID 1 of its sandbox keeps none.
    let env: Vec<(String, String)> = std::env::vars().collect();
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
    let code = crate::emulation::sandbox::run(&spec, &exe).context("cannot start the bootstrap")?;
    if code != 0 {
        anyhow::bail!("{name} failed with exit status {code}");
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

/// An emulated chroot ready to start: the spec, and the rootfs it runs in (for a tarball, a
/// lease on its cache entry that must outlive the run).
pub(super) struct Emulated {
    pub spec: crate::emulation::sandbox::Spec,
    _rootfs: crate::emulation::rootfs::Rootfs,
}

/// Everything `run` and `build --strategy emulate` need, validated before anything starts.
pub(super) fn emulated_spec(ctx: &Ctx, args: &RunArgs, out: &mut dyn Write) -> Result<Emulated> {
    use crate::emulation::sandbox::{Bind, RootSetup, Spec, Userns};
    // Usage first: nothing is unpacked for a command line that cannot run.
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
        let target =
            crate::emulation::sandbox::bind_target(dst).with_context(|| format!("--bind {b}"))?;
        binds.push(Bind {
            source,
            target,
            readonly,
        });
    }
    let opts = crate::emulation::rootfs::UnpackOptions {
        keep_privileges: args.keep_privileges,
    };
    let rootfs = crate::emulation::rootfs::resolve(
        &args.rootfs,
        &crate::emulation::rootfs::default_cache(),
        opts,
    )?;
    if let Some(d) = rootfs.dropped
        && d != crate::emulation::rootfs::Dropped::default()
    {
        eprintln!(
            "binfmtctl: note: unpacked {} without privileges: cleared setuid/setgid on {} files, skipped {} device nodes (pass --keep-privileges to keep them)",
            args.rootfs.display(),
            d.setid,
            d.devices
        );
    }
    let root = rootfs.dir.clone();
    crate::emulation::sandbox::check_mount_points(&root)?;
    let detected = crate::emulation::rootfs::detect_arch(ctx.table, &root);
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
        (None, Err(e)) => return Err(e.into()),
    };
    // --accelerate is checked before anything is registered or mounted.
    let accelerate = match args.accelerate {
        None => Vec::new(),
        Some(mode) => {
            // The injection lives in the sandbox's own tmpfs /run: a bind there would put it
            // in a host directory.
            if let Some(b) = binds.iter().find(|b| {
                b.target == "/run" || b.target.starts_with(crate::emulation::accelerate::DIR)
            }) {
                return Err(BadInput(format!(
                    "--bind {}:{}: --accelerate keeps its files under {} in the sandbox's own /run; bind elsewhere",
                    b.source.display(),
                    b.target,
                    crate::emulation::accelerate::DIR
                ))
                .into());
            }
            if ctx.is_native(&arch.name).is_some() {
                return Err(BadInput(format!(
                    "--accelerate: the rootfs is {}, which this host runs natively: nothing is emulated, so there is nothing to speed up",
                    arch.name
                ))
                .into());
            }
            let inj = accelerate_plan(arch, &root, mode == Accelerate::Force)?;
            eprintln!("binfmtctl: accelerate: {}", inj.summary);
            for (file, pkg) in &inj.left_emulated {
                eprintln!(
                    "binfmtctl: accelerate: the rootfs's {file} stays emulated (no native counterpart on the host: apt-get install {pkg})"
                );
            }
            inj.items
        }
    };
    let root_user = rustix::process::geteuid().is_root();
    let rootless = args.rootless || !root_user;
    let native = ctx.is_native(&arch.name).is_some();
    let (uid, gid, home) = match &args.user {
        None => (None, None, "/root".to_owned()),
        Some(_) if rootless => {
            return Err(BadInput(
                "--user needs root: in rootless mode only one user (you, as root) exists".into(),
            )
            .into());
        }
        Some(u) => {
            let (uid, gid, home) = crate::emulation::rootfs::lookup_user(&root, u)?;
            (Some(uid), Some(gid), home)
        }
    };
    let mut env = crate::emulation::sandbox::Spec::default_env(&home);
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
            let header = crate::inspection::probe::representative_header(arch);
            match crate::inspection::inspect::kernel_choice(&entries, enabled, &header, "/x") {
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
                    if !crate::emulation::sandbox::can_map_every_id() {
                        return Err(Unsupported(format!(
                            "running as root of a user namespace that maps only some ids (see /proc/self/uid_map), where no {} handler is registered: pass --rootless (or register one here: binfmtctl install {})",
                            arch.name, arch.name
                        ))
                        .into());
                    }
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
    let spec = Spec {
        userns,
        binfmt,
        root: Some(RootSetup {
            dir: root,
            binds,
            resolv_conf: true,
            accelerate,
        }),
        command: args.command.clone(),
        env,
        workdir: args.workdir.clone(),
        uid,
        gid,
    };
    Ok(Emulated {
        spec,
        _rootfs: rootfs,
    })
}

/// The `--accelerate` injection for a rootfs directory, or why the host's toolchain cannot
/// stand in for the rootfs's.
pub(super) fn accelerate_plan(
    arch: &Arch,
    root: &std::path::Path,
    force: bool,
) -> Result<crate::emulation::accelerate::Injection> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(crate::emulation::accelerate::plan(
        &crate::emulation::accelerate::Request {
            arch,
            root,
            force,
            path_env: &path,
            host_status: std::path::Path::new("/var/lib/dpkg/status"),
        },
    )?)
}

/// The cross toolchain for an arch and its environment, or why there is none.
pub(super) fn cross_vars(
    ctx: &Ctx,
    arch: &Arch,
) -> std::result::Result<(crate::emulation::cross::Toolchain, Vec<(String, String)>), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let tc = crate::emulation::cross::find(arch, &path, std::path::Path::new("/usr")).ok_or_else(
        || {
            format!(
                "no cross toolchain for {} found on PATH: {}",
                arch.name,
                crate::emulation::cross::package_hint(arch)
            )
        },
    )?;
    // Test binaries run through our emulator (any checked interpreter; F is not needed here).
    let runner = ctx
        .requirements(false)
        .ok()
        .map(|req| interpreter::discover(arch, &ctx.search_dirs(), &req))
        .and_then(|d| d.chosen().map(|c| c.facts.path.clone()));
    let vars = crate::emulation::cross::env(&tc, runner.as_deref());
    Ok((tc, vars))
}

pub(super) fn cross_env(ctx: &Ctx, arch: &str, format: &str, out: &mut dyn Write) -> Result<()> {
    let arch = ctx.table.resolve(arch)?;
    let (_, vars) = cross_vars(ctx, arch).map_err(Unsupported)?;
    write!(out, "{}", crate::emulation::cross::render(&vars, format)?)?;
    Ok(())
}

pub(super) fn build(ctx: &Ctx, args: &BuildArgs, out: &mut dyn Write) -> Result<()> {
    let arch = ctx.table.resolve(&args.arch)?;
    let src = std::fs::canonicalize(args.src.as_deref().unwrap_or(std::path::Path::new(".")))
        .map_err(|e| BadInput(format!("--src: {e}")))?;
    let cross = cross_vars(ctx, arch);
    // With a rootfs, auto tries hybrid first: the chroot's faithfulness at native speed.
    let hybrid = match (args.strategy, &args.rootfs) {
        (Strategy::Auto, Some(r)) => Some(hybrid_check(arch, r)),
        _ => None,
    };
    let strategy = match (args.strategy, &cross, &args.rootfs) {
        (Strategy::Cross, Err(why), _) => return Err(Unsupported(why.clone()).into()),
        (s @ (Strategy::Emulate | Strategy::Hybrid), _, None) => {
            return Err(BadInput(format!(
                "--strategy {} needs --rootfs (create one with `binfmtctl rootfs create`)",
                if s == Strategy::Hybrid {
                    "hybrid"
                } else {
                    "emulate"
                }
            ))
            .into());
        }
        (Strategy::Auto, _, Some(_)) if matches!(hybrid, Some(Ok(_))) => {
            eprintln!(
                "binfmtctl: build: hybrid (the host's native {} matches the rootfs's compiler: emulated chroot, native compiler)",
                hybrid
                    .as_ref()
                    .and_then(|h| h.as_ref().ok())
                    .map(String::as_str)
                    .unwrap_or_default()
            );
            Strategy::Hybrid
        }
        (Strategy::Auto, Ok(_), _) => {
            eprintln!(
                "binfmtctl: build: cross (a {} cross toolchain is installed; it runs at native speed)",
                arch.name
            );
            Strategy::Cross
        }
        (Strategy::Auto, Err(why), Some(_)) => {
            let no_hybrid = match &hybrid {
                Some(Err(e)) => format!("; no hybrid: {e}"),
                _ => String::new(),
            };
            eprintln!("binfmtctl: build: emulate ({why}{no_hybrid})");
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
        crate::error::exit_status_code(status).unwrap_or(crate::error::signal_exit_code(0))
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
            keep_privileges: false,
            accelerate: (strategy == Strategy::Hybrid).then_some(Accelerate::On),
            command: args.command.clone(),
        };
        let emulated = emulated_spec(ctx, &run, out)?;
        crate::emulation::sandbox::run(&emulated.spec, &std::env::current_exe()?)
            .context("cannot start the emulated chroot")?
    };
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}

/// Whether hybrid can serve a build with this rootfs (a directory; a tarball is judged once
/// unpacked, by the run itself): the native toolchain's name, or why not.
fn hybrid_check(arch: &Arch, rootfs: &std::path::Path) -> std::result::Result<String, String> {
    if !rootfs.is_dir() {
        return Err(format!(
            "{} is not a directory (pass --strategy hybrid to try it on a tarball)",
            rootfs.display()
        ));
    }
    let root = std::fs::canonicalize(rootfs).map_err(|e| e.to_string())?;
    let inj = accelerate_plan(arch, &root, false).map_err(|e| format!("{e:#}"))?;
    Ok(inj
        .summary
        .strip_prefix("native ")
        .and_then(|s| s.split(" from the host").next())
        .unwrap_or(&inj.summary)
        .to_owned())
}

pub(super) fn run_in_rootfs(ctx: &Ctx, args: &RunArgs, out: &mut dyn Write) -> Result<()> {
    let emulated = emulated_spec(ctx, args, out)?;
    out.flush()?;
    let exe = std::env::current_exe()?;
    let code = crate::emulation::sandbox::run(&emulated.spec, &exe)
        .context("cannot start the emulated chroot")?;
    if code != 0 {
        return Err(ChildExit(code).into());
    }
    Ok(())
}
