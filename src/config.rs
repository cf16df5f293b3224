//! The declarative configuration, `/etc/binfmtctl/config.toml`: which arches to keep
//! registered, with which flags, interpreter search path and keep-existing policy. `apply`
//! reconciles the kernel to it through the same plan/apply code as `install`.
//!
//! ```toml
//! arches = ["arm64", "riscv64"]   # any spelling; "all" for every arch with an interpreter
//! flags = "FP"                     # optional, default FP
//! qemu_path = ["/usr/bin"]         # optional, default /usr/bin /usr/local/bin /usr/libexec/qemu
//! keep_existing = false            # optional
//! qemu = "10.0"                    # optional: interpreters from this stored QEMU version
//! ```
//!
//! Parsing is pure (`parse`); `load` reads the file; `persist` edits it keeping comments.
//! Every error names the file, line and column, and the fix.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::arch::Table;
use crate::registration::Flags;

pub const DEFAULT_PATH: &str = "/etc/binfmtctl/config.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    arches: Spanned<Vec<Spanned<String>>>,
    flags: Option<Spanned<String>>,
    qemu_path: Option<Vec<Spanned<String>>>,
    keep_existing: Option<bool>,
    qemu: Option<Spanned<String>>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path} does not exist: create it (see docs/config.md) or pass --config PATH")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
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
            "; the keys are arches, flags, qemu_path, keep_existing, qemu"
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
    Ok(Config {
        arches,
        flags,
        qemu_path,
        keep_existing: raw.keep_existing.unwrap_or(false),
        qemu: raw.qemu.map(Spanned::into_inner),
    })
}

pub fn load(path: &Path, table: &Table) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ConfigError::Missing {
                path: path.to_owned(),
            }
        } else {
            ConfigError::Read {
                path: path.to_owned(),
                source: e,
            }
        }
    })?;
    parse(path, &text, table)
}

/// Adds arches to the config file (creating it), keeping its comments and layout.
pub fn persist(path: &Path, add: &[String], table: &Table) -> Result<(), ConfigError> {
    let write_err = |message: String| ConfigError::Write {
        path: path.to_owned(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# binfmtctl configuration: `binfmtctl apply` registers these at boot (binfmtctl.service).\n# See docs/config.md.\narches = []\n".to_owned()
        }
        Err(e) => return Err(write_err(e.to_string())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| write_err(format!("it is not valid TOML: {e}")))?;
    let arr = doc
        .entry("arches")
        .or_insert(toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| write_err("arches is not an array".into()))?;
    for a in add {
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
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| write_err(e.to_string()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &out).map_err(|e| write_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(e.to_string()))
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
        assert_eq!(p("arches = [\"all\"]").unwrap().flags, Flags::DEFAULT);
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
            ("arches = [\"arm64\"\n", ":1:18: unclosed array", ""),
            ("arches = \"arm64\"\n", ":1:10: invalid type", ""),
        ];
        for (text, want, fix) in cases {
            let e = p(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains(fix), "{text:?}: {e}");
        }
    }

    #[test]
    fn persist_keeps_comments_and_dedupes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("etc/config.toml");
        persist(&path, &["arm64".into()], Table::builtin()).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with("# binfmtctl configuration"));
        std::fs::write(
            &path,
            format!("# mine\n{first}flags = \"F\" # keep F only\n"),
        )
        .unwrap();
        persist(
            &path,
            &["aarch64".into(), "riscv64".into()],
            Table::builtin(),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# mine") && text.contains("# keep F only"),
            "{text}"
        );
        let c = load(&path, Table::builtin()).unwrap();
        assert_eq!(c.arches, ["aarch64", "riscv64"]);
        assert!(matches!(
            load(&d.path().join("nope"), Table::builtin()),
            Err(ConfigError::Missing { .. })
        ));
    }
}
