//! Foreign root file systems: what arch a rootfs is (from its own binaries, resolved inside it),
//! tarball rootfs unpacked once into a cache keyed by digest, user lookup in its /etc/passwd,
//! and the bootstrap command (`mmdebstrap`, or `debootstrap` when only that is installed).
//!
//! Reads files; `unpack_cached` writes into the cache directory only, which it keeps owner-only
//! (0700) and whose entries it locks with flock(2). Unpacking as root preserves ownership;
//! setuid/setgid bits and device nodes are dropped unless asked for (`keep_privileges`).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::binfmt::arch::{Arch, Table};
use crate::confined::Tree;
use crate::input::hex;
use crate::progress::{Counting, Held, Progress, Unit};

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
    #[error(
        "the rootfs cache {path} {why}: remove it, or set BINFMTCTL_ROOTFS_CACHE to a directory of your own"
    )]
    UnsafeCache { path: PathBuf, why: String },
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

/// The most of a rootfs's /etc/passwd read to look a user up.
const PASSWD_LIMIT: u64 = 4 << 20;

/// The arch of a rootfs and the binary that told us.
pub fn detect_arch<'t>(table: &'t Table, root: &Path) -> Result<(&'t Arch, String), RootfsError> {
    let tree = Tree::open(root).map_err(io_err(root))?;
    for rel in PROBE_BINARIES {
        let Ok(f) = tree.open_file_in_root(rel) else {
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

/// How a tarball is unpacked into the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Keep setuid/setgid bits and create device nodes (root only). Off by default: a cache
    /// entry must not hand out privileges.
    pub keep_privileges: bool,
}

/// What unpacking left out (reported once, when a tarball is unpacked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Files whose setuid/setgid bits were cleared.
    pub setid: usize,
    /// Character and block devices not created.
    pub devices: usize,
}

/// A rootfs ready to use. For a tarball, holds a shared lock on its cache entry, so no other
/// binfmtctl removes the tree while this one runs in it: keep it alive for the whole run.
#[derive(Debug)]
pub struct Rootfs {
    pub dir: PathBuf,
    /// Set when this call unpacked the tarball.
    pub dropped: Option<Dropped>,
    _lease: Option<File>,
}

/// A directory rootfs as is; a tarball unpacked (once) into `cache`, telling `progress` how far
/// the unpacking is.
pub fn resolve(
    path: &Path,
    cache: &Path,
    opts: UnpackOptions,
    progress: &dyn Progress,
) -> Result<Rootfs, RootfsError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        return Ok(Rootfs {
            dir: fs::canonicalize(path).map_err(io_err(path))?,
            dropped: None,
            _lease: None,
        });
    }
    if !meta.is_file() {
        return Err(RootfsError::NotRootfs {
            path: path.to_owned(),
        });
    }
    unpack_cached(path, cache, opts, progress)
}

/// Hashes everything read through it (the tarball's raw bytes as they are unpacked).
struct Hashing {
    file: std::rc::Rc<File>,
    hasher: std::rc::Rc<std::cell::RefCell<sha2::Sha256>>,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = (&*self.file).read(buf)?;
        self.hasher.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks a tarball into `cache/<sha256>` (`<sha256>-privileged` with `keep_privileges`);
/// a completed unpack is reused. `progress`: the bytes hashed, then (when it is unpacked
/// here) the bytes of the tarball unpacked.
///
/// Layout and protocol, all in an owner-only cache directory: `<key>.lock` is flocked shared
/// by every run using `<key>` and exclusively while it is (re)built; `<key>.partial-<pid>` is
/// an unpack in progress, renamed to `<key>` when complete, after which `<key>.done` marks it
/// usable. Under the exclusive lock, a tree without its marker and every partial of that key
/// are leftovers of a run that died, and are removed; partials of other keys are removed when
/// their lock is free. The unpacked bytes are hashed again and must match the key (a tarball
/// changed while being read is refused).
pub fn unpack_cached(
    tarball: &Path,
    cache: &Path,
    opts: UnpackOptions,
    progress: &dyn Progress,
) -> Result<Rootfs, RootfsError> {
    use rustix::fs::FlockOperation;
    use sha2::{Digest, Sha256};
    use std::io::Seek;
    let mut f = File::open(tarball).map_err(io_err(tarball))?;
    let size = f.metadata().ok().map(|m| m.len());
    let name = tarball
        .file_name()
        .unwrap_or(tarball.as_os_str())
        .to_string_lossy();
    progress.begin(&format!("hashing {name}"), size, Unit::Bytes);
    let digest = sha256_of(&mut f, progress).map_err(io_err(tarball))?;
    progress.end();
    let key = if opts.keep_privileges {
        format!("{digest}-privileged")
    } else {
        digest.clone()
    };
    f.rewind().map_err(io_err(tarball))?;
    // Refuse what is not a tar archive before creating anything.
    let file = std::rc::Rc::new(f);
    let hashed = std::rc::Rc::new(std::cell::RefCell::new(Sha256::new()));
    // The decompressor reads the first bytes now; they count once the unpacking begins.
    let held = Held::new(progress);
    let raw = Counting {
        inner: Hashing {
            file: file.clone(),
            hasher: hashed.clone(),
        },
        progress: &held,
    };
    let reader = match crate::tar_stream::archive_stream(io::BufReader::new(raw)) {
        Ok(Some(reader)) => reader,
        Ok(None) => {
            return Err(RootfsError::NotRootfs {
                path: tarball.to_owned(),
            });
        }
        Err(e) => {
            return Err(RootfsError::Unpack {
                path: tarball.to_owned(),
                source: io::Error::other(format!(
                    "reading the archive {} failed: {e}",
                    tarball.display()
                )),
            });
        }
    };
    prepare_cache(cache)?;
    let dir = cache.join(&key);
    let done = cache.join(format!("{key}.done"));
    let lock = open_lock(cache, &key)?;
    let locked = |op| rustix::fs::flock(&lock, op).map_err(|e| io_err(cache)(e.into()));
    let complete = || done.exists() && fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
    let lease = |lock: File, dropped| Rootfs {
        dir: dir.clone(),
        dropped,
        _lease: Some(lock),
    };
    locked(FlockOperation::LockShared)?;
    if complete() {
        tracing::info!(dir = %dir.display(), "reusing unpacked rootfs");
        return Ok(lease(lock, None));
    }
    crate::lock::take(&lock, crate::lock::Kind::Exclusive, true, || {
        format!(
            "another binfmtctl unpacking {} into {}",
            tarball.display(),
            cache.display()
        )
    })
    .map_err(|e| io_err(cache)(e.into()))?;
    if complete() {
        locked(FlockOperation::LockShared)?;
        tracing::info!(dir = %dir.display(), "reusing unpacked rootfs");
        return Ok(lease(lock, None));
    }
    // Ours alone now: whatever is there for this key was left by a run that died (or by an
    // older binfmtctl, whose trees kept setuid bits).
    let _ = fs::remove_file(&done);
    let _ = fs::remove_file(cache.join(format!("{key}.complete")));
    remove_tree(&dir).map_err(io_err(&dir))?;
    sweep_partials(cache, &key);
    let tmp = cache.join(format!("{key}.partial-{}", std::process::id()));
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    tracing::info!(tarball = %tarball.display(), dir = %tmp.display(), "unpacking rootfs");
    progress.begin(&format!("unpacking {name}"), size, Unit::Bytes);
    held.release();
    let unpacked = unpack_tree(reader, &tmp, opts).and_then(|dropped| {
        // Hash what the unpack did not need (the end-of-archive padding) too.
        let rest = Hashing {
            file,
            hasher: hashed,
        };
        rehash_rest(rest, progress, &digest)?;
        Ok(dropped)
    });
    let dropped = match unpacked {
        Ok(d) => d,
        Err(source) => {
            let _ = remove_tree(&tmp);
            return Err(RootfsError::Unpack {
                path: tarball.to_owned(),
                source,
            });
        }
    };
    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    File::create(&done)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&done))?;
    tracing::info!(dir = %dir.display(), "unpacked rootfs");
    locked(FlockOperation::LockShared)?;
    Ok(lease(lock, Some(dropped)))
}

/// The SHA-256 of the rest of `f`, in hex, each read reported to `progress`.
fn sha256_of(f: &mut File, progress: &dyn Progress) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
}

/// Reads what the unpack left of the tarball through its hasher and checks that all the bytes
/// unpacked hash to `digest`, the key the unpack is stored under.
fn rehash_rest(mut rest: Hashing, progress: &dyn Progress, digest: &str) -> io::Result<()> {
    use sha2::Digest;
    let hashed = rest.hasher.clone();
    io::copy(
        &mut Counting {
            inner: &mut rest,
            progress,
        },
        &mut io::sink(),
    )?;
    progress.end();
    let again = hex(&hashed.borrow_mut().clone().finalize());
    if again != digest {
        return Err(io::Error::other(
            "the file changed while it was being unpacked; unpack a copy nobody writes to",
        ));
    }
    Ok(())
}

/// Creates the cache directory owner-only (0700), or makes an existing one so; refuses one
/// that is a symlink, belongs to someone else, or sits where someone else could swap it.
fn prepare_cache(cache: &Path) -> Result<(), RootfsError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let unsafe_cache = |why: String| RootfsError::UnsafeCache {
        path: cache.to_owned(),
        why,
    };
    let me = rustix::process::geteuid().as_raw();
    let parent = cache
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    // Whoever may rename entries of an ancestor could swap the cache for a tree of theirs:
    // each must be root's or ours, and not writable by others unless sticky (like /tmp).
    let real = fs::canonicalize(parent).map_err(io_err(parent))?;
    for dir in real.ancestors() {
        let m = fs::metadata(dir).map_err(io_err(dir))?;
        if !(m.uid() == 0 || m.uid() == me) {
            return Err(unsafe_cache(format!(
                "is inside {}, which belongs to uid {}",
                dir.display(),
                m.uid()
            )));
        }
        if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
            return Err(unsafe_cache(format!(
                "is inside {}, which others may write to",
                dir.display()
            )));
        }
    }
    match fs::DirBuilder::new().mode(0o700).create(cache) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(cache)(e)),
    }
    let fd = rustix::fs::open(
        cache,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            unsafe_cache("is a symlink or not a directory".into())
        }
        e => io_err(cache)(e.into()),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err(cache)(e.into()))?;
    if st.st_uid != me {
        return Err(unsafe_cache(format!(
            "belongs to uid {}, not to you (uid {me})",
            st.st_uid
        )));
    }
    if st.st_mode & 0o7777 != 0o700 {
        tracing::info!(cache = %cache.display(), "making the rootfs cache owner-only");
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| io_err(cache)(e.into()))?;
    }
    Ok(())
}

fn open_lock(cache: &Path, key: &str) -> Result<File, RootfsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = cache.join(format!("{key}.lock"));
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(io_err(&path))
}

/// Removes the `.partial-*` trees of dead runs: those of `key` (whose lock we hold
/// exclusively) and those of any other key whose lock is free.
fn sweep_partials(cache: &Path, key: &str) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((k, _)) = name.split_once(".partial-") else {
            continue;
        };
        let stale = k == key
            || open_lock(cache, k).is_ok_and(|l| {
                rustix::fs::flock(&l, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
            });
        if stale {
            tracing::info!(dir = %e.path().display(), "removing a dead run's partial unpack");
            let _ = remove_tree(&e.path());
        }
    }
}

/// `rm -rf`, also through directories the tarball made read-only (a rootless user owns them
/// but needs write permission to empty them).
fn remove_tree(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    fn open_up(p: &Path) {
        let Ok(m) = fs::symlink_metadata(p) else {
            return;
        };
        if m.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(d) = fs::read_dir(p) {
                for e in d.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(path);
    fs::remove_dir_all(path)
}

/// The path of an archive member relative to the unpack root, or None when it would leave it.
fn member_path(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return None,
            _ => {}
        }
    }
    Some(out)
}

/// Unpacks every member into `dst` as tar(1) would, except that without `keep_privileges`
/// setuid/setgid bits are cleared and character/block devices are not created (hard links to
/// them neither). FIFOs are created as FIFOs; with `keep_privileges`, devices are created
/// with mknod (root only).
fn unpack_tree(reader: Box<dyn Read + '_>, dst: &Path, opts: UnpackOptions) -> io::Result<Dropped> {
    use std::collections::HashSet;
    use tar::EntryType;
    let root = rustix::process::geteuid().is_root();
    let mut a = tar::Archive::new(reader);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(root);
    a.set_overwrite(true);
    let mut dropped = Dropped::default();
    let mut skipped: HashSet<PathBuf> = HashSet::new();
    // Directories last (deepest first), so a read-only one does not stop its own contents.
    let mut dirs = Vec::new();
    for entry in a.entries()? {
        let mut e = entry?;
        let kind = e.header().entry_type();
        let Some(rel) = member_path(&e.path()?) else {
            continue;
        };
        match kind {
            EntryType::Directory => {
                dirs.push(e);
                continue;
            }
            EntryType::Char | EntryType::Block if !opts.keep_privileges => {
                dropped.devices += 1;
                skipped.insert(rel);
                continue;
            }
            EntryType::Link => {
                let target = e.link_name()?.and_then(|l| member_path(&l));
                if target.is_some_and(|t| skipped.contains(&t)) {
                    skipped.insert(rel);
                    continue;
                }
            }
            _ => {}
        }
        if !opts.keep_privileges {
            if e.header().mode()? & 0o6000 != 0 {
                dropped.setid += 1;
            }
            e.set_mask(0o6000);
        }
        let special = matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo);
        // tar writes special files as empty regular files: it checks the path (inside `dst`,
        // parents created), then we put the real node in the placeholder's place.
        if !e.unpack_in(dst)? || !special || rel.as_os_str().is_empty() {
            continue;
        }
        make_node(dst, &rel, e.header(), root)?;
    }
    dirs.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut d in dirs {
        d.unpack_in(dst)?;
    }
    Ok(dropped)
}

/// Replaces the placeholder tar left at `dst/rel` with the FIFO or device node `h` describes.
fn make_node(dst: &Path, rel: &Path, h: &tar::Header, root: bool) -> io::Result<()> {
    use rustix::fs::{AtFlags, FileType};
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::other("empty name"))?;
    let top = rustix::fs::open(
        dst,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parent = rustix::fs::openat2(
        &top,
        // A top-level member's parent is the unpack root itself: "." (openat2 refuses "").
        match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let kind = match h.entry_type() {
        tar::EntryType::Char => FileType::CharacterDevice,
        tar::EntryType::Block => FileType::BlockDevice,
        _ => FileType::Fifo,
    };
    let dev = if kind == FileType::Fifo {
        0
    } else {
        rustix::fs::makedev(
            h.device_major()?.unwrap_or(0),
            h.device_minor()?.unwrap_or(0),
        )
    };
    let mode = Mode::from_raw_mode(h.mode()? & 0o7777);
    rustix::fs::unlinkat(&parent, name, AtFlags::empty())?;
    rustix::fs::mknodat(&parent, name, kind, mode, dev).map_err(|e| {
        io::Error::other(format!(
            "creating the {kind:?} {}: {e}{}",
            rel.display(),
            if root {
                ""
            } else {
                " (device nodes need root)"
            }
        ))
    })?;
    rustix::fs::chmodat(&parent, name, mode, AtFlags::empty())?;
    if root {
        rustix::fs::chownat(
            &parent,
            name,
            Some(rustix::fs::Uid::from_raw(h.uid()? as u32)),
            Some(rustix::fs::Gid::from_raw(h.gid()? as u32)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
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
    let text = Tree::open(root)
        .and_then(|t| t.read_in_root("etc/passwd", PASSWD_LIMIT))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
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
    /// Errors only: mmdebstrap's `--quiet` (no `I:` lines, no progress bars of its own).
    /// debootstrap has no such option (and draws no bars).
    pub quiet: bool,
    /// Take Release files past their `Valid-Until` (a dated snapshot mirror): mmdebstrap's apt
    /// is told `Acquire::Check-Valid-Until "false"`. debootstrap does not check `Valid-Until`.
    pub no_check_valid_until: bool,
}

/// `program`: the tool's absolute path (from `find_bootstrapper`), never its bare name, so
/// that nothing on the caller's PATH can stand in for it.
pub fn bootstrap_command(
    tool: Bootstrapper,
    program: &Path,
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
        quiet,
        no_check_valid_until,
    } = *opts;
    let deb = arch
        .debian
        .first()
        .ok_or_else(|| RootfsError::NoDebianArch {
            arch: arch.name.clone(),
        })?;
    let target = target.to_string_lossy().into_owned();
    let program = program.to_string_lossy().into_owned();
    let mut v = match tool {
        Bootstrapper::Mmdebstrap => {
            let mut v = vec![
                program,
                "--mode=root".into(),
                format!("--variant={variant}"),
                format!("--arch={deb}"),
            ];
            if in_userns {
                v.push("--skip=output/mknod".into());
            }
            if quiet {
                v.push("--quiet".into());
            }
            if no_check_valid_until {
                v.push("--aptopt=Acquire::Check-Valid-Until \"false\"".into());
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
                program,
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

/// Finds the bootstrap tool on this process's PATH (mmdebstrap first) that binfmtctl may run
/// as root: see `find_bootstrapper_in`, with the uids of `host::trusted_uid`.
pub fn find_bootstrapper() -> Option<(Bootstrapper, PathBuf)> {
    find_bootstrapper_in(&std::env::var_os("PATH")?, crate::host::trusted_uid())
}

/// The bootstrap tool in `path_var` (a PATH value), mmdebstrap first, as an absolute path,
/// by the lookup binfmtctl keeps for every program it runs (`host::find_safe_program_by`, with
/// the owners `trusted`): an unsafe candidate (say one planted in a world-writable directory
/// early on root's PATH) is skipped as if it were not there.
pub fn find_bootstrapper_in(
    path_var: &std::ffi::OsStr,
    trusted: impl Fn(u32) -> bool,
) -> Option<(Bootstrapper, PathBuf)> {
    [
        (Bootstrapper::Mmdebstrap, "mmdebstrap"),
        (Bootstrapper::Debootstrap, "debootstrap"),
    ]
    .into_iter()
    .find_map(|(tool, name)| {
        crate::host::find_safe_program_by(path_var, name, &trusted).map(|p| (tool, p))
    })
}

/// `path_var` (a PATH value) with only the directories nobody else can add a program to: the
/// PATH the bootstrap tool runs with as root, so the programs it runs by name (`apt-get`,
/// `dpkg`, `arch-test`, ...) cannot be planted either. A directory is kept when it is absolute
/// and it and every directory and symlink on its path are owned by a `trusted` uid, no
/// directory on the way is writable by group or others unless sticky, and the directory itself
/// is writable by neither (sticky or not: anyone may add a name to a sticky directory).
pub fn trusted_path(
    path_var: &std::ffi::OsStr,
    trusted: impl Fn(u32) -> bool,
) -> std::ffi::OsString {
    use crate::qemu::interpreter::NodeKind;
    let keep = |dir: &Path| -> bool {
        let Ok((_, chain)) = crate::qemu::interpreter::resolve(dir) else {
            return false;
        };
        let last_is_closed = chain
            .last()
            .is_some_and(|n| n.kind == NodeKind::Directory && n.mode & 0o022 == 0);
        last_is_closed
            && chain.iter().all(|n| {
                trusted(n.uid)
                    && match n.kind {
                        NodeKind::Directory => n.mode & 0o022 == 0 || n.mode & 0o1000 != 0,
                        NodeKind::File => false,
                        NodeKind::Symlink => true,
                    }
            })
    };
    let dirs: Vec<PathBuf> = std::env::split_paths(path_var)
        .filter(|d| keep(d))
        .collect();
    std::env::join_paths(dirs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn fake_root() -> tempfile::TempDir {
        let t = Table::builtin();
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("usr/bin/dash"),
            crate::inspection::probe::build(t.get("riscv64").unwrap()).unwrap(),
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
        let opts = UnpackOptions::default();
        let first = resolve(&tarball, &cache, opts, &Silent).unwrap();
        let dir = first.dir.clone();
        assert_eq!(
            detect_arch(Table::builtin(), &dir).unwrap().0.name,
            "riscv64"
        );
        assert_eq!(first.dropped, Some(Dropped::default()));
        fs::write(dir.join("marker"), "x").unwrap();
        // A second user while the first still holds its lease: both shared.
        let second = resolve(&tarball, &cache, opts, &Silent).unwrap();
        assert_eq!((second.dir.clone(), second.dropped), (dir.clone(), None));
        assert!(dir.join("marker").exists(), "reused, not unpacked again");
        let junk = work.path().join("junk");
        fs::write(&junk, vec![1u8; 1024]).unwrap();
        assert!(resolve(&junk, &cache, opts, &Silent).is_err());
    }

    /// The observer hears the tarball's bytes hashed, then unpacked, each step to the end of
    /// the file; a reuse of the unpacked tree only hashes.
    #[test]
    fn unpacking_reports_the_bytes_hashed_then_unpacked() {
        use crate::progress::{Recorder, Step, Unit};
        let d = fake_root();
        let work = tempfile::tempdir().unwrap();
        let tarball = work.path().join("r.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                File::create(&tarball).unwrap(),
                flate2::Compression::fast(),
            );
            let mut b = tar::Builder::new(gz);
            b.follow_symlinks(false);
            b.append_dir_all(".", d.path()).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let size = fs::metadata(&tarball).unwrap().len();
        let step = |name: &str| Step {
            name: name.into(),
            total: Some(size),
            unit: Unit::Bytes,
            done: size,
            ended: true,
        };
        let cache = work.path().join("cache");
        let rec = Recorder::new();
        let _first = resolve(&tarball, &cache, UnpackOptions::default(), &rec).unwrap();
        assert_eq!(
            rec.steps(),
            [step("hashing r.tar.gz"), step("unpacking r.tar.gz")]
        );
        let rec = Recorder::new();
        let _second = resolve(&tarball, &cache, UnpackOptions::default(), &rec).unwrap();
        assert_eq!(rec.steps(), [step("hashing r.tar.gz")], "reused");
        // A directory rootfs is used as it is: nothing to report.
        let rec = Recorder::new();
        resolve(d.path(), &cache, UnpackOptions::default(), &rec).unwrap();
        assert_eq!(rec.events(), []);
    }

    #[test]
    fn unpacking_drops_setid_bits_and_devices() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let work = tempfile::tempdir().unwrap();
        let tarball = work.path().join("r.tar");
        {
            let mut b = tar::Builder::new(File::create(&tarball).unwrap());
            let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_path(path).unwrap();
                h.set_entry_type(kind);
                h.set_mode(mode);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_size(data.len() as u64);
                if kind == tar::EntryType::Char {
                    h.set_device_major(1).unwrap();
                    h.set_device_minor(3).unwrap();
                }
                h.set_cksum();
                b.append(&h, data).unwrap();
            };
            add("bin/su", tar::EntryType::Regular, 0o4755, b"x");
            add("dev/null", tar::EntryType::Char, 0o666, b"");
            add("run/fifo", tar::EntryType::Fifo, 0o600, b"");
            add("etc/", tar::EntryType::Directory, 0o2755, b"");
            let mut h = tar::Header::new_gnu();
            h.set_path("dev/null2").unwrap();
            h.set_entry_type(tar::EntryType::Link);
            h.set_link_name("dev/null").unwrap();
            h.set_mode(0o666);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &b""[..]).unwrap();
            b.finish().unwrap();
        }
        let cache = work.path().join("cache");
        let r = resolve(&tarball, &cache, UnpackOptions::default(), &Silent).unwrap();
        assert_eq!(
            r.dropped,
            Some(Dropped {
                setid: 1,
                devices: 1
            })
        );
        assert_eq!(
            fs::metadata(r.dir.join("bin/su")).unwrap().mode() & 0o7777,
            0o755
        );
        assert!(fs::symlink_metadata(r.dir.join("dev/null")).is_err());
        assert!(
            fs::symlink_metadata(r.dir.join("dev/null2")).is_err(),
            "a hard link to a dropped device is dropped too"
        );
        assert!(
            fs::symlink_metadata(r.dir.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(
            fs::metadata(r.dir.join("etc")).unwrap().mode() & 0o7777,
            0o2755,
            "a setgid directory only sets its files' group: kept"
        );
        assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
        let names: Vec<String> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".partial-")), "{names:?}");
    }

    #[test]
    fn a_cache_of_someone_else_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let real = work.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = work.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            prepare_cache(&link),
            Err(RootfsError::UnsafeCache { .. })
        ));
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&real, Some(65534), None).unwrap();
            let e = prepare_cache(&real).unwrap_err().to_string();
            assert!(e.contains("belongs to uid 65534, not to you"), "{e}");
            // Inside a directory someone else owns (who could swap our cache for theirs).
            let e = prepare_cache(&real.join("cache")).unwrap_err().to_string();
            assert!(e.contains("which belongs to uid 65534"), "{e}");
            assert!(
                !real.join("cache").exists(),
                "refused before creating anything"
            );
        }
        let open = work.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let e = prepare_cache(&open.join("cache")).unwrap_err().to_string();
        assert!(e.contains("which others may write to"), "{e}");
        // Sticky like /tmp: fine.
        fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
        prepare_cache(&open.join("cache")).unwrap();
    }

    /// An expired Release allowed (`--allow-expired`, or apt's words for the mirror): mmdebstrap's
    /// apt is told so, as one argument; debootstrap (which does not check it) gets nothing.
    #[test]
    fn bootstrap_lines_past_valid_until() {
        let t = Table::builtin();
        let line = |tool, program| {
            bootstrap_command(
                tool,
                Path::new(program),
                t.get("aarch64").unwrap(),
                &BootstrapOptions {
                    suite: "forky",
                    variant: "minbase",
                    include: &[],
                    mirror: Some("http://deb.debian.org/debian"),
                    quiet: true,
                    no_check_valid_until: true,
                },
                Path::new("/r"),
                false,
            )
            .unwrap()
        };
        assert_eq!(
            line(Bootstrapper::Mmdebstrap, "/usr/bin/mmdebstrap"),
            [
                "/usr/bin/mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                "--arch=arm64",
                "--quiet",
                "--aptopt=Acquire::Check-Valid-Until \"false\"",
                "forky",
                "/r",
                "http://deb.debian.org/debian"
            ]
        );
        assert_eq!(
            line(Bootstrapper::Debootstrap, "/usr/sbin/debootstrap"),
            [
                "/usr/sbin/debootstrap",
                "--arch=arm64",
                "--variant=minbase",
                "forky",
                "/r",
                "http://deb.debian.org/debian"
            ]
        );
    }

    #[test]
    fn bootstrap_lines() {
        let t = Table::builtin();
        let v = bootstrap_command(
            Bootstrapper::Mmdebstrap,
            Path::new("/usr/bin/mmdebstrap"),
            t.get("aarch64").unwrap(),
            &BootstrapOptions {
                suite: "bookworm",
                variant: "minbase",
                include: &["gcc".into()],
                mirror: None,
                quiet: false,
                no_check_valid_until: false,
            },
            Path::new("/r"),
            true,
        )
        .unwrap();
        assert_eq!(
            v,
            [
                "/usr/bin/mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                "--arch=arm64",
                "--skip=output/mknod",
                "--include=gcc",
                "bookworm",
                "/r"
            ]
        );
        // -q or --json: mmdebstrap prints errors only and draws no bars of its own.
        let quiet = |tool, program| {
            bootstrap_command(
                tool,
                Path::new(program),
                t.get("aarch64").unwrap(),
                &BootstrapOptions {
                    suite: "bookworm",
                    variant: "minbase",
                    include: &[],
                    mirror: None,
                    quiet: true,
                    no_check_valid_until: false,
                },
                Path::new("/r"),
                false,
            )
            .unwrap()
        };
        assert_eq!(
            quiet(Bootstrapper::Mmdebstrap, "/usr/bin/mmdebstrap"),
            [
                "/usr/bin/mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                "--arch=arm64",
                "--quiet",
                "bookworm",
                "/r"
            ]
        );
        assert!(
            !quiet(Bootstrapper::Debootstrap, "/usr/sbin/debootstrap")
                .iter()
                .any(|a| a.contains("quiet")),
            "debootstrap has no such option"
        );
        assert!(
            bootstrap_command(
                Bootstrapper::Mmdebstrap,
                Path::new("/usr/bin/mmdebstrap"),
                t.get("xtensa").unwrap(),
                &BootstrapOptions {
                    suite: "bookworm",
                    variant: "minbase",
                    include: &[],
                    mirror: None,
                    quiet: true,
                    no_check_valid_until: false,
                },
                Path::new("/r"),
                false
            )
            .is_err()
        );
    }

    /// A `mmdebstrap` planted in a world-writable directory first on root's PATH is never
    /// chosen: the lookup skips it for the safe one later on PATH, and returns an absolute path.
    #[test]
    fn bootstrapper_lookup_skips_planted_tools() {
        use std::os::unix::fs::PermissionsExt;
        let me = rustix::process::geteuid().as_raw();
        let trusted = |uid: u32| uid == 0 || uid == me;
        let d = tempfile::tempdir().unwrap();
        let open = d.path().join("open");
        let safe = d.path().join("safe");
        for dir in [&open, &safe] {
            fs::create_dir(dir).unwrap();
        }
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let tool = |dir: &Path, name: &str| {
            let p = dir.join(name);
            fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let planted = tool(&open, "mmdebstrap");
        let path = std::env::join_paths([&open, &safe]).unwrap();
        // Only the planted one: nothing is found.
        assert_eq!(find_bootstrapper_in(&path, trusted), None);
        // A safe debootstrap later on PATH wins over the planted mmdebstrap.
        let deb = tool(&safe, "debootstrap");
        assert_eq!(
            find_bootstrapper_in(&path, trusted),
            Some((Bootstrapper::Debootstrap, deb))
        );
        // A safe mmdebstrap later on PATH: that one, by its absolute path.
        let mm = tool(&safe, "mmdebstrap");
        assert_eq!(
            find_bootstrapper_in(&path, trusted),
            Some((Bootstrapper::Mmdebstrap, mm.clone()))
        );
        // The same directory made sticky (like /tmp) is safe again: the first on PATH wins.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            find_bootstrapper_in(&path, trusted),
            Some((Bootstrapper::Mmdebstrap, planted.clone()))
        );
        // A tool others may write to is skipped too.
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o757)).unwrap();
        assert_eq!(
            find_bootstrapper_in(&path, trusted),
            Some((Bootstrapper::Mmdebstrap, mm))
        );
        // And a tool owned by a uid nobody trusts.
        assert_eq!(find_bootstrapper_in(&path, |_| false), None);
        // A relative PATH entry still yields an absolute path.
        let rel = std::env::join_paths([Path::new("relative-nowhere")]).unwrap();
        assert_eq!(find_bootstrapper_in(&rel, trusted), None);
    }

    /// The bootstrap's PATH keeps only directories nobody else can add a program to.
    #[test]
    fn trusted_path_drops_open_directories() {
        use std::os::unix::fs::PermissionsExt;
        let me = rustix::process::geteuid().as_raw();
        let trusted = |uid: u32| uid == 0 || uid == me;
        let d = tempfile::tempdir().unwrap();
        let [open, sticky, closed] = ["open", "sticky", "closed"].map(|n| d.path().join(n));
        for (dir, mode) in [(&open, 0o777), (&sticky, 0o1777), (&closed, 0o755)] {
            fs::create_dir(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
        }
        let inside_sticky = sticky.join("bin");
        fs::create_dir(&inside_sticky).unwrap();
        fs::set_permissions(&inside_sticky, fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([
            open.as_path(),
            Path::new("relative"),
            sticky.as_path(),
            closed.as_path(),
            d.path().join("missing").as_path(),
            inside_sticky.as_path(),
        ])
        .unwrap();
        assert_eq!(
            trusted_path(&path, trusted),
            std::env::join_paths([&closed, &inside_sticky]).unwrap()
        );
        assert_eq!(trusted_path(&path, |_| false), std::ffi::OsString::new());
    }
}
