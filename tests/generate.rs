//! The generated man pages and completions, checked with the real tools: man-db renders every
//! page without a warning, and bash completes subcommands with the generated script. (The
//! Debian package built from them is tested by packaging/deb/test.sh.) Touches no binfmt_misc.

#[macro_use]
mod common;

use std::process::Command;

use common::bin;

fn generate(what: &str, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let out = Command::new(bin())
        .args(["__generate", what])
        .arg(dir)
        .args(["--date", "2026-01-01"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<std::path::PathBuf> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(Into::into)
        .collect();
    assert!(!files.is_empty());
    files
}

#[test]
fn every_man_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let pages = generate("man", dir.path());
    assert!(pages.iter().any(|p| p.ends_with("binfmtctl.1")));
    assert!(pages.iter().any(|p| p.ends_with("binfmtctl.toml.5")));
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (man-db; scripts/deps.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", page.display());
        assert!(
            out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(
                text.lines().any(|l| l == section),
                "{}: no {section}\n{text}",
                page.display()
            );
        }
    }
}

#[test]
fn bash_completes_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate("completions", dir.path());
    let script = files
        .iter()
        .find(|p| p.ends_with("binfmtctl.bash"))
        .unwrap();
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; \
                 COMP_POINT=${{#COMP_LINE}}; _binfmtctl binfmtctl '{}' '{}'; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display(),
                words.join(" "),
                words.len() - 1,
                words[words.len() - 1],
                words[words.len() - 2],
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let subs = complete("binfmtctl ins");
    assert!(subs.lines().any(|l| l == "install"), "{subs}");
    assert!(subs.lines().any(|l| l == "inspect"), "{subs}");
    assert!(!subs.contains("__"), "internal subcommands offered: {subs}");
    let opts = complete("binfmtctl rootfs create --");
    assert!(opts.lines().any(|l| l == "--include"), "{opts}");
}
