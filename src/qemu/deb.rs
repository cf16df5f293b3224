//! Unpacking a Debian binary package (deb(5): an ar(5) archive of `debian-binary`,
//! `control.tar.*` and `data.tar.{xz,zst,gz,}`) in Rust, with no dpkg: only the QEMU user-mode
//! interpreters (`usr/bin/qemu-<cpu>` or `usr/bin/qemu-<cpu>-static`, regular files, for a
//! CPU the arch table knows) are written out, as `qemu-<cpu>`, mode 0755.
//!
//! Needs write access to the destination directory only. Nothing is executed.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest interpreter we write (QEMU's static ones are 5–25 MiB).
const MAX_FILE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error(
        "{path} is not a Debian package: {reason}; pass a .deb of qemu-user-static or qemu-user"
    )]
    NotDeb { path: PathBuf, reason: String },
    #[error("cannot write {path}: {err}: {}", super::store::io_hint(err))]
    Write { path: PathBuf, err: std::io::Error },
    #[error(
        "{path} contains no qemu-<cpu> interpreter under usr/bin: pass the qemu-user-static (bookworm) or qemu-user (trixie and later) package"
    )]
    NoInterpreters { path: PathBuf },
}

/// One interpreter written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// `aarch64`, `riscv64`, … (QEMU's CPU name)
    pub cpu: String,
    /// The file name written: `qemu-<cpu>`
    pub name: String,
    /// The path inside the package
    pub member: String,
    pub sha256: String,
    pub size: u64,
}

/// The QEMU CPU a tar member is the interpreter of, if it is one we want.
pub fn interpreter_cpu<'a>(member: &'a str, known: &[&str]) -> Option<&'a str> {
    let m = member.trim_start_matches("./").trim_start_matches('/');
    let name = m.strip_prefix("usr/bin/")?;
    let cpu = name.strip_prefix("qemu-")?;
    let cpu = cpu.strip_suffix("-static").unwrap_or(cpu);
    known.contains(&cpu).then_some(cpu)
}

/// Unpacks the interpreters of `deb` into `dest` (an existing directory).
pub fn extract_interpreters(
    deb: &Path,
    dest: &Path,
    known: &[&str],
) -> Result<Vec<Extracted>, DebError> {
    let not_deb = |reason: String| DebError::NotDeb {
        path: deb.to_owned(),
        reason,
    };
    let f = File::open(deb).map_err(|err| DebError::Read {
        path: deb.to_owned(),
        err,
    })?;
    let mut ar = ar::Archive::new(BufReader::new(f));
    let mut saw_binary = false;
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| not_deb(format!("bad ar archive ({e})")))?;
        let id = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let id = id.trim_end_matches('/').to_owned();
        if id == "debian-binary" {
            let mut v = String::new();
            entry
                .by_ref()
                .take(64)
                .read_to_string(&mut v)
                .map_err(|e| not_deb(format!("unreadable debian-binary ({e})")))?;
            if !v.trim().starts_with("2.") {
                return Err(not_deb(format!("format {:?}, expected 2.0", v.trim())));
            }
            saw_binary = true;
            continue;
        }
        let Some(comp) = id.strip_prefix("data.tar") else {
            continue;
        };
        if !saw_binary {
            return Err(not_deb("data.tar before debian-binary".into()));
        }
        let comp = comp.to_owned();
        let out = match comp.as_str() {
            ".xz" => untar_xz(entry, deb, dest, known)?,
            ".zst" => {
                let d = ruzstd::decoding::StreamingDecoder::new(entry)
                    .map_err(|e| not_deb(format!("bad zstd data ({e})")))?;
                untar(d, deb, dest, known)?
            }
            ".gz" => untar(flate2::read::GzDecoder::new(entry), deb, dest, known)?,
            "" => untar(entry, deb, dest, known)?,
            other => return Err(not_deb(format!("unsupported data.tar{other} compression"))),
        };
        if out.is_empty() {
            return Err(DebError::NoInterpreters {
                path: deb.to_owned(),
            });
        }
        return Ok(out);
    }
    Err(not_deb("no data.tar member".into()))
}

/// lzma-rs decompresses into a writer; a pipe and a thread turn that into a reader, so the
/// tar is streamed (data.tar of qemu-user is several hundred MiB unpacked).
fn untar_xz<R: Read + Send>(
    entry: R,
    deb: &Path,
    dest: &Path,
    known: &[&str],
) -> Result<Vec<Extracted>, DebError> {
    let (reader, mut writer) = std::io::pipe().map_err(|err| DebError::Read {
        path: deb.to_owned(),
        err,
    })?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut input = BufReader::new(entry);
            let r = lzma_rs::xz_decompress(&mut input, &mut writer);
            drop(writer);
            r
        });
        let res = untar(reader, deb, dest, known);
        let produced = producer.join();
        match (res, produced) {
            (Ok(v), _) => Ok(v),
            (Err(e), Ok(Err(xz))) => Err(DebError::NotDeb {
                path: deb.to_owned(),
                reason: format!("bad xz data ({xz}; then {e})"),
            }),
            (Err(e), _) => Err(e),
        }
    })
}

fn untar<R: Read>(
    r: R,
    deb: &Path,
    dest: &Path,
    known: &[&str],
) -> Result<Vec<Extracted>, DebError> {
    let bad = |e: std::io::Error| DebError::NotDeb {
        path: deb.to_owned(),
        reason: format!("bad data.tar ({e})"),
    };
    let mut out: Vec<Extracted> = Vec::new();
    let mut tar = tar::Archive::new(r);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let member = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(cpu) = interpreter_cpu(&member, known) else {
            continue;
        };
        let cpu = cpu.to_owned();
        if out.iter().any(|e| e.cpu == cpu) {
            continue; // qemu-x and qemu-x-static both present: the first wins
        }
        let name = format!("qemu-{cpu}");
        let path = dest.join(&name);
        let werr = |err| DebError::Write {
            path: path.clone(),
            err,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&path)
            .map_err(werr)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        let mut limited = entry.by_ref().take(MAX_FILE + 1);
        loop {
            let k = limited.read(&mut buf).map_err(bad)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            f.write_all(&buf[..k]).map_err(werr)?;
            size += k as u64;
        }
        if size > MAX_FILE {
            return Err(DebError::NotDeb {
                path: deb.to_owned(),
                reason: format!("{member} is larger than {MAX_FILE} bytes"),
            });
        }
        f.sync_all().map_err(werr)?;
        out.push(Extracted {
            cpu,
            name,
            member,
            sha256: super::archive::hex(&h.finalize()),
            size,
        });
    }
    out.sort_by(|a, b| a.cpu.cmp(&b.cpu));
    Ok(out)
}

impl crate::error::Classify for DebError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            DebError::NotDeb { .. } | DebError::NoInterpreters { .. } | DebError::Read { .. } => {
                ErrorKind::BadInput
            }
            DebError::Write { .. } => ErrorKind::Environment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_members_are_interpreters() {
        let known = ["aarch64", "riscv64", "arm"];
        assert_eq!(
            interpreter_cpu("./usr/bin/qemu-aarch64-static", &known),
            Some("aarch64")
        );
        assert_eq!(
            interpreter_cpu("./usr/bin/qemu-aarch64", &known),
            Some("aarch64")
        );
        assert_eq!(interpreter_cpu("usr/bin/qemu-arm", &known), Some("arm"));
        assert_eq!(interpreter_cpu("./usr/bin/qemu-img", &known), None);
        assert_eq!(
            interpreter_cpu("./usr/share/doc/qemu-aarch64", &known),
            None
        );
        assert_eq!(interpreter_cpu("./usr/bin/qemu-x86_64", &known), None);
    }
}
