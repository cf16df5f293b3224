//! Hybrid builds (`run --accelerate`, `build --strategy hybrid`): everything runs in the
//! emulated chroot as usual, except the toolchain, which is the host's native cross compiler
//! of the same version, pointed at the rootfs as its sysroot.
//!
//! How the injection works (applied by the sandbox's stage 2, in its private mount namespace,
//! after the rootfs's mounts and before the chroot; see docs/hybrid.md):
//!
//! - Everything lives under `/run/binfmtctl` inside the chroot, in the sandbox's own tmpfs
//!   `/run`: nothing is added to the rootfs, no directory of it is overlaid, and all of it goes
//!   with the mount namespace (also after kill -9).
//! - The host's library directories (`lib0`, `lib1`: the loader's `/lib/x86_64-linux-gnu`,
//!   `/usr/lib/x86_64-linux-gnu`) and each host file the toolchain needs (the drivers, cc1 and
//!   the other programs of `/usr/lib/gcc-cross/<triple>/<N>`, the binutils, the LTO plugin),
//!   by its real path, at `host/bin/*` are bound there read-only.
//! - The rootfs has no x86_64 loader at `/lib64`, so a native program cannot be exec'd
//!   directly in the chroot. Each native program is reached through a *launcher*: a static
//!   x86_64 program of a few dozen instructions (`probes/launcher-x86_64.S`) that execs the
//!   host's loader with `--library-path` and the real program. The launchers make up a tree
//!   shaped like the cross toolchain's install (`usr/bin`, `usr/lib/gcc-cross/<triple>/<N>`,
//!   `usr/<triple>/bin`), so the driver, started with `--argv0` in that tree, finds cc1, as,
//!   collect2, ld and lto-wrapper as launchers too.
//! - The rootfs's own compiler and binutils files (`/usr/bin/aarch64-linux-gnu-gcc-12` and the
//!   like, which `cc`, `gcc`, `as`, ... lead to) are covered by binds of the launchers.
//! - The driver runs with `--sysroot=/`: headers and libraries are the rootfs's. The cross
//!   toolchain's own copy of the target libc (`/usr/<triple>/include`, `/usr/<triple>/lib`)
//!   is not in the tree, and the compiler's support files (crt*.o, libgcc, its own headers
//!   such as stddef.h) and libstdc++'s headers are the rootfs's, reached by symlinks from the
//!   tree. `-isystem /usr/local/include` puts back what a cross gcc leaves out of its list.
//!
//! Planning reads files only (the rootfs's and the host's dpkg status, ELF headers); it runs
//! nothing.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::binfmt::arch::{Arch, Endian};
use crate::confined::Tree;

mod clang;
mod gcc;
mod rust;
mod tools;

/// Where the injection lives inside the chroot (in the sandbox's own tmpfs /run).
pub const DIR: &str = "/run/binfmtctl";
/// The launcher's machine code (`probes/launcher-x86_64.S`, assembled with GNU as and
/// `objcopy -O binary`); its table follows it.
#[rustfmt::skip]
const LAUNCHER_X86_64: &[u8] = &[
    0x48,0x8b,0x0c,0x24,0x48,0x8d,0x74,0x24,0x08,0x48,0x8d,0x54,0xce,0x08,0x4c,0x8d,
    0x0d,0x6b,0x00,0x00,0x00,0x4d,0x8b,0x01,0x49,0x8d,0x04,0x08,0x48,0xc1,0xe0,0x03,
    0x48,0x29,0xc4,0x48,0x83,0xe4,0xf0,0x48,0x89,0xe7,0x4d,0x31,0xd2,0x4d,0x39,0xc2,
    0x73,0x11,0x4b,0x8b,0x44,0xd1,0x08,0x4c,0x01,0xc8,0x4a,0x89,0x04,0xd7,0x49,0xff,
    0xc2,0xeb,0xea,0x4e,0x8d,0x5c,0xc7,0xf8,0x49,0xc7,0xc2,0x01,0x00,0x00,0x00,0x49,
    0x39,0xca,0x77,0x0d,0x4a,0x8b,0x04,0xd6,0x4b,0x89,0x04,0xd3,0x49,0xff,0xc2,0xeb,
    0xee,0x48,0x89,0xfe,0x48,0x8b,0x3f,0xb8,0x3b,0x00,0x00,0x00,0x0f,0x05,0xbf,0x7f,
    0x00,0x00,0x00,0xb8,0x3c,0x00,0x00,0x00,0x0f,0x05,0x66,0x0f,0x1f,0x44,0x00,0x00,
];
const EM_X86_64: u16 = 62;
/// binutils programs the rootfs's names may lead to (`as` → `aarch64-linux-gnu-as`).
/// One step of the injection, applied in order inside the sandbox. Paths are absolute inside
/// the chroot and under `DIR`, except a cover's target (a file of the rootfs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Item {
    Dir(String),
    /// A launcher program written into the tmpfs (mode 0755).
    Launcher {
        path: String,
        bytes: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A host file or directory bound read-only at `path`.
    Bind {
        source: PathBuf,
        path: String,
        dir: bool,
    },
    /// The rootfs's file `target` covered (read-only bind) by the launcher at `launcher`.
    Cover {
        target: String,
        launcher: String,
    },
    /// The rootfs's name `target` itself (its directories resolved inside the rootfs, the name
    /// not followed: a symlink is covered as a symlink) covered by the launcher at `launcher`.
    /// For programs that behave by the name they were started as (clang, clang++ and
    /// clang-cpp are one file): each name gets its own launcher.
    CoverName {
        target: String,
        launcher: String,
    },
}

/// What `--accelerate` injects and the line that says so.
#[derive(Debug, Clone)]
pub struct Injection {
    pub items: Vec<Item>,
    /// e.g. `native aarch64-linux-gnu-gcc-12 12.2.0-14cross1 ...`
    pub summary: String,
    /// One line more for each other part injected (build tools, clang, Rust).
    pub notes: Vec<String>,
    /// Rootfs programs left emulated because the host lacks their native counterpart, with
    /// the package that provides it.
    pub left_emulated: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    #[error(
        "hybrid is x86_64-only for now: hybrid builds (--strategy hybrid, --accelerate) run the host's native cross compiler inside the chroot through an x86_64 launcher, and this host is {0}; build with --strategy emulate or cross instead"
    )]
    Host(String),
    #[error(
        "{0} has no GNU triple that Debian's cross compilers use: --accelerate cannot serve it"
    )]
    NoTriple(String),
    #[error(
        "the rootfs has no gcc (/usr/bin/gcc does not lead to {triple}-gcc-N, and /usr/lib/gcc/{triple} has no version with cc1): nothing for --accelerate to stand in for; install gcc in the rootfs"
    )]
    NoRootfsGcc { triple: String },
    #[error(
        "no native cross compiler for {triple} on this host (looked for {triple}-gcc-{major} and {triple}-gcc on PATH, and /usr/lib/gcc-cross/{triple}/{major}): apt-get install {package} (the rootfs's gcc is {major})"
    )]
    NoToolchain {
        triple: String,
        major: String,
        package: String,
    },
    #[error(
        "version mismatch: the host's cross {what} is {host}, the rootfs's is {rootfs}; the objects would not be the ones the rootfs's own {what} makes: apt-get install {package} on the host, or pass --accelerate=force"
    )]
    Mismatch {
        what: &'static str,
        host: String,
        rootfs: String,
        package: String,
    },
    #[error(
        "cannot tell the version of {what} (no {package} in {status}): pass --accelerate=force to use the host's cross toolchain anyway"
    )]
    VersionUnknown {
        what: String,
        package: String,
        status: String,
    },
    #[error(
        "refusing to run {path} as root for --accelerate: it, or a directory or symlink on the way to it, can be changed by someone other than root (owned by another user, or writable by group or others without the sticky bit); give it and its directories root ownership and mode 755, or reinstall the cross toolchain from the distribution's packages"
    )]
    UnsafeProgram { path: PathBuf },
    /// The rootfs has Debian's Rust and the host lacks a package of the same version.
    #[error(
        "no {what} on the host to stand in for the rootfs's Rust: apt-get install {packages} on the host (Debian's packages of the rootfs's versions; a rustup toolchain is never used), or pass --accelerate=force to leave Rust emulated"
    )]
    RustMissing { what: String, packages: String },
    /// The host's Debian Rust is not the rootfs's version.
    #[error(
        "version mismatch: the host's {what} is {host}, the rootfs's is {rootfs}; rustc reads only the std of its own exact version: apt-get install {packages} on the host, or pass --accelerate=force to leave Rust emulated"
    )]
    RustMismatch {
        what: String,
        host: String,
        rootfs: String,
        packages: String,
    },
    /// The rootfs's Rust is not what --accelerate can serve.
    #[error("the rootfs's Rust: {reason}; fix the rootfs, or run without --accelerate")]
    RustRootfs { reason: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The rootfs's `/var/lib/dpkg/status` is not a regular file of sane size.
    #[error(
        "{path}: {reason}: the rootfs's dpkg status must be a regular file of at most {MAX_DPKG_STATUS} bytes (64 MiB); check the rootfs, or run without --accelerate"
    )]
    DpkgStatus { path: PathBuf, reason: String },
}

impl crate::error::Classify for AccelError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            AccelError::NoRootfsGcc { .. }
            | AccelError::DpkgStatus { .. }
            | AccelError::RustRootfs { .. } => ErrorKind::BadInput,
            AccelError::Io { .. } => ErrorKind::Failed,
            _ => ErrorKind::Environment,
        }
    }
}

/// A launcher: a static x86_64 ELF that execs `argv` (the loader first) followed by its own
/// arguments after argv[0].
pub fn launcher(argv: &[String]) -> Vec<u8> {
    let n = argv.len();
    let mut table = Vec::new();
    table.extend_from_slice(&(n as u64).to_le_bytes());
    let mut strings = Vec::new();
    let strings_at = 8 + 8 * n;
    for a in argv {
        table.extend_from_slice(&((strings_at + strings.len()) as u64).to_le_bytes());
        strings.extend_from_slice(a.as_bytes());
        strings.push(0);
    }
    table.extend_from_slice(&strings);
    let mut code = LAUNCHER_X86_64.to_vec();
    code.extend_from_slice(&table);
    crate::elf::write::elf_exec(64, Endian::Little, EM_X86_64, 0, &code)
}

/// The largest dpkg status file read (the rootfs's and the host's): 64 MiB. That of a big
/// system with thousands of packages is a few MB.
pub const MAX_DPKG_STATUS: u64 = 64 << 20;

/// The rootfs's `/var/lib/dpkg/status` (`None` when it has none), read as every input is: it
/// is opened from the rootfs's directory with the rootfs as `/` (`openat2`
/// `RESOLVE_IN_ROOT`, so a symlink cannot lead out of it), with `O_NONBLOCK` (a FIFO cannot
/// hang the open or the read), must be a regular file by `fstat` of that descriptor, and is
/// read up to `MAX_DPKG_STATUS` (a 2 GiB sparse file made root's binfmtctl hold 2 GiB).
pub fn rootfs_dpkg_status(root: &Tree) -> Result<Option<String>, AccelError> {
    let rel = "var/lib/dpkg/status";
    let path = root.shown().join(rel);
    let bad = |reason: String| AccelError::DpkgStatus {
        path: path.clone(),
        reason,
    };
    // The type first, on an O_PATH descriptor: a FIFO or device is never opened for reading.
    let probe = match root.open_in_root(rel, rustix::fs::OFlags::PATH) {
        Ok(f) => fs::File::from(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("cannot open it: {e}"))),
    };
    let meta = probe
        .metadata()
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(bad(format!(
            "it is {}, not a regular file",
            crate::input::kind_of(meta.file_type())
        )));
    }
    let file = root
        .open_file_in_root(rel)
        .map_err(|e| bad(format!("cannot open it: {e}")))?;
    let bytes = crate::input::read_bounded(&path, file, MAX_DPKG_STATUS).map_err(|e| match e {
        crate::input::InputError::TooLarge { limit, .. } => {
            bad(format!("it is larger than {limit} bytes"))
        }
        other => bad(other.to_string()),
    })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The host's dpkg status (empty when missing or unreadable), bounded like the rootfs's.
fn host_dpkg_status(path: &Path) -> String {
    crate::input::open_regular(path)
        .and_then(|f| crate::input::read_bounded(path, f, MAX_DPKG_STATUS))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Installed packages of a dpkg status file: name → version.
pub fn dpkg_installed(status: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for stanza in status.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, None, false);
        for l in stanza.lines() {
            if let Some(v) = l.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = l.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = l.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.insert(n.to_owned(), v.to_owned());
        }
    }
    out
}

/// The upstream `major.minor` of a Debian version (`2.40-2` → `2.40`, `1:2.41.0-1` → `2.41`).
pub fn major_minor(version: &str) -> String {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let upstream = v.split(['-', '+', '~']).next().unwrap_or(v);
    upstream.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The host program `name` on `path_env` that may run as root (`host::find_safe_program`): an
/// unsafe one (say, planted in a world-writable directory on PATH) is skipped as if missing.
fn find_in(path_env: &OsStr, name: &str) -> Option<PathBuf> {
    crate::host::find_safe_program(Some(path_env), name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostElf {
    Program,
    Library,
}

/// Is `path` (symlinks followed) a native x86_64 program or shared library of the host?
fn host_elf(path: &Path) -> Option<HostElf> {
    use std::os::unix::fs::PermissionsExt;
    let f = fs::File::open(path).ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() {
        return None;
    }
    let e = crate::elf::inspect_file(&f).ok()?;
    if e.machine != EM_X86_64 {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    match e.e_type {
        3 if is_shared_object(name) || e.interp.is_none() => Some(HostElf::Library),
        2 | 3 if m.permissions().mode() & 0o111 != 0 => Some(HostElf::Program),
        _ => None,
    }
}

fn is_shared_object(name: &str) -> bool {
    name.ends_with(".so") || name.contains(".so.")
}

/// What `plan` needs to know.
pub struct Request<'a> {
    pub arch: &'a Arch,
    /// The rootfs directory (canonical).
    pub root: &'a Path,
    /// Use the host's toolchain even when its versions differ from the rootfs's.
    pub force: bool,
    /// Where to look for `<triple>-gcc` (the caller's PATH).
    pub path_env: &'a OsStr,
    /// The host's dpkg status file (versions of the cross packages).
    pub host_status: &'a Path,
}

/// The injection being built: its items, and how a host program is reached inside (its real
/// file bound once into `host/bin`, started by a launcher through the host's loader). Each
/// part (the GNU toolchain in `gcc`, ...) adds to it.
struct Builder {
    items: Vec<Item>,
    /// Host file (real path) → where it is bound inside.
    host_files: std::collections::BTreeMap<PathBuf, String>,
    /// Which owners a host program run as root may have (`host::trusted_uid`).
    trusted: Box<dyn Fn(u32) -> bool>,
    /// The host's loader inside the chroot, and its `--library-path`.
    loader_in: String,
    library_path: String,
}

impl Builder {
    /// The host's loader (the one `program` asks for) and library directories, bound at
    /// `lib0`, `lib1`, ...; the tree's top directories.
    fn new(program: &Path) -> Result<Builder, AccelError> {
        let interp = fs::File::open(program)
            .ok()
            .and_then(|f| crate::elf::inspect_file(&f).ok())
            .and_then(|e| e.interp)
            .unwrap_or_else(|| "/lib64/ld-linux-x86-64.so.2".into());
        let loader = fs::canonicalize(&interp).map_err(|source| AccelError::Io {
            path: interp.clone().into(),
            source,
        })?;
        let mut lib_dirs: Vec<PathBuf> = Vec::new();
        for d in [
            loader.parent().map(Path::to_path_buf),
            Some("/lib/x86_64-linux-gnu".into()),
            Some("/usr/lib/x86_64-linux-gnu".into()),
        ]
        .into_iter()
        .flatten()
        {
            if let Ok(c) = fs::canonicalize(&d)
                && c.is_dir()
                && !lib_dirs.contains(&c)
            {
                lib_dirs.push(c);
            }
        }
        let loader_in = format!(
            "{DIR}/lib0/{}",
            loader
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("ld.so")
        );
        let library_path = (0..lib_dirs.len())
            .map(|i| format!("{DIR}/lib{i}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut items = vec![
            Item::Dir(DIR.into()),
            Item::Dir(format!("{DIR}/host")),
            Item::Dir(format!("{DIR}/host/bin")),
            Item::Dir(format!("{DIR}/usr/bin")),
        ];
        for (i, d) in lib_dirs.iter().enumerate() {
            items.push(Item::Bind {
                source: d.clone(),
                path: format!("{DIR}/lib{i}"),
                dir: true,
            });
        }
        Ok(Builder {
            items,
            host_files: Default::default(),
            trusted: Box::new(crate::host::trusted_uid()),
            loader_in,
            library_path,
        })
    }

    /// A launcher's bytes: the host's loader runs `real` as `argv0`, `extra` first.
    fn via_loader(&self, argv0: &str, real: &str, extra: &[&str]) -> Vec<u8> {
        let mut v = vec![
            self.loader_in.clone(),
            "--library-path".to_owned(),
            self.library_path.clone(),
            "--argv0".to_owned(),
            argv0.to_owned(),
            real.to_owned(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        launcher(&v)
    }

    /// Where the host file `p` is inside: its real path (symlinks resolved on the host: the
    /// cross toolchain's are relative and would lead nowhere inside) bound once into
    /// `host/bin`. Every host program the injection runs (as root, in the chroot) must pass
    /// `host::program_is_safe`, else it is refused by name.
    fn host_file(&mut self, p: &Path, program: bool) -> Result<String, AccelError> {
        let real = fs::canonicalize(p).map_err(|source| AccelError::Io {
            path: p.to_owned(),
            source,
        })?;
        if program && !crate::host::program_is_safe(&real, &self.trusted) {
            return Err(AccelError::UnsafeProgram { path: real });
        }
        if let Some(inside) = self.host_files.get(&real) {
            return Ok(inside.clone());
        }
        let base = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let taken = |n: &str| {
            self.host_files
                .values()
                .any(|v| v.rsplit('/').next() == Some(n))
        };
        let mut name = base.clone();
        let mut i = 1;
        while taken(&name) {
            name = format!("{base}.{i}");
            i += 1;
        }
        let inside = format!("{DIR}/host/bin/{name}");
        self.items.push(Item::Bind {
            source: real.clone(),
            path: inside.clone(),
            dir: false,
        });
        self.host_files.insert(real, inside.clone());
        Ok(inside)
    }

    /// A launcher at `path` for the host program `program`.
    fn launch(&mut self, path: String, program: &Path, extra: &[&str]) -> Result<(), AccelError> {
        let real = self.host_file(program, true)?;
        self.items.push(Item::Launcher {
            bytes: self.via_loader(&path, &real, extra),
            path,
        });
        Ok(())
    }
}

/// Plans the injection for a rootfs, or says why the host's toolchain cannot stand in for
/// the rootfs's.
pub fn plan(req: &Request) -> Result<Injection, AccelError> {
    let host_arch = std::env::consts::ARCH;
    if host_arch != "x86_64" {
        return Err(AccelError::Host(host_arch.to_owned()));
    }
    let t = crate::emulation::cross::gnu_triple(req.arch)
        .ok_or_else(|| AccelError::NoTriple(req.arch.name.clone()))?
        .to_owned();
    // Everything of the rootfs is read through one descriptor of it, every name resolved
    // inside it (`confined::Tree`): its symlinks never lead a read to the host.
    let root = Tree::open(req.root).map_err(|source| AccelError::Io {
        path: req.root.to_owned(),
        source,
    })?;
    // The parts, each planned from files alone; the GNU toolchain first (it is required).
    let tc = gcc::match_toolchains(req, &root, t.clone())?;
    let mut b = Builder::new(&tc.host_driver)?;
    let mut inj = Injection {
        items: Vec::new(),
        summary: String::new(),
        notes: Vec::new(),
        left_emulated: Vec::new(),
    };
    inj.summary = b.gcc(req, &root, &tc, &mut inj.left_emulated)?;
    clang::plan(
        &mut b,
        req,
        &root,
        &t,
        &mut inj.notes,
        &mut inj.left_emulated,
    )?;
    let rootfs_pkgs = rootfs_dpkg_status(&root)?
        .map(|s| dpkg_installed(&s))
        .unwrap_or_default();
    let host_pkgs = dpkg_installed(&host_dpkg_status(req.host_status));
    inj.notes
        .push(tools::add(&mut b, req, &root, &rootfs_pkgs, &host_pkgs)?);
    inj.notes
        .extend(b.rust(req, &root, &rootfs_pkgs, &host_pkgs)?);
    inj.items = b.items;
    Ok(inj)
}

/// The covers of an injection: the rootfs's file → the launcher bound over it (tests).
#[cfg(test)]
pub(crate) fn covers_of(items: &[Item]) -> std::collections::BTreeMap<&str, &str> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Cover { target, launcher } => Some((target.as_str(), launcher.as_str())),
            _ => None,
        })
        .collect()
}

/// The symlinks of an injection: its path → the target (tests).
#[cfg(test)]
pub(crate) fn symlinks_of(items: &[Item]) -> std::collections::BTreeMap<&str, &str> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Symlink { path, target } => Some((path.as_str(), target.as_str())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_and_versions() {
        let s = "Package: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14+deb12u1\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: binutils-aarch64-linux-gnu\nStatus: install ok installed\nArchitecture: arm64\nVersion: 2.40-2\n";
        let p = dpkg_installed(s);
        assert_eq!(p["gcc-12"], "12.2.0-14+deb12u1");
        assert_eq!(p["binutils-aarch64-linux-gnu"], "2.40-2");
        assert!(!p.contains_key("gone"));
        assert_eq!(major_minor("2.40-2"), "2.40");
        assert_eq!(major_minor("1:2.41.0-1"), "2.41");
        assert_eq!(major_minor("12.2.0-14+deb12u1"), "12.2");
    }

    /// A cross gcc planted in a world-writable directory first on root's PATH is never taken
    /// for the injection: it is skipped as if missing, so the "no native cross compiler"
    /// refusal applies.
    #[test]
    fn accelerate_skips_a_cross_gcc_planted_in_a_world_writable_path_dir() {
        use std::os::unix::fs::PermissionsExt;
        if std::env::consts::ARCH != "x86_64" {
            return;
        }
        let t = crate::binfmt::arch::Table::builtin();
        let arch = t.get("aarch64").unwrap();
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("usr/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("aarch64-linux-gnu-gcc-12"), "").unwrap();
        std::os::unix::fs::symlink("aarch64-linux-gnu-gcc-12", bin.join("gcc")).unwrap();
        let planted = tempfile::tempdir().unwrap();
        for n in ["aarch64-linux-gnu-gcc-12", "aarch64-linux-gnu-gcc"] {
            let p = planted.path().join(n);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(planted.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            find_in(planted.path().as_os_str(), "aarch64-linux-gnu-gcc"),
            None
        );
        let status = root.path().join("status");
        fs::write(&status, "").unwrap();
        let err = plan(&Request {
            arch,
            root: root.path(),
            force: true,
            path_env: planted.path().as_os_str(),
            host_status: &status,
        })
        .err()
        .unwrap();
        assert!(
            matches!(&err, AccelError::NoToolchain { triple, major, package }
                if triple == "aarch64-linux-gnu" && major == "12" && package == "gcc-12-aarch64-linux-gnu"),
            "{err}"
        );
        // The same files in a safe directory are found.
        fs::set_permissions(planted.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_in(planted.path().as_os_str(), "aarch64-linux-gnu-gcc"),
            Some(planted.path().join("aarch64-linux-gnu-gcc"))
        );
    }

    /// The rootfs's dpkg status is read as every input: bounded (a 2 GiB sparse file was read
    /// whole), regular only (a FIFO is refused by `fstat`, the open does not wait for a
    /// writer), and inside the rootfs (a symlink to `/etc/...` resolves under the rootfs). A
    /// refusal names the file and is bad input.
    #[test]
    fn the_rootfs_dpkg_status_is_read_bounded_regular_and_in_the_rootfs() {
        if std::env::consts::ARCH != "x86_64" {
            return;
        }
        let t = crate::binfmt::arch::Table::builtin();
        let arch = t.get("aarch64").unwrap();
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("usr/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("aarch64-linux-gnu-gcc-12"), "").unwrap();
        std::os::unix::fs::symlink("aarch64-linux-gnu-gcc-12", bin.join("gcc")).unwrap();
        let dpkg = root.path().join("var/lib/dpkg");
        fs::create_dir_all(&dpkg).unwrap();
        let status = dpkg.join("status");
        let host_status = root.path().join("host-status");
        fs::write(&host_status, "").unwrap();
        let plan_err = || {
            plan(&Request {
                arch,
                root: root.path(),
                force: true,
                path_env: OsStr::new(""),
                host_status: &host_status,
            })
            .err()
            .unwrap()
        };
        // Sparse: one byte over the 64 MiB cap costs no disk.
        fs::File::create(&status)
            .unwrap()
            .set_len((64 << 20) + 1)
            .unwrap();
        let e = plan_err();
        assert_eq!(
            crate::error::Classify::kind(&e),
            crate::error::ErrorKind::BadInput
        );
        assert!(
            e.to_string().starts_with(&format!(
                "{}: it is larger than 67108864 bytes: the rootfs's dpkg status must be a regular file of at most 67108864 bytes (64 MiB)",
                status.display()
            )),
            "{e}"
        );
        fs::remove_file(&status).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &status,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let e = plan_err().to_string();
        assert!(e.contains("it is a FIFO, not a regular file"), "{e}");
    }

    /// A symlink at the rootfs's dpkg status leads inside the rootfs, never to the host's file
    /// of that name; a missing one is no error.
    #[test]
    fn a_dpkg_status_symlink_resolves_inside_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        let dpkg = root.path().join("var/lib/dpkg");
        fs::create_dir_all(&dpkg).unwrap();
        let status = dpkg.join("status");
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/status"),
            "Package: gcc-12\nStatus: install ok installed\nVersion: 12.2\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/../../../../etc/status", &status).unwrap();
        let tree = Tree::open(root.path()).unwrap();
        let got = rootfs_dpkg_status(&tree).unwrap().unwrap();
        assert!(got.starts_with("Package: gcc-12"), "{got}");
        fs::remove_file(&status).unwrap();
        assert_eq!(rootfs_dpkg_status(&tree).unwrap(), None);
    }

    /// A fabricated bookworm-like arm64 rootfs with gcc-12 and g++-12, planned against the
    /// host's real cross toolchain (skipped, saying so, where the host has none): every rootfs
    /// name is covered by a launcher of the host's program of the same name, the driver gets
    /// the rootfs as its sysroot, the compiler's target files are the rootfs's, and the host's
    /// copy of the target libc is never in the tree.
    #[test]
    fn plan_covers_the_rootfs_toolchain_with_the_hosts_cross_programs() {
        let t = "aarch64-linux-gnu";
        if !Path::new("/usr/lib/gcc-cross/aarch64-linux-gnu/12/cc1plus").is_file()
            || !Path::new("/usr/bin/aarch64-linux-gnu-as").is_file()
        {
            eprintln!("skipped: the host has no gcc-12/g++-12 cross toolchain for {t}");
            return;
        }
        let host_status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
        let host = dpkg_installed(&host_status);
        let (Some(gcc), Some(bu)) = (
            host.get("gcc-12-aarch64-linux-gnu"),
            host.get("binutils-aarch64-linux-gnu"),
        ) else {
            eprintln!("skipped: the host's dpkg status lacks the cross packages");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let file = |p: &str, body: &str| {
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        let link = |p: &str, target: &str| {
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        };
        for tool in [
            "gcc-12",
            "g++-12",
            "cpp-12",
            "gcc-ar-12",
            "as",
            "ld",
            "ld.bfd",
            "ar",
        ] {
            file(&format!("usr/bin/{t}-{tool}"), "arm64 program");
        }
        link("usr/bin/gcc", &format!("{t}-gcc-12"));
        link("usr/bin/gcc-12", &format!("{t}-gcc-12"));
        link("usr/bin/g++", &format!("{t}-g++-12"));
        link("usr/bin/cc", "/etc/alternatives/cc");
        link("etc/alternatives/cc", "/usr/bin/gcc");
        link("usr/bin/as", &format!("{t}-as"));
        link("usr/bin/ld", &format!("{t}-ld"));
        link("usr/bin/ar", &format!("{t}-ar"));
        for f in [
            "cc1",
            "cc1plus",
            "crtbegin.o",
            "libgcc.a",
            "include/stddef.h",
        ] {
            file(&format!("usr/lib/gcc/{t}/12/{f}"), "target file");
        }
        file("usr/include/c++/12/vector", "header");
        file(
            &format!("usr/include/{t}/c++/12/bits/c++config.h"),
            "header",
        );
        let pkg = |name: &str, v: &str| {
            format!("Package: {name}\nStatus: install ok installed\nVersion: {v}\n\n")
        };
        let gcc_v = gcc.trim_end_matches("cross1");
        file(
            "var/lib/dpkg/status",
            &(pkg("gcc-12", gcc_v) + &pkg(&format!("binutils-{t}"), bu)),
        );
        let table = crate::binfmt::arch::Table::builtin();
        let arm64 = table.resolve("arm64").unwrap();
        let inj = plan(&Request {
            arch: arm64,
            root: r,
            force: false,
            path_env: OsStr::new("/usr/bin"),
            host_status: Path::new("/var/lib/dpkg/status"),
        })
        .unwrap();
        let covers = covers_of(&inj.items);
        let want = |target: &str, launcher: &str| {
            assert_eq!(
                covers
                    .get(format!("/usr/bin/{t}-{target}").as_str())
                    .copied(),
                Some(format!("{DIR}/usr/bin/{t}-{launcher}").as_str()),
                "{covers:#?}"
            );
        };
        want("gcc-12", "gcc-12");
        want("g++-12", "g++-12");
        want("cpp-12", "cpp-12");
        want("gcc-ar-12", "gcc-ar-12");
        want("as", "as");
        want("ld", "ld");
        want("ar", "ar");
        assert!(inj.left_emulated.is_empty(), "{:?}", inj.left_emulated);
        let launcher_of = |path: &str| {
            inj.items.iter().find_map(|i| match i {
                Item::Launcher { path: p, bytes } if p == path => Some(bytes.clone()),
                _ => None,
            })
        };
        // The driver runs with the rootfs as its sysroot; binutils get no extra argument.
        let gcc_launcher = launcher_of(&format!("{DIR}/usr/bin/{t}-gcc-12")).unwrap();
        assert!(memchr::memmem::find(&gcc_launcher, b"--sysroot=/\0").is_some());
        let as_launcher = launcher_of(&format!("{DIR}/usr/bin/{t}-as")).unwrap();
        assert!(memchr::memmem::find(&as_launcher, b"--sysroot").is_none());
        // cc1 is a launcher of the host's; the target files are the rootfs's.
        let cross = format!("{DIR}/usr/lib/gcc-cross/{t}/12");
        assert!(launcher_of(&format!("{cross}/cc1")).is_some());
        let symlinks = symlinks_of(&inj.items);
        assert_eq!(
            symlinks
                .get(format!("{cross}/crtbegin.o").as_str())
                .copied(),
            Some(format!("/usr/lib/gcc/{t}/12/crtbegin.o").as_str())
        );
        assert_eq!(
            symlinks.get(format!("{cross}/include").as_str()).copied(),
            Some(format!("/usr/lib/gcc/{t}/12/include").as_str())
        );
        assert_eq!(
            symlinks
                .get(format!("{DIR}/usr/{t}/include/c++/12/vector").as_str())
                .copied(),
            Some("/usr/include/c++/12/vector")
        );
        // Never the host's copy of the target libc.
        for i in &inj.items {
            if let Item::Bind { source, .. } = i {
                assert!(!source.starts_with(format!("/usr/{t}/lib")), "{source:?}");
                assert!(
                    !source.starts_with(format!("/usr/{t}/include")),
                    "{source:?}"
                );
            }
        }
        assert!(
            inj.summary.contains(&format!("native {t}-gcc-12")),
            "{}",
            inj.summary
        );
    }

    #[test]
    fn launcher_is_a_static_x86_64_program_with_its_table() {
        let argv = ["/run/binfmtctl/lib0/ld.so".to_owned(), "--argv0".into()];
        let l = launcher(&argv);
        let f = crate::elf::inspect(&l).unwrap();
        assert_eq!(f.machine, EM_X86_64);
        assert!(f.is_static());
        let code = &l[120..];
        assert_eq!(&code[..LAUNCHER_X86_64.len()], LAUNCHER_X86_64);
        let table = &code[LAUNCHER_X86_64.len()..];
        assert_eq!(u64::from_le_bytes(table[..8].try_into().unwrap()), 2);
        let off = u64::from_le_bytes(table[8..16].try_into().unwrap()) as usize;
        assert!(table[off..].starts_with(b"/run/binfmtctl/lib0/ld.so\0--argv0\0"));
    }

    /// The launcher really runs: through the host's loader, with the table's arguments first
    /// and its own after them (argv[0] set by --argv0).
    #[test]
    fn launcher_execs_the_loader_with_its_table_then_its_arguments() {
        use std::os::unix::fs::PermissionsExt;
        if std::env::consts::ARCH != "x86_64" {
            return;
        }
        let loader = fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("show");
        fs::write(&script, "#!/bin/sh\necho \"$0|$*\"\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let l = launcher(&[
            loader.display().to_string(),
            "--argv0".into(),
            "named".into(),
            "/bin/sh".into(),
            script.display().to_string(),
            "first".into(),
        ]);
        let exe = dir.path().join("launcher");
        fs::write(&exe, l).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&exe)
            .args(["two words", "", "last"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}|first two words  last\n", script.display())
        );
        // No arguments of its own: only the table's.
        let out = std::process::Command::new(&exe).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}|first\n", script.display())
        );
        // A loader that is not there: exit 127.
        let bad = dir.path().join("bad");
        fs::write(&bad, launcher(&["/nonexistent/ld.so".into()])).unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o755)).unwrap();
        let st = std::process::Command::new(&bad).status().unwrap();
        assert_eq!(st.code(), Some(127));
    }
}
