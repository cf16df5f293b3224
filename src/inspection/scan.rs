//! `binfmtctl scan`: which architectures does a root file system or image need.
//!
//! A directory is walked without following any symlink (so nothing outside the tree is read),
//! using the directory entries' own types (no stat per file); every regular file is opened with
//! `O_NOFOLLOW | O_NONBLOCK` (a file swapped for a FIFO cannot hang us) and only its first
//! `HEADER_LEN` bytes are read, by as many threads as there are CPUs. A tarball (plain, gzip or
//! zstd, told apart by magic bytes, e.g. `podman export` output) is streamed: each member's
//! first bytes are read and the rest skipped; nothing is written to disk.
//!
//! Reads files; touches nothing else.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::binfmt::arch::{Endian, Table};
use crate::progress::{Counting, Progress, Unit};

/// Bytes read per file: every field the table's patterns and the fallback look at (e_flags of
/// ELF64 ends at byte 52).
pub const HEADER_LEN: usize = 64;
/// Examples kept per arch.
const EXAMPLES: usize = 3;
/// Files handed to a worker at a time.
const BATCH: usize = 64;

/// What one file is, as far as scan cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileArch {
    pub path: String,
    /// Our arch name; `None` for an ELF file no QEMU arch covers.
    pub arch: Option<String>,
    pub machine: u16,
    pub class: u8,
    pub endian: Endian,
    /// A program: ET_EXEC, or ET_DYN (a PIE) not named like a shared library (`*.so`,
    /// `*.so.N...`; scan reads only the header, so the name tells libraries from PIEs).
    pub runnable: bool,
}

#[derive(Debug, Default)]
pub struct Scan {
    /// Regular files looked at.
    pub files: usize,
    /// Symlinks, devices, FIFOs, sockets, hard links in archives: counted, never opened.
    pub special: usize,
    pub elf: Vec<FileArch>,
    pub errors: Vec<(String, String)>,
}

/// Classifies a header; `None` when it is not ELF.
pub fn classify(table: &Table, path: String, header: &[u8]) -> Option<FileArch> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return None;
    }
    let class = match header[4] {
        1 => 32,
        2 => 64,
        _ => return None,
    };
    let endian = match header[5] {
        1 => Endian::Little,
        2 => Endian::Big,
        _ => return None,
    };
    let rd16 = |o: usize| {
        let b = [header[o], header[o + 1]];
        if endian == Endian::Big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let (e_type, machine) = (rd16(16), rd16(18));
    let flags_at = if class == 64 { 48 } else { 36 };
    let e_flags = header
        .get(flags_at..flags_at + 4)
        .map(|b| {
            let b: [u8; 4] = b.try_into().expect("4 bytes");
            if endian == Endian::Big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        })
        .unwrap_or(0);
    let facts = crate::elf::ElfFacts {
        class,
        endian,
        machine,
        e_type,
        e_flags,
        os_abi: header[7],
        interp: None,
        build_id: None,
    };
    let arch = crate::inspection::inspect::arch_of(table, header, &facts).map(|a| a.name.clone());
    let runnable = e_type == 2 || (e_type == 3 && !named_like_a_library(&path));
    Some(FileArch {
        path,
        arch,
        machine,
        class,
        endian,
        runnable,
    })
}

/// `libc.so.6`, `ld-linux-aarch64.so.1`, `libfoo.so`: a shared library's name (issue 21: scan
/// counted them as programs, libc.so.6 included).
fn named_like_a_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.find(".so") {
        Some(at) => {
            let rest = &name[at + 3..];
            rest.is_empty()
                || (rest.starts_with('.')
                    && rest[1..]
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        }
        None => false,
    }
}

/// Scans a directory or an archive, whichever `path` is, telling `progress` how far it is.
pub fn scan(
    table: &Table,
    path: &Path,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Scan, ScanError> {
    let meta = std::fs::metadata(path).map_err(|e| ScanError::Open {
        path: path.to_owned(),
        source: e,
    })?;
    if meta.is_dir() {
        Ok(scan_dir(table, path, threads, progress))
    } else if meta.is_file() {
        scan_archive(table, path, progress)
    } else {
        Err(ScanError::NotTree {
            path: path.to_owned(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is neither a directory nor a .tar, .tar.gz or .tar.zst archive")]
    NotTree { path: PathBuf },
    #[error("reading the archive {path} failed: {source}")]
    Archive { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Input(crate::input::InputError),
}

impl crate::error::Classify for ScanError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            // A corrupt archive is bad input too: nothing was changed.
            ScanError::Open { .. }
            | ScanError::NotTree { .. }
            | ScanError::Input(_)
            | ScanError::Archive { .. } => ErrorKind::BadInput,
        }
    }
}

/// Walks the tree in this thread (it is cheap: the directory entries carry their types), then
/// reads headers in parallel. `progress`: the files found by the walk, then the files read.
pub fn scan_dir(table: &Table, root: &Path, threads: usize, progress: &dyn Progress) -> Scan {
    let mut out = Scan::default();
    progress.begin(&format!("walking {}", root.display()), None, Unit::Files);
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let before = files.len();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                out.errors.push((dir.display().to_string(), e.to_string()));
                continue;
            }
        };
        for de in rd {
            let de = match de {
                Ok(de) => de,
                Err(e) => {
                    out.errors.push((dir.display().to_string(), e.to_string()));
                    continue;
                }
            };
            // d_type when the file system reports it, lstat otherwise: never follows links.
            match de.file_type() {
                Ok(t) if t.is_dir() => stack.push(de.path()),
                Ok(t) if t.is_file() => files.push(de.path()),
                Ok(_) => out.special += 1,
                Err(e) => out
                    .errors
                    .push((de.path().display().to_string(), e.to_string())),
            }
        }
        progress.advance((files.len() - before) as u64);
    }
    out.files = files.len();
    progress.begin("reading headers", Some(files.len() as u64), Unit::Files);
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, 64);
    // Each worker fills a partial Scan (its ELF files and errors).
    let parts: Vec<Scan> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut part = Scan::default();
                    let mut buf = [0u8; HEADER_LEN];
                    loop {
                        let start = next.fetch_add(BATCH, Ordering::Relaxed);
                        if start >= files.len() {
                            break;
                        }
                        let batch = &files[start..(start + BATCH).min(files.len())];
                        for p in batch {
                            match read_header(p, &mut buf) {
                                Ok(n) => {
                                    // Shown as inside the tree, like archive members.
                                    let rel = p.strip_prefix(root).unwrap_or(p);
                                    let name = Path::new("/").join(rel).display().to_string();
                                    if let Some(f) = classify(table, name, &buf[..n]) {
                                        part.elf.push(f);
                                    }
                                }
                                Err(e) => {
                                    part.errors.push((p.display().to_string(), e.to_string()))
                                }
                            }
                        }
                        progress.advance(batch.len() as u64);
                    }
                    part
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("scan worker"))
            .collect()
    });
    for part in parts {
        out.elf.extend(part.elf);
        out.errors.extend(part.errors);
    }
    out.elf.sort_by(|a, b| a.path.cmp(&b.path));
    progress.end();
    out
}

/// Reads the first bytes of a regular file, refusing to follow a symlink or block on a FIFO.
fn read_header(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::fs::{Mode, OFlags, open};
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let mut f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(
            "changed into a special file while scanning",
        ));
    }
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Opens a tar archive, decompressing gzip (1f 8b) or zstd (28 b5 2f fd) by magic, and checks
/// that what comes out is a tar ("ustar" at offset 257). Shared by `scan` and tarball rootfs.
pub fn open_archive(path: &Path) -> Result<Box<dyn Read>, ScanError> {
    archive_reader(open_file(path)?, path)
}

/// Opens an archive file: a regular file only (a FIFO or device would block or never end).
fn open_file(path: &Path) -> Result<File, ScanError> {
    crate::input::open_regular(path).map_err(|e| match e {
        crate::input::InputError::NotRegular { .. } => ScanError::NotTree {
            path: path.to_owned(),
        },
        other => ScanError::Input(other),
    })
}

/// Like `open_archive`, from a reader at the archive's first byte (`path` names it in errors).
pub fn archive_reader<'a>(
    raw: impl Read + 'a,
    path: &Path,
) -> Result<Box<dyn Read + 'a>, ScanError> {
    match crate::tar_stream::archive_stream(BufReader::new(raw)) {
        Ok(Some(reader)) => Ok(reader),
        Ok(None) => Err(ScanError::NotTree {
            path: path.to_owned(),
        }),
        Err(source) => Err(ScanError::Archive {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Streams an archive: gzip, zstd or plain tar. `progress`: the archive's bytes read.
pub fn scan_archive(
    table: &Table,
    path: &Path,
    progress: &dyn Progress,
) -> Result<Scan, ScanError> {
    let f = open_file(path)?;
    let total = f.metadata().ok().map(|m| m.len());
    progress.begin(&format!("reading {}", path.display()), total, Unit::Bytes);
    let raw = Counting { inner: f, progress };
    let scanned = scan_stream(table, archive_reader(raw, path)?);
    progress.end();
    scanned.map_err(|source| ScanError::Archive {
        path: path.to_owned(),
        source,
    })
}

/// Scans the members of a tar stream (already decompressed by `archive_stream`).
pub fn scan_stream(table: &Table, reader: impl Read) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries()?;
    let mut buf = Vec::with_capacity(HEADER_LEN);
    for entry in entries {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            out.special += 1;
            continue;
        }
        out.files += 1;
        // Members may be named "./usr/bin/x", "usr/bin/x" or "/usr/bin/x": show "/usr/bin/x".
        let name = entry
            .path()
            .map(|p| {
                let inner: PathBuf = p
                    .components()
                    .filter(|c| matches!(c, std::path::Component::Normal(_)))
                    .collect();
                Path::new("/").join(inner).display().to_string()
            })
            .unwrap_or_else(|_| "(unprintable name)".into());
        buf.clear();
        match entry.take(HEADER_LEN as u64).read_to_end(&mut buf) {
            Ok(_) => {
                if let Some(f) = classify(table, name, &buf) {
                    out.elf.push(f);
                }
            }
            Err(e) => out.errors.push((name, e.to_string())),
        }
    }
    Ok(out)
}

/// Per-arch totals for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ArchCount {
    pub arch: String,
    pub platform: Option<String>,
    pub files: usize,
    pub executables: usize,
    pub native: bool,
    /// The entry the kernel would pick for this arch's executables now (null: none).
    pub handler: Option<String>,
    pub examples: Vec<String>,
}

/// ELF files of a machine no QEMU arch covers.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownCount {
    pub machine: u16,
    pub class: u8,
    pub endian: Endian,
    pub files: usize,
    pub examples: Vec<String>,
}

/// Groups the files by arch, in descending count.
pub fn summarize(
    scan: &Scan,
    table: &Table,
    native: &[String],
    handler_of: &dyn Fn(&str) -> Option<String>,
) -> (Vec<ArchCount>, Vec<UnknownCount>) {
    let mut by: BTreeMap<&str, ArchCount> = BTreeMap::new();
    let mut unknown: BTreeMap<(u16, u8, bool), UnknownCount> = BTreeMap::new();
    for f in &scan.elf {
        match &f.arch {
            Some(a) => {
                let c = by.entry(a).or_insert_with(|| ArchCount {
                    arch: a.clone(),
                    platform: table.get(a).and_then(|x| x.platform().map(str::to_owned)),
                    files: 0,
                    executables: 0,
                    native: native.iter().any(|n| n == a),
                    handler: None,
                    examples: Vec::new(),
                });
                c.files += 1;
                if f.runnable {
                    c.executables += 1;
                    if c.examples.len() < EXAMPLES {
                        c.examples.push(f.path.clone());
                    }
                }
            }
            None => {
                let key = (f.machine, f.class, f.endian == Endian::Big);
                let u = unknown.entry(key).or_insert_with(|| UnknownCount {
                    machine: f.machine,
                    class: f.class,
                    endian: f.endian,
                    files: 0,
                    examples: Vec::new(),
                });
                u.files += 1;
                if u.examples.len() < EXAMPLES {
                    u.examples.push(f.path.clone());
                }
            }
        }
    }
    let mut counts: Vec<ArchCount> = by
        .into_values()
        .map(|mut c| {
            if !c.native {
                c.handler = handler_of(&c.arch);
            }
            c
        })
        .collect();
    counts.sort_by(|a, b| b.files.cmp(&a.files).then_with(|| a.arch.cmp(&b.arch)));
    (counts, unknown.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = Table::builtin();
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("usr/bin")).unwrap();
        std::fs::write(
            p.join("usr/bin/a"),
            crate::inspection::probe::build(t.get("aarch64").unwrap()).unwrap(),
        )
        .unwrap();
        std::fs::write(
            p.join("usr/bin/b"),
            crate::inspection::probe::build(t.get("aarch64").unwrap()).unwrap(),
        )
        .unwrap();
        std::fs::write(
            p.join("usr/bin/r"),
            crate::inspection::probe::build(t.get("riscv64").unwrap()).unwrap(),
        )
        .unwrap();
        std::fs::write(p.join("usr/bin/script"), "#!/bin/sh\n").unwrap();
        std::fs::write(p.join("short"), "\x7fEL").unwrap();
        // A link out of the tree, and a FIFO: neither may be read.
        symlink("/bin/ls", p.join("usr/bin/ls")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        d
    }

    /// The observer hears the files found by the walk, then the files read, in that order;
    /// for an archive, its bytes read to the end.
    #[test]
    fn scans_report_the_files_walked_and_read_or_the_bytes() {
        use crate::progress::{Recorder, Step, Unit};
        let t = Table::builtin();
        let d = tree();
        let rec = Recorder::new();
        let s = scan_dir(t, d.path(), 2, &rec);
        assert_eq!(s.files, 5);
        assert_eq!(
            rec.steps(),
            [
                Step {
                    name: format!("walking {}", d.path().display()),
                    total: None,
                    unit: Unit::Files,
                    done: 5,
                    ended: false,
                },
                Step {
                    name: "reading headers".into(),
                    total: Some(5),
                    unit: Unit::Files,
                    done: 5,
                    ended: true,
                },
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("r.tar.gz");
        {
            let enc = flate2::write::GzEncoder::new(
                File::create(&gz).unwrap(),
                flate2::Compression::fast(),
            );
            let mut b = tar::Builder::new(enc);
            b.follow_symlinks(false);
            b.append_dir_all(".", d.path().join("usr")).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let size = std::fs::metadata(&gz).unwrap().len();
        let rec = Recorder::new();
        assert_eq!(scan_archive(t, &gz, &rec).unwrap().elf.len(), 3);
        assert_eq!(
            rec.steps(),
            [Step {
                name: format!("reading {}", gz.display()),
                total: Some(size),
                unit: Unit::Bytes,
                done: size,
                ended: true,
            }]
        );
    }

    #[test]
    fn walks_without_following_links_or_blocking_on_fifos() {
        let t = Table::builtin();
        let d = tree();
        let s = scan_dir(t, d.path(), 2, &Silent);
        assert_eq!(s.files, 5);
        assert_eq!(s.special, 2, "symlink + fifo counted, not opened");
        let archs: Vec<_> = s.elf.iter().map(|f| f.arch.as_deref().unwrap()).collect();
        assert_eq!(archs, ["aarch64", "aarch64", "riscv64"]);
        assert_eq!(
            s.elf[0].path, "/usr/bin/a",
            "paths are shown inside the tree"
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let (counts, unknown) = summarize(&s, t, &["x86_64".into()], &|a| {
            (a == "aarch64").then(|| "qemu-aarch64".into())
        });
        assert_eq!(counts[0].arch, "aarch64");
        assert_eq!(counts[0].files, 2);
        assert_eq!(counts[0].handler.as_deref(), Some("qemu-aarch64"));
        assert_eq!(counts[1].handler, None);
        assert!(unknown.is_empty());
    }

    /// A compressed archive can declare a GNU long name of gigabytes in a few kilobytes; the
    /// tar reader would hold it in memory whole. Refused past 1 MiB, while long names, pax
    /// headers (with a size override) and sparse files of real size pass.
    #[test]
    fn tar_metadata_is_bounded() {
        let t = Table::builtin();
        let dir = tempfile::tempdir().unwrap();
        let elf = {
            let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
            h.resize(16, 0);
            h.extend_from_slice(&[2, 0, 0xf3, 0]);
            h.resize(64, 0);
            h
        };
        // Fine: a long name (GNU 'L' member) and a pax header whose size overrides the header's.
        // With a 2 MiB long name after them: refused, so the guard followed the stream through.
        let build = |path: &Path, big_name_after: bool| {
            let mut b = tar::Builder::new(File::create(path).unwrap());
            let long = format!("usr/{}/riscv-program", "d".repeat(300));
            let mut h = tar::Header::new_gnu();
            h.set_size(elf.len() as u64);
            h.set_mode(0o755);
            b.append_data(&mut h, &long, &elf[..]).unwrap();
            assert_eq!(elf.len(), 64);
            let record = "11 size=64\n";
            let mut px = tar::Header::new_ustar();
            px.set_entry_type(tar::EntryType::XHeader);
            px.set_size(record.len() as u64);
            px.set_path("./PaxHeaders/x").unwrap();
            px.set_cksum();
            b.append(&px, record.as_bytes()).unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_size(0); // overridden by the pax size
            h.set_mode(0o755);
            h.set_path("bin/second").unwrap();
            h.set_cksum();
            b.append(&h, &elf[..]).unwrap();
            if big_name_after {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::GNULongName);
                h.set_path("././@LongLink").unwrap();
                h.set_size(2 << 20);
                h.set_cksum();
                b.append(&h, &vec![b'n'; 2 << 20][..]).unwrap();
            }
            b.finish().unwrap();
        };
        let ok = dir.path().join("ok.tar");
        build(&ok, false);
        let s = scan_archive(t, &ok, &Silent).unwrap();
        assert_eq!(s.elf.len(), 2, "{:?}", s.elf);
        let late = dir.path().join("late.tar");
        build(&late, true);
        let e = scan_archive(t, &late, &Silent).unwrap_err().to_string();
        assert!(e.contains("(type L) of 2097152 bytes"), "{e}");
        // A gzip bomb: an 'L' member declaring 8 GiB, followed by zeros.
        let bomb = dir.path().join("bomb.tar.gz");
        {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_path("././@LongLink").unwrap();
            h.set_size(8 << 30);
            h.set_cksum();
            let mut enc = flate2::write::GzEncoder::new(
                File::create(&bomb).unwrap(),
                flate2::Compression::fast(),
            );
            io::Write::write_all(&mut enc, h.as_bytes()).unwrap();
            let zeros = vec![b'a'; 1 << 20];
            for _ in 0..64 {
                io::Write::write_all(&mut enc, &zeros).unwrap();
            }
            enc.finish().unwrap();
        }
        let e = scan_archive(t, &bomb, &Silent).unwrap_err().to_string();
        assert!(
            e.contains(
                "a tar metadata member (type L) of 8589934592 bytes: more than 1048576 bytes"
            ),
            "{e}"
        );
    }

    #[test]
    fn archives_plain_gzip_zstd() {
        let t = Table::builtin();
        let d = tree();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("r.tar");
        {
            let mut b = tar::Builder::new(File::create(&plain).unwrap());
            b.follow_symlinks(false);
            b.append_dir_all(".", d.path().join("usr")).unwrap();
            b.finish().unwrap();
        }
        let s = scan_archive(t, &plain, &Silent).unwrap();
        assert_eq!(s.elf.len(), 3);
        assert!(
            s.elf
                .iter()
                .any(|f| f.path == "/bin/r" && f.arch.as_deref() == Some("riscv64")),
            "{:?}",
            s.elf
        );
        assert_eq!(s.special, 1, "the symlink");
        // gzip
        let gz = dir.path().join("r.tar.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        io::copy(&mut File::open(&plain).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap();
        assert_eq!(scan_archive(t, &gz, &Silent).unwrap().elf.len(), 3);
        // zstd: a frame of raw blocks is enough for the decoder.
        let zst = dir.path().join("r.tar.zst");
        std::fs::write(&zst, zstd_raw_frame(&std::fs::read(&plain).unwrap())).unwrap();
        assert_eq!(scan_archive(t, &zst, &Silent).unwrap().elf.len(), 3);
        // Not an archive.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![7u8; 2000]).unwrap();
        assert!(matches!(
            scan_archive(t, &junk, &Silent),
            Err(ScanError::NotTree { .. })
        ));
    }

    /// A valid zstd frame that stores `data` in raw (uncompressed) blocks.
    fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
        out.push(0x00); // frame header: no checksum, no content size, window descriptor follows
        out.push(0x58); // window descriptor: 2^(10 + 11) = 2 MiB
        let chunks: Vec<&[u8]> = data.chunks(128 * 1024).collect();
        for (i, c) in chunks.iter().enumerate() {
            let last = u32::from(i + 1 == chunks.len());
            let h = last | ((c.len() as u32) << 3); // block type 0 (raw) in bits 1-2
            out.extend_from_slice(&h.to_le_bytes()[..3]);
            out.extend_from_slice(c);
        }
        out
    }

    #[test]
    fn classify_edge_cases() {
        let t = Table::builtin();
        assert!(classify(t, "x".into(), b"\x7fELF").is_none(), "too short");
        assert!(classify(t, "x".into(), b"#!/bin/sh").is_none());
        // A relocatable object (kernel module) is still counted under its arch.
        let mut rel = crate::inspection::probe::build(t.get("s390x").unwrap()).unwrap();
        rel[17] = 1; // ET_REL, big-endian
        let f = classify(t, "m.ko".into(), &rel[..64]).unwrap();
        assert_eq!((f.arch.as_deref(), f.runnable), (Some("s390x"), false));
        // ET_DYN: a PIE program, unless it is named like a shared library.
        let mut dyn_ = rel.clone();
        dyn_[17] = 3;
        for (name, program) in [
            ("usr/bin/ls", true),
            ("usr/lib/s390x-linux-gnu/libc.so.6", false),
            ("lib/ld64.so.1", false),
            ("usr/lib/libfoo.so", false),
            ("usr/lib/libfoo.so.1.2.3", false),
            ("usr/bin/x.sourced", true),
            ("usr/bin/so.weird", true),
        ] {
            let f = classify(t, name.into(), &dyn_[..64]).unwrap();
            assert_eq!(f.runnable, program, "{name}");
        }
        // An ELF machine QEMU has no user mode for.
        let mut odd = rel.clone();
        odd[19] = 0xee;
        assert_eq!(classify(t, "odd".into(), &odd[..64]).unwrap().arch, None);
    }
}
