//! The console examples of README.md and docs/*.md, run against the real binary (issue 21: a
//! doc example that stops being true fails CI).
//!
//! An example is a fenced block whose first line starts with `$ `: each `$ COMMAND` line is
//! followed by the output a user sees (stdout and stderr, as on a terminal). Every such block
//! carries a marker in an HTML comment on the line before its fence, so nothing is skipped
//! silently:
//!
//! - `<!-- doc-test -->`: run it;
//! - `<!-- doc-test setup: SHELL -->`: run it after SHELL (which must succeed; its output is
//!   not compared), e.g. `binfmtctl install arm64 --flags P`;
//! - `<!-- doc-test skip: WHY -->`: not run here; the test lists and counts it.
//!
//! Each run block gets a fresh private binfmt_misc instance in a user namespace (never the
//! host's), a scratch working directory holding the foreign binaries (`./busybox-arm64`, ...),
//! and `binfmtctl` on PATH as the binary under test. In the quoted output, a line that is just
//! `...` stands for any number of lines, and `...` inside a line for any text (versions, paths,
//! sizes). Lines are compared without trailing blanks.
//!
//! The scan for markers runs everywhere; running the examples needs BINFMTCTL_TEST_ROOT=1.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

#[derive(Debug)]
enum Mark {
    Run { setup: Option<String> },
    Skip(String),
}

#[derive(Debug)]
struct Example {
    file: String,
    line: usize,
    mark: Mark,
    /// (command, expected output lines)
    steps: Vec<(String, Vec<String>)>,
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Every console example of the docs; an unmarked one, or a marker without a block, is an
/// error naming file and line.
fn examples() -> Result<Vec<Example>, Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in doc_files() {
        let name = path.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            if !l.starts_with("```") {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i + 1;
            while end < lines.len() && !lines[end].starts_with("```") {
                end += 1;
            }
            let body = &lines[start + 1..end.min(lines.len())];
            let prev = start.checked_sub(1).map(|p| lines[p].trim()).unwrap_or("");
            let mark = prev
                .strip_prefix("<!-- doc-test")
                .and_then(|m| m.strip_suffix("-->"))
                .map(str::trim);
            let console = body.first().is_some_and(|f| f.starts_with("$ "));
            match (console, mark) {
                (true, None) => errors.push(format!(
                    "{name}:{}: a console example without a marker: put `<!-- doc-test -->` (or `<!-- doc-test skip: WHY -->`) on the line before its fence",
                    start + 1
                )),
                (false, Some(_)) => errors.push(format!(
                    "{name}:{}: a doc-test marker on a block that does not start with `$ `",
                    start
                )),
                (false, None) => {}
                (true, Some(m)) => {
                    let mark = if let Some(why) = m.strip_prefix("skip:") {
                        Mark::Skip(why.trim().to_owned())
                    } else if let Some(s) = m.strip_prefix("setup:") {
                        Mark::Run {
                            setup: Some(s.trim().to_owned()),
                        }
                    } else if m.is_empty() {
                        Mark::Run { setup: None }
                    } else {
                        errors.push(format!("{name}:{start}: unknown doc-test marker {m:?}"));
                        Mark::Skip(String::new())
                    };
                    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
                    for b in body {
                        if let Some(cmd) = b.strip_prefix("$ ") {
                            steps.push((cmd.to_owned(), Vec::new()));
                        } else {
                            steps
                                .last_mut()
                                .unwrap()
                                .1
                                .push(b.trim_end().to_owned());
                        }
                    }
                    out.push(Example {
                        file: name.clone(),
                        line: start + 1,
                        mark,
                        steps,
                    });
                }
            }
            i = end + 1;
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether `line` matches `pat`, where `...` in `pat` stands for any text.
fn line_matches(pat: &str, line: &str) -> bool {
    let mut parts = pat.split("...");
    let first = parts.next().unwrap();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    if parts.is_empty() {
        return rest.is_empty();
    }
    for (k, p) in parts.iter().enumerate() {
        if k == parts.len() - 1 {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    unreachable!()
}

/// Whether `lines` match `pats`, where a pattern line `...` stands for any number of lines.
fn lines_match(pats: &[String], lines: &[&str]) -> bool {
    match pats.split_first() {
        None => lines.is_empty(),
        Some((p, rest)) if p == "..." => {
            (0..=lines.len()).any(|skip| lines_match(rest, &lines[skip..]))
        }
        Some((p, rest)) => {
            !lines.is_empty() && line_matches(p, lines[0]) && lines_match(rest, &lines[1..])
        }
    }
}

#[test]
fn wildcards() {
    assert!(line_matches("a ... b", "a xyz b"));
    assert!(line_matches("(QEMU ...)", "(QEMU 7.2.22)"));
    assert!(!line_matches("a ... b", "a xyz c"));
    assert!(line_matches("exact", "exact"));
    assert!(!line_matches("exact", "exactly"));
    let p: Vec<String> = ["x", "...", "z"].iter().map(|s| s.to_string()).collect();
    assert!(lines_match(&p, &["x", "y", "y", "z"]));
    assert!(lines_match(&p, &["x", "z"]));
    assert!(!lines_match(&p, &["x", "y"]));
}

/// Every console example in the docs is marked (run, or skipped with a reason): runs
/// everywhere, without root.
#[test]
fn every_console_example_is_marked() {
    match examples() {
        Ok(ex) => assert!(!ex.is_empty(), "no console example found in the docs"),
        Err(e) => panic!("{}", e.join("\n")),
    }
}

/// Runs every marked example in a private binfmt_misc instance and compares its output.
#[test]
fn documented_examples_hold() {
    gate!(Root, Assets, X86_64Host);
    let examples = examples().unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let assets = common::assets();
    let mut failures = Vec::new();
    let (mut ran, mut skipped) = (0, Vec::new());
    for ex in &examples {
        let setup = match &ex.mark {
            Mark::Skip(why) => {
                skipped.push(format!("{}:{} ({why})", ex.file, ex.line));
                continue;
            }
            Mark::Run { setup } => setup.clone().unwrap_or_else(|| ":".into()),
        };
        ran += 1;
        let work = tempfile::tempdir().unwrap();
        let bindir = work.path().join(".bin");
        std::fs::create_dir(&bindir).unwrap();
        std::os::unix::fs::symlink(common::bin(), bindir.join("binfmtctl")).unwrap();
        for e in std::fs::read_dir(&assets).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), work.path().join(e.file_name())).unwrap();
            }
        }
        // Each command runs in bash (so `$ X=1 cmd`, pipes and `eval` work), its stderr
        // joined to its stdout as on a terminal; a marker line separates the outputs.
        let mut script = format!(
            "cd {}\nexport PATH={}:$PATH\n({setup}) >.setup.log 2>&1 || {{ echo '@@setup-failed'; cat .setup.log; exit 0; }}\n",
            work.path().display(),
            bindir.display()
        );
        for (k, (cmd, _)) in ex.steps.iter().enumerate() {
            script.push_str(&format!(
                "echo '@@step {k}'\nbash -c {} 2>&1\n",
                shell_quote(cmd)
            ));
        }
        let r = common::ns(&script);
        if let Some(log) = r.stdout.split("@@setup-failed\n").nth(1) {
            failures.push(format!(
                "{}:{}: the setup failed:\n{log}{}",
                ex.file, ex.line, r.stderr
            ));
            continue;
        }
        let mut outputs: Vec<Vec<&str>> = Vec::new();
        for l in r.stdout.lines() {
            if l.starts_with("@@step ") {
                outputs.push(Vec::new());
            } else if let Some(o) = outputs.last_mut() {
                o.push(l.trim_end());
            }
        }
        for (k, (cmd, want)) in ex.steps.iter().enumerate() {
            let got = outputs.get(k).cloned().unwrap_or_default();
            if !lines_match(want, &got) {
                failures.push(format!(
                    "{}:{}: `$ {cmd}` printed\n{}\n--- but the doc says\n{}\n",
                    ex.file,
                    ex.line,
                    got.join("\n"),
                    want.join("\n")
                ));
            }
        }
    }
    // On the terminal (past libtest's capture): what ran, and what was skipped and why.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "doc examples: {ran} run, {} skipped{}{}",
        skipped.len(),
        if skipped.is_empty() { "" } else { ":\n  " },
        skipped.join("\n  ")
    );
    assert!(ran > 0, "no doc example ran");
    assert!(
        failures.is_empty(),
        "{} doc example(s) do not hold:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Shell words of a command line (single and double quotes, backslash escapes outside single
/// quotes); enough for the command lines the docs quote.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        _ => cur.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Every `binfmtctl ...` command line the docs quote in a shell block (console examples and
/// the command summaries alike: README's usage, doctor.md, qemu.md, nix.md, deploy.md, ...)
/// is one the program accepts: parsed with the program's own parser, so an option that was
/// renamed or removed, or a subcommand that no longer exists, fails here. Synopsis lines
/// (placeholders in capitals, `[optional]`, `a|b`, `...`) are usage summaries, not command
/// lines, and are left out; how many lines were checked is printed.
#[test]
fn every_quoted_command_line_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut errors = Vec::new();
    for path in doc_files() {
        let name = path.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut in_block = false;
        let mut shell = false;
        let mut pending: Option<(usize, String)> = None;
        for (n, raw) in text.lines().enumerate() {
            if let Some(info) = raw.strip_prefix("```") {
                in_block = !in_block;
                shell = matches!(info.trim(), "" | "sh" | "console" | "shell" | "bash");
                pending = None;
                continue;
            }
            if !in_block || !shell {
                continue;
            }
            // A continued line (trailing backslash) joins the next.
            let (line_no, mut line) = match pending.take() {
                Some((at, mut acc)) => {
                    acc.push(' ');
                    acc.push_str(raw.trim());
                    (at, acc)
                }
                None => (n + 1, raw.trim().to_owned()),
            };
            if let Some(cont) = line.strip_suffix('\\') {
                pending = Some((line_no, cont.trim_end().to_owned()));
                continue;
            }
            for prompt in ["$ ", "# "] {
                if let Some(rest) = line.strip_prefix(prompt) {
                    line = rest.to_owned();
                }
            }
            if let Some(rest) = line.strip_prefix("sudo ") {
                line = rest.to_owned();
            }
            let Some(args) = line
                .strip_prefix("binfmtctl ")
                .or((line == "binfmtctl").then_some(""))
            else {
                continue;
            };
            // The command itself: up to a comment, a summary's description (two spaces), a
            // pipe, a redirection or a list.
            let cut = [" #", "  ", " |", " >", " 2>", " &&", " ||", ";"]
                .iter()
                .filter_map(|m| args.find(m))
                .min()
                .unwrap_or(args.len());
            let args = args[..cut].trim();
            let words = shell_words(args);
            let synopsis = words.iter().any(|w| {
                w.contains('[')
                    || w.contains('|')
                    || w.ends_with("...")
                    || (w.len() > 1
                        && w.chars().any(|c| c.is_ascii_uppercase())
                        && w.trim_start_matches('-')
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || "_,=:.".contains(c)))
            });
            if synopsis {
                continue;
            }
            checked += 1;
            let argv = std::iter::once("binfmtctl".to_owned()).chain(words);
            if let Err(e) = binfmtctl::cli::settings::Parsed::try_from_args(argv) {
                use clap::error::ErrorKind as K;
                if !matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
                    errors.push(format!(
                        "{name}:{line_no}: `binfmtctl {args}`: {}",
                        e.render().to_string().lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    eprintln!("doc command lines: {checked} parsed");
    assert!(checked > 50, "only {checked} command lines found");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
