//! The declarative configuration, `/etc/binfmtctl/config.toml`: which arches to keep
//! registered, with which flags, interpreter search path and keep-existing policy. `apply`
//! reconciles the kernel to it through the same plan/apply code as `install`.
//!
//! ```toml
//! arches = ["arm64", "riscv64"]   # any spelling; "all" for every arch with an interpreter
//! flags = "FP"                     # optional, default FP
//! qemu_path = ["/usr/bin"]         # optional, default /usr/bin /usr/local/bin /usr/libexec/qemu /run/binfmt
//! keep_existing = false            # optional
//! qemu = "10.0"                    # optional: interpreters from this stored QEMU version
//! qemu_mirror = "http://…/debian"  # optional: the mirror `qemu fetch`/`versions` use
//! qemu_keyring = "/etc/…/keys.gpg" # optional: the keyring they trust for InRelease
//!
//! [nix]                            # optional: apply also keeps Nix's extra-platforms in step
//! enabled = true
//! ```
//!
//! Parsing is pure (`parse`); `load` reads the file (a regular file of at most 1 MiB of UTF-8,
//! through `input`); `prepare_persist` plans an edit for `install --persist` before the first
//! kernel write (directory checked and locked with flock, no symlink followed, new content
//! validated and written to an O_EXCL|O_NOFOLLOW temporary file) and `PendingConfig::commit`
//! renames it into place. Needs write access to the config directory (root for the default).
//! Every error names the file, line and column, and the fix.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::AtFlags;

use serde::Deserialize;
use toml::Spanned;

use crate::binfmt::arch::Table;
use crate::binfmt::registration::Flags;

pub const DEFAULT_PATH: &str = "/etc/binfmtctl/config.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    arches: Spanned<Vec<Spanned<String>>>,
    flags: Option<Spanned<String>>,
    qemu_path: Option<Vec<Spanned<String>>>,
    keep_existing: Option<bool>,
    qemu: Option<Spanned<String>>,
    qemu_mirror: Option<Spanned<String>>,
    qemu_keyring: Option<Spanned<String>>,
    nix: Option<RawNix>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNix {
    enabled: bool,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Arch names as resolved by the table (or "all").
    pub arches: Vec<String>,
    pub flags: Flags,
    pub qemu_path: Vec<PathBuf>,
    pub keep_existing: bool,
    /// A stored QEMU version (`binfmtctl qemu list`) to take interpreters from.
    pub qemu: Option<String>,
    /// The Debian mirror `qemu fetch` and `qemu versions` use when no --mirror is given.
    pub qemu_mirror: Option<String>,
    /// The keyring trusted for InRelease when no --keyring is given.
    pub qemu_keyring: Option<PathBuf>,
    /// `[nix] enabled = true`: `apply` also keeps Nix's extra-platforms in step (docs/nix.md).
    pub nix: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path} does not exist: create it (see docs/config.md) or pass --config PATH")]
    Missing { path: PathBuf },
    #[error(transparent)]
    Read(crate::input::InputError),
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("refusing to write {path}: {message}")]
    Unsafe { path: PathBuf, message: String },
    #[error("refusing to change {path}: {message}")]
    Conflict { path: PathBuf, message: String },
}

impl crate::error::Classify for ConfigError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ConfigError::Missing { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::Read(_)
            | ConfigError::Unsafe { .. }
            | ConfigError::Conflict { .. } => ErrorKind::BadInput,
            ConfigError::Write { .. } => ErrorKind::Failed,
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

pub fn parse(path: &Path, text: &str, table: &Table) -> Result<Config, ConfigError> {
    let invalid = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        // toml's message, first line only (its own position header is replaced by ours).
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        let hint = if msg.contains("unknown field") {
            "; the keys are arches, flags, qemu_path, keep_existing, qemu, qemu_mirror, qemu_keyring, [nix] enabled"
        } else if msg.contains("missing field") {
            "; add arches = [\"arm64\", ...]"
        } else {
            ""
        };
        invalid(offset, format!("{msg}{hint}"))
    })?;
    let mut arches = Vec::new();
    for a in raw.arches.get_ref() {
        let name = a.get_ref();
        if name.eq_ignore_ascii_case("all") {
            arches.push("all".to_owned());
            continue;
        }
        match table.resolve(name) {
            Ok(arch) if !arches.contains(&arch.name) => arches.push(arch.name.clone()),
            Ok(_) => {}
            Err(e) => return Err(invalid(a.span().start, e.to_string())),
        }
    }
    if arches.is_empty() {
        return Err(invalid(
            raw.arches.span().start,
            "arches is empty: name at least one, or remove the file".into(),
        ));
    }
    let flags = match &raw.flags {
        Some(f) => Flags::parse(f.get_ref()).map_err(|e| invalid(f.span().start, e.to_string()))?,
        None => Flags::DEFAULT,
    };
    let mut qemu_path = Vec::new();
    for d in raw.qemu_path.iter().flatten() {
        if !d.get_ref().starts_with('/') {
            return Err(invalid(
                d.span().start,
                format!(
                    "qemu_path entry {:?} must be an absolute directory",
                    d.get_ref()
                ),
            ));
        }
        qemu_path.push(PathBuf::from(d.get_ref()));
    }
    if let Some(m) = &raw.qemu_mirror
        && !(m.get_ref().starts_with("http://") || m.get_ref().starts_with("https://"))
    {
        return Err(invalid(
            m.span().start,
            format!(
                "qemu_mirror {:?} must be an http:// or https:// URL of a Debian mirror",
                m.get_ref()
            ),
        ));
    }
    if let Some(k) = &raw.qemu_keyring
        && !k.get_ref().starts_with('/')
    {
        return Err(invalid(
            k.span().start,
            format!(
                "qemu_keyring {:?} must be an absolute path to an OpenPGP keyring",
                k.get_ref()
            ),
        ));
    }
    Ok(Config {
        arches,
        flags,
        qemu_path,
        keep_existing: raw.keep_existing.unwrap_or(false),
        qemu: raw.qemu.map(Spanned::into_inner),
        qemu_mirror: raw.qemu_mirror.map(Spanned::into_inner),
        qemu_keyring: raw.qemu_keyring.map(|k| PathBuf::from(k.into_inner())),
        nix: raw.nix.is_some_and(|n| n.enabled),
    })
}

pub fn load(path: &Path, table: &Table) -> Result<Config, ConfigError> {
    let text = crate::input::read_text(path, crate::input::MAX_TEXT).map_err(|e| {
        if e.is_missing() {
            ConfigError::Missing {
                path: path.to_owned(),
            }
        } else {
            ConfigError::Read(e)
        }
    })?;
    parse(path, &text, table)
}

/// What `install --persist` adds: the arches as named, and the settings install used, so that
/// `apply` (the boot unit) registers exactly what install did.
#[derive(Debug, Clone)]
pub struct PersistRequest<'a> {
    pub arches: &'a [String],
    pub flags: Flags,
    /// The interpreter search path install used; empty: the default one.
    pub qemu_path: &'a [PathBuf],
    pub keep_existing: bool,
    /// `--qemu`: the stored QEMU version install registered from (the full version it resolved
    /// to, which is what is written), and the spec the user gave (`10.0`), which a file that
    /// already says so counts as the same.
    pub qemu: Option<PersistQemu<'a>>,
}

/// The stored QEMU version of an `install --qemu SPEC --persist`.
#[derive(Debug, Clone, Copy)]
pub struct PersistQemu<'a> {
    pub version: &'a str,
    pub spec: &'a str,
}

impl PersistQemu<'_> {
    /// Does the file's `qemu` name this version?
    fn same(q: Option<Self>, file: Option<&str>) -> bool {
        match (q, file) {
            (None, None) => true,
            (Some(q), Some(f)) => f == q.version || f == q.spec,
            _ => false,
        }
    }
}

const NEW_FILE: &str = "# binfmtctl configuration: `binfmtctl apply` registers these at boot (binfmtctl.service).\n# See docs/config.md.\narches = []\n";

/// A config edit prepared before the first kernel write: the directory is locked, the new
/// content validated and written to a temporary file (fsynced) in the same directory.
/// `commit` renames it into place; dropping it instead removes the temporary file. The lock
/// (flock on the directory) is held until then, so parallel runs never lose an update.
#[derive(Debug)]
pub struct PendingConfig {
    path: PathBuf,
    /// The directory, held (and locked) until the pending change is committed or dropped.
    _dir: OwnedFd,
    staged: Option<crate::atomic::Staged>,
}

impl PendingConfig {
    /// Whether the file will change.
    pub fn changes(&self) -> bool {
        self.staged.is_some()
    }

    /// Renames the new content into place (atomic) and syncs the directory.
    pub fn commit(mut self) -> Result<(), ConfigError> {
        let Some(staged) = self.staged.take() else {
            return Ok(());
        };
        staged.commit().map_err(|e| ConfigError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        tracing::info!(path = %self.path.display(), "config written");
        Ok(())
    }
}

/// Plans adding arches (and install's settings) to the config file, creating it and keeping its
/// comments and layout. Everything is checked here, before install touches the kernel: the
/// directory (created 0755 if missing) must not be writable by group or others and must belong
/// to root or us; the file must not be a symlink; the existing content must be a valid config;
/// and install's flags, search path and keep-existing policy must agree with the settings of
/// arches already in it (they are global), or be written when there are none.
pub fn prepare_persist(
    path: &Path,
    req: &PersistRequest,
    table: &Table,
) -> Result<PendingConfig, ConfigError> {
    let write_err = |message: String| ConfigError::Write {
        path: path.to_owned(),
        message,
    };
    let (dir, name) = open_locked_dir(path)?;
    let (text, old_mode) = match read_current(path, &dir, &name)? {
        Some((t, mode)) => (Some(t), mode),
        None => (None, 0o644),
    };
    let current = match &text {
        Some(t) => Some(parse(path, t, table)?),
        None => None,
    };
    let text = text.unwrap_or_else(|| NEW_FILE.to_owned());
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| write_err(format!("it is not valid TOML: {e}")))?;
    // Settings are global: they may change only when no other arch depends on them.
    let adding: Vec<String> = req
        .arches
        .iter()
        .map(|a| {
            if a.eq_ignore_ascii_case("all") {
                "all".to_owned()
            } else {
                table
                    .resolve(a)
                    .map_or_else(|_| a.clone(), |x| x.name.clone())
            }
        })
        .collect();
    let others: Vec<&String> = current
        .as_ref()
        .map(|c| c.arches.iter().filter(|a| !adding.contains(a)).collect())
        .unwrap_or_default();
    let want_path: Vec<PathBuf> = if is_default_search(req.qemu_path) {
        Vec::new()
    } else {
        req.qemu_path.to_vec()
    };
    let flags = req.flags.normalized();
    match &current {
        Some(c) if !others.is_empty() => {
            settings_agree(path, c, req, &doc, flags, &want_path, &others)?;
        }
        _ => record_settings(&mut doc, current.as_ref(), req, flags, &want_path),
    }
    let arr = doc
        .entry("arches")
        .or_insert(toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| write_err("arches is not an array".into()))?;
    for a in req.arches {
        let present = arr.iter().filter_map(|v| v.as_str()).any(|v| {
            table.resolve(v).map(|x| &x.name) == table.resolve(a).map(|x| &x.name) || v == a
        });
        if !present {
            arr.push(a.as_str());
        }
    }
    let out = doc.to_string();
    // Never write something we would refuse to read.
    parse(path, &out, table)?;
    if current.is_some() && out == text {
        return Ok(PendingConfig {
            path: path.to_owned(),
            _dir: dir,
            staged: None,
        });
    }
    let staged = crate::atomic::Staged::new(&dir, &name, out.as_bytes(), old_mode)
        .map_err(|e| write_err(format!("cannot write a temporary file: {e}")))?;
    Ok(PendingConfig {
        path: path.to_owned(),
        _dir: dir,
        staged: Some(staged),
    })
}

/// The errors about `path` its writers give: `ConfigError::Unsafe` and `ConfigError::Write`.
fn path_errors(
    path: &Path,
) -> (
    impl Fn(String) -> ConfigError + '_,
    impl Fn(String) -> ConfigError + '_,
) {
    (
        move |message| ConfigError::Unsafe {
            path: path.to_owned(),
            message,
        },
        move |message| ConfigError::Write {
            path: path.to_owned(),
            message,
        },
    )
}

/// The config file's directory (created 0755 if missing), opened and checked (not writable by
/// group or others, owned by root or us) and locked for one read-modify-write; and the file's
/// name in it.
fn open_locked_dir(path: &Path) -> Result<(OwnedFd, std::ffi::OsString), ConfigError> {
    use rustix::fs::{Mode, OFlags};
    let (unsafe_, write_err) = path_errors(path);
    let name = path
        .file_name()
        .ok_or_else(|| unsafe_("it names no file: pass --config with a file name".into()))?
        .to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o755)
        .create(&parent)
        .map_err(|e| write_err(format!("cannot create {}: {e}", parent.display())))?;
    let dir = rustix::fs::open(
        &parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        write_err(format!(
            "cannot open {}: {}",
            parent.display(),
            io::Error::from(e)
        ))
    })?;
    let st = rustix::fs::fstat(&dir).map_err(|e| write_err(io::Error::from(e).to_string()))?;
    if st.st_mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "its directory {} is writable by group or others (mode {:o}): `chmod go-w {}`",
            parent.display(),
            st.st_mode & 0o7777,
            parent.display()
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Err(unsafe_(format!(
            "its directory {} belongs to uid {}, not root: keep the config in a root-owned directory",
            parent.display(),
            st.st_uid
        )));
    }
    // One read-modify-write at a time.
    crate::lock::take(&dir, crate::lock::Kind::Exclusive, true, || {
        format!("another binfmtctl changing {}", parent.display())
    })
    .map_err(|e| {
        write_err(format!(
            "cannot lock {}: {}",
            parent.display(),
            io::Error::from(e)
        ))
    })?;
    Ok((dir, name))
}

/// The file's current content and mode: never through a symlink, never a special file;
/// `None` when there is none.
fn read_current(
    path: &Path,
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
) -> Result<Option<(String, u32)>, ConfigError> {
    use rustix::fs::{FileType, Mode, OFlags};
    let (unsafe_, write_err) = path_errors(path);
    // The current content: never through a symlink, never a special file.
    Ok(
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(write_err(io::Error::from(e).to_string())),
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    return Err(unsafe_(
                    "it is a symbolic link: binfmtctl writes only a regular file; replace the link with the file".into(),
                ));
                }
                FileType::RegularFile => {
                    let fd = rustix::fs::openat(
                        dir,
                        name,
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| write_err(io::Error::from(e).to_string()))?;
                    let file = std::fs::File::from(fd);
                    let meta = file.metadata().map_err(|e| write_err(e.to_string()))?;
                    if !meta.is_file() {
                        return Err(unsafe_("it is not a regular file".into()));
                    }
                    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o755;
                    let bytes = crate::input::read_bounded(path, file, crate::input::MAX_TEXT)
                        .map_err(ConfigError::Read)?;
                    Some((
                        crate::input::text(path, bytes).map_err(ConfigError::Read)?,
                        mode,
                    ))
                }
                _ => {
                    return Err(unsafe_(
                        "it is not a regular file: pass --config with a regular file".into(),
                    ));
                }
            },
        },
    )
}

/// Settings are global: with other arches in the file, install's must be the file's (`apply`
/// would use the file's for the new arches too); else the conflict, naming each setting.
fn settings_agree(
    path: &Path,
    c: &Config,
    req: &PersistRequest,
    doc: &toml_edit::DocumentMut,
    flags: Flags,
    want_path: &[PathBuf],
    others: &[&String],
) -> Result<(), ConfigError> {
    let mut differ = Vec::new();
    if c.flags.normalized() != flags {
        // A file without `flags` has the default: say so, rather than quote a line that
        // is not there (issue 21).
        let implied = if doc.contains_key("flags") {
            ""
        } else {
            ", the default: the file sets none"
        };
        differ.push(format!(
            "flags {}{implied} (this install: {flags})",
            c.flags
        ));
    }
    let have: Vec<PathBuf> = if is_default_search(&c.qemu_path) {
        Vec::new()
    } else {
        c.qemu_path.clone()
    };
    if have != want_path {
        let show = |v: &[PathBuf]| {
            if v.is_empty() {
                "the default".to_owned()
            } else {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        differ.push(format!(
            "qemu_path {} (this install: {})",
            show(&have),
            show(want_path)
        ));
    }
    if c.keep_existing != req.keep_existing {
        differ.push(format!(
            "keep_existing {} (this install: {})",
            c.keep_existing, req.keep_existing
        ));
    }
    if !PersistQemu::same(req.qemu, c.qemu.as_deref()) {
        let show = |v: Option<&str>| {
            v.map_or_else(|| "none (the search path)".to_owned(), |v| format!("{v:?}"))
        };
        differ.push(format!(
            "qemu {} (this install: {})",
            show(c.qemu.as_deref()),
            show(req.qemu.map(|q| q.version))
        ));
    }
    if !differ.is_empty() {
        let list: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        return Err(ConfigError::Conflict {
            path: path.to_owned(),
            message: format!(
                "it sets {} for {}, which `apply` would use for the new arches too; install with the same settings, or edit the file first",
                differ.join(", "),
                list.join(", ")
            ),
        });
    }
    Ok(())
}

/// Nothing else depends on the settings: records install's in `doc` (only where they differ,
/// so comments on unchanged keys stay).
fn record_settings(
    doc: &mut toml_edit::DocumentMut,
    current: Option<&Config>,
    req: &PersistRequest,
    flags: Flags,
    want_path: &[PathBuf],
) {
    // Nothing else depends on the settings: record install's (where they differ, so
    // comments on unchanged keys stay).
    let (have_flags, have_path, have_keep, have_qemu) = match current {
        Some(c) => (
            c.flags.normalized(),
            c.qemu_path.clone(),
            c.keep_existing,
            c.qemu.clone(),
        ),
        None => (Flags::DEFAULT.normalized(), Vec::new(), false, None),
    };
    if !PersistQemu::same(req.qemu, have_qemu.as_deref()) {
        match req.qemu {
            Some(q) => doc["qemu"] = toml_edit::value(q.version),
            None => {
                doc.remove("qemu");
            }
        }
    }
    if have_flags != flags {
        doc["flags"] = toml_edit::value(flags.to_string());
    }
    if want_path.is_empty() {
        if !is_default_search(&have_path) {
            doc.remove("qemu_path");
        }
    } else if have_path != want_path {
        let mut arr = toml_edit::Array::new();
        for p in want_path {
            arr.push(p.to_string_lossy().as_ref());
        }
        doc["qemu_path"] = toml_edit::value(arr);
    }
    if have_keep != req.keep_existing {
        doc["keep_existing"] = toml_edit::value(req.keep_existing);
    }
}

/// Is this search path the default one (or empty, which means the default)?
fn is_default_search(dirs: &[PathBuf]) -> bool {
    dirs.is_empty() || dirs == crate::qemu::interpreter::default_search().as_slice()
}

/// Adds arches to the config file at once (prepare and commit; for callers without a kernel
/// step in between).
pub fn persist(path: &Path, req: &PersistRequest, table: &Table) -> Result<(), ConfigError> {
    prepare_persist(path, req, table)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(
            Path::new("/etc/binfmtctl/config.toml"),
            text,
            Table::builtin(),
        )
    }

    #[test]
    fn valid() {
        let c = p("arches = [\"arm64\", \"linux/riscv64\", \"arm64\"]\nflags = \"F\"\nqemu_path = [\"/opt/q\"]\nkeep_existing = true\n").unwrap();
        assert_eq!(c.arches, ["aarch64", "riscv64"]);
        assert_eq!(c.flags.to_string(), "F");
        assert_eq!(c.qemu_path, [PathBuf::from("/opt/q")]);
        assert!(c.keep_existing);
        assert_eq!(c.qemu, None);
        let c = p("arches = [\"arm64\"]\nqemu = \"10.0\"\n").unwrap();
        assert_eq!(c.qemu.as_deref(), Some("10.0"));
        assert_eq!(
            (c.qemu_mirror.clone(), c.qemu_keyring.clone()),
            (None, None)
        );
        let c = p("arches = [\"arm64\"]\nqemu_mirror = \"https://m.example/debian\"\nqemu_keyring = \"/etc/k.gpg\"\n").unwrap();
        assert_eq!(c.qemu_mirror.as_deref(), Some("https://m.example/debian"));
        assert_eq!(c.qemu_keyring, Some(PathBuf::from("/etc/k.gpg")));
        assert_eq!(p("arches = [\"all\"]").unwrap().flags, Flags::DEFAULT);
        assert!(!p("arches = [\"all\"]").unwrap().nix);
        assert!(
            p("arches = [\"arm64\"]\n[nix]\nenabled = true\n")
                .unwrap()
                .nix
        );
        let e = p("arches = [\"arm64\"]\n[nix]\nenable = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:1: unknown field `enable`"), "{e}");
    }

    /// Each error names file:line:column and says what to do.
    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            (
                "arches = [\"arm64\"]\nbogus = 1\n",
                "/etc/binfmtctl/config.toml:2:1: unknown field `bogus`",
                "the keys are",
            ),
            (
                "flags = \"F\"\n",
                ":1:1: missing field `arches`",
                "add arches",
            ),
            (
                "arches = [\"arm64\",\n  \"arm46\"]\n",
                ":2:3: unknown architecture \"arm46\"",
                "did you mean",
            ),
            (
                "arches = [\"arm64\"]\nflags = \"FQ\"\n",
                ":2:9: invalid flags \"FQ\"",
                "use any of P",
            ),
            (
                "arches = []\n",
                ":1:10: arches is empty",
                "name at least one",
            ),
            (
                "arches = [\"arm64\"]\nqemu_path = [\"bin\"]\n",
                ":2:14: qemu_path entry \"bin\"",
                "absolute",
            ),
            (
                "arches = [\"arm64\"]\nqemu_mirror = \"m.example/debian\"\n",
                ":2:15: qemu_mirror \"m.example/debian\" must be an http:// or https:// URL",
                "Debian mirror",
            ),
            (
                "arches = [\"arm64\"]\nqemu_keyring = \"keys.gpg\"\n",
                ":2:16: qemu_keyring \"keys.gpg\" must be an absolute path",
                "OpenPGP keyring",
            ),
            (
                "arches = [\"arm64\"]\n[qemu]\nmirror = \"https://m.example/debian\"\n",
                ":2:1: invalid type",
                "",
            ),
            ("arches = [\"arm64\"\n", ":1:18: unclosed array", ""),
            ("arches = \"arm64\"\n", ":1:10: invalid type", ""),
        ];
        for (text, want, fix) in cases {
            let e = p(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains(fix), "{text:?}: {e}");
        }
    }

    fn req<'a>(arches: &'a [String], flags: &str, qemu_path: &'a [PathBuf]) -> PersistRequest<'a> {
        PersistRequest {
            arches,
            flags: Flags::parse(flags).unwrap(),
            qemu_path,
            keep_existing: false,
            qemu: None,
        }
    }

    #[test]
    fn persist_keeps_comments_and_dedupes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("etc/config.toml");
        persist(&path, &req(&["arm64".into()], "FP", &[]), Table::builtin()).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with("# binfmtctl configuration"));
        assert!(
            !first.contains("flags"),
            "default flags need no line: {first}"
        );
        std::fs::write(
            &path,
            format!("# mine\n{first}flags = \"PF\" # keep the default\n"),
        )
        .unwrap();
        persist(
            &path,
            &req(&["aarch64".into(), "riscv64".into()], "PF", &[]),
            Table::builtin(),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# mine") && text.contains("# keep the default"),
            "{text}"
        );
        let c = load(&path, Table::builtin()).unwrap();
        assert_eq!(c.arches, ["aarch64", "riscv64"]);
        assert!(matches!(
            load(&d.path().join("nope"), Table::builtin()),
            Err(ConfigError::Missing { .. })
        ));
        let leftovers: Vec<_> = std::fs::read_dir(d.path().join("etc")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    /// apply must reproduce what install did: install's flags and search path are saved, and
    /// never silently imposed on arches already in the file.
    #[test]
    fn persist_saves_flags_and_qemu_path_or_refuses_a_conflict() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.toml");
        let q = [PathBuf::from("/opt/qemu/bin")];
        persist(&path, &req(&["riscv64".into()], "F", &q), Table::builtin()).unwrap();
        let c = load(&path, Table::builtin()).unwrap();
        assert_eq!(c.flags.to_string(), "F");
        assert_eq!(c.qemu_path, q);
        // Same settings: fine. Other settings while riscv64 depends on the file's: refused.
        persist(&path, &req(&["arm64".into()], "F", &q), Table::builtin()).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let e = persist(&path, &req(&["s390x".into()], "FP", &[]), Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refusing to change")
                && e.contains("flags F (this install: PF)")
                && e.contains("qemu_path /opt/qemu/bin (this install: the default)")
                && e.contains("riscv64, aarch64"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        // Re-installing every arch of the file with new settings replaces them.
        persist(
            &path,
            &req(&["riscv64".into(), "arm64".into()], "FOC", &[]),
            Table::builtin(),
        )
        .unwrap();
        let c = load(&path, Table::builtin()).unwrap();
        assert_eq!(c.flags.to_string(), "OCF");
        assert!(c.qemu_path.is_empty());
    }

    /// `install --qemu VERSION --persist` records the stored version, so the boot unit
    /// registers it and not the system's QEMU; a file that names it by its spec is the same.
    #[test]
    fn persist_saves_the_stored_qemu_version() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.toml");
        let q = PersistQemu {
            version: "10.0.6+ds-0+deb13u2",
            spec: "10.0",
        };
        let arm64 = ["arm64".to_owned()];
        let mut r = req(&arm64, "FP", &[]);
        r.qemu = Some(q);
        persist(&path, &r, Table::builtin()).unwrap();
        let c = load(&path, Table::builtin()).unwrap();
        assert_eq!(c.qemu.as_deref(), Some("10.0.6+ds-0+deb13u2"));
        // The user's own spelling of the same version is kept and counts as the same.
        std::fs::write(&path, "arches = [\"arm64\"]\nqemu = \"10.0\" # mine\n").unwrap();
        let riscv = ["riscv64".to_owned()];
        let mut r2 = req(&riscv, "FP", &[]);
        r2.qemu = Some(q);
        persist(&path, &r2, Table::builtin()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("qemu = \"10.0\" # mine"), "{text}");
        // Another version (or none) while arm64 depends on the file's: refused, unchanged.
        let s390x = ["s390x".to_owned()];
        let mut r3 = req(&s390x, "FP", &[]);
        r3.qemu = Some(PersistQemu {
            version: "7.2+dfsg-7",
            spec: "7.2",
        });
        let e = persist(&path, &r3, Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("qemu \"10.0\" (this install: \"7.2+dfsg-7\")"),
            "{e}"
        );
        let e = persist(&path, &req(&s390x, "FP", &[]), Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("qemu \"10.0\" (this install: none (the search path))"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // Re-installing every arch of the file from the search path drops the key.
        let both = ["arm64".to_owned(), "riscv64".to_owned()];
        persist(&path, &req(&both, "FP", &[]), Table::builtin()).unwrap();
        assert_eq!(load(&path, Table::builtin()).unwrap().qemu, None);
    }

    #[test]
    fn persist_refuses_links_shared_directories_and_a_broken_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, "precious\n").unwrap();
        let link = d.path().join("config.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let arm64 = ["arm64".to_owned()];
        let r = req(&arm64, "FP", &[]);
        let e = persist(&link, &r, Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(e.contains("it is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        // A symlink planted at the temporary name is removed, never written through.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(".config.toml.tmp")).unwrap();
        persist(&link, &r, Table::builtin()).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert!(load(&link, Table::builtin()).is_ok());
        // A directory others can write to.
        let shared = d.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = persist(&shared.join("config.toml"), &r, Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is writable by group or others (mode 1777)"),
            "{e}"
        );
        // A broken config is refused before anything (the kernel included) is touched.
        let broken = d.path().join("broken.toml");
        std::fs::write(&broken, "arches = [\"arm64\"]\nflags = \"FX\"\n").unwrap();
        let e = prepare_persist(&broken, &r, Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.toml:2:9: invalid flags"), "{e}");
        let fifo = d.path().join("fifo.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = persist(&fifo, &r, Table::builtin())
            .unwrap_err()
            .to_string();
        assert!(e.contains("it is not a regular file"), "{e}");
    }

    /// Parallel read-modify-write runs never lose an update.
    #[test]
    fn parallel_persists_keep_every_arch() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.toml");
        let names = [
            "arm64", "riscv64", "s390x", "ppc64le", "mips64el", "armhf", "loong64", "sparc64",
        ];
        std::thread::scope(|s| {
            for n in names {
                let path = &path;
                s.spawn(move || {
                    let a = [n.to_owned()];
                    persist(path, &req(&a, "FP", &[]), Table::builtin()).unwrap();
                });
            }
        });
        assert_eq!(
            load(&path, Table::builtin()).unwrap().arches.len(),
            names.len()
        );
    }
}
