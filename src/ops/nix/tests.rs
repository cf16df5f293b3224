//! The Nix operations against the recording double, a temporary Nix configuration directory,
//! a Nix double that reads that directory by Nix's rules, and a probe double.

use std::cell::{Cell, RefCell};
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::binfmt::kernel::RecordingBinfmt;
use crate::binfmt::registration::{Entry, Flags};
use crate::host::{HostFacts, NativeArch};
use crate::nix::{Directive, ShowConfigError};

const USER_CONF: &str = "# my settings\nsubstituters =\nextra-platforms = riscv64-linux\n";

/// An x86_64 host whatever machine runs the test: the one native arch is x86_64.
fn host() -> Host {
    let table = Table::builtin();
    Host {
        table,
        facts: HostFacts::gather(),
        native: vec![NativeArch {
            arch: "x86_64".into(),
            evidence: "test".into(),
        }]
        .into(),
        trust_unmapped_owner: false,
        files: Default::default(),
    }
}

fn f() -> Flags {
    Flags {
        fix_binary: true,
        ..Flags::default()
    }
}

fn entry(arch: &str, flags: Flags) -> Entry {
    Entry {
        registration: Table::builtin()
            .get(arch)
            .unwrap()
            .registration(&format!("/usr/bin/qemu-{arch}-static"), flags),
        enabled: true,
    }
}

fn kernel(entries: &[Entry]) -> RecordingBinfmt {
    RecordingBinfmt::mounted_with(entries)
}

fn arches(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A temporary configuration directory holding `nix.conf` (when `conf` is given).
fn conf_dir(conf: Option<&str>) -> (tempfile::TempDir, Paths) {
    let t = tempfile::tempdir().unwrap();
    let paths = Paths::new(t.path().join("nix"));
    std::fs::create_dir(&paths.dir).unwrap();
    if let Some(c) = conf {
        std::fs::write(&paths.conf, c).unwrap();
    }
    (t, paths)
}

/// Every file in the directory, with its content.
fn files(paths: &Paths) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(&paths.dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Nix as far as the operations see it: reads the directory by Nix's rules (includes in
/// order, `extra-` appends, a later plain setting replaces), rejects a `sandbox` value Nix
/// rejects, and records daemon restarts.
struct FakeNix {
    installed: bool,
    restarts: Cell<usize>,
    /// Dirs `show_config` was asked about.
    asked: RefCell<Vec<PathBuf>>,
}

impl FakeNix {
    fn new() -> FakeNix {
        FakeNix {
            installed: true,
            restarts: Cell::new(0),
            asked: RefCell::new(Vec::new()),
        }
    }

    fn settings(path: &Path, out: &mut Vec<(String, String)>) -> Result<(), NixError> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        for l in nixcfg::parse(path, &text)? {
            match l.directive {
                Directive::Setting { name, value } => out.push((name, value)),
                Directive::Include { path: p, .. } => {
                    Self::settings(&nixcfg::include_target(path, &p), out)?
                }
            }
        }
        Ok(())
    }
}

impl NixTool for FakeNix {
    fn program(&self) -> Result<PathBuf, NixError> {
        if self.installed {
            Ok(PathBuf::from("/nowhere/bin/nix"))
        } else {
            Err(NixError::NotInstalled)
        }
    }

    fn show_config(&self, dir: &Path) -> Result<View, NixError> {
        self.program()?;
        self.asked.borrow_mut().push(dir.to_owned());
        let conf = dir.join(nixcfg::CONF_NAME);
        nixcfg::check_tree(&conf)?;
        let mut settings = Vec::new();
        Self::settings(&conf, &mut settings)?;
        let mut v = View {
            system: "x86_64-linux".into(),
            extra_platforms: vec!["i686-linux".into()],
            sandbox: "true".into(),
            sandbox_paths: Vec::new(),
            system_features: arches(&["benchmark", "big-parallel", "kvm", "nixos-test"]),
        };
        for (name, value) in settings {
            let words = value.split_whitespace().map(str::to_owned);
            match name.as_str() {
                "extra-platforms" => v.extra_platforms = words.collect(),
                "extra-extra-platforms" => v.extra_platforms.extend(words),
                "sandbox-paths" => v.sandbox_paths = words.collect(),
                "extra-sandbox-paths" => v.sandbox_paths.extend(words),
                "sandbox" if !["true", "false", "relaxed"].contains(&value.as_str()) => {
                    return Err(NixError::Rejected {
                        dir: dir.to_owned(),
                        message: format!("option 'sandbox' has invalid value '{value}'"),
                    });
                }
                "sandbox" => v.sandbox = value,
                _ => {}
            }
        }
        Ok(v)
    }

    fn restart_daemon(&self, _dir: &Path) -> Daemon {
        self.restarts.set(self.restarts.get() + 1);
        Daemon::NotRunning
    }
}

/// Probes that say what the test wants: `works` run, anything else with a probe fails;
/// `unprobed` has no probe. Records what was probed.
struct FakeProbe {
    works: Vec<&'static str>,
    unprobed: Vec<&'static str>,
    ran: RefCell<Vec<String>>,
}

impl FakeProbe {
    fn new(works: &[&'static str]) -> FakeProbe {
        FakeProbe {
            works: works.to_vec(),
            unprobed: Vec::new(),
            ran: RefCell::new(Vec::new()),
        }
    }
}

impl Probe for FakeProbe {
    fn run(&self, a: &Arch, _entries: &[KernelEntry], _enabled: bool) -> Option<Probed> {
        if self.unprobed.contains(&a.name.as_str()) {
            return None;
        }
        self.ran.borrow_mut().push(a.name.clone());
        let runs = self.works.contains(&a.name.as_str());
        Some(Probed {
            runs,
            detail: if runs {
                format!("the {} probe ran", a.name)
            } else {
                "exec format error".into()
            },
        })
    }
}

#[test]
fn sync_adds_and_removes_exactly_our_file_and_platforms() {
    let (_t, paths) = conf_dir(Some(USER_CONF));
    let nix = FakeNix::new();
    let host = host();
    let fs = kernel(&[entry("aarch64", f())]);
    let r = sync(&fs, &host, &paths, &nix, &arches(&["aarch64"]), false).unwrap();
    assert_eq!(
        r.changed.wrote,
        [paths.include.clone(), paths.conf.clone()],
        "{r:?}"
    );
    assert_eq!(
        r.platforms.as_deref(),
        Some(&arches(&["aarch64-linux"])[..])
    );
    assert!(r.not_accepted.is_empty(), "{r:?}");
    assert_eq!(r.daemon, Some(Daemon::NotRunning));
    assert_eq!(nix.restarts.get(), 1);
    // The user's lines stay as they were, byte for byte; ours follow them.
    let conf = std::fs::read_to_string(&paths.conf).unwrap();
    assert_eq!(
        conf,
        format!(
            "{USER_CONF}{}\n{}\n",
            nixcfg::INCLUDE_COMMENT,
            nixcfg::INCLUDE_LINE
        )
    );
    let inc = std::fs::read_to_string(&paths.include).unwrap();
    assert!(
        inc.contains("\nextra-extra-platforms = aarch64-linux\n"),
        "{inc}"
    );
    assert!(
        !inc.contains("sandbox-paths"),
        "F needs no sandbox path: {inc}"
    );
    // Nix now accepts the user's riscv64 and our aarch64.
    let view = nix.show_config(&paths.dir).unwrap();
    assert!(view.accepts("aarch64-linux") && view.accepts("riscv64-linux"));

    // An arm entry without F: its interpreter goes into the sandbox paths. An arch with no
    // Nix name is reported, an arch named but not registered is left out.
    for e in [entry("arm", Flags::default()), entry("aarch64_be", f())] {
        let name = e.registration.name.clone();
        fs.push_named(name.as_bytes(), e);
    }
    let r = sync(
        &fs,
        &host,
        &paths,
        &nix,
        &arches(&["arm", "aarch64_be", "riscv64"]),
        false,
    )
    .unwrap();
    assert_eq!(
        r.changed.wrote,
        std::slice::from_ref(&paths.include),
        "only our file"
    );
    assert_eq!(r.nameless, ["aarch64_be"]);
    let m = nixcfg::load_managed(&paths).unwrap();
    assert_eq!(m.arches.keys().collect::<Vec<_>>(), ["aarch64", "arm"]);
    assert_eq!(
        m.arches["arm"].sandbox.as_deref(),
        Some("/usr/bin/qemu-arm-static")
    );
    assert_eq!(m.sandbox_paths(), ["/usr/bin/qemu-arm-static"]);
    assert_eq!(std::fs::read_to_string(&paths.conf).unwrap(), conf);

    // Nothing changed: nothing written, the daemon left alone.
    let r = sync(&fs, &host, &paths, &nix, &arches(&["arm"]), false).unwrap();
    assert!(r.changed.is_empty() && r.platforms.is_none() && r.daemon.is_none());

    // A disabled entry and a removed one: their records go.
    fs.entries.borrow_mut().iter_mut().for_each(|k| {
        if k.entry.registration.name == "qemu-arm" {
            k.entry.enabled = false;
        }
    });
    let r = sync(&fs, &host, &paths, &nix, &[], false).unwrap();
    assert_eq!(
        r.platforms.as_deref(),
        Some(&arches(&["aarch64-linux"])[..])
    );
    fs.entries.borrow_mut().clear();
    let r = sync(&fs, &host, &paths, &nix, &[], false).unwrap();
    assert_eq!(r.changed.removed, std::slice::from_ref(&paths.include));
    assert_eq!(r.changed.wrote, std::slice::from_ref(&paths.conf));
    assert_eq!(r.platforms.as_deref(), Some(&[][..]));
    // Back to the user's file alone, as it was.
    assert_eq!(files(&paths), [("nix.conf".into(), USER_CONF.into())]);
    // Without our file, an uninstall does not touch Nix at all.
    let r = sync(&fs, &host, &paths, &nix, &[], false).unwrap();
    assert!(r.changed.is_empty() && r.daemon.is_none());
    assert_eq!(files(&paths), [("nix.conf".into(), USER_CONF.into())]);
}

#[test]
fn dry_run_sync_writes_nothing() {
    let (_t, paths) = conf_dir(Some(USER_CONF));
    let nix = FakeNix::new();
    let fs = kernel(&[entry("arm", f())]);
    let r = sync(&fs, &host(), &paths, &nix, &arches(&["arm"]), true).unwrap();
    assert_eq!(
        r.would_add,
        ["armv7l-linux", "armv6l-linux", "armv5tel-linux"]
    );
    assert!(r.changed.is_empty() && r.daemon.is_none());
    assert_eq!(files(&paths), [("nix.conf".into(), USER_CONF.into())]);
    assert!(nix.asked.borrow().is_empty());
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(
        (&j["dry_run"], &j["would_add"][0], &j["daemon"]),
        (
            &serde_json::Value::Bool(true),
            &serde_json::Value::from("armv7l-linux"),
            &serde_json::Value::Null
        )
    );
    assert_eq!(
        serde_json::to_value(Daemon::MustRestart(vec![7])).unwrap(),
        serde_json::json!({"state": "must-restart", "pids": [7]})
    );
}

#[test]
fn a_nix_conf_nix_rejects_is_refused_and_left_alone() {
    let nix = FakeNix::new();
    let fs = kernel(&[entry("aarch64", f())]);
    // Syntax Nix rejects: our own reader says where.
    let bad = "substituters =\nsandbox true\n";
    let (_t, paths) = conf_dir(Some(bad));
    let e = precheck(&paths, &nix).unwrap_err();
    assert!(matches!(e, NixError::Syntax { line: 2, .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::BadInput);
    // After the kernel changed, sync refuses too, as a failed operation that says so.
    let e = sync(&fs, &host(), &paths, &nix, &arches(&["aarch64"]), false).unwrap_err();
    assert!(
        matches!(
            &e,
            NixOpsError::NotSynced {
                source: NixError::Syntax { .. }
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(
        e.to_string()
            .contains("nix.conf:2: illegal configuration line")
    );
    assert_eq!(files(&paths), [("nix.conf".into(), bad.into())]);

    // A value only Nix knows is wrong: Nix's own refusal, nothing written.
    let bad = "sandbox = maybe\n";
    let (_t, paths) = conf_dir(Some(bad));
    let e = precheck(&paths, &nix).unwrap_err();
    assert!(matches!(e, NixError::Rejected { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::BadInput);
    // sync notices when Nix rejects what it wrote, and puts both files back.
    let e = sync(&fs, &host(), &paths, &nix, &arches(&["aarch64"]), false).unwrap_err();
    assert!(
        matches!(
            &e,
            NixOpsError::RejectedOurs {
                restore_failed: None,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert_eq!(files(&paths), [("nix.conf".into(), bad.into())]);

    // No Nix: exit 3 before anything.
    let none = FakeNix {
        installed: false,
        ..FakeNix::new()
    };
    let (_t, paths) = conf_dir(Some(USER_CONF));
    let e = precheck(&paths, &none).unwrap_err();
    assert!(matches!(e, NixError::NotInstalled));
    assert_eq!(e.kind(), ErrorKind::Environment);
}

/// Makes a directory read-only for the test's lifetime: immutable (root can write anywhere
/// else), or mode 0555 for other users.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        use rustix::fs::{IFlags, Mode, OFlags};
        let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        if let Err(e) = rustix::fs::ioctl_setflags(&fd, IFlags::IMMUTABLE) {
            assert!(
                !rustix::process::geteuid().is_root(),
                "cannot make {} immutable as root: {e}",
                dir.display()
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        ReadOnly(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use rustix::fs::{IFlags, Mode, OFlags};
        if let Ok(fd) = rustix::fs::open(&self.0, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        {
            let _ = rustix::fs::ioctl_setflags(&fd, IFlags::empty());
        }
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn a_read_only_configuration_directory_is_an_environment_error() {
    let (_t, paths) = conf_dir(Some(USER_CONF));
    let nix = FakeNix::new();
    let fs = kernel(&[entry("aarch64", f())]);
    let before = files(&paths);
    {
        let _ro = ReadOnly::new(&paths.dir);
        let e = precheck(&paths, &nix).unwrap_err();
        assert!(matches!(e, NixError::Write { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::Environment);
        // After the kernel changed: nothing written, and the message says what happened.
        let e = sync(&fs, &host(), &paths, &nix, &arches(&["aarch64"]), false).unwrap_err();
        assert!(
            matches!(
                &e,
                NixOpsError::NotSynced {
                    source: NixError::Write { .. }
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("nothing in Nix's configuration was changed")
        );
        assert_eq!(nix.restarts.get(), 0);
    }
    assert_eq!(files(&paths), before);
}

#[test]
fn status_hints_when_nix_and_the_kernel_disagree() {
    let (_t, paths) = conf_dir(Some(USER_CONF));
    let nix = FakeNix::new();
    let table = Table::builtin();
    // No file of ours: no hints, whatever is registered.
    let fs = kernel(&[entry("s390x", f())]);
    assert!(status_hints(table, &paths, &fs.list().unwrap()).is_empty());
    // binfmtctl told Nix about aarch64 and riscv64 ...
    let both = kernel(&[entry("aarch64", f()), entry("riscv64", f())]);
    sync(
        &both,
        &host(),
        &paths,
        &nix,
        &arches(&["aarch64", "riscv64"]),
        false,
    )
    .unwrap();
    // ... then riscv64 went, and s390x came without --nix; a disabled mips counts as absent.
    let mut mips = entry("mips", f());
    mips.enabled = false;
    let fs = kernel(&[entry("aarch64", f()), entry("s390x", f()), mips]);
    let hints = status_hints(table, &paths, &fs.list().unwrap());
    assert_eq!(
        hints,
        [
            Hint::Unregistered {
                arch: "riscv64".into(),
                systems: arches(&["riscv64-linux"]),
                include: paths.include.clone(),
            },
            Hint::NotTold {
                arch: "s390x".into(),
                entry: "qemu-s390x".into(),
                systems: arches(&["s390x-linux"]),
                include: paths.include.clone(),
            },
        ]
    );
    assert!(
        hints[0].to_string().contains(
            "qemu-riscv64 is not registered and enabled: `binfmtctl install riscv64 --nix`"
        )
    );
    assert_eq!(
        serde_json::to_value(&hints[1]).unwrap(),
        serde_json::Value::String(hints[1].to_string())
    );
    // Kernel and file agree: nothing to say.
    assert!(status_hints(table, &paths, &both.list().unwrap()).is_empty());
}

fn schema_errors(def: &str, doc: &serde_json::Value) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schemas/binfmtctl.schema.json"
    );
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    s["$ref"] = serde_json::Value::String(format!("#/$defs/{def}"));
    let v = jsonschema::draft202012::new(&s).unwrap();
    v.iter_errors(doc).map(|e| e.to_string()).collect()
}

#[test]
fn nix_status_rows_and_warnings() {
    let (_t, paths) = conf_dir(Some(
        "extra-platforms = i686-linux riscv64-linux x86_64-v3-linux mips-linux x86_64-darwin\n",
    ));
    let nix = FakeNix::new();
    let host = host();
    let fs = kernel(&[
        entry("aarch64", f()),
        entry("arm", Flags::default()),
        entry("s390x", f()),
        entry("mips", f()),
    ]);
    sync(&fs, &host, &paths, &nix, &arches(&["aarch64"]), false).unwrap();
    // The arm entry (no F) is accepted by hand, without its interpreter in the sandbox.
    std::fs::write(
        &paths.conf,
        std::fs::read_to_string(&paths.conf).unwrap() + "extra-extra-platforms = armv7l-linux\n",
    )
    .unwrap();
    let probe = FakeProbe::new(&["aarch64", "arm", "s390x"]);
    let st = status(&fs, &host, &paths, &nix, &probe).unwrap();
    let row = |s: &str| {
        st.systems
            .iter()
            .find(|r| r.system == s)
            .unwrap_or_else(|| panic!("no {s} row: {st:#?}"))
    };
    let state = |s: &str| row(s).handler.as_ref().map(|h| h.state);
    assert!(st.included && st.include_exists);
    assert_eq!(st.nix, Path::new("/nowhere/bin/nix"));
    assert_eq!(row("x86_64-linux").source, Source::System);
    assert_eq!(state("x86_64-linux"), Some(HandlerState::Native));
    // Nix claims a platform with a working handler, told by binfmtctl.
    let a = row("aarch64-linux");
    assert!(
        a.accepted && a.from_binfmtctl && a.problem.is_none(),
        "{a:?}"
    );
    assert_eq!(state("aarch64-linux"), Some(HandlerState::Works));
    // Nix claims a platform with no handler.
    let r = row("riscv64-linux");
    assert_eq!(state("riscv64-linux"), Some(HandlerState::NoHandler));
    assert!(
        r.problem
            .as_deref()
            .unwrap()
            .contains("no working handler runs riscv64 programs"),
        "{r:?}"
    );
    // ... with a handler that fails its probe.
    assert_eq!(state("mips-linux"), Some(HandlerState::Fails));
    assert!(row("mips-linux").problem.is_some());
    // A handler Nix is not told about.
    let s = row("s390x-linux");
    assert!(!s.accepted && s.source == Source::Handler && !s.from_binfmtctl);
    assert!(
        s.problem
            .as_deref()
            .unwrap()
            .contains("qemu-s390x works but Nix does not build s390x-linux")
    );
    // Without F and outside the sandbox.
    assert!(
        row("armv7l-linux")
            .problem
            .as_deref()
            .unwrap()
            .contains("has no F flag and /usr/bin/qemu-arm-static is not in Nix's sandbox-paths")
    );
    // A system binfmtctl has no arch for.
    assert!(row("x86_64-darwin").handler.is_none());
    assert!(row("x86_64-darwin").problem.is_some());
    // i686 runs natively? Not on this (test) host: it has no i386 entry, so no handler.
    assert_eq!(state("i686-linux"), Some(HandlerState::NoHandler));
    assert_eq!(
        st.warnings.len(),
        st.systems.iter().filter(|r| r.problem.is_some()).count()
    );
    // Each arch probed once, and only those with a handler.
    let mut ran = probe.ran.borrow().clone();
    ran.sort();
    assert_eq!(ran, ["aarch64", "arm", "mips", "s390x"]);
    // The JSON is the documented one.
    let j = serde_json::to_value(&st).unwrap();
    assert!(j.get("include_exists").is_none());
    let errors = schema_errors("nix_status", &j);
    assert!(errors.is_empty(), "{errors:?}\n{j:#}");

    // Our file, not included: said so.
    std::fs::write(&paths.conf, "substituters =\n").unwrap();
    let st = status(&fs, &host, &paths, &nix, &probe).unwrap();
    assert!(!st.included && st.include_exists);
    assert!(
        st.warnings
            .iter()
            .any(|w| w.contains("does not include it, so Nix ignores it")),
        "{:?}",
        st.warnings
    );
}

/// Nix's micro-architecture levels of the native system (x86_64-v1 … v4) are the native
/// arch, not an unknown one.
#[test]
fn microarchitecture_levels_are_the_native_arch() {
    assert_eq!(
        microarch_level("x86_64-v3-linux"),
        Some(("v3", "x86_64-linux".to_owned()))
    );
    assert_eq!(microarch_level("x86_64-vx-linux"), None);
    assert_eq!(microarch_level("x86_64-v-linux"), None);
    assert_eq!(microarch_level("aarch64-linux"), None);
    let native = arches(&["x86_64-linux", "i686-linux"]);
    assert!(native_variant("x86_64-v1-linux", &native));
    assert!(!native_variant("x86_64-v2-darwin", &native));
    assert!(!native_variant("aarch64-linux", &native));

    let (_t, paths) = conf_dir(Some(
        "extra-platforms = x86_64-v1-linux x86_64-v2-linux x86_64-v3-linux x86_64-v4-linux\n",
    ));
    let fs = kernel(&[]);
    let probe = FakeProbe::new(&[]);
    let st = status(&fs, &host(), &paths, &FakeNix::new(), &probe).unwrap();
    for level in ["v1", "v2", "v3", "v4"] {
        let system = format!("x86_64-{level}-linux");
        let r = st.systems.iter().find(|r| r.system == system).unwrap();
        let h = r.handler.as_ref().unwrap();
        assert_eq!(
            (h.arch.as_str(), h.state, r.problem.as_deref()),
            ("x86_64", HandlerState::Native, None),
            "{r:?}"
        );
        assert_eq!(
            h.detail,
            format!("runs natively (x86_64 micro-architecture level {level})")
        );
    }
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    assert!(probe.ran.borrow().is_empty());
    let errors = schema_errors("nix_status", &serde_json::to_value(&st).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    // And they are native systems of a builder's line.
    let m = machines(
        &fs,
        &host(),
        &paths,
        &FakeNix::new(),
        &probe,
        &MachinesRequest {
            uri: "ssh://b".into(),
            max_jobs: Some(1),
            ..MachinesRequest::default()
        },
    )
    .unwrap();
    assert_eq!(
        m.native,
        [
            "x86_64-linux",
            "x86_64-v1-linux",
            "x86_64-v2-linux",
            "x86_64-v3-linux",
            "x86_64-v4-linux"
        ]
    );
}

#[test]
fn machines_lines_list_native_and_probed_working_systems() {
    let (_t, paths) = conf_dir(Some(USER_CONF));
    let nix = FakeNix::new();
    let host = host();
    let fs = kernel(&[
        entry("aarch64", f()),
        entry("riscv64", f()),
        entry("s390x", f()),
        entry("arm", Flags::default()),
    ]);
    // Nix accepts aarch64 (ours), riscv64 (the user's) and arm (ours, but its interpreter is
    // then taken out of the sandbox paths by hand).
    sync(
        &fs,
        &host,
        &paths,
        &nix,
        &arches(&["aarch64", "arm"]),
        false,
    )
    .unwrap();
    std::fs::write(
        &paths.conf,
        std::fs::read_to_string(&paths.conf).unwrap() + "sandbox-paths = /bin/sh\n",
    )
    .unwrap();
    let key = paths.dir.join("host.pub");
    std::fs::write(&key, "ssh-ed25519 AAAA root@b1\n").unwrap();
    // riscv64's handler is registered but its probe fails.
    let probe = FakeProbe::new(&["aarch64", "s390x", "arm"]);
    let req = MachinesRequest {
        uri: "ssh-ng://b1".into(),
        max_jobs: Some(3),
        ssh_key: Some("/root/.ssh/b1".into()),
        host_key: Some(key.clone()),
    };
    let m = machines(&fs, &host, &paths, &nix, &probe, &req).unwrap();
    assert_eq!(m.native, ["x86_64-linux"]);
    assert_eq!(m.emulated, ["aarch64-linux"]);
    let skipped: Vec<&str> = m.skipped.iter().map(|s| s.system.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "armv7l-linux",
            "armv6l-linux",
            "armv5tel-linux",
            "riscv64-linux",
            "s390x-linux"
        ],
        "{:?}",
        m.skipped
    );
    let why = |s: &str| &m.skipped.iter().find(|x| x.system == s).unwrap().reason;
    assert!(why("armv7l-linux").contains("(no F flag) is not in Nix's sandbox"));
    assert!(why("riscv64-linux").starts_with("qemu-riscv64 fails: "));
    assert!(why("s390x-linux").contains("Nix here does not accept s390x-linux"));
    // Native systems keep kvm; the emulated ones get a line of their own without it.
    let key64 = nixcfg::base64(b"ssh-ed25519 AAAA root@b1");
    assert_eq!(
        m.lines,
        [
            format!(
                "ssh-ng://b1 x86_64-linux /root/.ssh/b1 3 1 benchmark,big-parallel,kvm,nixos-test - {key64}"
            ),
            format!("ssh-ng://b1 aarch64-linux /root/.ssh/b1 3 1 big-parallel - {key64}"),
        ]
    );
    assert!(
        m.machines
            .iter()
            .filter(|l| l.systems.iter().any(|s| s == "aarch64-linux"))
            .all(|l| !l.supported_features.iter().any(|f| f == "kvm"))
    );
    let j = serde_json::to_value(&m).unwrap();
    let errors = schema_errors("nix_machines", &j);
    assert!(errors.is_empty(), "{errors:?}\n{j:#}");

    // Bad requests: typed, bad input, before Nix or a probe runs.
    let ran = probe.ran.borrow().len();
    let empty_key = paths.dir.join("empty.pub");
    std::fs::write(&empty_key, "\n").unwrap();
    for (req, want) in [
        (
            MachinesRequest {
                uri: "ssh://a b".into(),
                ..req.clone()
            },
            "a store URI without blanks",
        ),
        (
            MachinesRequest {
                max_jobs: Some(0),
                ..req.clone()
            },
            "--max-jobs 0",
        ),
        (
            MachinesRequest {
                host_key: Some(paths.dir.join("missing.pub")),
                ..req.clone()
            },
            "--host-key: ",
        ),
        // A newline in --ssh-key added a whole builder line (printed unchecked).
        (
            MachinesRequest {
                ssh_key: Some("/root/.ssh/b1\nssh://evil x86_64-linux".into()),
                ..req.clone()
            },
            "--ssh-key \"/root/.ssh/b1\\nssh://evil x86_64-linux\": it contains a blank",
        ),
        (
            MachinesRequest {
                ssh_key: Some(String::new()),
                ..req.clone()
            },
            "--ssh-key \"\": it is empty",
        ),
        (
            MachinesRequest {
                ssh_key: Some("/k\u{1b}[2J".into()),
                ..req.clone()
            },
            "it contains a control character",
        ),
        (
            MachinesRequest {
                ssh_key: Some("/k#x".into()),
                ..req.clone()
            },
            "--ssh-key \"/k#x\": it contains `#`",
        ),
        (
            MachinesRequest {
                uri: "ssh://a\u{7}".into(),
                ..req.clone()
            },
            "a store URI without blanks, control characters",
        ),
        (
            MachinesRequest {
                host_key: Some(empty_key.clone()),
                ..req.clone()
            },
            "--host-key",
        ),
    ] {
        let e = machines(&fs, &host, &paths, &nix, &probe, &req).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }
    assert_eq!(probe.ran.borrow().len(), ran);
}

#[test]
fn show_config_output_binfmtctl_cannot_read_is_typed() {
    let e = nixcfg::parse_show_config("{\"system\": {}}").unwrap_err();
    assert!(matches!(e, ShowConfigError::NoSystem));
    assert_eq!(e.kind(), ErrorKind::Environment);
}
