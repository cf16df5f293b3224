//! What apt's own configuration says about the mirror binfmtctl takes from it: the Debian
//! source in `/etc/apt/sources.list` and `sources.list.d/` (with its `check-valid-until`
//! option), and `Acquire::Check-Valid-Until` in `/etc/apt/apt.conf.d/*` and `/etc/apt/apt.conf`.
//! Snapshot mirrors serve Release files past their `Valid-Until`, and apt users say so with
//! one of those; binfmtctl honours the same words for a mirror it took from apt's sources.
//!
//! These files are input: a setting binfmtctl cannot read (an unterminated string, a brace
//! that does not close, an option value that is neither yes nor no) is an error naming the
//! file and line, never a guess.

use std::path::{Path, PathBuf};

/// apt's cap on a configuration file is none; ours, so a huge file is refused, not read.
const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {what}: fix it (apt would not read it either), or pass --mirror to leave apt's configuration aside", file.display())]
pub struct AptError {
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
}

impl crate::error::Classify for AptError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// A place in a file: what a setting's warning names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The Debian source binfmtctl takes as its mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub at: At,
    /// The source's own `check-valid-until` (`[check-valid-until=no]`, deb822
    /// `Check-Valid-Until: no`), when it has one.
    pub check_valid_until: Option<bool>,
}

impl Source {
    /// Whether apt itself takes this source's Release files past their `Valid-Until`, and
    /// what says so: the source's own `check-valid-until`, else apt's `Acquire::Check-Valid-Until`
    /// (its files under `root`; read only then). One decision for `qemu fetch` and `rootfs
    /// create`.
    pub fn waives_valid_until(&self, root: &Path) -> Result<Option<String>, AptError> {
        Ok(match self.check_valid_until {
            Some(false) => Some(format!("check-valid-until=no of the source at {}", self.at)),
            Some(true) => None,
            None => match check_valid_until(root)? {
                Some((false, at)) => Some(format!(
                    "apt's Acquire::Check-Valid-Until \"false\" at {at}"
                )),
                _ => None,
            },
        })
    }
}

/// A file of apt's configuration, through `input` (a regular file only, never a FIFO or a
/// device, opened without blocking, bounded): `None` when it does not exist.
fn read(path: &Path) -> Option<Result<String, AptError>> {
    match crate::input::read_text(path, MAX_FILE) {
        Ok(text) => Some(Ok(text)),
        Err(e) if e.is_missing() => None,
        Err(e) => Some(Err(AptError {
            file: path.to_owned(),
            line: 0,
            what: e.to_string(),
        })),
    }
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" | "enable" => Some(true),
        "no" | "false" | "off" | "0" | "disable" => Some(false),
        _ => None,
    }
}

fn is_debian_archive(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://"))
        && uri.trim_end_matches('/').ends_with("/debian")
}

/// The first Debian source (`deb`, a URI ending in `/debian`) of apt's sources under `root`
/// (`/` normally): `sources.list`, then `sources.list.d/*.list` and `*.sources` by name.
pub fn source(root: &Path) -> Result<Option<Source>, AptError> {
    let etc = root.join("etc/apt");
    let mut files = vec![etc.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(etc.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Some(text) = read(&f) else { continue };
        let text = text?;
        let found = if f.extension().is_some_and(|x| x == "sources") {
            in_deb822(&f, &text)?
        } else {
            in_list(&f, &text)?
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// One-line style: `deb [opt=value …] URI suite components…`.
pub fn in_list(file: &Path, text: &str) -> Result<Option<Source>, AptError> {
    for (i, line) in text.lines().enumerate() {
        let err = |what: String| AptError {
            file: file.to_owned(),
            line: i + 1,
            what,
        };
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb") else {
            continue;
        };
        if !rest.starts_with([' ', '\t']) {
            continue;
        }
        let rest = rest.trim_start();
        let (opts, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (o, after) = r
                    .split_once(']')
                    .ok_or_else(|| err("the options' [ is not closed by ]".into()))?;
                (o, after.trim_start())
            }
            None => ("", rest),
        };
        let Some(uri) = rest.split_whitespace().next() else {
            continue;
        };
        if !is_debian_archive(uri) {
            continue;
        }
        let mut check = None;
        for o in opts.split_whitespace() {
            let Some((k, v)) = o.split_once('=') else {
                return Err(err(format!("option {o:?} is not name=value")));
            };
            if k.eq_ignore_ascii_case("check-valid-until") {
                check =
                    Some(boolean(v).ok_or_else(|| {
                        err(format!("check-valid-until={v}: neither yes nor no"))
                    })?);
            }
        }
        return Ok(Some(Source {
            uri: uri.trim_end_matches('/').to_owned(),
            at: At {
                file: file.to_owned(),
                line: i + 1,
            },
            check_valid_until: check,
        }));
    }
    Ok(None)
}

/// deb822 style: stanzas with `Types: deb`, `URIs:`, optional `Check-Valid-Until:` and
/// `Enabled:`.
pub fn in_deb822(file: &Path, text: &str) -> Result<Option<Source>, AptError> {
    let mut start = 1;
    for stanza in text.split("\n\n") {
        let first = start
            + stanza
                .lines()
                .take_while(|l| l.trim().is_empty() || l.starts_with('#'))
                .count();
        start += stanza.lines().count() + 1;
        let fields = super::debian_mirror::parse_stanza(stanza);
        let err = |what: String| AptError {
            file: file.to_owned(),
            line: first,
            what,
        };
        let enabled = fields
            .get("enabled")
            .is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let types_deb = fields
            .get("types")
            .is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if !enabled || !types_deb {
            continue;
        }
        let Some(u) = fields
            .get("uris")
            .and_then(|u| u.split_whitespace().find(|u| is_debian_archive(u)))
        else {
            continue;
        };
        let check = match fields.get("check-valid-until") {
            None => None,
            Some(v) => Some(
                boolean(v)
                    .ok_or_else(|| err(format!("Check-Valid-Until: {v}: neither yes nor no")))?,
            ),
        };
        return Ok(Some(Source {
            uri: u.trim_end_matches('/').to_owned(),
            at: At {
                file: file.to_owned(),
                line: first,
            },
            check_valid_until: check,
        }));
    }
    Ok(None)
}

/// `Acquire::Check-Valid-Until` as apt would end up with it, and where it was last set: the
/// parts in `/etc/apt/apt.conf.d` (names of letters, digits, `_`, `-`, `.`, with no extension
/// or `.conf`, in order), then `/etc/apt/apt.conf`; a later setting wins.
pub fn check_valid_until(root: &Path) -> Result<Option<(bool, At)>, AptError> {
    let etc = root.join("etc/apt");
    let mut files: Vec<PathBuf> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(etc.join("apt.conf.d")) {
        let mut parts: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    && p.extension().is_none_or(|x| x == "conf")
                    && p.is_file()
            })
            .collect();
        parts.sort();
        files.extend(parts);
    }
    files.push(etc.join("apt.conf"));
    let mut last = None;
    for f in files {
        let Some(text) = read(&f) else { continue };
        for (key, value, line) in parse_conf(&f, &text?)? {
            if key.eq_ignore_ascii_case("Acquire::Check-Valid-Until") {
                let b = boolean(&value).ok_or_else(|| AptError {
                    file: f.clone(),
                    line,
                    what: format!("Acquire::Check-Valid-Until {value:?}: neither true nor false"),
                })?;
                last = Some((
                    b,
                    At {
                        file: f.clone(),
                        line,
                    },
                ));
            }
        }
    }
    Ok(last)
}

/// apt.conf(5) syntax: `A::B "value";`, scopes `A { B "value"; };`, `//`, `/* */` and `#`
/// comments; `#include`/`#clear` lines are skipped (binfmtctl reads no other file). Returns
/// (full key, value, line) for every setting in order.
pub fn parse_conf(file: &Path, text: &str) -> Result<Vec<(String, String, usize)>, AptError> {
    let err = |line: usize, what: &str| AptError {
        file: file.to_owned(),
        line,
        what: what.to_owned(),
    };
    let toks = conf_tokens(text).map_err(|(line, what)| err(line, what))?;
    let mut out = Vec::new();
    let mut scope: Vec<String> = Vec::new();
    let mut k = 0;
    while k < toks.len() {
        let (t, l) = &toks[k];
        match t {
            Tok::Semi => k += 1,
            Tok::Close => {
                if scope.pop().is_none() {
                    return Err(err(*l, "a } closes no scope"));
                }
                k += 1;
            }
            Tok::Word(name) => {
                let full = match scope.last() {
                    Some(outer) => format!("{outer}::{name}"),
                    None => name.clone(),
                };
                match toks.get(k + 1) {
                    Some((Tok::Open, _)) => {
                        scope.push(full);
                        k += 2;
                    }
                    Some((Tok::Str(v) | Tok::Word(v), vl)) => {
                        match toks.get(k + 2) {
                            Some((Tok::Semi, _)) => {}
                            _ => {
                                return Err(err(
                                    *vl,
                                    &format!("the setting of {full} does not end with ;"),
                                ));
                            }
                        }
                        out.push((full, v.clone(), *l));
                        k += 3;
                    }
                    Some((Tok::Semi, _)) => k += 2,
                    _ => {
                        return Err(err(
                            *l,
                            &format!("{name} has no value (\"…\";) and opens no scope ({{)"),
                        ));
                    }
                }
            }
            Tok::Str(_) => {
                // A list item inside a scope (`Foo { "a"; "b"; };`): not a setting we read.
                k += 1;
            }
            Tok::Open => return Err(err(*l, "a { without a name")),
        }
    }
    if let Some(s) = scope.last() {
        let l = toks.last().map_or(1, |t| t.1);
        return Err(err(l, &format!("the scope {s} {{ is not closed by }}")));
    }
    Ok(out)
}

/// A token of apt's configuration syntax.
#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Semi,
}

/// The tokens of an apt configuration file with their lines; comments (`#`, `//`, `/* */`)
/// dropped. An error is the line and what is wrong.
fn conf_tokens(text: &str) -> Result<Vec<(Tok, usize)>, (usize, &'static str)> {
    let mut toks: Vec<(Tok, usize)> = Vec::new();
    let b = text.as_bytes();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                // A comment, or #include / #clear: the rest of the line either way.
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                i += 2;
                loop {
                    if i + 1 >= b.len() {
                        return Err((start, "a /* comment is not closed"));
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'"' => {
                let start = line;
                let from = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err((start, "a string's \" is not closed"));
                }
                toks.push((
                    Tok::Str(String::from_utf8_lossy(&b[from..i]).into_owned()),
                    start,
                ));
                i += 1;
            }
            b'{' => {
                toks.push((Tok::Open, line));
                i += 1;
            }
            b'}' => {
                toks.push((Tok::Close, line));
                i += 1;
            }
            b';' => {
                toks.push((Tok::Semi, line));
                i += 1;
            }
            _ => {
                let from = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'{' | b'}' | b';'
                    )
                {
                    i += 1;
                }
                toks.push((
                    Tok::Word(String::from_utf8_lossy(&b[from..i]).into_owned()),
                    line,
                ));
            }
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Result<Vec<(String, String, usize)>, AptError> {
        parse_conf(Path::new("/etc/apt/apt.conf.d/x"), text)
    }

    #[test]
    fn apt_conf_settings_and_scopes() {
        let got = conf(
            "// snapshot mirror\nAcquire::Check-Valid-Until \"false\";\n/* a\n comment */\nAcquire {\n  Retries \"3\";\n  http { Proxy \"http://p:3142\"; };\n};\n#include /elsewhere\nAPT::Never-MarkAuto-Sections { \"metapackages\"; \"oldlibs\"; };\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("Acquire::Check-Valid-Until".into(), "false".into(), 2),
                ("Acquire::Retries".into(), "3".into(), 6),
                ("Acquire::http::Proxy".into(), "http://p:3142".into(), 7),
            ]
        );
    }

    #[test]
    fn broken_apt_conf_names_file_and_line() {
        for (text, line, what) in [
            ("Acquire::Check-Valid-Until \"false;\n", 1, "not closed"),
            (
                "Acquire {\n  Check-Valid-Until \"false\";\n",
                2,
                "is not closed by }",
            ),
            ("A \"b\";\n};\n", 2, "closes no scope"),
            ("\n/* open\n", 2, "comment is not closed"),
            (
                "Acquire::Check-Valid-Until \"false\"\nX \"y\";\n",
                1,
                "does not end with ;",
            ),
        ] {
            let e = conf(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
            assert!(e.to_string().starts_with("/etc/apt/apt.conf.d/x:"), "{e}");
        }
    }

    #[test]
    fn the_last_setting_wins_and_values_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("etc/apt/apt.conf.d");
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(check_valid_until(dir.path()).unwrap(), None);
        std::fs::write(
            d.join("10snapshot"),
            "Acquire::Check-Valid-Until \"false\";\n",
        )
        .unwrap();
        // Ignored by apt (and us): a name with another extension.
        std::fs::write(
            d.join("20x.disabled"),
            "Acquire::Check-Valid-Until \"true\";\n",
        )
        .unwrap();
        let (b, at) = check_valid_until(dir.path()).unwrap().unwrap();
        assert!(!b);
        assert_eq!(
            at.to_string(),
            format!("{}:1", d.join("10snapshot").display())
        );
        std::fs::write(
            dir.path().join("etc/apt/apt.conf"),
            "acquire { check-valid-until \"yes\"; };\n",
        )
        .unwrap();
        assert!(
            check_valid_until(dir.path()).unwrap().unwrap().0,
            "apt.conf comes last"
        );
        std::fs::write(
            dir.path().join("etc/apt/apt.conf"),
            "Acquire::Check-Valid-Until \"perhaps\";\n",
        )
        .unwrap();
        let e = check_valid_until(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains(
                "apt.conf:1: Acquire::Check-Valid-Until \"perhaps\": neither true nor false"
            ),
            "{e}"
        );
    }

    /// apt's files are read as every input is: a FIFO planted as apt.conf is refused, naming
    /// it, instead of hanging the fetch.
    #[test]
    fn a_fifo_for_apt_conf_is_refused_not_waited_on() {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc/apt");
        std::fs::create_dir_all(&etc).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            etc.join("apt.conf"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = check_valid_until(t.path()).unwrap_err();
        assert!(e.to_string().contains("apt.conf"), "{e}");
    }

    /// Only Debian's archive is a mirror (not -security, another distribution, a deb-src
    /// line or a disabled stanza); sources.list first, then sources.list.d by name.
    #[test]
    fn the_first_debian_source_is_the_mirror() {
        let f = Path::new("/etc/apt/sources.list");
        let uri = |text: &str| in_list(f, text).unwrap().map(|s| s.uri);
        assert_eq!(
            uri("# comment\ndeb-src http://m.example/debian bookworm main\ndeb [arch=amd64 signed-by=/x] http://m.example/debian/ bookworm main\n").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            uri("deb http://m.example/debian-security bookworm-security main\n"),
            None
        );
        let f = Path::new("/etc/apt/sources.list.d/debian.sources");
        assert_eq!(
            in_deb822(
                f,
                "Types: deb\nEnabled: no\nURIs: http://m.example/debian\n"
            )
            .unwrap()
            .map(|s| s.uri),
            None
        );
        let t = tempfile::tempdir().unwrap();
        assert_eq!(source(t.path()).unwrap().map(|s| s.uri), None);
        let d = t.path().join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("other.list"),
            "deb http://m.example/ubuntu noble main\n",
        )
        .unwrap();
        assert_eq!(source(t.path()).unwrap().map(|s| s.uri), None);
        std::fs::write(
            d.join("debian.sources"),
            "Types: deb deb-src\n# http://old/debian\nURIs: https://m.example/debian\nSuites: trixie\n",
        )
        .unwrap();
        assert_eq!(
            source(t.path()).unwrap().map(|s| s.uri).as_deref(),
            Some("https://m.example/debian")
        );
    }

    #[test]
    fn sources_carry_their_check_valid_until() {
        let f = Path::new("/etc/apt/sources.list");
        let s = in_list(f, "# x\ndeb [arch=amd64 check-valid-until=no] http://mirror.example/20251120/debian/ forky main\n")
            .unwrap()
            .unwrap();
        assert_eq!(s.uri, "http://mirror.example/20251120/debian");
        assert_eq!((s.at.line, s.check_valid_until), (2, Some(false)));
        assert_eq!(
            in_list(f, "deb http://deb.debian.org/debian bookworm main\n")
                .unwrap()
                .unwrap()
                .check_valid_until,
            None
        );
        let e = in_list(
            f,
            "\ndeb [check-valid-until=maybe] http://deb.debian.org/debian sid main\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("neither yes nor no"), "{e}");
        let e = in_list(
            f,
            "deb [trusted=yes http://deb.debian.org/debian sid main\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not closed by ]"), "{e}");
        let f = Path::new("/etc/apt/sources.list.d/debian.sources");
        let s = in_deb822(f, "Types: deb\nURIs: http://example.org/debian-security\nSuites: x\n\n# snapshot\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\nCheck-Valid-Until: no\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.uri.as_str(), s.at.line, s.check_valid_until),
            ("http://deb.debian.org/debian", 6, Some(false))
        );
        let e = in_deb822(
            f,
            "Types: deb\nURIs: http://deb.debian.org/debian\nCheck-Valid-Until: sometimes\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 1);
    }
}
