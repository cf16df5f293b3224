//! The command line as the library parses it: the documented forms, bad usage, each
//! subcommand's own options and help, the settings a command runs with, and the man pages and
//! completions `__generate` writes from it (moved from `src/cli/tests.rs`).

use std::path::PathBuf;

use anyhow::Result;

use binfmtctl::cli::Cli;
use binfmtctl::cli::args::{Command, FlagOpts, InstallOpts, NixCommand};
use binfmtctl::cli::run;
use binfmtctl::cli::settings::{Global, Parsed, flags_from};
use binfmtctl::exit::exit_code;
use binfmtctl::ops;

/// Exit 2 (bad usage).
const EXIT_USAGE: u8 = binfmtctl::error::ErrorKind::BadInput.exit_code();

/// A parsed command line, read as `Parsed` (derefs to `Cli`).
#[derive(Debug)]
struct P(Parsed);

impl std::ops::Deref for P {
    type Target = Cli;
    fn deref(&self) -> &Cli {
        &self.0.cli
    }
}

fn parse(args: &[&str]) -> Result<P, clap::Error> {
    Parsed::try_from_args(std::iter::once("binfmtctl").chain(args.iter().copied())).map(P)
}

/// The settings a parsed command line runs with.
fn settings_of(c: &P) -> Result<(Global, InstallOpts)> {
    assert!(c.command.is_some(), "a subcommand");
    c.0.settings()
}

#[test]
fn parses_the_documented_forms() {
    let c = parse(&["install", "arm64,riscv64"]).unwrap();
    assert!(
        matches!(c.command, Some(Command::Install { ref arches, .. }) if arches == &["arm64", "riscv64"])
    );
    let c = parse(&["install", "arm64", "riscv64", "--flags", "F", "--dry-run"]).unwrap();
    assert!(matches!(c.command, Some(Command::Install { ref arches, .. }) if arches.len() == 2));
    let (g, opts) = settings_of(&c).unwrap();
    assert_eq!(opts.flag_opts.flags.as_deref(), Some("F"));
    assert!(g.dry_run);
    // The container-entrypoint form, with the options of install.
    let c = parse(&["--install", "arm64", "--json", "--flags", "F", "--persist"]).unwrap();
    assert_eq!(c.install.as_deref(), Some("arm64"));
    assert!(c.output.json);
    assert_eq!(c.top.install.flag_opts.flags.as_deref(), Some("F"));
    assert!(c.top.install.persist);
    let c = parse(&["--uninstall", "qemu-*"]).unwrap();
    assert_eq!(c.uninstall.as_deref(), Some("qemu-*"));
    let c = parse(&["status", "--binfmt-misc", "/x"]).unwrap();
    assert_eq!(settings_of(&c).unwrap().0.binfmt_misc, PathBuf::from("/x"));
    let c = parse(&["interpreters", "--qemu-path", "/a", "--qemu-path", "/b"]).unwrap();
    assert_eq!(settings_of(&c).unwrap().0.qemu_path.len(), 2);
    assert!(parse(&[]).unwrap().command.is_none());
    assert_eq!(parse(&["-vv", "status"]).unwrap().output.verbose, 2);
    assert!(parse(&["--json", "status"]).unwrap().output.json);
    assert!(parse(&["status", "--json"]).unwrap().output.json);
    // Options before the subcommand still work where they apply; after wins.
    let c = parse(&["--dry-run", "install", "arm64"]).unwrap();
    assert!(settings_of(&c).unwrap().0.dry_run);
    let c = parse(&["--config", "/c", "apply"]).unwrap();
    assert_eq!(settings_of(&c).unwrap().0.config, PathBuf::from("/c"));
    let c = parse(&[
        "--config",
        "/c",
        "install",
        "arm64",
        "--persist",
        "--config",
        "/d",
    ])
    .unwrap();
    let (g, opts) = settings_of(&c).unwrap();
    assert_eq!(g.config, PathBuf::from("/d"));
    assert!(opts.persist);
    let c = parse(&[
        "--flags",
        "F",
        "export",
        "--format",
        "json",
        "arm64",
        "--credentials",
    ])
    .unwrap();
    let (_, opts) = settings_of(&c).unwrap();
    assert_eq!(opts.flag_opts.flags.as_deref(), Some("F"));
    assert!(opts.flag_opts.credentials);
    let (g, _) = settings_of(&parse(&["status"]).unwrap()).unwrap();
    assert_eq!(
        g.binfmt_misc,
        PathBuf::from(binfmtctl::binfmt::kernel::DEFAULT_ROOT)
    );
    assert_eq!(g.config, PathBuf::from(binfmtctl::config::DEFAULT_PATH));
    let c = parse(&["disable", "arm64,qemu-riscv64", "--dry-run"]).unwrap();
    assert!(matches!(c.command, Some(Command::Disable { ref targets, .. }) if targets.len() == 2));
}

/// `qemu use` checks the stored interpreters as install does, so in a user namespace it
/// takes --trust-unmapped-owner (after the subcommand or before it), and not --qemu-path.
#[test]
fn qemu_use_takes_trust_unmapped_owner() {
    for args in [
        &["qemu", "use", "10.0", "--trust-unmapped-owner"][..],
        &["--trust-unmapped-owner", "qemu", "use", "10.0"][..],
    ] {
        let c = parse(args).unwrap();
        let (g, _) = settings_of(&c).unwrap();
        assert!(g.trust_unmapped_owner, "{args:?}");
    }
    // --qemu-path is not among its options: clap refuses it (exit 2), and given before
    // the subcommand it is a stray option, also bad usage.
    let e = parse(&["qemu", "use", "10.0", "--qemu-path", "/usr/bin"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{e}");
    assert_eq!(e.exit_code(), 2);
    let c = parse(&["--qemu-path", "/usr/bin", "qemu", "use", "10.0"]).unwrap();
    let e = settings_of(&c).unwrap_err();
    assert_eq!(exit_code(&e), EXIT_USAGE);
    assert!(
        format!("{e:#}").contains("--qemu-path does not apply to `qemu`"),
        "{e:#}"
    );
    use clap::CommandFactory;
    let help = Cli::command()
        .find_subcommand_mut("qemu")
        .and_then(|q| q.find_subcommand_mut("use"))
        .map(|u| u.render_long_help().to_string())
        .unwrap();
    assert!(help.contains("--trust-unmapped-owner"), "{help}");
    assert!(!help.contains("--qemu-path"), "{help}");
    // gc still does not take it.
    let c = parse(&["--trust-unmapped-owner", "qemu", "gc"]).unwrap();
    assert!(settings_of(&c).is_err());
}

#[test]
fn rejects_bad_usage() {
    assert!(parse(&["install"]).is_err(), "arches are required");
    assert!(parse(&["--install", "arm64", "--uninstall", "arm64"]).is_err());
    assert!(parse(&["install", "arm64", "--bogus"]).is_err());
    assert!(parse(&["-q", "-v", "status"]).is_err());
    let mixed = parse(&["--install", "arm64", "status"]).unwrap();
    let e = run(mixed.0, &mut Vec::new()).unwrap_err();
    assert_eq!(exit_code(&e), EXIT_USAGE);
    // Each subcommand takes only its own options ...
    assert!(parse(&["inspect", "x", "--flags", "F"]).is_err());
    assert!(parse(&["status", "--persist"]).is_err());
    assert!(parse(&["arches", "--binfmt-misc", "/x"]).is_err());
    assert!(parse(&["export", "--format", "json", "arm64", "--dry-run"]).is_err());
    // ... and those given before it must apply to it.
    for args in [
        &["--flags", "F", "status"][..],
        &["--persist", "inspect", "x"],
        &["--qemu-path", "/a", "status"],
        &["--config", "/c", "status"],
        &["--binfmt-misc", "/x", "arches"],
        &["--keep-existing", "export", "--format", "json", "arm64"],
    ] {
        let c = parse(args).unwrap();
        let e = settings_of(&c).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_USAGE, "{args:?}");
        assert!(e.to_string().contains("does not apply to"), "{e}");
    }
}

#[test]
fn each_help_shows_only_its_options() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let longs = |name: &str| -> Vec<String> {
        cmd.find_subcommand(name)
            .unwrap()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect()
    };
    let inspect = longs("inspect");
    for absent in [
        "flags",
        "persist",
        "credentials",
        "keep-existing",
        "qemu-path",
        "config",
        "dry-run",
    ] {
        assert!(
            !inspect.iter().any(|l| l == absent),
            "inspect shows --{absent}"
        );
    }
    for present in ["binfmt-misc", "json", "verbose", "quiet"] {
        assert!(
            inspect.iter().any(|l| l == present),
            "inspect lacks --{present}"
        );
    }
    let install = longs("install");
    for present in [
        "flags",
        "persist",
        "credentials",
        "keep-existing",
        "qemu-path",
        "config",
        "dry-run",
        "binfmt-misc",
        "native",
        "not-native",
    ] {
        assert!(
            install.iter().any(|l| l == present),
            "install lacks --{present}"
        );
    }
    assert_eq!(
        longs("arches"),
        ["markdown", "json", "verbose", "quiet", "help"]
    );
}

#[test]
fn flags_option() {
    let o = |flags: Option<&str>, credentials| InstallOpts {
        flag_opts: FlagOpts {
            flags: flags.map(str::to_owned),
            credentials,
        },
        keep_existing: false,
        persist: false,
        nix: false,
        qemu: None,
    };
    assert_eq!(flags_from(&o(None, false)).unwrap().to_string(), "PF");
    assert_eq!(flags_from(&o(None, true)).unwrap().to_string(), "POCF");
    assert_eq!(flags_from(&o(Some("F"), false)).unwrap().to_string(), "F");
    let e = flags_from(&o(Some("FZ"), false)).unwrap_err();
    assert_eq!(exit_code(&e), EXIT_USAGE);
}

#[test]
fn globs() {
    assert!(ops::uninstall::glob_match(b"qemu-mips*", b"qemu-mips64el"));
    assert!(ops::uninstall::glob_match(b"qemu-*", b"qemu-aarch64"));
    assert!(!ops::uninstall::glob_match(b"qemu-*", b"python3.11"));
    assert!(ops::uninstall::glob_match(b"qemu-?rm", b"qemu-arm"));
    assert!(!ops::uninstall::glob_match(b"qemu-?rm", b"qemu-armeb"));
}

/// The man pages and completions `__generate` writes from this command line (`binfmtctl::generate`).
mod generated {
    use std::path::Path;

    use clap::CommandFactory;

    use binfmtctl::binfmt::arch::Table;
    use binfmtctl::cli::Cli;
    use binfmtctl::generate::{
        Artifact, CONFIG_PAGE, CONFIG_PAGE_NAME, SHELLS, command_paths, completion, generate,
        man_pages, visible_command,
    };

    fn subcommand_names() -> Vec<String> {
        visible_command(&Cli::command())
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect()
    }

    #[test]
    fn hidden_helpers_are_left_out_and_visible_ones_kept() {
        let all: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        let visible = subcommand_names();
        assert!(all.iter().any(|n| n.starts_with("__")), "{all:?}");
        assert!(visible.iter().all(|n| !n.starts_with("__")), "{visible:?}");
        for n in all.iter().filter(|n| !n.starts_with("__")) {
            assert!(visible.contains(n), "{n} lost: {visible:?}");
        }
        assert!(visible.contains(&"install".to_owned()), "{visible:?}");
    }

    #[test]
    fn one_man_page_per_visible_command_and_each_is_named_in_its_parent() {
        let pages = man_pages(&Cli::command(), "2026-01-01").unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        let paths = command_paths(&Cli::command());
        assert!(paths.len() > 10, "{paths:?}");
        for (path, _) in &paths {
            let want = format!("{}.1", path.join("-"));
            assert!(names.contains(&want.as_str()), "{want} missing: {names:?}");
        }
        assert!(names.contains(&"binfmtctl-rootfs-create.1"), "{names:?}");
        assert!(names.iter().all(|n| !n.contains("__")), "{names:?}");
        let page = |n: &str| {
            String::from_utf8(pages.iter().find(|(p, _)| p == n).unwrap().1.clone()).unwrap()
        };
        let root = page("binfmtctl.1");
        assert!(root.contains("\n.TH BINFMTCTL 1 2026-01-01 "), "{root}");
        for s in subcommand_names() {
            // In the SUBCOMMANDS list and in SEE ALSO.
            assert!(root.contains(&format!("binfmtctl\\-{s}(1)")), "{s} missing");
            assert!(
                root.contains(&format!(".BR binfmtctl\\-{s} ")),
                "{s} not in SEE ALSO"
            );
        }
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXIT STATUS",
            "FILES",
        ] {
            assert!(
                root.contains(&format!(".SH {section}\n"))
                    || root.contains(&format!(".SH \"{section}\"\n")),
                "{section}"
            );
        }
        assert!(root.contains("rolled back"), "exit codes: {root}");
        assert!(root.contains("binfmtctl.toml"), "{root}");
        // Options (here a global one) reach each subcommand's page.
        let install = page("binfmtctl-install.1");
        assert!(install.contains("\\-\\-dry\\-run"), "{install}");
        assert!(install.contains(".BR binfmtctl (1"), "{install}");
        let create = page("binfmtctl-rootfs-create.1");
        assert!(create.contains("\\-\\-include"), "{create}");
        assert!(create.contains(".BR binfmtctl\\-rootfs (1"), "{create}");
    }

    #[test]
    fn every_completion_names_every_subcommand() {
        let paths = command_paths(&Cli::command());
        for shell in SHELLS {
            let (file, script) = completion(&Cli::command(), shell);
            let script = String::from_utf8(script).unwrap();
            assert!(file.contains("binfmtctl"), "{file}");
            for (path, _) in &paths[1..] {
                let name = path.last().unwrap();
                assert!(script.contains(name.as_str()), "{shell}: {name} missing");
            }
            assert!(
                !script.contains("__sandbox"),
                "{shell}: hidden helper completed"
            );
            assert!(script.contains("dry-run"), "{shell}: options missing");
        }
    }

    /// The accepted keys, from the parser itself: its unknown-key error lists them.
    fn config_keys() -> Vec<String> {
        let text = "arches = [\"arm64\"]\nno_such_key_x = 1\n";
        let err = binfmtctl::config::parse(Path::new("/c.toml"), text, Table::builtin())
            .unwrap_err()
            .to_string();
        let list = err
            .split_once("expected one of")
            .unwrap_or_else(|| panic!("the parser no longer lists its keys: {err}"))
            .1;
        let keys: Vec<String> = list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        assert!(keys.contains(&"arches".to_owned()), "{err}");
        keys
    }

    #[test]
    fn config_page_documents_exactly_the_keys_the_parser_accepts() {
        let keys = config_keys();
        let documented: Vec<String> = CONFIG_PAGE
            .split(".SH ")
            .find(|s| s.starts_with("KEYS"))
            .expect("a KEYS section")
            .split(".TP\n")
            .skip(1)
            .map(|item| {
                let first = item.lines().next().unwrap();
                first.split_whitespace().nth(1).unwrap().to_owned()
            })
            .collect();
        for k in &keys {
            assert!(
                documented.contains(k),
                "key {k} undocumented in {CONFIG_PAGE_NAME}"
            );
        }
        for d in &documented {
            assert!(
                keys.contains(d),
                "{CONFIG_PAGE_NAME} documents {d}, which the parser rejects"
            );
        }
        assert!(CONFIG_PAGE.starts_with(".TH BINFMTCTL.TOML 5 "));
        assert!(CONFIG_PAGE.contains(binfmtctl::config::DEFAULT_PATH));
    }

    #[test]
    fn config_page_example_and_shipped_example_parse() {
        let example: String = CONFIG_PAGE
            .split(".EX\n")
            .nth(1)
            .and_then(|s| s.split("\n.EE").next())
            .expect("an .EX example")
            .replace("\\(dq", "\"")
            .replace("\\e", "\\")
            .replace("\\-", "-");
        let c = binfmtctl::config::parse(Path::new("/c.toml"), &example, Table::builtin())
            .unwrap_or_else(|e| panic!("{e}\n{example}"));
        assert_eq!(c.arches, ["aarch64", "riscv64"]);
        let shipped = include_str!("../packaging/examples/config.toml");
        let c = binfmtctl::config::parse(Path::new("/c.toml"), shipped, Table::builtin()).unwrap();
        assert!(!c.arches.is_empty());
        for k in config_keys() {
            assert!(
                example.contains(&format!("\n{k} ="))
                    || example.starts_with(&format!("{k} ="))
                    || example.contains(&format!("\n[{k}]\n")),
                "{k} not in the page's example"
            );
        }
    }

    #[test]
    fn writes_the_files_into_dir() {
        let d = tempfile::tempdir().unwrap();
        let man = generate(&Cli::command(), Artifact::Man, &d.path().join("man"), None).unwrap();
        assert!(man.iter().any(|p| p.ends_with("binfmtctl.1")));
        assert!(man.iter().any(|p| p.ends_with(CONFIG_PAGE_NAME)));
        let comp = generate(
            &Cli::command(),
            Artifact::Completions,
            &d.path().join("comp"),
            None,
        )
        .unwrap();
        let names: Vec<_> = comp
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["binfmtctl.bash", "_binfmtctl", "binfmtctl.fish"]);
        for p in man.iter().chain(&comp) {
            assert!(std::fs::metadata(p).unwrap().len() > 100, "{}", p.display());
        }
    }
}

/// `build --help` and `binfmtctl --help` describe `auto` in the order `ops::build::choose`
/// decides (issue 21: they said "cross first" while a matching rootfs takes hybrid).
#[test]
fn build_help_describes_auto_as_choose_decides() {
    use binfmtctl::ops::build::{Requested, Strategy, choose};
    use clap::CommandFactory;
    let both = choose(
        Requested::Auto,
        "aarch64",
        Ok(()),
        true,
        Some(Ok("gcc-12")),
        false,
    )
    .unwrap();
    assert_eq!(both.strategy, Strategy::Hybrid);
    let no_rootfs = choose(Requested::Auto, "aarch64", Ok(()), false, None, false).unwrap();
    assert_eq!(no_rootfs.strategy, Strategy::Cross);
    let neither = choose(
        Requested::Auto,
        "aarch64",
        Err("none"),
        true,
        Some(Err("x")),
        false,
    )
    .unwrap();
    assert_eq!(neither.strategy, Strategy::Emulate);
    let mut cli = Cli::command();
    let top = cli.render_long_help().to_string();
    let build = cli
        .find_subcommand_mut("build")
        .map(|b| b.render_long_help().to_string())
        .unwrap();
    for help in [&top, &build] {
        assert!(!help.contains("cross first"), "{help}");
    }
    let flat = build.split_whitespace().collect::<Vec<_>>().join(" ");
    let (h, c, e) = (
        flat.find("hybrid when the host's cross gcc matches")
            .unwrap(),
        flat.find("else cross when installed").unwrap(),
        flat.find("else emulate").unwrap(),
    );
    assert!(h < c && c < e, "{build}");
}

/// With `--json`, a usage error's message names what is wrong in full (issue 21).
#[test]
fn usage_error_json_names_the_missing_argument() {
    let e = parse(&["install", "--json"]).unwrap_err();
    let v =
        binfmtctl::exit::usage_error_json(&binfmtctl::exit::usage_message(&e.render().to_string()));
    assert_eq!(
        v["error"]["message"],
        "the following required arguments were not provided: <ARCHES>..."
    );
    assert_eq!(v["error"]["exit_code"], 2);
}

/// Every positional argument says what it is in `--help` (and so in the man pages), and every
/// page has EXIT STATUS, ENVIRONMENT and FILES (issue 21).
#[test]
fn positionals_are_described_and_pages_have_every_section() {
    use clap::CommandFactory;
    let mut missing = Vec::new();
    for (path, cmd) in binfmtctl::generate::command_paths(&Cli::command()) {
        for a in cmd
            .get_arguments()
            .filter(|a| a.is_positional() && !a.is_hide_set())
        {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{} {}", path.join(" "), a.get_id()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "positionals without a description: {missing:?}"
    );
    let pages = binfmtctl::generate::man_pages(&Cli::command(), "2026-01-01").unwrap();
    for (name, roff) in pages.iter().filter(|(n, _)| n.ends_with(".1")) {
        let text = String::from_utf8_lossy(roff);
        for section in ["SYNOPSIS", "EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(
                text.contains(&format!(".SH {section}\n"))
                    || text.contains(&format!(".SH \"{section}\"\n")),
                "{name}: no {section}"
            );
        }
        for var in ["BINFMTCTL_ROOTFS_CACHE", "NIX_CONF_DIR", "QEMU_CPU"] {
            assert!(text.contains(var), "{name}: {var}");
        }
    }
    let page = |n: &str| {
        String::from_utf8_lossy(&pages.iter().find(|(p, _)| p == n).unwrap().1).into_owned()
    };
    let build = page("binfmtctl-build.1");
    assert!(
        build.contains("The command\\*(Aqs own exit status")
            || build.contains("The command's own exit status"),
        "{build}"
    );
    // Placeholders in the synopsis: the value each option takes.
    assert!(build.contains("[\\-\\-rootfs DIR|TARBALL]"), "{build}");
    assert!(build.contains("\\-\\- CMD..."), "{build}");
}

/// `qemu fetch --help` describes --config and --dry-run as they work for fetch (issue 21).
#[test]
fn qemu_fetch_help_describes_its_own_config_and_dry_run() {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    let help = cli
        .find_subcommand_mut("qemu")
        .and_then(|q| q.find_subcommand_mut("fetch"))
        .map(|f| f.render_long_help().to_string())
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("qemu_mirror and qemu_keyring"), "{help}");
    assert!(help.contains("store nothing"), "{help}");
    assert!(!help.contains("install --persist"), "{help}");
    assert!(!help.contains("not even a mount"), "{help}");
}

#[test]
fn parses_the_nix_forms() {
    use clap::Parser;
    let p = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("binfmtctl").chain(args.iter().copied()))
    };
    let c = p(&["install", "arm64,riscv64", "--nix"]).unwrap();
    assert!(matches!(c.command, Some(Command::Install { opts, .. }) if opts.nix));
    let c = p(&["nix", "status", "--json"]).unwrap();
    assert!(matches!(c.command, Some(Command::Nix(NixCommand::Status))) && c.output.json);
    let c = p(&[
        "nix",
        "machines",
        "--host",
        "ssh-ng://b1",
        "--max-jobs",
        "4",
    ])
    .unwrap();
    assert!(matches!(
        c.command,
        Some(Command::Nix(NixCommand::Machines { ref host, max_jobs: Some(4), .. })) if host == "ssh-ng://b1"
    ));
    assert!(p(&["nix", "machines"]).is_err(), "--host is required");
    assert!(p(&["nix", "machines", "--host", "h", "--max-jobs", "x"]).is_err());
}
