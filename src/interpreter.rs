//! QEMU interpreter discovery and checks.
//!
//! `facts(path)` is the only I/O (stat, statvfs, the ELF header, the version string embedded in
//! the binary); `check` is pure and decides, from those facts, whether a file may be registered
//! as an interpreter by a root-run tool: it must be a regular, executable ELF for the host CPU,
//! owned by root (or, inside a user namespace, by the overflow uid that host root maps to), not
//! writable by group or others, in directories only root can change, on a mount that allows
//! exec, and with the `F` flag statically linked (a dynamic one breaks inside chroots).
//!
//! We never execute a candidate to learn its version: QEMU embeds `qemu-<cpu> version X` as one
//! string literal, and we read it from the file.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::arch::{Arch, Endian};
use crate::elf::{self, ElfFacts};

/// Default search path, in order.
pub const DEFAULT_SEARCH: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/libexec/qemu"];
/// Longest version line we keep.
const MAX_VERSION_LEN: usize = 200;

/// What the file system says about one candidate path.
#[derive(Debug, Clone, Serialize)]
pub struct FileFacts {
    pub path: PathBuf,
    pub kind: FileKind,
    pub uid: u32,
    pub mode: u32,
    /// Ancestor directories that a non-root user could modify (writable by group/other without
    /// the sticky bit, or not owned by root).
    pub unsafe_dirs: Vec<PathBuf>,
    pub noexec_mount: bool,
    /// The first 256 bytes (what binfmt_misc matches on); empty if unreadable.
    #[serde(skip)]
    pub header: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf: Option<ElfFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Missing,
    Regular,
    Directory,
    Other,
}

/// What the host needs of an interpreter.
#[derive(Debug, Clone)]
pub struct Requirements {
    pub host_class: u8,
    pub host_endian: Endian,
    pub host_machine: u16,
    /// Owners accepted besides uid 0 (the overflow uid inside a user namespace).
    pub extra_owner: Option<u32>,
    /// With `F`, the interpreter must be static.
    pub need_static: bool,
}

/// One reason a candidate is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    #[error("does not exist")]
    Missing,
    #[error("is not a regular file")]
    NotRegular,
    #[error("is not executable (mode {mode:o})")]
    NotExecutable { mode: u32 },
    #[error("is writable by group or others (mode {mode:o}): run `chmod go-w` on it")]
    Writable { mode: u32 },
    #[error("is owned by uid {uid}, not root: run `chown root:root` on it")]
    NotRootOwned { uid: u32 },
    #[error("sits in {dir}, which non-root users can modify")]
    UnsafeDirectory { dir: PathBuf },
    #[error("is on a noexec mount, so the kernel cannot run it")]
    NoExecMount,
    #[error("is not an ELF executable ({reason})")]
    NotElf { reason: String },
    #[error("is built for another CPU (ELF machine {machine}, class {class}), not this host")]
    WrongHostArch { machine: u16, class: u8 },
    #[error(
        "is dynamically linked (needs {interp}), which breaks inside chroots and containers with the F flag: install qemu-user-static or pass a static build with --qemu-path"
    )]
    Dynamic { interp: String },
}

/// A refused interpreter is a request we will not carry out as asked.
impl crate::error::Classify for Problem {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// A candidate with its facts and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub facts: FileFacts,
    pub problems: Vec<Problem>,
}

impl Candidate {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The result of searching for one arch's interpreter.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    pub arch: String,
    /// Every path looked at, in search order.
    pub searched: Vec<PathBuf>,
    /// The candidates that exist, in search order, with their verdicts.
    pub candidates: Vec<Candidate>,
    /// Index into `candidates` of the one to use: the first that passes every check.
    pub chosen: Option<usize>,
}

impl Discovery {
    pub fn chosen(&self) -> Option<&Candidate> {
        self.chosen.map(|i| &self.candidates[i])
    }

    /// A one-line reason no candidate was chosen.
    pub fn refusal(&self) -> String {
        if self.candidates.is_empty() {
            let names: Vec<String> = self
                .searched
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return format!(
                "no interpreter found (looked for {}): install qemu-user-static or pass --qemu-path DIR",
                names.join(", ")
            );
        }
        let parts: Vec<String> = self
            .candidates
            .iter()
            .map(|c| {
                let why: Vec<String> = c.problems.iter().map(ToString::to_string).collect();
                format!("{} {}", c.facts.path.display(), why.join("; "))
            })
            .collect();
        format!("no usable interpreter: {}", parts.join(" | "))
    }
}

/// The file names we look for, in order of preference.
pub fn file_names(arch: &Arch) -> [String; 2] {
    [
        format!("qemu-{}-static", arch.qemu),
        format!("qemu-{}", arch.qemu),
    ]
}

/// Searches `dirs` (in order; within a directory the `-static` name first) and checks every
/// candidate that exists.
pub fn discover(arch: &Arch, dirs: &[PathBuf], req: &Requirements) -> Discovery {
    let mut searched = Vec::new();
    let mut candidates = Vec::new();
    for dir in dirs {
        for name in file_names(arch) {
            let path = dir.join(name);
            searched.push(path.clone());
            let facts = facts(&path, arch);
            if facts.kind != FileKind::Missing {
                let problems = check(&facts, req);
                candidates.push(Candidate { facts, problems });
            }
        }
    }
    let chosen = candidates.iter().position(Candidate::ok);
    Discovery {
        arch: arch.name.clone(),
        searched,
        candidates,
        chosen,
    }
}

/// Reads the facts of one path. Never fails: what cannot be read shows up as a problem later.
pub fn facts(path: &Path, arch: &Arch) -> FileFacts {
    let mut f = FileFacts {
        path: path.to_owned(),
        kind: FileKind::Missing,
        uid: 0,
        mode: 0,
        unsafe_dirs: Vec::new(),
        noexec_mount: false,
        header: Vec::new(),
        elf: None,
        elf_error: None,
        version: None,
    };
    let Ok(meta) = fs::metadata(path) else {
        return f;
    };
    f.uid = meta.uid();
    f.mode = meta.permissions().mode() & 0o7777;
    f.kind = if meta.is_file() {
        FileKind::Regular
    } else if meta.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other
    };
    if f.kind != FileKind::Regular {
        return f;
    }
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    f.unsafe_dirs = real
        .ancestors()
        .skip(1)
        .filter(|d| {
            fs::metadata(d).is_ok_and(|m| {
                let mode = m.permissions().mode();
                let sticky = mode & 0o1000 != 0;
                (mode & 0o022 != 0 && !sticky) || !(m.uid() == 0 || m.uid() == f.uid)
            })
        })
        .map(Path::to_path_buf)
        .collect();
    f.noexec_mount = rustix::fs::statvfs(path)
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC));
    let inspected = fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|file| {
            use std::os::unix::fs::FileExt;
            // The bytes binfmt_misc matches on, kept for the native-capture guard.
            let mut head = vec![0u8; crate::registration::BINPRM_BUF_SIZE];
            let n = file.read_at(&mut head, 0).map_err(|e| e.to_string())?;
            head.truncate(n);
            f.header = head;
            elf::inspect_file(&file).map_err(|e| e.to_string())
        });
    match inspected {
        Ok(e) => f.elf = Some(e),
        Err(e) => f.elf_error = Some(e),
    }
    if f.elf.is_some() {
        f.version = embedded_version(path, &arch.qemu);
    }
    f
}

/// Finds `qemu-<cpu> version X (...)` in the binary, as QEMU's `--version` would print it.
/// The string is a literal in `.rodata`, so we search that section (located through the
/// section headers; the whole file when there are none) in chunks and stop at the first hit:
/// a few hundred KiB read instead of the whole 10+ MiB binary.
pub fn embedded_version(path: &Path, qemu_cpu: &str) -> Option<String> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 256 * 1024;
    let file = fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let (start, end) = elf::section_range(&file, ".rodata").unwrap_or((0, len));
    let needle = format!("qemu-{qemu_cpu} version ");
    let overlap = (needle.len() + MAX_VERSION_LEN) as u64;
    let mut pos = start;
    let mut buf = Vec::new();
    while pos < end {
        let n = (end - pos).min(CHUNK + overlap);
        buf.resize(n as usize, 0);
        file.read_exact_at(&mut buf, pos).ok()?;
        if let Some(at) = memchr::memmem::find(&buf, needle.as_bytes()) {
            let rest = &buf[at + needle.len()..];
            let stop = rest
                .iter()
                .take(MAX_VERSION_LEN)
                .position(|&b| b == b'\n' || b == 0)
                .unwrap_or(rest.len().min(MAX_VERSION_LEN));
            let v = String::from_utf8_lossy(&rest[..stop]).trim().to_owned();
            return (!v.is_empty()).then_some(v);
        }
        pos += CHUNK;
    }
    None
}

/// The checks that apply to any interpreter, ELF or script (an imported `jar` handler, say):
/// it exists, is a regular executable file, owned by root (or the namespace's overflow uid),
/// writable by nobody else, in directories only root can change, on a mount that allows exec.
/// Whether it is an ELF for this CPU, or static, is not asked here.
pub fn security_problems(f: &FileFacts, extra_owner: Option<u32>) -> Vec<Problem> {
    let req = Requirements {
        host_class: 0,
        host_endian: Endian::Little,
        host_machine: 0,
        extra_owner,
        need_static: false,
    };
    check(f, &req)
        .into_iter()
        .filter(|p| {
            !matches!(
                p,
                Problem::NotElf { .. } | Problem::WrongHostArch { .. } | Problem::Dynamic { .. }
            )
        })
        .collect()
}

/// The pure verdict on one candidate.
pub fn check(f: &FileFacts, req: &Requirements) -> Vec<Problem> {
    let mut p = Vec::new();
    match f.kind {
        FileKind::Missing => return vec![Problem::Missing],
        FileKind::Regular => {}
        FileKind::Directory | FileKind::Other => return vec![Problem::NotRegular],
    }
    if f.uid != 0 && Some(f.uid) != req.extra_owner {
        p.push(Problem::NotRootOwned { uid: f.uid });
    }
    if f.mode & 0o022 != 0 {
        p.push(Problem::Writable { mode: f.mode });
    }
    if f.mode & 0o111 == 0 {
        p.push(Problem::NotExecutable { mode: f.mode });
    }
    for d in &f.unsafe_dirs {
        p.push(Problem::UnsafeDirectory { dir: d.clone() });
    }
    if f.noexec_mount {
        p.push(Problem::NoExecMount);
    }
    match (&f.elf, &f.elf_error) {
        (Some(e), _) => {
            if (e.class, e.endian, e.machine) != (req.host_class, req.host_endian, req.host_machine)
            {
                p.push(Problem::WrongHostArch {
                    machine: e.machine,
                    class: e.class,
                });
            }
            if e.e_type != goblin::elf::header::ET_EXEC && e.e_type != goblin::elf::header::ET_DYN {
                p.push(Problem::NotElf {
                    reason: format!("e_type {} is not an executable", e.e_type),
                });
            }
            if req.need_static
                && let Some(interp) = &e.interp
            {
                p.push(Problem::Dynamic {
                    interp: interp.clone(),
                });
            }
        }
        (None, err) => p.push(Problem::NotElf {
            reason: err.clone().unwrap_or_else(|| "unreadable".into()),
        }),
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Requirements {
        Requirements {
            host_class: 64,
            host_endian: Endian::Little,
            host_machine: 62,
            extra_owner: None,
            need_static: true,
        }
    }

    fn good() -> FileFacts {
        FileFacts {
            path: "/usr/bin/qemu-aarch64-static".into(),
            kind: FileKind::Regular,
            uid: 0,
            mode: 0o755,
            unsafe_dirs: vec![],
            noexec_mount: false,
            header: Vec::new(),
            elf: Some(ElfFacts {
                class: 64,
                endian: Endian::Little,
                machine: 62,
                e_type: 3,
                e_flags: 0,
                os_abi: 0,
                interp: None,
                build_id: None,
            }),
            elf_error: None,
            version: Some("7.2.22".into()),
        }
    }

    /// Table-driven: one fabricated fault per row, with the exact problem expected.
    #[test]
    fn verdicts() {
        type Mutate = fn(&mut FileFacts, &mut Requirements);
        let cases: Vec<(&str, Mutate, Vec<Problem>)> = vec![
            ("good", |_, _| {}, vec![]),
            (
                "missing",
                |f, _| f.kind = FileKind::Missing,
                vec![Problem::Missing],
            ),
            (
                "dir",
                |f, _| f.kind = FileKind::Directory,
                vec![Problem::NotRegular],
            ),
            (
                "world-writable",
                |f, _| f.mode = 0o757,
                vec![Problem::Writable { mode: 0o757 }],
            ),
            (
                "group-writable",
                |f, _| f.mode = 0o775,
                vec![Problem::Writable { mode: 0o775 }],
            ),
            (
                "not exec",
                |f, _| f.mode = 0o644,
                vec![Problem::NotExecutable { mode: 0o644 }],
            ),
            (
                "user-owned",
                |f, _| f.uid = 1000,
                vec![Problem::NotRootOwned { uid: 1000 }],
            ),
            (
                "overflow uid in userns",
                |f, r| {
                    f.uid = 65534;
                    r.extra_owner = Some(65534)
                },
                vec![],
            ),
            (
                "dynamic with F",
                |f, _| f.elf.as_mut().unwrap().interp = Some("/lib64/ld-linux-x86-64.so.2".into()),
                vec![Problem::Dynamic {
                    interp: "/lib64/ld-linux-x86-64.so.2".into(),
                }],
            ),
            (
                "dynamic without F",
                |f, r| {
                    f.elf.as_mut().unwrap().interp = Some("/lib64/ld.so".into());
                    r.need_static = false
                },
                vec![],
            ),
            (
                "aarch64 binary on x86_64",
                |f, _| f.elf.as_mut().unwrap().machine = 183,
                vec![Problem::WrongHostArch {
                    machine: 183,
                    class: 64,
                }],
            ),
            (
                "script",
                |f, _| {
                    f.elf = None;
                    f.elf_error = Some("not an ELF file".into())
                },
                vec![Problem::NotElf {
                    reason: "not an ELF file".into(),
                }],
            ),
            (
                "noexec",
                |f, _| f.noexec_mount = true,
                vec![Problem::NoExecMount],
            ),
            (
                "unsafe dir",
                |f, _| f.unsafe_dirs = vec!["/home/u".into()],
                vec![Problem::UnsafeDirectory {
                    dir: "/home/u".into(),
                }],
            ),
        ];
        for (name, mutate, want) in cases {
            let (mut f, mut r) = (good(), req());
            mutate(&mut f, &mut r);
            assert_eq!(check(&f, &r), want, "{name}");
        }
    }

    #[test]
    fn security_subset_ignores_elf_questions() {
        let mut f = good();
        f.elf = None;
        f.elf_error = Some("not an ELF file".into());
        assert_eq!(
            security_problems(&f, None),
            vec![],
            "a root-owned script is acceptable"
        );
        f.mode = 0o777;
        assert_eq!(
            security_problems(&f, None),
            vec![Problem::Writable { mode: 0o777 }]
        );
        f.kind = FileKind::Missing;
        assert_eq!(security_problems(&f, None), vec![Problem::Missing]);
    }

    #[test]
    fn refusal_lists_what_was_searched() {
        let d = Discovery {
            arch: "aarch64".into(),
            searched: vec!["/a/qemu-aarch64-static".into(), "/a/qemu-aarch64".into()],
            candidates: vec![],
            chosen: None,
        };
        let msg = d.refusal();
        assert!(
            msg.contains("/a/qemu-aarch64-static, /a/qemu-aarch64"),
            "{msg}"
        );
        assert!(msg.contains("install qemu-user-static"), "{msg}");
    }

    #[test]
    fn facts_of_a_world_writable_file_in_tempdir() {
        let t = crate::arch::Table::builtin();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qemu-aarch64-static");
        fs::write(&p, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        let f = facts(&p, t.get("aarch64").unwrap());
        assert_eq!(f.kind, FileKind::Regular);
        let problems = check(&f, &req());
        assert!(
            problems.contains(&Problem::Writable { mode: 0o777 }),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| matches!(p, Problem::NotElf { .. })));
    }
}
