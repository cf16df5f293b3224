//! Man pages and shell completions, generated from a clap command tree (the CLI passes its own,
//! `cli::Cli::command()`) so they cannot drift from the parser, plus the hand-written page of the config file
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
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

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
pub const CONFIG_PAGE: &str = include_str!("../packaging/man/binfmtctl.toml.5");

/// The shells we ship completions for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

const BIN: &str = "binfmtctl";

/// The command tree as users see it: `cli` without the hidden subcommands (the internal
/// helpers), recursively.
pub fn visible_command(cli: &clap::Command) -> clap::Command {
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
    let mut cmd = strip(cli).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every visible command as (path of names, command): `["binfmtctl"]`, `["binfmtctl",
/// "install"]`, `["binfmtctl", "rootfs", "create"]`, ...
pub fn command_paths(cli: &clap::Command) -> Vec<(Vec<String>, clap::Command)> {
    fn walk(prefix: &[String], cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        let mut path = prefix.to_vec();
        path.push(cmd.get_name().to_owned());
        out.push((path.clone(), cmd.clone()));
        for s in cmd.get_subcommands() {
            walk(&path, s, out);
        }
    }
    let mut out = Vec::new();
    walk(&[], &visible_command(cli), &mut out);
    out
}

/// Renders every man page: (file name, roff source).
pub fn man_pages(cli: &clap::Command, date: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let version = env!("CARGO_PKG_VERSION");
    let mut pages = Vec::new();
    for (path, cmd) in command_paths(cli) {
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
        let mut syn = Roff::new();
        synopsis(&mut syn, &name, &cmd);
        syn.to_writer(&mut buf)?;
        man.render_description_section(&mut buf)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut buf)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut buf)?;
        }
        let root = path.len() == 1;
        let mut roff = Roff::new();
        if !root && let Some(text) = cmd.get_after_long_help().or(cmd.get_after_help()) {
            verbatim(&mut roff, "NOTES", &text.to_string());
        }
        // Every page: what its exit status means, what it reads from the environment, and
        // the files involved (man-pages(7) order).
        exit_status(&mut roff, cli, &path);
        environment(&mut roff);
        files(&mut roff);
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

/// SYNOPSIS with placeholders: `binfmtctl build --arch ARCH [--strategy STRATEGY] ... -- CMD...`
/// (clap_mangen's own shows `[--strategy]`, without the value an option takes).
fn synopsis(roff: &mut Roff, name: &str, cmd: &clap::Command) {
    roff.control("SH", ["SYNOPSIS"]);
    let mut words: Vec<String> = vec![name.replacen('-', " ", usize::MAX)];
    let value = |a: &clap::Arg| {
        a.get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| a.get_id().as_str().to_uppercase(), ToString::to_string)
    };
    let takes_value = |a: &clap::Arg| {
        !matches!(
            a.get_action(),
            clap::ArgAction::SetTrue
                | clap::ArgAction::Count
                | clap::ArgAction::Help
                | clap::ArgAction::HelpLong
                | clap::ArgAction::Version
                | clap::ArgAction::SetFalse
        )
    };
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
    {
        let flag = match (a.get_long(), a.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            (None, None) => continue,
        };
        let word = if takes_value(a) {
            if a.is_require_equals_set() || a.get_num_args().is_some_and(|n| n.min_values() == 0) {
                format!("{flag}[={}]", value(a))
            } else {
                format!("{flag} {}", value(a))
            }
        } else {
            flag
        };
        let repeat = matches!(
            a.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        );
        let word = if repeat { format!("{word}...") } else { word };
        words.push(if a.is_required_set() {
            word
        } else {
            format!("[{word}]")
        });
    }
    if cmd.has_subcommands() {
        words.push("COMMAND".into());
    }
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.is_positional())
    {
        let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
        let mut word = value(a);
        if many {
            word.push_str("...");
        }
        if a.is_last_set() {
            word = format!("-- {word}");
        }
        words.push(if a.is_required_set() {
            word
        } else {
            format!("[{word}]")
        });
    }
    roff.text([roman(words.join(" "))]);
}

/// EXIT STATUS: the codes every command shares; `run` and `build` first pass on the status
/// of the command they ran.
fn exit_status(roff: &mut Roff, cli: &clap::Command, path: &[String]) {
    // The root's after-help is the exit codes' text (`cli::args::EXIT_CODES_HELP`); it starts
    // with a title line, and the man page has its own heading.
    let help = cli
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let body: Vec<&str> = help
        .lines()
        .skip_while(|l| l.trim_end().ends_with(':'))
        .collect();
    let mut text = String::new();
    if matches!(path.get(1).map(String::as_str), Some("run" | "build")) {
        text.push_str(
            "The command's own exit status once it ran (128+N when signal N killed it);\n\
             125 when the sandbox could not be set up, 126 when CMD is not executable,\n\
             127 when it is not found. Before CMD runs, binfmtctl's own codes:\n",
        );
    }
    text.push_str(&body.join("\n"));
    verbatim(roff, "EXIT STATUS", &text);
}

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in [
        (
            "BINFMTCTL_LOG",
            "Log filter (tracing's EnvFilter syntax, e.g. debug); overrides -v and -q. \
             Logs go to standard error.",
        ),
        (
            "BINFMTCTL_ROOTFS_CACHE",
            "Where run and build unpack a --rootfs tarball (default \
             /var/cache/binfmtctl/rootfs as root, else $XDG_CACHE_HOME/binfmtctl/rootfs or \
             ~/.cache/binfmtctl/rootfs); it must belong to the caller and not be writable by \
             others.",
        ),
        (
            "NIX_CONF_DIR",
            "Nix's configuration directory (default /etc/nix): install --nix, uninstall, apply \
             with [nix] enabled, nix status and doctor read and write nix.conf and \
             binfmtctl.conf there, as Nix does.",
        ),
        (
            "QEMU_CPU",
            "QEMU's CPU model: run --cpu and build --cpu set it inside the sandbox; outside, \
             QEMU's own variables (QEMU_CPU, QEMU_STRACE, ...) pass through the kernel to the \
             interpreter.",
        ),
        (
            "PATH",
            "Where nix, systemctl, mmdebstrap/debootstrap and the cross toolchains are found; \
             as root, only programs no other user can replace are run.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(var)]);
        roff.text([roman(what)]);
    }
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
            "The kernel's binfmt_misc (--binfmt-misc). install, uninstall, enable, disable, \
             apply and qemu use mount it there when it is not mounted; status, inspect, \
             interpreters and test never do.",
        ),
        (
            crate::qemu::store::DEFAULT_ROOT,
            "The QEMU store (--qemu-store): one directory per Debian version, with its \
             manifest (qemu fetch, list, use, verify, gc).",
        ),
        (
            "/var/cache/binfmtctl/rootfs",
            "Unpacked --rootfs tarballs of run and build as root (BINFMTCTL_ROOTFS_CACHE); \
             ~/.cache/binfmtctl/rootfs for other users.",
        ),
        (
            "/etc/nix/nix.conf, /etc/nix/binfmtctl.conf",
            "Nix's configuration (NIX_CONF_DIR): binfmtctl writes only binfmtctl.conf and the \
             two lines that include it.",
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
pub fn completion(cli: &clap::Command, shell: Shell) -> (String, Vec<u8>) {
    let mut cmd = visible_command(cli);
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
    (clap_complete::Generator::file_name(&shell, BIN), buf)
}

/// Writes the artifacts into `dir` (created if missing); returns the files written.
pub fn generate(
    cli: &clap::Command,
    what: Artifact,
    dir: &Path,
    date: Option<&str>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}: pass a writable DIR", dir.display()))?;
    let files = match what {
        Artifact::Man => man_pages(cli, date.unwrap_or(""))?,
        Artifact::Completions => SHELLS.into_iter().map(|s| completion(cli, s)).collect(),
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
