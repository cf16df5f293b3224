//! Unpacking a Debian binary package (deb(5): an ar(5) archive of `debian-binary`,
//! `control.tar.*` and `data.tar.{xz,zst,gz,}`) in Rust, with no dpkg: only the QEMU user-mode
//! interpreters (`usr/bin/qemu-<cpu>` or `usr/bin/qemu-<cpu>-static`, regular files, for a
//! CPU the arch table knows) are written out, as `qemu-<cpu>`, mode 0755.
//!
//! Needs write access to the destination directory only. Nothing is executed.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::progress::{Counting, Progress, Unit};

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

/// Unpacks the interpreters of `deb` into `dest` (an existing directory), telling `progress`
/// the bytes of `data.tar` read.
pub fn extract_interpreters(
    deb: &Path,
    dest: &Path,
    known: &[&str],
    progress: &dyn Progress,
) -> Result<Vec<Extracted>, DebError> {
    let not_deb = |reason: String| DebError::NotDeb {
        path: deb.to_owned(),
        reason,
    };
    let mut f = File::open(deb).map_err(|err| DebError::Read {
        path: deb.to_owned(),
        err,
    })?;
    let members = ar_members(&mut f).map_err(|e| not_deb(format!("bad ar archive ({e})")))?;
    let mut saw_binary = false;
    for (id, offset, size) in members {
        let member = || -> Result<std::io::Take<File>, DebError> {
            let read_err = |err| DebError::Read {
                path: deb.to_owned(),
                err,
            };
            let mut m = f.try_clone().map_err(read_err)?;
            m.seek(SeekFrom::Start(offset)).map_err(read_err)?;
            Ok(m.take(size))
        };
        if id == "debian-binary" {
            let mut v = String::new();
            member()?
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
        progress.begin(&format!("unpacking {id}"), Some(size), Unit::Bytes);
        let entry = BufReader::new(Counting {
            inner: member()?,
            progress,
        });
        let out = match comp {
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
        progress.end();
        if out.is_empty() {
            return Err(DebError::NoInterpreters {
                path: deb.to_owned(),
            });
        }
        return Ok(out);
    }
    Err(not_deb("no data.tar member".into()))
}

/// The members of an ar(5) archive as deb(5) uses it: `!<arch>\n`, then per member a 60-byte
/// header (name 16, mtime 12, uid 6, gid 6, mode 8, size 10, `` `\n ``) and its data, padded to
/// an even length. dpkg writes short names only, so there are no GNU or BSD long-name tables
/// (a member naming one is refused, not looked up): names are the first field without its
/// trailing blanks and `/`. Returns (name, data offset, size), each member inside the file.
fn ar_members(f: &mut File) -> std::io::Result<Vec<(String, u64, u64)>> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let len = f.metadata()?.len();
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)
        .map_err(|_| bad("shorter than the ar magic".into()))?;
    if &magic != b"!<arch>\n" {
        return Err(bad("no !<arch> magic".into()));
    }
    let mut out = Vec::new();
    let mut pos = 8u64;
    while pos < len {
        let mut h = [0u8; 60];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut h)
            .map_err(|_| bad(format!("truncated member header at byte {pos}")))?;
        if &h[58..60] != b"`\n" {
            return Err(bad(format!("corrupt member header at byte {pos}")));
        }
        let raw = String::from_utf8_lossy(&h[..16]);
        let name = raw.trim_end_matches(' ').trim_end_matches('/').to_owned();
        if name.is_empty() || name.starts_with('/') || name.starts_with("#1/") {
            return Err(bad(format!(
                "member name {:?} at byte {pos}: deb(5) uses no long-name tables",
                raw.trim_end()
            )));
        }
        let size: u64 = std::str::from_utf8(&h[48..58])
            .ok()
            .map(str::trim_end)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad(format!("member {name:?}: size is not a decimal number")))?;
        let data = pos + 60;
        if size > len.saturating_sub(data) {
            return Err(bad(format!(
                "member {name:?} claims {size} bytes, more than the file holds"
            )));
        }
        out.push((name, data, size));
        pos = data + size + (size & 1);
    }
    Ok(out)
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
    // Long names and pax headers are held in memory whole by the tar reader: bounded, as for
    // any tarball we read (a compressed data.tar can declare one of gigabytes).
    let mut tar = tar::Archive::new(crate::tar_stream::TarGuard::new(r));
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
            sha256: super::debian_mirror::hex(&h.finalize()),
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

    fn ar_header(name: &str, size: u64) -> Vec<u8> {
        let h = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
            0, 0, 0, "100644"
        );
        assert_eq!(h.len(), 60);
        h.into_bytes()
    }

    /// A .deb from members (name, bytes), as dpkg-deb lays it out.
    fn deb(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut d = b"!<arch>\n".to_vec();
        for (name, body) in members {
            d.extend(ar_header(name, body.len() as u64));
            d.extend_from_slice(body);
            if body.len() % 2 == 1 {
                d.push(b'\n');
            }
        }
        d
    }

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn extract(bytes: &[u8]) -> (Result<Vec<Extracted>, DebError>, tempfile::TempDir) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.deb");
        std::fs::write(&p, bytes).unwrap();
        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        (
            extract_interpreters(&p, &out, &["aarch64"], &crate::progress::Silent),
            t,
        )
    }

    /// A hostile .deb (`qemu fetch --from-deb`) gets a clear refusal, never a panic or a
    /// huge allocation: a GNU long-name reference with no name table (the ar crate indexed
    /// past its end), a name table declaring gigabytes, a member longer than the file, and a
    /// data.tar whose GNU long name inflates to megabytes from a few kilobytes.
    #[test]
    fn hostile_debs_are_refused_without_panic_or_huge_allocation() {
        let good_tar = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(4);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, "./usr/bin/qemu-aarch64", &b"\x7fELF"[..])
                .unwrap();
            b.into_inner().unwrap()
        };
        let (r, t) = extract(&deb(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &gz(b"")),
            ("data.tar.gz", &gz(&good_tar)),
        ]));
        let x = r.unwrap();
        assert_eq!(x.len(), 1);
        assert_eq!(
            std::fs::read(t.path().join("out/qemu-aarch64")).unwrap(),
            b"\x7fELF"
        );

        let refused = |bytes: Vec<u8>, what: &str| {
            let (r, _t) = extract(&bytes);
            match r {
                Err(e @ DebError::NotDeb { .. }) => {
                    assert!(e.to_string().contains(what), "{e} lacks {what:?}")
                }
                other => panic!("expected a refusal with {what:?}, got {other:?}"),
            }
        };
        let mut d = deb(&[("debian-binary", b"2.0\n")]);
        d.extend(ar_header("/99", 2));
        d.extend_from_slice(b"xx");
        refused(d, "deb(5) uses no long-name tables");
        let mut d = deb(&[("debian-binary", b"2.0\n")]);
        d.extend(ar_header("//", 9_999_999_998));
        d.extend_from_slice(b"xx");
        refused(d, "deb(5) uses no long-name tables");
        let mut d = deb(&[("debian-binary", b"2.0\n")]);
        d.extend(ar_header("data.tar", 9_999_999_998));
        d.extend_from_slice(b"xx");
        refused(d, "more than the file holds");
        // A GNU long name ('L') of 8 MiB, compressed to a few KiB.
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(8 << 20);
        h.set_cksum();
        let mut bomb = h.as_bytes().to_vec();
        bomb.resize(512 + (8 << 20), b'a');
        refused(
            deb(&[("debian-binary", b"2.0\n"), ("data.tar.gz", &gz(&bomb))]),
            "tar metadata member",
        );
    }

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
