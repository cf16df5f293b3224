//! Man pages and shell completions, generated from the clap definitions (`Cli::command()`) so
//! they cannot drift from the parser, plus the hand-written page of the config file
//! (`packaging/man/binfmtctl.toml.5`, embedded).
//!
//! `binfmtctl __generate man DIR` writes binfmtctl(1), binfmtctl-<sub>(1) for every visible
//! subcommand (nested ones as binfmtctl-<sub>-<sub>(1)) and binfmtctl.toml(5);
//! `binfmtctl __generate completions DIR` writes bash (`binfmtctl.bash`), zsh (`_binfmtctl`)
//! and fish (`binfmtctl.fish`) completions. Hidden subcommands (the internal helpers) appear in
//! neither. Packaging scripts call it (packaging/deb/build.sh).
//!
//! Privileges: none; it only creates files in DIR. Follows man-pages(7) for the section layout
//! (NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::Cli;
use super::args::EXIT_CODES_HELP;

/// What `__generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Artifact {
    /// Man pages: section 1 for the commands, section 5 for the config file
    Man,
    /// Completions for bash, zsh and fish
    Completions,
}

/// The config file's page: hand-written (a file format has no clap definition); a test checks it
/// names every key the config parser accepts and that its example parses.
pub const CONFIG_PAGE_NAME: &str = "binfmtctl.toml.5";
pub const CONFIG_PAGE: &str = include_str!("../../packaging/man/binfmtctl.toml.5");

/// The shells we ship completions for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

const BIN: &str = "binfmtctl";

/// The command tree as users see it: `Cli::command()` without the hidden subcommands (the
/// internal helpers), recursively.
pub fn visible_command() -> clap::Command {
    fn strip(cmd: &clap::Command) -> clap::Command {
        let subs: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(strip)
            .collect();
        // Commands cannot lose subcommands, so rebuild this level with the visible ones. The
        // arguments, groups and texts are copied; settings that only affect parsing don't
        // matter for documentation and completion.
        let mut out = clap::Command::new(cmd.get_name().to_owned())
            .args(cmd.get_arguments().cloned())
            .groups(cmd.get_groups().cloned())
            .subcommands(subs);
        if let Some(v) = cmd.get_version() {
            out = out.version(v.to_owned());
        }
        if let Some(a) = cmd.get_about() {
            out = out.about(a.clone());
        }
        if let Some(a) = cmd.get_long_about() {
            out = out.long_about(a.clone());
        }
        if let Some(a) = cmd.get_after_help() {
            out = out.after_help(a.clone());
        }
        if let Some(a) = cmd.get_after_long_help() {
            out = out.after_long_help(a.clone());
        }
        if let Some(h) = cmd.get_subcommand_value_name() {
            out = out.subcommand_value_name(h.to_owned());
        }
        if cmd.is_subcommand_required_set() {
            out = out.subcommand_required(true);
        }
        out
    }
    let mut cmd = strip(&Cli::command()).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every visible command as (path of names, command): `["binfmtctl"]`, `["binfmtctl",
/// "install"]`, `["binfmtctl", "rootfs", "create"]`, ...
pub fn command_paths() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(prefix: &[String], cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        let mut path = prefix.to_vec();
        path.push(cmd.get_name().to_owned());
        out.push((path.clone(), cmd.clone()));
        for s in cmd.get_subcommands() {
            walk(&path, s, out);
        }
    }
    let mut out = Vec::new();
    walk(&[], &visible_command(), &mut out);
    out
}

/// Renders every man page: (file name, roff source).
pub fn man_pages(date: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let version = env!("CARGO_PKG_VERSION");
    let mut pages = Vec::new();
    for (path, cmd) in command_paths() {
        let name = path.join("-");
        let man = Man::new(cmd.clone().display_name(name.clone()))
            .title(name.to_uppercase())
            .section("1")
            .date(date)
            .source(format!("{BIN} {version}"))
            .manual("binfmtctl manual");
        let mut buf = Vec::new();
        man.render_title(&mut buf)?;
        man.render_name_section(&mut buf)?;
        man.render_synopsis_section(&mut buf)?;
        man.render_description_section(&mut buf)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut buf)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut buf)?;
        }
        let root = path.len() == 1;
        let mut roff = Roff::new();
        if root {
            exit_status(&mut roff);
            environment(&mut roff);
            files(&mut roff);
        } else if let Some(text) = cmd.get_after_long_help().or(cmd.get_after_help()) {
            verbatim(&mut roff, "NOTES", &text.to_string());
        }
        see_also(&mut roff, &path, &cmd);
        roff.to_writer(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
    }
    pages.push((CONFIG_PAGE_NAME.to_owned(), CONFIG_PAGE.as_bytes().to_vec()));
    Ok(pages)
}

/// A section whose text keeps its line breaks and indentation.
fn verbatim(roff: &mut Roff, heading: &str, text: &str) {
    roff.control("SH", [heading]);
    roff.control("nf", []);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
}

fn exit_status(roff: &mut Roff) {
    // The --help text starts with a title line; the man page has its own heading.
    let body: Vec<&str> = EXIT_CODES_HELP
        .lines()
        .skip_while(|l| l.trim_end().ends_with(':'))
        .collect();
    verbatim(roff, "EXIT STATUS", &body.join("\n"));
}

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold("BINFMTCTL_LOG")]);
    roff.text([roman(
        "Log filter (tracing's EnvFilter syntax, e.g. debug); overrides -v and -q. \
         Logs go to standard error.",
    )]);
}

fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            crate::config::DEFAULT_PATH,
            "The arches to keep registered, read by binfmtctl apply and written by install \
             --persist; see binfmtctl.toml(5).",
        ),
        (
            "/proc/sys/fs/binfmt_misc",
            "The kernel's binfmt_misc (--binfmt-misc); binfmtctl mounts it there when it is \
             not mounted.",
        ),
        (
            "/usr/lib/systemd/system/binfmtctl.service",
            "Runs binfmtctl apply at boot and binfmtctl apply --remove at stop; not enabled \
             by the package.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(file)]);
        roff.text([roman(what)]);
    }
}

fn see_also(roff: &mut Roff, path: &[String], cmd: &clap::Command) {
    let mut refs: Vec<String> = Vec::new();
    if path.len() > 1 {
        refs.push(format!("{}(1)", path[..path.len() - 1].join("-")));
    }
    for s in cmd.get_subcommands() {
        refs.push(format!("{}-{}(1)", path.join("-"), s.get_name()));
    }
    if path.len() == 1 {
        refs.push("binfmtctl.toml(5)".into());
    }
    refs.extend(
        [
            "binfmt.d(5)",
            "systemd-binfmt.service(8)",
            "update-binfmts(8)",
            "qemu-user-static(1)",
        ]
        .map(str::to_owned),
    );
    roff.control("SH", ["SEE ALSO"]);
    let last = refs.len() - 1;
    for (i, r) in refs.iter().enumerate() {
        let (name, section) = r.split_once('(').unwrap_or((r, ""));
        let sep = if i == last { "" } else { "," };
        // Control lines are not escaped: a hyphen must be written as \- by hand.
        let name = name.replace('-', "\\-");
        let section = format!("({section}{sep}");
        roff.control("BR", [name.as_str(), section.as_str()]);
    }
}

/// Renders the completion script of one shell: (file name, script).
pub fn completion(shell: Shell) -> (String, Vec<u8>) {
    let mut cmd = visible_command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
    (clap_complete::Generator::file_name(&shell, BIN), buf)
}

/// Writes the artifacts into `dir` (created if missing); returns the files written.
pub fn generate(what: Artifact, dir: &Path, date: Option<&str>) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}: pass a writable DIR", dir.display()))?;
    let files = match what {
        Artifact::Man => man_pages(date.unwrap_or(""))?,
        Artifact::Completions => SHELLS.into_iter().map(completion).collect(),
    };
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write {}: pass a writable DIR", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;

    fn subcommand_names() -> Vec<String> {
        visible_command()
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
        let pages = man_pages("2026-01-01").unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        let paths = command_paths();
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
        let paths = command_paths();
        for shell in SHELLS {
            let (file, script) = completion(shell);
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
        let err = crate::config::parse(Path::new("/c.toml"), text, Table::builtin())
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
        assert!(CONFIG_PAGE.contains(crate::config::DEFAULT_PATH));
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
        let c = crate::config::parse(Path::new("/c.toml"), &example, Table::builtin())
            .unwrap_or_else(|e| panic!("{e}\n{example}"));
        assert_eq!(c.arches, ["aarch64", "riscv64"]);
        let shipped = include_str!("../../packaging/examples/config.toml");
        let c = crate::config::parse(Path::new("/c.toml"), shipped, Table::builtin()).unwrap();
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
        let man = generate(Artifact::Man, &d.path().join("man"), None).unwrap();
        assert!(man.iter().any(|p| p.ends_with("binfmtctl.1")));
        assert!(man.iter().any(|p| p.ends_with(CONFIG_PAGE_NAME)));
        let comp = generate(Artifact::Completions, &d.path().join("comp"), None).unwrap();
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
