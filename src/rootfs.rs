//! Foreign root file systems: what arch a rootfs is (from its own binaries, resolved inside it),
//! tarball rootfs unpacked once into a cache keyed by digest, user lookup in its /etc/passwd,
//! and the bootstrap command (`mmdebstrap`, or `debootstrap` when only that is installed).
//!
//! Reads files; `unpack_cached` writes into the cache directory only.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::arch::{Arch, Table};

/// Binaries that tell a rootfs's arch, in order of preference.
const PROBE_BINARIES: &[&str] = &[
    "bin/sh",
    "usr/bin/sh",
    "bin/busybox",
    "usr/bin/env",
    "bin/ls",
];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{path} is neither a directory nor a .tar, .tar.gz or .tar.zst file")]
    NotRootfs { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "cannot tell the architecture of {path}: none of /bin/sh, /usr/bin/sh, /bin/busybox, /usr/bin/env, /bin/ls is an ELF program of a known arch; pass --arch"
    )]
    UnknownArch { path: PathBuf },
    #[error("unpacking {path} failed: {source}")]
    Unpack { path: PathBuf, source: io::Error },
    #[error("cannot read /etc/passwd in the rootfs: {source}")]
    Passwd { source: io::Error },
    #[error("no user {user:?} in the rootfs's /etc/passwd: name one it has, or give uid[:gid]")]
    NoUser { user: String },
    #[error("{arch} has no Debian architecture name; Debian does not ship it")]
    NoDebianArch { arch: String },
}

impl crate::error::Classify for RootfsError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            RootfsError::Unpack { .. } => ErrorKind::Failed,
            _ => ErrorKind::BadInput,
        }
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens `rel` inside `root` with every symlink resolved as if `root` were `/`.
pub fn open_in_root(root: &Path, rel: &str) -> io::Result<File> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        dir.as_fd(),
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(File::from(fd))
}

/// The arch of a rootfs and the binary that told us.
pub fn detect_arch<'t>(table: &'t Table, root: &Path) -> Result<(&'t Arch, String), RootfsError> {
    for rel in PROBE_BINARIES {
        let Ok(f) = open_in_root(root, rel) else {
            continue;
        };
        let mut h = Vec::with_capacity(64);
        if f.take(64).read_to_end(&mut h).is_err() {
            continue;
        }
        if let Some(a) = table.arch_of_header(&h) {
            return Ok((a, format!("/{rel}")));
        }
    }
    Err(RootfsError::UnknownArch {
        path: root.to_owned(),
    })
}

/// A directory rootfs as is; a tarball unpacked (once) into `cache`.
pub fn resolve(path: &Path, cache: &Path) -> Result<PathBuf, RootfsError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        return fs::canonicalize(path).map_err(io_err(path));
    }
    if !meta.is_file() {
        return Err(RootfsError::NotRootfs {
            path: path.to_owned(),
        });
    }
    unpack_cached(path, cache)
}

/// Unpacks a tarball into `cache/<sha256>`; a completed unpack is reused.
pub fn unpack_cached(tarball: &Path, cache: &Path) -> Result<PathBuf, RootfsError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut f = File::open(tarball).map_err(io_err(tarball))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(tarball))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache.join(&digest);
    let done = cache.join(format!("{digest}.complete"));
    if done.exists() && dir.is_dir() {
        tracing::info!(dir = %dir.display(), "reusing unpacked rootfs");
        return Ok(dir);
    }
    // Refuse what is not a tar archive before creating anything.
    let reader = crate::scan::open_archive(tarball).map_err(|e| match e {
        crate::scan::ScanError::NotTree { .. } => RootfsError::NotRootfs {
            path: tarball.to_owned(),
        },
        other => RootfsError::Unpack {
            path: tarball.to_owned(),
            source: io::Error::other(other.to_string()),
        },
    })?;
    fs::create_dir_all(cache).map_err(io_err(cache))?;
    let tmp = cache.join(format!("{digest}.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let mut a = tar::Archive::new(reader);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(rustix::process::geteuid().is_root());
    a.set_overwrite(true);
    // tar::Archive::unpack refuses members that would escape `tmp` (.., absolute links).
    if let Err(source) = a.unpack(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(RootfsError::Unpack {
            path: tarball.to_owned(),
            source,
        });
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    File::create(&done).map_err(io_err(&done))?;
    Ok(dir)
}

/// The default cache: $BINFMTCTL_ROOTFS_CACHE, else /var/cache/binfmtctl/rootfs as root, else
/// $XDG_CACHE_HOME or ~/.cache.
pub fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("BINFMTCTL_ROOTFS_CACHE") {
        return PathBuf::from(dir);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/cache/binfmtctl/rootfs");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("binfmtctl/rootfs")
}

/// A user of the rootfs: by name from its /etc/passwd, or numeric `uid[:gid]`.
pub fn lookup_user(root: &Path, user: &str) -> Result<(u32, u32, String), RootfsError> {
    if let Some((u, g)) = user.split_once(':')
        && let (Ok(u), Ok(g)) = (u.parse(), g.parse())
    {
        return Ok((u, g, "/".into()));
    }
    if let Ok(u) = user.parse::<u32>() {
        return Ok((u, u, "/".into()));
    }
    let mut text = String::new();
    open_in_root(root, "etc/passwd")
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|source| RootfsError::Passwd { source })?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?, f[5].to_owned())))
        .ok_or_else(|| RootfsError::NoUser {
            user: user.to_owned(),
        })
}

/// Which bootstrap tool to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrapper {
    Mmdebstrap,
    Debootstrap,
}

/// The bootstrap command line. `in_userns`: running in an identity-mapped user namespace,
/// where device nodes cannot be created (the emulated chroot brings its own /dev anyway).
/// What to bootstrap.
pub struct BootstrapOptions<'a> {
    pub suite: &'a str,
    pub variant: &'a str,
    pub include: &'a [String],
    pub mirror: Option<&'a str>,
}

pub fn bootstrap_command(
    tool: Bootstrapper,
    arch: &Arch,
    opts: &BootstrapOptions,
    target: &Path,
    in_userns: bool,
) -> Result<Vec<String>, RootfsError> {
    let BootstrapOptions {
        suite,
        variant,
        include,
        mirror,
    } = *opts;
    let deb = arch
        .debian
        .first()
        .ok_or_else(|| RootfsError::NoDebianArch {
            arch: arch.name.clone(),
        })?;
    let target = target.to_string_lossy().into_owned();
    let mut v = match tool {
        Bootstrapper::Mmdebstrap => {
            let mut v = vec![
                "mmdebstrap".to_owned(),
                "--mode=root".into(),
                format!("--variant={variant}"),
                format!("--arch={deb}"),
            ];
            if in_userns {
                v.push("--skip=output/mknod".into());
            }
            if !include.is_empty() {
                v.push(format!("--include={}", include.join(",")));
            }
            v.push(suite.to_owned());
            v.push(target);
            v
        }
        Bootstrapper::Debootstrap => {
            let mut v = vec![
                "debootstrap".to_owned(),
                format!("--arch={deb}"),
                format!("--variant={variant}"),
            ];
            if !include.is_empty() {
                v.push(format!("--include={}", include.join(",")));
            }
            v.push(suite.to_owned());
            v.push(target);
            v
        }
    };
    if let Some(m) = mirror {
        v.push(m.to_owned());
    }
    Ok(v)
}

/// Finds the bootstrap tool on PATH: mmdebstrap first.
pub fn find_bootstrapper() -> Option<(Bootstrapper, PathBuf)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (tool, name) in [
        (Bootstrapper::Mmdebstrap, "mmdebstrap"),
        (Bootstrapper::Debootstrap, "debootstrap"),
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some((tool, p));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root() -> tempfile::TempDir {
        let t = Table::builtin();
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("usr/bin/dash"),
            crate::probe::build(t.get("riscv64").unwrap()).unwrap(),
        )
        .unwrap();
        // Absolute symlinks resolve inside the root, not on the host (where /usr/bin/dash is x86_64).
        std::os::unix::fs::symlink("/usr/bin", d.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/dash", d.path().join("usr/bin/sh")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1001::/home/builder:/bin/sh\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn arch_is_read_inside_the_root() {
        let d = fake_root();
        let (a, from) = detect_arch(Table::builtin(), d.path()).unwrap();
        assert_eq!((a.name.as_str(), from.as_str()), ("riscv64", "/bin/sh"));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            detect_arch(Table::builtin(), empty.path()),
            Err(RootfsError::UnknownArch { .. })
        ));
    }

    #[test]
    fn users() {
        let d = fake_root();
        assert_eq!(
            lookup_user(d.path(), "builder").unwrap(),
            (1000, 1001, "/home/builder".into())
        );
        assert_eq!(lookup_user(d.path(), "0").unwrap().0, 0);
        assert_eq!(lookup_user(d.path(), "5:6").unwrap(), (5, 6, "/".into()));
        assert!(
            lookup_user(d.path(), "nobody-here")
                .unwrap_err()
                .to_string()
                .contains("no user")
        );
    }

    #[test]
    fn tarball_is_unpacked_once() {
        let d = fake_root();
        let work = tempfile::tempdir().unwrap();
        let tarball = work.path().join("r.tar");
        {
            let mut b = tar::Builder::new(File::create(&tarball).unwrap());
            b.follow_symlinks(false);
            b.append_dir_all(".", d.path()).unwrap();
            b.finish().unwrap();
        }
        let cache = work.path().join("cache");
        let dir = resolve(&tarball, &cache).unwrap();
        assert_eq!(
            detect_arch(Table::builtin(), &dir).unwrap().0.name,
            "riscv64"
        );
        fs::write(dir.join("marker"), "x").unwrap();
        assert_eq!(resolve(&tarball, &cache).unwrap(), dir);
        assert!(dir.join("marker").exists(), "reused, not unpacked again");
        let junk = work.path().join("junk");
        fs::write(&junk, vec![1u8; 1024]).unwrap();
        assert!(resolve(&junk, &cache).is_err());
    }

    #[test]
    fn bootstrap_lines() {
        let t = Table::builtin();
        let v = bootstrap_command(
            Bootstrapper::Mmdebstrap,
            t.get("aarch64").unwrap(),
            &BootstrapOptions {
                suite: "bookworm",
                variant: "minbase",
                include: &["gcc".into()],
                mirror: None,
            },
            Path::new("/r"),
            true,
        )
        .unwrap();
        assert_eq!(
            v,
            [
                "mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                "--arch=arm64",
                "--skip=output/mknod",
                "--include=gcc",
                "bookworm",
                "/r"
            ]
        );
        assert!(
            bootstrap_command(
                Bootstrapper::Mmdebstrap,
                t.get("xtensa").unwrap(),
                &BootstrapOptions {
                    suite: "bookworm",
                    variant: "minbase",
                    include: &[],
                    mirror: None
                },
                Path::new("/r"),
                false
            )
            .is_err()
        );
    }
}
