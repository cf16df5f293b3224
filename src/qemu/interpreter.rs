//! QEMU interpreter discovery and checks.
//!
//! `facts(path)` is the only I/O (lstat of every component on the way, readlink, stat,
//! statvfs, the ELF header, the version string embedded in the binary); `check` is pure and
//! decides, from those facts, whether a file may be registered as an interpreter by a root-run
//! tool: it must be a regular, executable ELF for the host CPU, owned by root and not writable
//! by group or others, reached through directories and symlinks that are all root's (a
//! world-writable directory only with the sticky bit), on a mount that allows exec, and with the
//! `F` flag statically linked (a dynamic one breaks inside chroots). The path registered is the
//! resolved one (`FileFacts::resolved`), never a symlink.
//!
//! Inside a user namespace an owner that is not mapped shows as the overflow uid; nothing in the
//! namespace can tell whose it is, so it counts as root's only when the caller vouches for it
//! (`Owners::trust_unmapped`), and is refused otherwise with that reason.
//!
//! We never execute a candidate to learn its version: QEMU embeds `qemu-<cpu> version X` as one
//! string literal, and we read it from the file.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::binfmt::arch::{Arch, Endian};
use crate::elf::{self, ElfFacts};

/// The default search path, in order: the directories of the table of distributions'
/// layouts (`layouts::LAYOUTS`, docs/distros.md).
pub fn default_search() -> Vec<PathBuf> {
    super::layouts::default_dirs()
}
/// Longest version line we keep.
const MAX_VERSION_LEN: usize = 200;

/// Most symlinks followed while resolving one path (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// One thing the path resolution went through: every directory from `/` down, every symlink
/// (before it was followed), and the file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathNode {
    pub path: PathBuf,
    pub kind: NodeKind,
    pub uid: u32,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Directory,
    Symlink,
    File,
}

/// What the file system says about one candidate path.
#[derive(Debug, Clone, Serialize)]
pub struct FileFacts {
    pub path: PathBuf,
    /// The path with every symlink resolved: what gets registered.
    pub resolved: PathBuf,
    pub kind: FileKind,
    pub uid: u32,
    pub mode: u32,
    /// Every directory and symlink the resolution went through, in order.
    #[serde(skip)]
    pub chain: Vec<PathNode>,
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
    /// Why the path could not be walked component by component (then it is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_error: Option<String>,
}

impl FileFacts {
    /// What a path where nothing exists shows.
    pub fn missing(path: &Path) -> FileFacts {
        FileFacts {
            path: path.to_owned(),
            resolved: path.to_owned(),
            kind: FileKind::Missing,
            uid: 0,
            mode: 0,
            chain: Vec::new(),
            resolve_error: None,
            noexec_mount: false,
            header: Vec::new(),
            elf: None,
            elf_error: None,
            version: None,
        }
    }
}

/// Resolves `path` the way the kernel will (every symlink followed, `..` after resolution),
/// recording every directory, symlink and the final file on the way with its owner and mode,
/// so `check` can refuse a path any non-root user could redirect.
pub fn resolve(path: &Path) -> Result<(PathBuf, Vec<PathNode>), String> {
    use std::collections::VecDeque;
    use std::path::Component;
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    let node = |p: &Path| -> Result<PathNode, String> {
        let m = fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let kind = if m.file_type().is_symlink() {
            NodeKind::Symlink
        } else if m.is_dir() {
            NodeKind::Directory
        } else {
            NodeKind::File
        };
        Ok(PathNode {
            path: p.to_owned(),
            kind,
            uid: m.uid(),
            mode: m.permissions().mode() & 0o7777,
        })
    };
    let mut chain = vec![node(Path::new("/"))?];
    let mut pending: VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let n = node(&next)?;
        let kind = n.kind;
        if !chain.contains(&n) {
            chain.push(n);
        }
        match kind {
            NodeKind::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(format!("more than {MAX_SYMLINKS} symlinks"));
                }
                let target =
                    fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push_front(n.to_owned()),
                        Component::ParentDir => pending.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            NodeKind::File if !pending.is_empty() => {
                return Err(format!("{} is not a directory", next.display()));
            }
            _ => cur = next,
        }
    }
    Ok((cur, chain))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Missing,
    Regular,
    Directory,
    Other,
}

/// Which owners count as root's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owners {
    /// Inside a user namespace: the overflow uid, which every owner not mapped into the
    /// namespace shows as (host root, and anyone else). `None` in the initial namespace.
    pub unmapped_uid: Option<u32>,
    /// The caller vouches that unmapped owners are the host's root (`--trust-unmapped-owner`).
    pub trust_unmapped: bool,
    /// The namespace also maps a real user to the overflow uid (a full-range map, as rootless
    /// container engines make): then that uid names two kinds of owner, and vouching cannot
    /// tell them apart, so it is refused even with `trust_unmapped`.
    pub overflow_is_mapped: bool,
}

/// Is `uid` (as seen inside the namespace) mapped by this `/proc/self/uid_map` text
/// (`inside outside count` per line)?
pub fn uid_is_mapped(uid_map: &str, uid: u32) -> bool {
    uid_map.lines().any(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        matches!(f[..], [inside, _, count] if (inside..inside + count).contains(&u64::from(uid)))
    })
}

/// The verdict on one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Root,
    Unmapped,
    Other,
}

impl Owners {
    fn judge(&self, uid: u32) -> Owner {
        match self.unmapped_uid {
            _ if uid == 0 => Owner::Root,
            Some(o) if uid == o && self.trust_unmapped && !self.overflow_is_mapped => Owner::Root,
            Some(o) if uid == o => Owner::Unmapped,
            _ => Owner::Other,
        }
    }
}

/// What the host needs of an interpreter.
#[derive(Debug, Clone)]
pub struct Requirements {
    pub host_class: u8,
    pub host_endian: Endian,
    pub host_machine: u16,
    /// Which owners count as root's.
    pub owners: Owners,
    /// With `F`, the interpreter must be static.
    pub need_static: bool,
    /// Also read each candidate's QEMU version (`FileFacts::version`), which only reports
    /// show: no check needs it.
    pub version: bool,
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
    #[error(
        "sits in {dir}, which non-root users can modify: use a path whose directories are all root's and not writable by others"
    )]
    UnsafeDirectory { dir: PathBuf },
    #[error(
        "is reached through the symlink {link}, owned by uid {uid}, not root: register the file it points to, on a path only root controls"
    )]
    UntrustedSymlink { link: PathBuf, uid: u32 },
    #[error(
        "has owners not mapped into this user namespace ({}; they show as uid {uid}), so nothing here can prove they are root's: run as real root, map host root into the namespace, or pass --trust-unmapped-owner to vouch that they are the host's root", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    UnmappedOwner { paths: Vec<PathBuf>, uid: u32 },
    #[error(
        "has owners that show as uid {uid} ({}), a uid this user namespace also maps to a real user, so whose they are cannot be told, not even by vouching: run as real root, or map host root into the namespace", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousOwner { paths: Vec<PathBuf>, uid: u32 },
    #[error("cannot be resolved: {reason}")]
    Unresolvable { reason: String },
    #[error("is on a noexec mount, so the kernel cannot run it")]
    NoExecMount,
    #[error("is not an ELF executable ({reason})")]
    NotElf { reason: String },
    #[error("is built for another CPU (ELF machine {machine}, class {class}), not this host")]
    WrongHostArch { machine: u16, class: u8 },
    #[error(
        "is dynamically linked (needs {interp}), which breaks inside chroots and containers with the F flag: use a static build (docs/distros.md says which package has one)"
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
    /// What to install on this system (`layouts::install_hint`), for the refusal.
    #[serde(skip)]
    pub hint: String,
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
                "no interpreter found (looked for {}): {}",
                names.join(", "),
                self.hint
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
        let dynamic = self.candidates.iter().any(|c| {
            c.problems
                .iter()
                .any(|p| matches!(p, Problem::Dynamic { .. }))
        });
        if dynamic {
            format!(
                "no usable interpreter: {}; {}",
                parts.join(" | "),
                self.hint
            )
        } else {
            format!("no usable interpreter: {}", parts.join(" | "))
        }
    }
}

/// Where the facts of candidate interpreters come from: the file system (`Disk`, through
/// `facts_of`), or, in unit tests, fabricated ones, as `RecordingBinfmt` stands in for the
/// kernel (so the operations' tests need neither QEMU nor root).
pub trait FactSource: Send + Sync {
    /// The facts of `path`; the QEMU version only when `qemu_cpu` names the file's CPU.
    fn facts_of(&self, path: &Path, qemu_cpu: Option<&str>) -> FileFacts;

    /// True when `dir` holds no file at all (it is not there, or not a directory): none of
    /// its names is looked at. The default looks at every name.
    fn holds_nothing(&self, _dir: &Path) -> bool {
        false
    }

    /// The text of the system's os-release (`/etc/os-release`, else `/usr/lib/os-release`),
    /// which decides what a refusal tells the user to install.
    fn os_release(&self) -> Option<String> {
        // Through `input`: a regular file only, opened without blocking, bounded.
        ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| crate::input::read_text(Path::new(p), crate::input::MAX_TEXT).ok())
    }
}

/// The file system: what `facts_of` reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl FactSource for Disk {
    fn facts_of(&self, path: &Path, qemu_cpu: Option<&str>) -> FileFacts {
        facts_of(path, qemu_cpu)
    }

    /// Whatever `facts_of` would find missing in it: a name under it has no metadata either.
    fn holds_nothing(&self, dir: &Path) -> bool {
        !fs::metadata(dir).is_ok_and(|m| m.is_dir())
    }
}

/// Search directories, with those that hold nothing (`FactSource::holds_nothing`) found once
/// for many arches: `install all` asks 35 arches for some seven names each, most of them in
/// directories most systems do not have.
pub struct SearchDirs<'d> {
    dirs: &'d [PathBuf],
    empty: Vec<bool>,
    /// How files are named in each (`layouts::kinds_in`).
    kinds: Vec<Vec<super::layouts::FileName>>,
}

impl<'d> SearchDirs<'d> {
    pub fn look(source: &dyn FactSource, dirs: &'d [PathBuf]) -> SearchDirs<'d> {
        SearchDirs {
            dirs,
            empty: dirs.iter().map(|d| source.holds_nothing(d)).collect(),
            kinds: dirs.iter().map(|d| super::layouts::kinds_in(d)).collect(),
        }
    }
}

/// Searches `dirs` (in order; within a directory the names `layouts::names_in` gives: the
/// table's for the directories it knows, `qemu-<cpu>-static` then `qemu-<cpu>` elsewhere) and
/// checks every candidate that exists.
pub fn discover(arch: &Arch, dirs: &[PathBuf], req: &Requirements) -> Discovery {
    discover_with(&Disk, arch, dirs, req)
}

/// `discover`, with the facts from `source`.
pub fn discover_with(
    source: &dyn FactSource,
    arch: &Arch,
    dirs: &[PathBuf],
    req: &Requirements,
) -> Discovery {
    discover_in(source, arch, &SearchDirs::look(source, dirs), req)
}

/// `discover_with`, in directories already looked at.
pub fn discover_in(
    source: &dyn FactSource,
    arch: &Arch,
    dirs: &SearchDirs,
    req: &Requirements,
) -> Discovery {
    let mut searched = Vec::new();
    let mut candidates = Vec::new();
    for ((dir, &empty), kinds) in dirs.dirs.iter().zip(&dirs.empty).zip(&dirs.kinds) {
        for name in super::layouts::names_of(kinds, arch) {
            let path = dir.join(name);
            searched.push(path.clone());
            if empty {
                continue;
            }
            let facts = source.facts_of(&path, req.version.then_some(arch.qemu.as_str()));
            if facts.kind != FileKind::Missing {
                let problems = check(&facts, req);
                candidates.push(Candidate { facts, problems });
            }
        }
    }
    let chosen = candidates.iter().position(Candidate::ok);
    let hint = if chosen.is_some() {
        String::new()
    } else {
        let os = source
            .os_release()
            .map(|t| super::layouts::OsRelease::parse(&t));
        super::layouts::install_hint(os.as_ref(), arch)
    };
    Discovery {
        arch: arch.name.clone(),
        searched,
        candidates,
        chosen,
        hint,
    }
}

/// Reads the facts of one path, an interpreter for `arch`. Never fails: what cannot be read
/// shows up as a problem later.
pub fn facts(path: &Path, arch: &Arch) -> FileFacts {
    facts_of(path, Some(&arch.qemu))
}

/// Reads the facts of one path; the QEMU version only when the file is `qemu-<qemu_cpu>`
/// (an imported entry's interpreter may be anything).
pub fn facts_of(path: &Path, qemu_cpu: Option<&str>) -> FileFacts {
    let mut f = FileFacts::missing(path);
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
    match resolve(path) {
        Ok((resolved, chain)) => {
            f.resolved = resolved;
            f.chain = chain;
        }
        Err(e) => f.resolve_error = Some(e),
    }
    f.noexec_mount = rustix::fs::statvfs(path)
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC));
    // One open, and the first page read once: the ELF headers, the notes and the section
    // header's place are in it, and its start is what binfmt_misc matches on.
    let opened = fs::File::open(path).and_then(|file| {
        let head = elf::read_head(&file)?;
        Ok((file, head))
    });
    let inspected = opened
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|(file, head)| {
            // The bytes binfmt_misc matches on, kept for the native-capture guard.
            f.header =
                head[..head.len().min(crate::binfmt::registration::BINPRM_BUF_SIZE)].to_vec();
            elf::inspect_head(file, head).map_err(|e| e.to_string())
        });
    match inspected {
        Ok(e) => f.elf = Some(e),
        Err(e) => f.elf_error = Some(e),
    }
    if let (Some(_), Some(cpu), Ok((file, head))) = (&f.elf, qemu_cpu, &opened) {
        f.version = version_in(file, head, cpu);
    }
    f
}

/// Finds `qemu-<cpu> version X (...)` in the binary, as QEMU's `--version` would print it.
/// The string is a literal in `.rodata`, so we search that section (located through the
/// section headers; the whole file when there are none) in chunks and stop at the first hit:
/// about a hundred KiB read instead of the whole 10+ MiB binary (Debian's QEMU 7.2 has it
/// 78–127 KiB into `.rodata`). 64 KiB chunks: the buffer stays below malloc's mmap threshold,
/// so the 33 checks of `install all` reuse one heap block instead of faulting in fresh pages.
/// `head`: the file's first bytes (`elf::read_head`), not read again.
fn version_in(file: &fs::File, head: &[u8], qemu_cpu: &str) -> Option<String> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 64 * 1024;
    // The whole file only where there are no section headers: its size is asked only then.
    let (start, end) = match elf::section_range_head(file, head, ".rodata") {
        Some(r) => r,
        None => (0, file.metadata().ok()?.len()),
    };
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
/// it exists, is a regular executable file, owned by root, writable by nobody else, reached
/// only through directories and symlinks root controls, on a mount that allows exec.
/// Whether it is an ELF for this CPU, or static, is not asked here.
pub fn security_problems(f: &FileFacts, owners: Owners) -> Vec<Problem> {
    let mut p = Vec::new();
    match f.kind {
        FileKind::Missing => return vec![Problem::Missing],
        FileKind::Regular => {}
        FileKind::Directory | FileKind::Other => return vec![Problem::NotRegular],
    }
    let mut unmapped = Vec::new();
    match owners.judge(f.uid) {
        Owner::Root => {}
        Owner::Unmapped => unmapped.push(f.resolved.clone()),
        Owner::Other => p.push(Problem::NotRootOwned { uid: f.uid }),
    }
    if f.mode & 0o022 != 0 {
        p.push(Problem::Writable { mode: f.mode });
    }
    if f.mode & 0o111 == 0 {
        p.push(Problem::NotExecutable { mode: f.mode });
    }
    if let Some(reason) = &f.resolve_error {
        p.push(Problem::Unresolvable {
            reason: reason.clone(),
        });
    }
    // Every directory and symlink on the way: root's, and a directory writable by others only
    // with the sticky bit (then others cannot rename or remove what root put there, and the
    // next component is checked in turn).
    for n in &f.chain {
        let owner = owners.judge(n.uid);
        if owner == Owner::Unmapped && !unmapped.contains(&n.path) {
            unmapped.push(n.path.clone());
        }
        match n.kind {
            NodeKind::Directory => {
                let sticky = n.mode & 0o1000 != 0;
                if owner == Owner::Other || (n.mode & 0o022 != 0 && !sticky) {
                    p.push(Problem::UnsafeDirectory {
                        dir: n.path.clone(),
                    });
                }
            }
            NodeKind::Symlink if owner == Owner::Other => p.push(Problem::UntrustedSymlink {
                link: n.path.clone(),
                uid: n.uid,
            }),
            NodeKind::Symlink | NodeKind::File => {}
        }
    }
    if !unmapped.is_empty() {
        let (paths, uid) = (unmapped, owners.unmapped_uid.unwrap_or(0));
        p.push(if owners.overflow_is_mapped {
            Problem::AmbiguousOwner { paths, uid }
        } else {
            Problem::UnmappedOwner { paths, uid }
        });
    }
    if f.noexec_mount {
        p.push(Problem::NoExecMount);
    }
    p
}

/// The pure verdict on one candidate: `security_problems`, then an ELF executable for this
/// host (static when `req.need_static`).
pub fn check(f: &FileFacts, req: &Requirements) -> Vec<Problem> {
    let mut p = security_problems(f, req.owners);
    if f.kind != FileKind::Regular {
        return p;
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
            owners: Owners::default(),
            need_static: true,
            version: true,
        }
    }

    fn node(path: &str, kind: NodeKind, uid: u32, mode: u32) -> PathNode {
        PathNode {
            path: path.into(),
            kind,
            uid,
            mode,
        }
    }

    fn good() -> FileFacts {
        FileFacts {
            path: "/usr/bin/qemu-aarch64-static".into(),
            resolved: "/usr/bin/qemu-aarch64-static".into(),
            kind: FileKind::Regular,
            uid: 0,
            mode: 0o755,
            chain: vec![
                node("/", NodeKind::Directory, 0, 0o755),
                node("/usr", NodeKind::Directory, 0, 0o755),
                node("/usr/bin", NodeKind::Directory, 0, 0o755),
                node("/usr/bin/qemu-aarch64-static", NodeKind::File, 0, 0o755),
            ],
            resolve_error: None,
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
                "unmapped owner in a user namespace: not provably root's",
                |f, r| {
                    f.uid = 65534;
                    f.chain[3].uid = 65534;
                    r.owners.unmapped_uid = Some(65534)
                },
                vec![Problem::UnmappedOwner {
                    paths: vec!["/usr/bin/qemu-aarch64-static".into()],
                    uid: 65534,
                }],
            ),
            (
                "unmapped directories in a user namespace are named too",
                |f, r| {
                    for n in &mut f.chain[..2] {
                        n.uid = 65534;
                    }
                    r.owners.unmapped_uid = Some(65534)
                },
                vec![Problem::UnmappedOwner {
                    paths: vec!["/".into(), "/usr".into()],
                    uid: 65534,
                }],
            ),
            (
                "unmapped owners vouched for with --trust-unmapped-owner",
                |f, r| {
                    f.uid = 65534;
                    for n in &mut f.chain {
                        n.uid = 65534;
                    }
                    r.owners = Owners {
                        unmapped_uid: Some(65534),
                        trust_unmapped: true,
                        overflow_is_mapped: false,
                    }
                },
                vec![],
            ),
            (
                "vouching does not help when the namespace maps a real user to the overflow uid",
                |f, r| {
                    f.uid = 65534;
                    f.chain[3].uid = 65534;
                    r.owners = Owners {
                        unmapped_uid: Some(65534),
                        trust_unmapped: true,
                        overflow_is_mapped: true,
                    }
                },
                vec![Problem::AmbiguousOwner {
                    paths: vec!["/usr/bin/qemu-aarch64-static".into()],
                    uid: 65534,
                }],
            ),
            (
                "uid 65534 outside a user namespace is just another user",
                |f, _| f.uid = 65534,
                vec![Problem::NotRootOwned { uid: 65534 }],
            ),
            (
                "symlink owned by a user on the way",
                |f, _| {
                    f.path = "/usr/local/bin/qemu".into();
                    f.chain.insert(
                        3,
                        node("/usr/local/bin/qemu", NodeKind::Symlink, 1000, 0o777),
                    )
                },
                vec![Problem::UntrustedSymlink {
                    link: "/usr/local/bin/qemu".into(),
                    uid: 1000,
                }],
            ),
            (
                "root's symlink is fine",
                |f, _| {
                    f.chain
                        .insert(3, node("/usr/local/bin/qemu", NodeKind::Symlink, 0, 0o777))
                },
                vec![],
            ),
            (
                "world-writable sticky directory owned by root is fine",
                |f, _| f.chain[1].mode = 0o1777,
                vec![],
            ),
            (
                "world-writable directory without sticky",
                |f, _| f.chain[2].mode = 0o777,
                vec![Problem::UnsafeDirectory {
                    dir: "/usr/bin".into(),
                }],
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
                |f, _| f.chain[2] = node("/home/u", NodeKind::Directory, 1000, 0o755),
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
    fn uid_map_lookup() {
        let rootless = "         0      65534          1\n";
        assert!(uid_is_mapped(rootless, 0));
        assert!(!uid_is_mapped(rootless, 65534));
        let podman = "         0       1000          1\n         1     100000      65536\n";
        assert!(uid_is_mapped(podman, 65534));
        assert!(!uid_is_mapped(podman, 65537));
        assert!(!uid_is_mapped("", 0));
    }

    #[test]
    fn security_subset_ignores_elf_questions() {
        let mut f = good();
        f.elf = None;
        f.elf_error = Some("not an ELF file".into());
        let owners = Owners::default();
        assert_eq!(
            security_problems(&f, owners),
            vec![],
            "a root-owned script is acceptable"
        );
        f.mode = 0o777;
        assert_eq!(
            security_problems(&f, owners),
            vec![Problem::Writable { mode: 0o777 }]
        );
        f.kind = FileKind::Missing;
        assert_eq!(security_problems(&f, owners), vec![Problem::Missing]);
    }

    #[test]
    fn refusal_lists_what_was_searched() {
        let d = Discovery {
            arch: "aarch64".into(),
            searched: vec!["/a/qemu-aarch64-static".into(), "/a/qemu-aarch64".into()],
            candidates: vec![],
            chosen: None,
            hint: "install qemu-user (…)".into(),
        };
        let msg = d.refusal();
        assert!(
            msg.contains("/a/qemu-aarch64-static, /a/qemu-aarch64"),
            "{msg}"
        );
        assert!(msg.ends_with(": install qemu-user (…)"), "{msg}");
    }

    /// A search directory that is not there (or is a file) is looked at once, not once per
    /// name; its names are still listed as searched, in order.
    #[test]
    fn a_directory_that_is_not_there_is_looked_at_once() {
        struct Counting(std::sync::Mutex<Vec<PathBuf>>);
        impl FactSource for Counting {
            fn facts_of(&self, path: &Path, qemu_cpu: Option<&str>) -> FileFacts {
                self.0.lock().unwrap().push(path.to_owned());
                Disk.facts_of(path, qemu_cpu)
            }
            fn holds_nothing(&self, dir: &Path) -> bool {
                Disk.holds_nothing(dir)
            }
        }
        let t = crate::binfmt::arch::Table::builtin();
        let dir = tempfile::tempdir().unwrap();
        let (gone, file) = (dir.path().join("gone"), dir.path().join("file"));
        fs::write(&file, b"x").unwrap();
        assert!(Disk.holds_nothing(&gone) && Disk.holds_nothing(&file));
        assert!(!Disk.holds_nothing(dir.path()));
        let dirs = [gone.clone(), file.clone(), dir.path().to_owned()];
        let c = Counting(std::sync::Mutex::default());
        let d = discover_with(&c, t.get("aarch64").unwrap(), &dirs, &req());
        let asked = c.0.lock().unwrap().clone();
        assert_eq!(
            asked,
            [
                dir.path().join("qemu-aarch64-static"),
                dir.path().join("qemu-aarch64")
            ]
        );
        assert_eq!(d.searched.len(), 6, "{:?}", d.searched);
        assert!(d.searched[0].starts_with(&gone) && d.searched[2].starts_with(&file));
        assert!(d.candidates.is_empty());
    }

    #[test]
    fn facts_of_a_world_writable_file_in_tempdir() {
        let t = crate::binfmt::arch::Table::builtin();
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

    /// On the real file system: a symlink owned by an ordinary user, pointing at a root-owned
    /// interpreter, is refused (the user could re-point it), and the resolved path is what
    /// would be registered.
    #[test]
    fn symlink_owned_by_a_user_is_refused_and_resolved() {
        if !crate::test_gate::root("symlink_owned_by_a_user_is_refused_and_resolved") {
            return;
        }
        use rustix::fs::{AtFlags, CWD, Gid, Uid, chownat};
        let t = crate::binfmt::arch::Table::builtin();
        let target = Path::new("/usr/bin/qemu-aarch64-static");
        assert!(
            target.exists(),
            "qemu-user-static is installed by scripts/deps.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("qemu-aarch64");
        std::os::unix::fs::symlink(target, &link).unwrap();
        // Needs root (the tests run as root): hand the symlink to nobody.
        chownat(
            CWD,
            &link,
            Some(Uid::from_raw(65534)),
            Some(Gid::from_raw(65534)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let f = facts(&link, t.get("aarch64").unwrap());
        assert_eq!(f.resolved, target);
        assert!(
            f.chain
                .iter()
                .any(|n| n.path == link && n.kind == NodeKind::Symlink && n.uid == 65534)
        );
        let problems = security_problems(&f, Owners::default());
        assert_eq!(
            problems,
            vec![Problem::UntrustedSymlink {
                link: link.clone(),
                uid: 65534
            }]
        );
        // A relative symlink through `..` resolves the same way.
        let rel = dir.path().join("rel");
        std::os::unix::fs::symlink(
            "../../../../../../../../usr/bin/./qemu-aarch64-static",
            &rel,
        )
        .unwrap();
        let f = facts(&rel, t.get("aarch64").unwrap());
        assert_eq!(f.resolved, target);
        assert_eq!(security_problems(&f, Owners::default()), vec![]);
    }
}
