//! Interoperability with the other tools that manage binfmt_misc: files `systemd-binfmt`
//! (`binfmt.d(5)`) and `update-binfmts --import` (binfmt-support's format) accept as they are,
//! and reading binfmt.d files back into registrations (to adopt an existing setup).
//!
//! Pure: text in, text out.

use std::path::{Path, PathBuf};

use crate::binfmt::registration::{Matcher, Registration, escape_hex};

/// A registration that cannot be written out: the kernel would refuse its record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {source}")]
pub struct ExportError {
    pub name: String,
    pub source: crate::binfmt::registration::RecordError,
}

impl crate::error::Classify for ExportError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

fn export_err(
    reg: &Registration,
) -> impl Fn(crate::binfmt::registration::RecordError) -> ExportError + '_ {
    |source| ExportError {
        name: reg.name.clone(),
        source,
    }
}

/// A `binfmt.d(5)` file for one registration: comments, then the record on one line.
pub fn to_binfmt_d(reg: &Registration, arch: &str) -> Result<String, ExportError> {
    let record = reg.to_record().map_err(export_err(reg))?;
    Ok(format!(
        "# {arch} emulation, written by `binfmtctl export --format binfmt.d`.\n# Read by systemd-binfmt.service at boot (see binfmt.d(5)).\n{record}\n"
    ))
}

/// A binfmt-support import file (`/usr/share/binfmts/<name>`, read by
/// `update-binfmts --import <name>`).
pub fn to_update_binfmts(reg: &Registration, package: &str) -> Result<String, ExportError> {
    reg.validate().map_err(export_err(reg))?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut s = format!("package {package}\ninterpreter {}\n", reg.interpreter);
    match &reg.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => {
            s += &format!("magic {}\noffset {offset}\n", escape_hex(magic));
            if let Some(m) = mask {
                s += &format!("mask {}\n", escape_hex(m));
            }
        }
        Matcher::Extension(x) => s += &format!("extension {x}\n"),
    }
    // binfmt-support has no field for O alone; C implies it.
    s += &format!(
        "credentials {}\nfix_binary {}\npreserve {}\n",
        yes(reg.flags.credentials),
        yes(reg.flags.fix_binary),
        yes(reg.flags.preserve_argv0)
    );
    Ok(s)
}

/// A line of a binfmt.d file that is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {reason}", path.display())]
pub struct ImportError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl crate::error::Classify for ImportError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// One registration read from a file, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub path: PathBuf,
    pub line: usize,
    pub registration: Registration,
}

/// Parses a binfmt.d file as systemd-binfmt does: each line is stripped of surrounding
/// whitespace; empty lines and lines starting with `#` or `;` are skipped; every other line is a
/// register record, with any delimiter.
pub fn parse_binfmt_d(path: &Path, text: &str) -> Result<Vec<Imported>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lead = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let registration = Registration::parse_record(line).map_err(|e| ImportError {
            path: path.to_owned(),
            line: i + 1,
            column: lead + e.column.max(1),
            reason: format!("{}: {}", e.field, e.reason),
        })?;
        out.push(Imported {
            path: path.to_owned(),
            line: i + 1,
            registration,
        });
    }
    Ok(out)
}

/// The `*.conf` files of a directory, sorted as systemd-binfmt orders them (by file name).
pub fn conf_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;
    use crate::binfmt::registration::Flags;

    fn reg() -> Registration {
        Table::builtin()
            .get("aarch64")
            .unwrap()
            .registration("/usr/bin/qemu-aarch64-static", Flags::DEFAULT)
    }

    #[test]
    fn binfmt_d_round_trip() {
        let text = to_binfmt_d(&reg(), "aarch64").unwrap();
        let back = parse_binfmt_d(Path::new("x.conf"), &text).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].registration, reg());
        assert_eq!(back[0].line, 3);
    }

    #[test]
    fn binfmt_d_comments_blank_lines_any_delimiter_and_errors() {
        let text =
            "# c\n; also a comment\n\n   |jar|E||jar||/usr/bin/jexec|  \n:bad:Q::\\x7f::/x:\n";
        let e = parse_binfmt_d(Path::new("/etc/binfmt.d/a.conf"), text).unwrap_err();
        assert_eq!((e.line, e.column), (5, 6));
        assert!(
            e.to_string().starts_with("/etc/binfmt.d/a.conf:5:6: type"),
            "{e}"
        );
        let ok = parse_binfmt_d(Path::new("a.conf"), &text.replace(":bad:Q", ":good:M")).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].registration.matcher, Matcher::Extension("jar".into()));
        assert_eq!(ok[0].line, 4);
    }

    #[test]
    fn update_binfmts_format_matches_debian() {
        let s = to_update_binfmts(&reg(), "binfmtctl").unwrap();
        assert!(s.starts_with("package binfmtctl\ninterpreter /usr/bin/qemu-aarch64-static\nmagic \\x7f\\x45\\x4c\\x46"), "{s}");
        assert!(
            s.ends_with("credentials no\nfix_binary yes\npreserve yes\n"),
            "{s}"
        );
        assert!(s.contains("\noffset 0\nmask \\xff"));
    }
}
