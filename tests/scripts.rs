//! The project's own shell scripts: in a script that sets `pipefail`, no pipeline ends in a
//! reader that may stop before its writer is done (`grep -q`, `grep -m`, `head`, an `awk`
//! program that exits). Such a reader closes the pipe early; a writer that writes more than
//! once (dpkg writes a line at a time) then dies of SIGPIPE, and pipefail turns the pipeline's
//! answer into a failure — at random, depending on the scheduler. This cost a CI run once
//! (`dpkg --print-foreign-architectures | grep -qx arm64` in integration-vm/arm64.sh). Capture
//! the output first (`x=$(cmd)`; `grep -q … <<<"$x"`) or use a reader that reads to the end
//! (`sed -n 1p`).

use std::path::{Path, PathBuf};

/// Every shell script of the project (by extension or by a shell `#!` line).
fn scripts() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                if !matches!(name.as_ref(), "target" | ".git" | "node_modules") {
                    dirs.push(path);
                }
            } else if kind.is_file() {
                let shell = name.ends_with(".sh")
                    || std::fs::read(&path).is_ok_and(|b| {
                        b.starts_with(b"#!/bin/sh")
                            || b.starts_with(b"#!/bin/bash")
                            || b.starts_with(b"#!/usr/bin/env bash")
                    });
                if shell {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out
}

/// The pipe stages of a line (split on `|`, not `||`), naively: quotes are not parsed, which is
/// enough for these scripts.
fn stages(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'|' {
            if bytes.get(i + 1) == Some(&b'|') {
                i += 2;
                continue;
            }
            out.push(&line[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&line[start..]);
    out
}

/// Whether a line pipes into a reader that may stop early.
fn pipes_into_an_early_stopper(line: &str) -> bool {
    stages(line)[1..].iter().any(|s| stops_early(s))
}

/// Whether a pipe stage may stop reading before its input ends.
fn stops_early(stage: &str) -> bool {
    let words: Vec<&str> = stage.split_whitespace().collect();
    let Some(&cmd) = words.first() else {
        return false;
    };
    let flags = || {
        words[1..]
            .iter()
            .take_while(|w| w.starts_with('-'))
            .copied()
            .collect::<Vec<_>>()
    };
    match cmd {
        "head" => true,
        "grep" => flags().iter().any(|f| {
            *f == "--quiet"
                || *f == "--silent"
                || f.starts_with("--max-count")
                || (!f.starts_with("--") && (f.contains('q') || f.contains('m')))
        }),
        "awk" => stage.contains("exit"),
        _ => false,
    }
}

#[test]
fn no_pipeline_under_pipefail_ends_in_a_reader_that_stops_early() {
    let all = scripts();
    assert!(
        all.iter().any(|p| p.ends_with("integration-vm/arm64.sh")),
        "the scan must find the scripts: {all:?}"
    );
    let mut found = Vec::new();
    let mut checked = 0;
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        if !text.contains("pipefail") {
            continue;
        }
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with('#') {
                continue;
            }
            if pipes_into_an_early_stopper(code) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(checked >= 10, "only {checked} scripts set pipefail");
    assert!(
        found.is_empty(),
        "pipelines whose reader may stop early under pipefail (capture the output first, or read to the end with `sed -n 1p`):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_knows_a_stopping_reader() {
    for bad in [
        "dpkg --print-foreign-architectures | grep -qx arm64 || exit 3",
        "x=$(ls | head -1)",
        "cmd | grep -m1 foo",
        "cmd | grep --quiet foo",
        "cmd | awk '/x/ {print; exit}'",
    ] {
        assert!(pipes_into_an_early_stopper(bad), "{bad}");
    }
    for good in [
        "grep -qx arm64 <<<\"$foreign\" || exit 3",
        "cmd | sed -n 1p",
        "cmd | grep -c foo",
        "cmd | awk '/x/ && !n {print; n = 1}'",
        "a || b | tr a b",
    ] {
        assert!(!pipes_into_an_early_stopper(good), "{good}");
    }
}
