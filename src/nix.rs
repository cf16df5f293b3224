//! Nix integration: which Nix systems the machine can build through its binfmt_misc handlers,
//! and the part of Nix's configuration binfmtctl owns.
//!
//! Owns:
//! - a reader for `nix.conf` that follows Nix's own rules (`src/libutil/config.cc`,
//!   `applyConfig`): text after `#` is a comment; a line is split on blanks; `include PATH` and
//!   `!include PATH` (missing file allowed) take exactly one path, relative to the including
//!   file's directory; every other line must be `NAME = VALUE...`. Anything else Nix rejects,
//!   and so do we, naming the file and line;
//! - binfmtctl's own include file, `binfmtctl.conf` next to `nix.conf`, which nix.conf pulls
//!   in with one `!include binfmtctl.conf` line (added with a comment, removed again when the
//!   file has nothing left to say). The user's lines are never rewritten. The file sets
//!   `extra-extra-platforms` — the `extra-` prefix appends to the `extra-platforms` setting,
//!   whereas `extra-platforms = ...` would replace whatever nix.conf or Nix's default says — and
//!   `extra-sandbox-paths` for interpreters registered without the F flag (Nix's sandbox would
//!   not find them at exec time);
//! - Nix's view of the machine, from `nix show-config --json` (the effective `system`,
//!   `extra-platforms`, `sandbox`, `sandbox-paths`, `system-features`);
//! - `/etc/nix/machines` lines (`nix.conf(5)`, "builders"): URI, systems, SSH key, max jobs,
//!   speed factor, supported and mandatory features, base64 host key.
//!
//! Privileges: writing needs write access to the Nix configuration directory (`/etc/nix`, or
//! `$NIX_CONF_DIR`); reading needs none. Files are written atomically (a new file beside the
//! target, then `rename(2)`, which replaces the name and never follows a symlink) under an
//! exclusive `flock(2)` on the directory.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::binfmt::arch::{Arch, Table};

/// Nix's configuration directory unless `NIX_CONF_DIR` says otherwise (as Nix itself does).
pub const DEFAULT_CONF_DIR: &str = "/etc/nix";
/// The file Nix reads.
pub const CONF_NAME: &str = "nix.conf";
/// binfmtctl's own include file, in the same directory.
pub const INCLUDE_NAME: &str = "binfmtctl.conf";
/// The line binfmtctl adds to nix.conf, and the comment above it.
pub const INCLUDE_LINE: &str = "!include binfmtctl.conf";
pub const INCLUDE_COMMENT: &str =
    "# added by `binfmtctl install --nix`; `binfmtctl uninstall` removes these two lines";
/// Records in the include file: `# binfmtctl-arch ARCH SYSTEM,... [sandbox=PATH]`.
const RECORD_PREFIX: &str = "# binfmtctl-arch ";
/// The line in the include file saying that nix.conf did not exist before binfmtctl added its
/// include line: then the file is removed again once nothing but that line is left in it.
const CREATED_CONF: &str = "# binfmtctl-created nix.conf";
/// How deep includes may nest before we call it a loop (Nix itself recurses without limit).
const MAX_INCLUDE_DEPTH: usize = 16;
/// How many files nix.conf and its includes may be together (each file counted once): real
/// configurations have a handful.
pub const MAX_CONF_FILES: usize = 64;
/// How many bytes those files may hold together (each is also at most `input::MAX_TEXT`).
pub const MAX_CONF_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error(
        "Nix is not installed (no `nix` program in PATH): install it (Debian: apt-get install nix-bin) or leave out --nix"
    )]
    NotInstalled,
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{path}: file included from {from} not found (`include` requires it; `!include` would not): create it or fix the include line"
    )]
    MissingInclude { path: PathBuf, from: PathBuf },
    #[error(
        "{path}: includes nest deeper than {MAX_INCLUDE_DEPTH} levels (an include loop?): fix the include lines"
    )]
    IncludeLoop { path: PathBuf },
    #[error(
        "{path}: Nix's configuration includes more than {MAX_CONF_FILES} different files: binfmtctl reads no more; fix the include lines"
    )]
    TooManyFiles { path: PathBuf },
    #[error(
        "{path}: Nix's configuration and its includes hold more than {MAX_CONF_BYTES} bytes together: binfmtctl reads no more; fix the include lines"
    )]
    TooMuchText { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of Nix's configuration that is not a regular text file of sane size (an
    /// include pointing at a FIFO or `/dev/zero`, say).
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("cannot write {path}: {source}; nothing in Nix's configuration was changed")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a symlink (on NixOS it is generated from the system configuration): add `!include {include}` to it yourself (NixOS: nix.extraOptions), or use boot.binfmt.emulatedSystems"
    )]
    Symlink { path: PathBuf, include: PathBuf },
    #[error("{path} was not written by binfmtctl (no record lines): move it away or remove it")]
    NotOurs { path: PathBuf },
    #[error("Nix rejects its configuration ({dir}): {message}: fix it, then run binfmtctl again")]
    Rejected { dir: PathBuf, message: String },
    #[error("cannot run {nix}: {message}")]
    Run { nix: PathBuf, message: String },
    #[error("cannot read what `{nix} show-config --json` printed: {source}")]
    Output {
        nix: PathBuf,
        #[source]
        source: ShowConfigError,
    },
}

impl crate::error::Classify for NixError {
    fn kind(&self) -> crate::error::ErrorKind {
        if self.is_environment() {
            crate::error::ErrorKind::Environment
        } else {
            crate::error::ErrorKind::BadInput
        }
    }
}

impl NixError {
    /// The environment cannot do it (exit 3) rather than the input being wrong (exit 2).
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            NixError::NotInstalled
                | NixError::Write { .. }
                | NixError::Read { .. }
                | NixError::Symlink { .. }
                | NixError::Run { .. }
                | NixError::Output { .. }
        )
    }
}

/// Where Nix's configuration lives.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub include: PathBuf,
}

impl Paths {
    pub fn new(dir: impl Into<PathBuf>) -> Paths {
        let dir = dir.into();
        Paths {
            conf: dir.join(CONF_NAME),
            include: dir.join(INCLUDE_NAME),
            dir,
        }
    }

    /// `$NIX_CONF_DIR`, or `/etc/nix`.
    pub fn from_env() -> Paths {
        Paths::new(
            std::env::var_os("NIX_CONF_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(DEFAULT_CONF_DIR), PathBuf::from),
        )
    }
}

/// One meaningful line of a nix.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    Setting { name: String, value: String },
    Include { path: String, optional: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfLine {
    /// 1-based.
    pub line: usize,
    pub directive: Directive,
}

/// Parses nix.conf text by Nix's rules (see the module documentation).
pub fn parse(path: &Path, text: &str) -> Result<Vec<ConfLine>, NixError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let tokens: Vec<&str> = line
            .split([' ', '\t', '\r', '\n'])
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() {
            continue;
        }
        let err = |message: String| NixError::Syntax {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        if tokens.len() < 2 {
            return Err(err(format!(
                "illegal configuration line {:?}: write `name = value`",
                raw.trim()
            )));
        }
        if tokens[0] == "include" || tokens[0] == "!include" {
            if tokens.len() != 2 {
                return Err(err(format!(
                    "illegal configuration line {:?}: an include takes exactly one path (no blanks in it)",
                    raw.trim()
                )));
            }
            out.push(ConfLine {
                line: i + 1,
                directive: Directive::Include {
                    path: tokens[1].to_owned(),
                    optional: tokens[0] == "!include",
                },
            });
            continue;
        }
        if tokens[1] != "=" {
            return Err(err(format!(
                "illegal configuration line {:?}: write `name = value`, with blanks around `=`",
                raw.trim()
            )));
        }
        out.push(ConfLine {
            line: i + 1,
            directive: Directive::Setting {
                name: tokens[0].to_owned(),
                value: tokens[2..].join(" "),
            },
        });
    }
    Ok(out)
}

/// Where an include line points, relative to the including file's directory.
pub fn include_target(from: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_owned()
    } else {
        from.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// Does `a` name the same file as `b` (lexically, or as the same inode)?
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if std::path::absolute(a).ok() == std::path::absolute(b).ok() {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Reads `conf` and every file it includes, checking each by Nix's rules. A missing `conf` is
/// fine (Nix runs on defaults). Returns the files read, each once.
///
/// Each file is read once, known by the identity of the opened descriptor (`fstat`: device
/// and inode), however many lines or paths include it: three files of 1,000 include lines
/// each made 10^9 reads. A file that includes itself, directly or not, is a loop (Nix
/// would recurse without end); together the files may be at most `MAX_CONF_FILES` files and
/// `MAX_CONF_BYTES` bytes.
pub fn check_tree(conf: &Path) -> Result<Vec<PathBuf>, NixError> {
    let mut walk = Walk::default();
    if conf.exists() {
        check_file(conf, 0, &mut walk)?;
    }
    Ok(walk.read)
}

/// What `check_tree` has read so far.
#[derive(Default)]
struct Walk {
    /// The files read, in order.
    read: Vec<PathBuf>,
    /// (device, inode) of each file read.
    ids: std::collections::HashSet<(u64, u64)>,
    /// (device, inode) of the files being read, outermost first: the include chain.
    chain: Vec<(u64, u64)>,
    bytes: u64,
}

fn check_file(path: &Path, depth: usize, walk: &mut Walk) -> Result<(), NixError> {
    use std::os::unix::fs::MetadataExt;
    if depth > MAX_INCLUDE_DEPTH {
        return Err(NixError::IncludeLoop {
            path: path.to_owned(),
        });
    }
    // Regular files only, bounded: an include may point anywhere (a FIFO would hang the
    // run, `/dev/zero` would fill the memory).
    let file = crate::input::open_regular(path)?;
    let meta = file.metadata().map_err(|source| NixError::Read {
        path: path.to_owned(),
        source,
    })?;
    let id = (meta.dev(), meta.ino());
    if walk.chain.contains(&id) {
        return Err(NixError::IncludeLoop {
            path: path.to_owned(),
        });
    }
    if !walk.ids.insert(id) {
        // Read and checked already.
        return Ok(());
    }
    if walk.ids.len() > MAX_CONF_FILES {
        return Err(NixError::TooManyFiles {
            path: path.to_owned(),
        });
    }
    let bytes = crate::input::read_bounded(path, file, crate::input::MAX_TEXT)?;
    walk.bytes += bytes.len() as u64;
    if walk.bytes > MAX_CONF_BYTES {
        return Err(NixError::TooMuchText {
            path: path.to_owned(),
        });
    }
    let text = crate::input::text(path, bytes)?;
    walk.read.push(path.to_owned());
    walk.chain.push(id);
    for l in parse(path, &text)? {
        if let Directive::Include { path: p, optional } = &l.directive {
            let target = include_target(path, p);
            if target.exists() {
                check_file(&target, depth + 1, walk)?;
            } else if !optional {
                return Err(NixError::MissingInclude {
                    path: target,
                    from: path.to_owned(),
                });
            }
        }
    }
    walk.chain.pop();
    Ok(())
}

/// What binfmtctl told Nix about one arch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub systems: Vec<String>,
    /// The interpreter, when it was registered without F and so must be in Nix's sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// The content of binfmtctl.conf: one record per arch (the source of truth), and the two
/// settings derived from them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Managed {
    pub arches: BTreeMap<String, Record>,
    /// binfmtctl created nix.conf (it did not exist): `write` removes it again when our
    /// include is all it holds, so uninstall leaves the machine as it was found.
    #[serde(skip)]
    pub created_conf: bool,
}

impl Managed {
    /// Reads the records back. Lines other than records, comments and the two settings we
    /// write mean someone else wrote the file.
    pub fn parse(path: &Path, text: &str) -> Result<Managed, NixError> {
        // It must be a file Nix accepts, too.
        let lines = parse(path, text)?;
        let mut m = Managed::default();
        for (i, l) in text.lines().enumerate() {
            if l == CREATED_CONF {
                m.created_conf = true;
                continue;
            }
            let Some(rest) = l.strip_prefix(RECORD_PREFIX) else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let bad = || NixError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                message: format!(
                    "malformed record {l:?}: remove the file and run `binfmtctl install --nix` again"
                ),
            };
            let arch = parts.next().ok_or_else(bad)?;
            let systems: Vec<String> = parts
                .next()
                .ok_or_else(bad)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let sandbox = match parts.next() {
                None => None,
                Some(s) => Some(s.strip_prefix("sandbox=").ok_or_else(bad)?.to_owned()),
            };
            if systems.is_empty() || parts.next().is_some() {
                return Err(bad());
            }
            m.arches
                .insert(arch.to_owned(), Record { systems, sandbox });
        }
        let ours = |name: &str| name == "extra-extra-platforms" || name == "extra-sandbox-paths";
        let foreign = lines.iter().any(|l| match &l.directive {
            Directive::Setting { name, .. } => !ours(name),
            Directive::Include { .. } => true,
        });
        if foreign || (m.arches.is_empty() && !lines.is_empty()) {
            return Err(NixError::NotOurs {
                path: path.to_owned(),
            });
        }
        Ok(m)
    }

    pub fn is_empty(&self) -> bool {
        self.arches.is_empty()
    }

    /// Every system, deduplicated, sorted.
    pub fn platforms(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .arches
            .values()
            .flat_map(|r| r.systems.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn sandbox_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .arches
            .values()
            .filter_map(|r| r.sandbox.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# Written by binfmtctl (`binfmtctl install ARCHES --nix`): the Nix systems this machine\n\
             # builds through its binfmt_misc handlers. nix.conf reads it with `!include binfmtctl.conf`.\n\
             # Do not edit: binfmtctl rewrites it; `binfmtctl uninstall ARCHES` takes arches out.\n",
        );
        if self.created_conf {
            s += CREATED_CONF;
            s.push('\n');
        }
        for (arch, r) in &self.arches {
            s += &format!("{RECORD_PREFIX}{arch} {}", r.systems.join(","));
            if let Some(p) = &r.sandbox {
                s += &format!(" sandbox={p}");
            }
            s.push('\n');
        }
        // `extra-` appends to the `extra-platforms` setting instead of replacing it.
        let platforms = self.platforms();
        if !platforms.is_empty() {
            s += &format!("extra-extra-platforms = {}\n", platforms.join(" "));
        }
        let paths = self.sandbox_paths();
        if !paths.is_empty() {
            s += &format!("extra-sandbox-paths = {}\n", paths.join(" "));
        }
        s
    }
}

/// Does one of `conf`'s lines include the file `include`?
pub fn includes(conf: &Path, lines: &[ConfLine], include: &Path) -> bool {
    lines.iter().any(|l| match &l.directive {
        Directive::Include { path, .. } => same_file(&include_target(conf, path), include),
        Directive::Setting { .. } => false,
    })
}

/// nix.conf with our two lines appended.
pub fn add_include(text: &str) -> String {
    let mut s = text.to_owned();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s += &format!("{INCLUDE_COMMENT}\n{INCLUDE_LINE}\n");
    s
}

/// nix.conf without the two lines we added (exactly those), if they are there.
pub fn remove_include(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let pos = lines.windows(2).position(|w| {
        w[0].trim_end_matches('\n') == INCLUDE_COMMENT
            && w[1].trim_end_matches('\n') == INCLUDE_LINE
    })?;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i != pos && i != pos + 1 {
            out += l;
        }
    }
    Some(out)
}

/// The previous state of the files a change wrote, to put back.
#[derive(Debug)]
pub struct Undo {
    files: Vec<(PathBuf, Option<String>)>,
}

impl Undo {
    /// Puts every file back as it was (best effort; returns the first error).
    pub fn restore(self) -> Result<(), NixError> {
        let mut first = None;
        for (path, old) in self.files.into_iter().rev() {
            let r = match old {
                Some(text) => write_atomic(&path, &text),
                None => std::fs::remove_file(&path).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }),
            };
            if let Err(e) = r {
                first.get_or_insert(NixError::Write { path, source: e });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// What a change did, for the report.
#[derive(Debug, Default, Serialize)]
pub struct Changed {
    pub wrote: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        self.wrote.is_empty() && self.removed.is_empty()
    }
}

/// The exclusive lock on the configuration directory; released on drop.
pub struct Lock {
    _fd: OwnedFd,
}

/// Takes the lock on `dir` (created if missing).
pub fn lock(dir: &Path) -> Result<Lock, NixError> {
    let werr = |e: std::io::Error| NixError::Write {
        path: dir.to_owned(),
        source: e,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(werr)?;
        tracing::info!(dir = %dir.display(), "created Nix's configuration directory");
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| werr(e.into()))?;
    crate::lock::take(&fd, crate::lock::Kind::Exclusive, true, || {
        format!("another binfmtctl changing {}", dir.display())
    })
    .map_err(|e| werr(e.into()))?;
    Ok(Lock { _fd: fd })
}

/// Reads a file that may be missing (a regular text file, bounded, as every input).
fn read_opt(path: &Path) -> Result<Option<String>, NixError> {
    match crate::input::read_text(path, crate::input::MAX_TEXT) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Reads binfmtctl.conf (empty when missing).
pub fn load_managed(paths: &Paths) -> Result<Managed, NixError> {
    if is_symlink(&paths.include) {
        return Err(NixError::NotOurs {
            path: paths.include.clone(),
        });
    }
    match read_opt(&paths.include)? {
        Some(t) => Managed::parse(&paths.include, &t),
        None => Ok(Managed::default()),
    }
}

/// Everything that must hold before binfmtctl changes anything (kernel included) for `--nix`:
/// the configuration parses by Nix's rules, binfmtctl.conf is ours, nix.conf can take the
/// include line, and the directory is writable.
pub fn precheck(paths: &Paths) -> Result<(), NixError> {
    check_tree(&paths.conf)?;
    load_managed(paths)?;
    if is_symlink(&paths.conf) {
        let text = read_opt(&paths.conf)?.unwrap_or_default();
        if !includes(&paths.conf, &parse(&paths.conf, &text)?, &paths.include) {
            return Err(NixError::Symlink {
                path: paths.conf.clone(),
                include: paths.include.clone(),
            });
        }
    }
    // The nearest existing directory must be writable (EROFS on a read-only mount).
    let mut d: &Path = &paths.dir;
    while !d.exists() {
        d = d.parent().unwrap_or(Path::new("/"));
    }
    rustix::fs::access(d, rustix::fs::Access::WRITE_OK).map_err(|e| NixError::Write {
        path: d.to_owned(),
        source: e.into(),
    })
}

/// Makes binfmtctl.conf say `new` (removing it and our include line when `new` is empty),
/// adding the include line to nix.conf when nothing includes the file yet. Takes the lock.
/// Returns what changed and how to undo it.
pub fn write(paths: &Paths, new: &Managed) -> Result<(Changed, Undo), NixError> {
    let _lock = lock(&paths.dir)?;
    check_tree(&paths.conf)?;
    let old_managed = load_managed(paths)?;
    // Whether we created nix.conf is ours to remember, whatever the caller passed.
    let mut new = new.clone();
    new.created_conf = old_managed.created_conf;
    let old_inc = read_opt(&paths.include)?;
    let old_conf = read_opt(&paths.conf)?;
    let conf_text = old_conf.clone().unwrap_or_default();
    let conf_lines = parse(&paths.conf, &conf_text)?;
    let mut changed = Changed::default();
    let mut undo = Undo { files: Vec::new() };
    // (path, new content or None = remove)
    let mut steps: Vec<(PathBuf, Option<String>, Option<String>)> = Vec::new();
    if new.is_empty() {
        let new_conf = remove_include(&conf_text);
        // Someone else's include of our file stays satisfied: then the file stays, empty.
        let still_included = match &new_conf {
            Some(t) => includes(&paths.conf, &parse(&paths.conf, t)?, &paths.include),
            None => includes(&paths.conf, &conf_lines, &paths.include),
        };
        if old_inc.is_some() {
            if still_included {
                if old_managed != new {
                    steps.push((paths.include.clone(), Some(new.render()), old_inc.clone()));
                }
            } else {
                steps.push((paths.include.clone(), None, old_inc.clone()));
            }
        }
        if let Some(t) = new_conf {
            if is_symlink(&paths.conf) {
                return Err(NixError::Symlink {
                    path: paths.conf.clone(),
                    include: paths.include.clone(),
                });
            }
            // We created it and only our lines were in it: removed, as the machine was. A
            // line anyone else added (a comment too) keeps it.
            let content = (!(old_managed.created_conf && t.trim().is_empty())).then_some(t);
            steps.push((paths.conf.clone(), content, old_conf.clone()));
        }
    } else {
        let add_line = !includes(&paths.conf, &conf_lines, &paths.include);
        if add_line && old_conf.is_none() {
            new.created_conf = true;
        }
        let text = new.render();
        if old_inc.as_deref() != Some(text.as_str()) {
            steps.push((paths.include.clone(), Some(text), old_inc.clone()));
        }
        if add_line {
            if is_symlink(&paths.conf) {
                return Err(NixError::Symlink {
                    path: paths.conf.clone(),
                    include: paths.include.clone(),
                });
            }
            steps.push((
                paths.conf.clone(),
                Some(add_include(&conf_text)),
                old_conf.clone(),
            ));
        }
    }
    for (path, content, old) in steps {
        let r = match &content {
            Some(t) => write_atomic(&path, t),
            None => std::fs::remove_file(&path),
        };
        if let Err(e) = r {
            // Put back what this call already wrote.
            let _ = undo.restore();
            return Err(NixError::Write { path, source: e });
        }
        tracing::info!(path = %path.display(), removed = content.is_none(), "wrote Nix configuration");
        if content.is_some() {
            changed.wrote.push(path.clone());
        } else {
            changed.removed.push(path.clone());
        }
        undo.files.push((path, old));
    }
    Ok((changed, undo))
}

/// Writes `text` to `path` atomically (`crate::atomic`), keeping the old file's mode (0644 for
/// a new one).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let mode = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_file())
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    crate::atomic::replace(path, text.as_bytes(), mode)
}

/// Nix's effective settings, as `nix show-config` reports them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct View {
    pub system: String,
    pub extra_platforms: Vec<String>,
    /// `true`, `false` or `relaxed`.
    pub sandbox: String,
    pub sandbox_paths: Vec<String>,
    pub system_features: Vec<String>,
}

impl View {
    /// Does Nix accept derivations for `system` on this machine?
    pub fn accepts(&self, system: &str) -> bool {
        self.system == system || self.extra_platforms.iter().any(|p| p == system)
    }

    pub fn sandboxed(&self) -> bool {
        self.sandbox != "false"
    }

    /// Is `path` visible in the sandbox (a `sandbox-paths` entry: `path`, `path?`,
    /// `target=source`)?
    pub fn in_sandbox(&self, path: &str) -> bool {
        self.sandbox_paths.iter().any(|p| {
            let p = p.trim_end_matches('?');
            let target = p.split('=').next().unwrap_or(p);
            target == path || path.starts_with(&format!("{}/", target.trim_end_matches('/')))
        })
    }
}

/// Output of `nix show-config --json` that binfmtctl cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ShowConfigError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("no `system` setting in its output")]
    NoSystem,
}

impl crate::error::Classify for ShowConfigError {
    /// Nix said something binfmtctl does not understand: the machine's Nix, not the request.
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Environment
    }
}

/// Reads the JSON of `nix show-config --json` (each setting is `{"value": ...}`).
pub fn parse_show_config(json: &str) -> Result<View, ShowConfigError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(ShowConfigError::NotJson)?;
    let val = |k: &str| v.get(k).and_then(|s| s.get("value"));
    let list = |k: &str| -> Vec<String> {
        match val(k) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    let system = val("system")
        .and_then(|s| s.as_str())
        .ok_or(ShowConfigError::NoSystem)?
        .to_owned();
    let sandbox = match val("sandbox") {
        Some(serde_json::Value::Bool(b)) => b.to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => "unknown".into(),
    };
    Ok(View {
        system,
        extra_platforms: list("extra-platforms"),
        sandbox,
        sandbox_paths: list("sandbox-paths"),
        system_features: list("system-features"),
    })
}

/// The `nix` program in `path_var` (a PATH value) that binfmtctl may run as root: the first
/// one on the path that nobody else can change or swap (`host::find_safe_program`). An unsafe
/// one is skipped, as if it were not there.
pub fn find_nix(path_var: Option<&OsStr>) -> Option<PathBuf> {
    crate::host::find_safe_program(path_var, "nix")
}

/// Asks Nix for its effective settings with `dir` as its configuration directory. There is no
/// library for this: only Nix knows its defaults and how it reads its files.
pub fn show_config(nix: &Path, dir: &Path) -> Result<View, NixError> {
    let out = Command::new(nix)
        .args([
            "--extra-experimental-features",
            "nix-command",
            "show-config",
            "--json",
        ])
        .env("NIX_CONF_DIR", dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| NixError::Run {
            nix: nix.to_owned(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg: Vec<&str> = msg
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Try '"))
            .collect();
        return Err(NixError::Rejected {
            dir: dir.to_owned(),
            message: msg.join("; ").replace("error: ", ""),
        });
    }
    parse_show_config(&String::from_utf8_lossy(&out.stdout)).map_err(|source| NixError::Output {
        nix: nix.to_owned(),
        source,
    })
}

/// The arch whose programs a Nix system's builders are (the table's `nix` names).
pub fn arch_of_system<'t>(table: &'t Table, system: &str) -> Option<&'t Arch> {
    table
        .arches
        .iter()
        .find(|a| a.nix.iter().any(|n| n == system))
}

/// PIDs of running `nix-daemon` processes (from /proc/*/comm) that run as root, as Nix's
/// daemon does: any user can name a process `nix-daemon`, and one of theirs must not make
/// binfmtctl restart the real daemon (and abort every build on the machine).
pub fn daemon_pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(p) = procfs::process::Process::new(*pid as i32) else {
                return false;
            };
            p.stat().is_ok_and(|s| s.comm == "nix-daemon") && p.uid().is_ok_and(|u| u == 0)
        })
        .collect()
}

/// One line of `/etc/nix/machines`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Machine {
    pub uri: String,
    pub systems: Vec<String>,
    pub ssh_key: Option<String>,
    pub max_jobs: u32,
    pub speed_factor: u32,
    pub supported_features: Vec<String>,
    pub mandatory_features: Vec<String>,
    /// Base64 of the host's OpenSSH public key line.
    pub host_key: Option<String>,
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(",")
            }
        };
        write!(
            f,
            "{} {} {} {} {} {} {} {}",
            self.uri,
            list(&self.systems),
            self.ssh_key.as_deref().unwrap_or("-"),
            self.max_jobs,
            self.speed_factor,
            list(&self.supported_features),
            list(&self.mandatory_features),
            self.host_key.as_deref().unwrap_or("-")
        )
    }
}

/// Features a machine must not claim for systems it only emulates: `kvm` (and `nixos-test`,
/// which needs it) are about hardware virtualisation of the native CPU, and `benchmark` asks for
/// timings an emulator does not give.
pub const NATIVE_ONLY_FEATURES: &[&str] = &["kvm", "nixos-test", "benchmark"];

/// The machine lines for one host: native systems with Nix's `system-features`, and — when
/// those include native-only features — a second line for the emulated systems without them
/// (both lines name the same host, so Nix shares its job slots between them).
pub fn machine_lines(
    uri: &str,
    native: &[String],
    emulated: &[String],
    features: &[String],
    max_jobs: u32,
    ssh_key: Option<String>,
    host_key: Option<String>,
) -> Vec<Machine> {
    let emu_features: Vec<String> = features
        .iter()
        .filter(|f| !NATIVE_ONLY_FEATURES.contains(&f.as_str()))
        .cloned()
        .collect();
    let line = |systems: Vec<String>, features: Vec<String>| Machine {
        uri: uri.to_owned(),
        systems,
        ssh_key: ssh_key.clone(),
        max_jobs,
        speed_factor: 1,
        supported_features: features,
        mandatory_features: Vec::new(),
        host_key: host_key.clone(),
    };
    if emulated.is_empty() {
        vec![line(native.to_vec(), features.to_vec())]
    } else if emu_features.len() == features.len() {
        let mut all = native.to_vec();
        all.extend(emulated.iter().cloned());
        vec![line(all, features.to_vec())]
    } else {
        vec![
            line(native.to_vec(), features.to_vec()),
            line(emulated.to_vec(), emu_features),
        ]
    }
}

/// Standard base64 with padding (RFC 4648), for the machines file's host key field.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<ConfLine>, NixError> {
        parse(Path::new("/etc/nix/nix.conf"), text)
    }

    #[test]
    fn parses_by_nix_rules() {
        let l = p("# comment\n\nsandbox = true # trailing\nextra-platforms =  a  b\t c\n!include x.conf\ninclude /abs.conf\nempty =\n").unwrap();
        let d: Vec<&Directive> = l.iter().map(|l| &l.directive).collect();
        assert_eq!(
            d,
            [
                &Directive::Setting {
                    name: "sandbox".into(),
                    value: "true".into()
                },
                &Directive::Setting {
                    name: "extra-platforms".into(),
                    value: "a b c".into()
                },
                &Directive::Include {
                    path: "x.conf".into(),
                    optional: true
                },
                &Directive::Include {
                    path: "/abs.conf".into(),
                    optional: false
                },
                &Directive::Setting {
                    name: "empty".into(),
                    value: "".into()
                },
            ]
        );
        assert_eq!(l[0].line, 3);
    }

    #[test]
    fn rejects_what_nix_rejects_with_file_and_line() {
        for (text, line, want) in [
            ("sandbox = true\nsandbox true\n", 2, "name = value"),
            ("sandbox=true\n", 1, "name = value"),
            ("lonely\n", 1, "illegal configuration line \"lonely\""),
            ("include a b\n", 1, "exactly one path"),
        ] {
            let e = p(text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("/etc/nix/nix.conf:{line}: ")),
                "{text:?}: {e}"
            );
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    /// An include may point anywhere: a file larger than any configuration, a FIFO or a
    /// device is refused at once, naming it (a FIFO hung the run, `/dev/zero` filled memory).
    #[test]
    fn includes_of_huge_files_fifos_and_devices_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("nix.conf");
        let huge = d.path().join("huge.conf");
        std::fs::write(&huge, "# x\n".repeat(600_000)).unwrap();
        let fifo = d.path().join("fifo.conf");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        for (target, what) in [
            (huge.display().to_string(), "is larger than"),
            (fifo.display().to_string(), "is a FIFO"),
            ("/dev/zero".to_owned(), "not a regular file"),
        ] {
            std::fs::write(&conf, format!("include {target}\n")).unwrap();
            let e = check_tree(&conf).expect_err(&target).to_string();
            assert!(e.contains(&target) && e.contains(what), "{e}");
        }
    }

    #[test]
    fn include_tree_and_missing_includes() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("nix.conf");
        std::fs::write(&conf, "!include gone.conf\ninclude sub.conf\n").unwrap();
        let e = check_tree(&conf).unwrap_err();
        assert!(matches!(e, NixError::MissingInclude { .. }), "{e}");
        std::fs::write(d.path().join("sub.conf"), "bad line here\n").unwrap();
        let e = check_tree(&conf).unwrap_err().to_string();
        assert!(e.contains("sub.conf:1: illegal"), "{e}");
        std::fs::write(d.path().join("sub.conf"), "include nix.conf\n").unwrap();
        assert!(matches!(
            check_tree(&conf).unwrap_err(),
            NixError::IncludeLoop { .. }
        ));
        std::fs::write(d.path().join("sub.conf"), "cores = 2\n").unwrap();
        assert_eq!(check_tree(&conf).unwrap().len(), 2);
        assert!(check_tree(&d.path().join("none.conf")).unwrap().is_empty());
    }

    /// Includes are read once each, by the identity of the opened file (three files of 1,000
    /// include lines each made 10^9 reads), and the whole configuration is capped in files
    /// and bytes, each refusal naming the file where the cap was met.
    #[test]
    fn includes_are_read_once_and_capped_in_number_and_size() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("nix.conf");
        let lines = |target: &str| format!("include {target}\n").repeat(1000);
        std::fs::write(&conf, lines("a.conf")).unwrap();
        std::fs::write(d.path().join("a.conf"), lines("b.conf")).unwrap();
        // Another name of b.conf is the same file.
        std::fs::write(
            d.path().join("b.conf"),
            lines("./c.conf") + &lines("x/../c.conf"),
        )
        .unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        std::fs::write(d.path().join("c.conf"), "cores = 1\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let c = conf.clone();
        std::thread::spawn(move || tx.send(check_tree(&c).map_err(|e| e.to_string())));
        let read = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("check_tree finishes at once")
            .unwrap();
        let names: Vec<String> = read
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["nix.conf", "a.conf", "b.conf", "c.conf"]);
        // More files than the cap (64), each included once: refused at the first one over.
        let cap = 64;
        let list: String = (0..cap)
            .map(|i| {
                std::fs::write(d.path().join(format!("f{i}.conf")), "cores = 1\n").unwrap();
                format!("include f{i}.conf\n")
            })
            .collect();
        std::fs::write(&conf, &list).unwrap();
        let e = check_tree(&conf).expect_err("65 files are refused");
        let last = d.path().join(format!("f{}.conf", cap - 1));
        assert!(
            e.to_string().starts_with(&format!(
                "{}: Nix's configuration includes more than {cap} different files",
                last.display()
            )),
            "{e}"
        );
        assert_eq!(
            crate::error::Classify::kind(&e),
            crate::error::ErrorKind::BadInput
        );
        // Five files of 900 KB: each under the per-file limit, together over the cap.
        let big = "# padding\n".repeat(90_000);
        let list: String = (0..5)
            .map(|i| {
                std::fs::write(d.path().join(format!("big{i}.conf")), &big).unwrap();
                format!("include big{i}.conf\n")
            })
            .collect();
        std::fs::write(&conf, &list).unwrap();
        let e = check_tree(&conf).expect_err("4.5 MB are refused");
        assert!(
            e.to_string().contains(
                "big4.conf: Nix's configuration and its includes hold more than 4194304 bytes"
            ),
            "{e}"
        );
        // Within the caps all is read.
        std::fs::write(&conf, "include big0.conf\ninclude f0.conf\n").unwrap();
        assert_eq!(check_tree(&conf).unwrap().len(), 3);
    }

    fn rec(systems: &[&str], sandbox: Option<&str>) -> Record {
        Record {
            systems: systems.iter().map(|s| s.to_string()).collect(),
            sandbox: sandbox.map(str::to_owned),
        }
    }

    #[test]
    fn managed_file_round_trips() {
        let mut m = Managed::default();
        m.arches
            .insert("aarch64".into(), rec(&["aarch64-linux"], None));
        m.arches.insert(
            "arm".into(),
            rec(
                &["armv7l-linux", "armv6l-linux"],
                Some("/usr/bin/qemu-arm-static"),
            ),
        );
        let text = m.render();
        assert!(
            text.contains("\nextra-extra-platforms = aarch64-linux armv6l-linux armv7l-linux\n"),
            "{text}"
        );
        assert!(text.contains("\nextra-sandbox-paths = /usr/bin/qemu-arm-static\n"));
        let path = Path::new("/etc/nix/binfmtctl.conf");
        assert_eq!(Managed::parse(path, &text).unwrap(), m);
        // Nix itself accepts what we write.
        assert!(parse(path, &text).is_ok());
        assert!(matches!(
            Managed::parse(path, "cores = 4\n"),
            Err(NixError::NotOurs { .. })
        ));
        assert!(Managed::parse(path, "# binfmtctl-arch aarch64\n").is_err());
        assert!(Managed::parse(path, "").unwrap().is_empty());
    }

    #[test]
    fn include_line_added_and_removed_exactly() {
        let user = "# mine\nsandbox = true";
        let with = add_include(user);
        assert_eq!(
            with,
            format!("# mine\nsandbox = true\n{INCLUDE_COMMENT}\n{INCLUDE_LINE}\n")
        );
        assert_eq!(remove_include(&with).unwrap(), "# mine\nsandbox = true\n");
        // A user's own include of the file is not ours to remove.
        assert!(remove_include("!include binfmtctl.conf\n").is_none());
    }

    #[test]
    fn write_and_remove_keep_user_lines() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path().join("nix"));
        std::fs::create_dir(&paths.dir).unwrap();
        let user = "# my settings\nsubstituters =\nextra-platforms = armv7l-linux\n";
        std::fs::write(&paths.conf, user).unwrap();
        let mut m = Managed::default();
        m.arches
            .insert("aarch64".into(), rec(&["aarch64-linux"], None));
        precheck(&paths).unwrap();
        let (c, _) = write(&paths, &m).unwrap();
        assert_eq!(c.wrote, [paths.include.clone(), paths.conf.clone()]);
        let conf = std::fs::read_to_string(&paths.conf).unwrap();
        assert!(conf.starts_with(user) && conf.ends_with("!include binfmtctl.conf\n"));
        assert_eq!(load_managed(&paths).unwrap(), m);
        // Idempotent.
        assert!(write(&paths, &m).unwrap().0.is_empty());
        // Undo puts both back.
        m.arches
            .insert("riscv64".into(), rec(&["riscv64-linux"], None));
        let (_, undo) = write(&paths, &m).unwrap();
        undo.restore().unwrap();
        assert_eq!(load_managed(&paths).unwrap().arches.len(), 1);
        // Empty: both files as before.
        let (c, _) = write(&paths, &Managed::default()).unwrap();
        assert_eq!(c.removed, std::slice::from_ref(&paths.include));
        assert_eq!(std::fs::read_to_string(&paths.conf).unwrap(), user);
        assert!(!paths.include.exists());
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&paths.dir).unwrap().count(), 1);
    }

    /// install --nix on a machine without nix.conf creates it and remembers so in its own
    /// include file; uninstall removes it again when only our lines were in it (it was left
    /// behind empty), and keeps it when anyone else added a line, or when it existed before
    /// (even empty).
    #[test]
    fn a_nix_conf_binfmtctl_created_is_removed_again_unless_someone_wrote_to_it() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path().join("nix"));
        std::fs::create_dir(&paths.dir).unwrap();
        let mut m = Managed::default();
        m.arches
            .insert("aarch64".into(), rec(&["aarch64-linux"], None));
        // Created, remembered, kept across other changes, removed with the last arch.
        let created = |paths: &Paths| {
            std::fs::read_to_string(&paths.include)
                .unwrap()
                .lines()
                .any(|l| l == "# binfmtctl-created nix.conf")
        };
        write(&paths, &m).unwrap();
        assert!(paths.conf.exists());
        assert!(created(&paths));
        let mut two = m.clone();
        two.arches
            .insert("riscv64".into(), rec(&["riscv64-linux"], None));
        write(&paths, &two).unwrap();
        assert!(created(&paths));
        let (c, undo) = write(&paths, &Managed::default()).unwrap();
        assert_eq!(c.removed, [paths.include.clone(), paths.conf.clone()]);
        assert_eq!(
            std::fs::read_dir(&paths.dir).unwrap().count(),
            0,
            "the directory is as it was found"
        );
        // A failed change is undone: both files back.
        undo.restore().unwrap();
        assert!(paths.conf.exists() && paths.include.exists());
        // A line someone added keeps the file (without our lines).
        let with_user = std::fs::read_to_string(&paths.conf).unwrap() + "# mine\ncores = 2\n";
        std::fs::write(&paths.conf, with_user).unwrap();
        write(&paths, &Managed::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&paths.conf).unwrap(),
            "# mine\ncores = 2\n"
        );
        // A nix.conf that existed before, even empty, stays.
        std::fs::write(&paths.conf, "").unwrap();
        write(&paths, &m).unwrap();
        assert!(!created(&paths));
        write(&paths, &Managed::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&paths.conf).unwrap(), "");
        assert!(!paths.include.exists());
    }

    #[test]
    fn symlinked_conf_is_not_edited() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path());
        std::fs::write(d.path().join("static.conf"), "cores = 1\n").unwrap();
        std::os::unix::fs::symlink("static.conf", &paths.conf).unwrap();
        assert!(matches!(precheck(&paths), Err(NixError::Symlink { .. })));
        let mut m = Managed::default();
        m.arches
            .insert("aarch64".into(), rec(&["aarch64-linux"], None));
        assert!(matches!(write(&paths, &m), Err(NixError::Symlink { .. })));
        assert!(!paths.include.exists());
        // Once it includes the file (NixOS: nix.extraOptions), only our file is written.
        std::fs::write(
            d.path().join("static.conf"),
            "cores = 1\n!include binfmtctl.conf\n",
        )
        .unwrap();
        precheck(&paths).unwrap();
        write(&paths, &m).unwrap();
        assert!(paths.include.exists());
        assert!(is_symlink(&paths.conf));
    }

    #[test]
    fn show_config_json() {
        let j = r#"{"system":{"value":"x86_64-linux"},"extra-platforms":{"value":["i686-linux","aarch64-linux"]},
            "sandbox":{"value":true},"sandbox-paths":{"value":["/bin/sh=/nix/store/x-busybox","/usr/bin/qemu-arm-static?"]},
            "system-features":{"value":["kvm","big-parallel"]}}"#;
        let v = parse_show_config(j).unwrap();
        assert!(
            v.accepts("x86_64-linux") && v.accepts("aarch64-linux") && !v.accepts("riscv64-linux")
        );
        assert!(v.sandboxed());
        assert!(v.in_sandbox("/usr/bin/qemu-arm-static") && v.in_sandbox("/bin/sh"));
        assert!(!v.in_sandbox("/usr/bin/qemu-aarch64-static"));
        assert!(matches!(
            parse_show_config("{}"),
            Err(ShowConfigError::NoSystem)
        ));
        assert!(matches!(
            parse_show_config("error: no"),
            Err(ShowConfigError::NotJson(_))
        ));
    }

    #[test]
    fn machines_lines() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let l = machine_lines(
            "ssh-ng://b1",
            &s(&["x86_64-linux", "i686-linux"]),
            &s(&["aarch64-linux"]),
            &s(&["benchmark", "big-parallel", "kvm", "nixos-test"]),
            4,
            None,
            Some(base64(b"ssh-ed25519 AAAA")),
        );
        assert_eq!(
            l[0].to_string(),
            "ssh-ng://b1 x86_64-linux,i686-linux - 4 1 benchmark,big-parallel,kvm,nixos-test - c3NoLWVkMjU1MTkgQUFBQQ=="
        );
        assert_eq!(
            l[1].to_string(),
            "ssh-ng://b1 aarch64-linux - 4 1 big-parallel - c3NoLWVkMjU1MTkgQUFBQQ=="
        );
        let l = machine_lines(
            "ssh://b",
            &s(&["x86_64-linux"]),
            &s(&["aarch64-linux"]),
            &s(&["big-parallel"]),
            1,
            Some("/k".into()),
            None,
        );
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0].to_string(),
            "ssh://b x86_64-linux,aarch64-linux /k 1 1 big-parallel - -"
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn finds_only_a_safe_nix() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        for (dir, mode) in [(&a, 0o777), (&b, 0o755)] {
            std::fs::write(dir.join("nix"), "").unwrap();
            std::fs::set_permissions(dir.join("nix"), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_nix(Some(&path)), Some(b.join("nix")));
        assert_eq!(find_nix(Some(OsStr::new(""))), None);
        assert_eq!(find_nix(None), None);
        // A safe file in a directory others may write (not sticky): anyone could have put it
        // there, so it is skipped; sticky, it is fine.
        let c = d.path().join("c");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("nix"), "").unwrap();
        std::fs::set_permissions(c.join("nix"), std::fs::Permissions::from_mode(0o755)).unwrap();
        for (mode, found) in [(0o777, false), (0o775, false), (0o1777, true)] {
            std::fs::set_permissions(&c, std::fs::Permissions::from_mode(mode)).unwrap();
            let path = std::env::join_paths([&c]).unwrap();
            assert_eq!(find_nix(Some(&path)).is_some(), found, "mode {mode:o}");
        }
        // Reached through a world-writable directory higher up: skipped too.
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = std::env::join_paths([&c]).unwrap();
        assert_eq!(find_nix(Some(&path)), None);
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(find_nix(Some(&path)), Some(c.join("nix")));
        // Owned by someone else than root or us: never run.
        assert!(crate::host::program_is_safe(&c.join("nix"), |_| true));
        assert!(!crate::host::program_is_safe(&c.join("nix"), |uid| uid == u32::MAX));
    }

    /// A process someone named `nix-daemon` is not Nix's daemon unless it runs as root.
    #[test]
    fn a_users_process_named_nix_daemon_is_not_the_daemon() {
        use std::os::unix::process::CommandExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let fake = d.path().join("nix-daemon");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut c = Command::new(&fake);
        c.arg("30");
        if rustix::process::geteuid().is_root() {
            c.uid(65534).gid(65534);
        }
        let mut child = c.spawn().unwrap();
        // spawn may return before the kernel renames the child: as an ordinary user it is a
        // posix_spawn (vfork), whose parent resumes when the new program's memory is in place,
        // a moment before its name is. Wait for the name (the test is about a process that has
        // it), then ask.
        let pid = child.id();
        let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut named = comm();
        while named.trim_end() != "nix-daemon" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
            named = comm();
        }
        let found = daemon_pids().contains(&pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(named.trim_end(), "nix-daemon");
        assert!(!found, "a user's process counted as nix-daemon");
    }

    #[test]
    fn systems_map_to_arches() {
        let t = Table::builtin();
        assert_eq!(arch_of_system(t, "aarch64-linux").unwrap().name, "aarch64");
        assert_eq!(arch_of_system(t, "armv6l-linux").unwrap().name, "arm");
        assert_eq!(arch_of_system(t, "riscv64-linux").unwrap().name, "riscv64");
        assert!(arch_of_system(t, "x86_64-darwin").is_none());
    }
}
