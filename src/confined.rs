//! Confined paths: every file-system act binfmtctl makes under a directory that someone other
//! than root may have written (a rootfs, an unpacked image, a bound project directory).
//!
//! The rule (docs/security.md, "Hostile trees"): such a directory is opened once, as a
//! descriptor ([`Tree`]), and every name under it is resolved by the kernel with `openat2(2)`
//! from that descriptor, never as a string joined to the directory's path:
//!
//! - [`Tree::open_in_root`]: `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, the tree's own symlinks
//!   honoured as if the tree were `/` (an absolute link `/etc/x` means the tree's `/etc/x`), so
//!   nothing it names can lead out of it. For reading a rootfs as its own programs would.
//! - [`Tree::open_beneath`]: `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, no
//!   symlink followed at all. For trees binfmtctl makes itself (a fresh tmpfs), where a symlink
//!   on the way can only be a mistake or an attack.
//! - Creation walks one component at a time: the parent is resolved as above, then the last
//!   component is made with `mkdirat`/`openat(O_CREAT|O_EXCL)`/`symlinkat` relative to the
//!   parent's descriptor, which never follow a symlink in the name they create. A multi-component
//!   `mkdirat(fd, "a/b")` (which follows a symlink at `a` anywhere on the host) never happens.
//! - Checks are made on the object the descriptor refers to (`fstat`, `statx`'s mount-root
//!   attribute, `fstatfs`), never on a path string that could be swapped afterwards.
//!
//! Needs no privilege of its own; as root it is what keeps root's writes inside the tree.
//! Man pages: openat2(2), path_resolution(7), statx(2).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// How many symlinks a dangling-link walk follows before giving up (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// Resolution that honours the tree's symlinks inside it (as if it were `/`).
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
/// Resolution that follows no symlink at all and never leaves the tree.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What to create with [`Tree::create_in_root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// A directory opened once, as an `O_PATH` descriptor; names under it are resolved from it.
#[derive(Debug)]
pub struct Tree {
    fd: OwnedFd,
    /// The directory's path as given, for messages only.
    shown: PathBuf,
}

/// The identity of a file: its device and inode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(fd: impl AsFd) -> io::Result<FileId> {
        let st = rustix::fs::fstat(fd)?;
        Ok(FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }
}

impl Tree {
    /// Opens the directory `dir` (the one path string taken on trust: the caller named it).
    pub fn open(dir: &Path) -> io::Result<Tree> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Tree {
            fd,
            shown: dir.to_owned(),
        })
    }

    /// A tree from a directory descriptor already opened (e.g. a mount binfmtctl just made).
    pub fn from_fd(fd: OwnedFd, shown: impl Into<PathBuf>) -> Tree {
        Tree {
            fd,
            shown: shown.into(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's path as given (for messages).
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// Opens `rel` with the tree's symlinks resolved inside it (`RESOLVE_IN_ROOT`).
    pub fn open_in_root(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        open2(self.fd(), rel, flags, IN_ROOT)
    }

    /// Opens `rel` following no symlink (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
    pub fn open_beneath(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        open2(self.fd(), rel, flags, BENEATH)
    }

    /// Where `rel` leads inside the tree, as an absolute path there (`/usr/bin/x86_64-...`),
    /// if it exists. For planning and messages: acts go through descriptors.
    pub fn resolve(&self, rel: &str) -> Option<String> {
        let fd = self.open_in_root(rel, OFlags::PATH).ok()?;
        self.inner_path(&fd)
    }

    /// The absolute path inside the tree of what `fd` (opened under it) refers to.
    pub fn inner_path(&self, fd: &OwnedFd) -> Option<String> {
        let top = std::fs::read_link(fd_path(&self.fd)).ok()?;
        let real = std::fs::read_link(fd_path(fd)).ok()?;
        let inner = real.strip_prefix(&top).ok()?;
        Some(format!("/{}", inner.display()))
    }

    /// The absolute path inside the tree that `rel` leads to, whether it exists or not: the
    /// tree's symlinks followed inside it, a dangling one at the end too (as creating `rel`
    /// would), the missing rest appended. For early, clear refusals; acts resolve again.
    pub fn leads_to(&self, rel: &str) -> String {
        let rel = self
            .follow_dangling(rel)
            .unwrap_or_else(|_| rel.trim_start_matches('/').to_owned());
        let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for n in (0..=parts.len()).rev() {
            if let Some(p) = self.resolve(&parts[..n].join("/")) {
                let mut out = p.trim_end_matches('/').to_owned();
                for c in &parts[n..] {
                    out.push('/');
                    out.push_str(c);
                }
                return if out.is_empty() { "/".into() } else { out };
            }
        }
        format!("/{rel}")
    }

    /// The type of what `rel` leads to inside the tree (`None`: it does not exist).
    pub fn file_type_in_root(&self, rel: &str) -> Option<FileType> {
        let fd = self.open_in_root(rel, OFlags::PATH).ok()?;
        rustix::fs::fstat(&fd)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Is `rel`, resolved inside the tree, a regular file?
    pub fn is_file_in_root(&self, rel: &str) -> bool {
        self.file_type_in_root(rel) == Some(FileType::RegularFile)
    }

    /// Opens `rel` (resolved inside the tree) for reading if it is a regular file. The type is
    /// checked on an `O_PATH` descriptor first, so a FIFO or a device node (whose mere opening
    /// can block or act on hardware) is never opened for reading.
    pub fn open_file_in_root(&self, rel: &str) -> io::Result<File> {
        let fd = self.open_in_root(rel, OFlags::PATH)?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::other(format!(
                "{} in {} is not a regular file",
                show_rel(rel),
                self.shown.display()
            )));
        }
        // Reopened through the descriptor itself: the object checked is the one read.
        let file = rustix::fs::open(
            fd_path(&fd),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(file))
    }

    /// Reads the regular file `rel` (resolved inside the tree) whole, up to `limit` bytes;
    /// a larger one is an error naming it and the limit.
    pub fn read_in_root(&self, rel: &str, limit: u64) -> io::Result<Vec<u8>> {
        let f = self.open_file_in_root(rel)?;
        let mut bytes = Vec::new();
        f.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::other(format!(
                "{} in {} is larger than {limit} bytes, more than binfmtctl reads of it",
                show_rel(rel),
                self.shown.display()
            )));
        }
        Ok(bytes)
    }

    /// The names in the directory `rel` (resolved inside the tree) with their types, sorted.
    pub fn read_dir_in_root(&self, rel: &str) -> io::Result<Vec<(String, FileType)>> {
        let fd = self.open_in_root(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            out.push((name, entry.file_type()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Opens `rel` inside the tree as an `O_PATH` descriptor, resolving every symlink as if
    /// the tree were `/`, and creates it (with its missing parents) when it does not exist.
    /// A dangling symlink is followed, still inside the tree, to the name to create. Each
    /// directory is made by `mkdirat` of one name relative to its parent's descriptor, so no
    /// symlink is followed out of the tree on the way.
    pub fn create_in_root(&self, rel: &str, kind: Kind) -> io::Result<OwnedFd> {
        if let Ok(fd) = self.open_in_root(rel, OFlags::PATH) {
            return Ok(fd);
        }
        let target = self.follow_dangling(rel)?;
        let (parent, name) = split_last(&target)?;
        let parent_fd = self.mkdirs_in_root(parent, 0)?;
        match kind {
            Kind::Dir => match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(at(&format!("creating /{target} in the rootfs"), e)),
            },
            Kind::File => {
                match rustix::fs::openat(
                    &parent_fd,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                ) {
                    Ok(_) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(at(&format!("creating /{target} in the rootfs"), e)),
                }
            }
        }
        // Reopened by name from the parent's descriptor, inside the tree; a symlink raced in
        // there is resolved inside the tree too.
        open2(&parent_fd, name, OFlags::PATH, IN_ROOT)
            .or_else(|_| self.open_in_root(&target, OFlags::PATH))
            .map_err(|e| at(&format!("opening /{target} in the rootfs"), e))
    }

    /// Opens the directory `rel` inside the tree, creating each missing component with
    /// `mkdirat` of one name under the previous component's descriptor. A component that is a
    /// dangling symlink is followed (inside the tree) and what it names is created; `depth`
    /// bounds how many such links are followed.
    fn mkdirs_in_root(&self, rel: &str, depth: usize) -> io::Result<OwnedFd> {
        let mut dir = self.open_in_root("", OFlags::PATH | OFlags::DIRECTORY)?;
        let mut done = String::new();
        for c in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if c == ".." {
                return Err(io::Error::other(format!(
                    "/{rel}: a path with `..` is not created in the rootfs"
                )));
            }
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(c);
            match rustix::fs::mkdirat(&dir, c, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(at(&format!("creating /{done} in the rootfs"), e)),
            }
            // The component may be a symlink of the tree's: resolve it from the top, inside
            // the tree, so it can never lead out.
            let open = || self.open_in_root(&done, OFlags::PATH | OFlags::DIRECTORY);
            dir = match open() {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && depth < MAX_SYMLINKS => {
                    let target = self.follow_dangling(&done)?;
                    if target == done {
                        return Err(at(&format!("opening /{done} in the rootfs"), e));
                    }
                    drop(self.mkdirs_in_root(&target, depth + 1)?);
                    open().map_err(|e| at(&format!("opening /{done} in the rootfs"), e))?
                }
                Err(e) => return Err(at(&format!("opening /{done} in the rootfs"), e)),
            };
        }
        Ok(dir)
    }

    /// `rel` with a dangling symlink at its end followed (inside the tree, like the kernel
    /// would for a process chrooted there) to the name that does not exist yet.
    fn follow_dangling(&self, rel: &str) -> io::Result<String> {
        let mut target = rel.trim_start_matches('/').to_owned();
        for _ in 0..MAX_SYMLINKS {
            let (parent, name) = split_last(&target)?;
            let Ok(parent_fd) = self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) else {
                return Ok(target);
            };
            let Ok(link) = rustix::fs::readlinkat(&parent_fd, name, Vec::new()) else {
                return Ok(target);
            };
            let link = link.to_string_lossy().into_owned();
            target = match link.strip_prefix('/') {
                Some(abs) => abs.to_owned(),
                None if parent.is_empty() => link,
                None => format!("{parent}/{link}"),
            };
            target = normalize(&target);
        }
        Err(io::Error::other(format!(
            "{}: too many levels of symbolic links in the rootfs",
            show_rel(rel)
        )))
    }
}

/// Creates `rel` under the directory `dir` following no symlink (`RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS` for the parents, `O_EXCL` for the file): for trees binfmtctl made.
pub fn create_beneath(
    dir: BorrowedFd<'_>,
    rel: &str,
    kind: Kind,
    mode: u32,
) -> io::Result<OwnedFd> {
    let (parent, name) = split_last(rel)?;
    let parent_fd = if parent.is_empty() {
        open2(dir, ".", OFlags::PATH | OFlags::DIRECTORY, BENEATH)?
    } else {
        open2(dir, parent, OFlags::PATH | OFlags::DIRECTORY, BENEATH)?
    };
    let mode = Mode::from_raw_mode(mode);
    match kind {
        Kind::Dir => {
            match rustix::fs::mkdirat(&parent_fd, name, mode) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            open2(&parent_fd, name, OFlags::PATH | OFlags::DIRECTORY, BENEATH)
        }
        Kind::File => Ok(rustix::fs::openat(
            &parent_fd,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            mode,
        )?),
    }
}

/// Creates the symlink `rel` -> `target` under `dir`, its parent resolved following no symlink.
pub fn symlink_beneath(dir: BorrowedFd<'_>, rel: &str, target: &str) -> io::Result<()> {
    let (parent, name) = split_last(rel)?;
    let parent_fd = open2(
        dir,
        if parent.is_empty() { "." } else { parent },
        OFlags::PATH | OFlags::DIRECTORY,
        BENEATH,
    )?;
    Ok(rustix::fs::symlinkat(target, &parent_fd, name)?)
}

/// Is the object `fd` refers to the root of a mount (`STATX_ATTR_MOUNT_ROOT`, Linux >= 5.8)?
pub fn is_mount_root(fd: impl AsFd) -> io::Result<bool> {
    let st = rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::BASIC_STATS,
    )?;
    let attr = rustix::fs::StatxAttributes::MOUNT_ROOT;
    if !st.stx_attributes_mask.contains(attr) {
        return Err(io::Error::other(
            "the kernel does not report mount roots (statx, Linux >= 5.8)",
        ));
    }
    Ok(st.stx_attributes.contains(attr))
}

/// `/proc/self/fd/N`: the name through which `mount(2)` and `readlink` reach what a descriptor
/// refers to.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn open2(dir: impl AsFd, rel: &str, flags: OFlags, how: ResolveFlags) -> io::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        dir,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    )?)
}

/// `a/b/c` → (`a/b`, `c`); an empty last component is an error.
fn split_last(rel: &str) -> io::Result<(&str, &str)> {
    let rel = rel.trim_start_matches('/').trim_end_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.is_empty() || name == "." || name == ".." {
        return Err(io::Error::other(format!(
            "{}: not a name that can be created",
            show_rel(rel)
        )));
    }
    Ok((parent, name))
}

/// `a/./b//c/../d` → `a/b/d` (lexically; `..` at the top stays at the top, as in a chroot).
fn normalize(rel: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn show_rel(rel: &str) -> String {
    format!("/{}", rel.trim_start_matches('/'))
}

fn at(what: &str, e: impl Into<io::Error>) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A tree with symlinks pointing out of it (absolute, relative, `..`, chains) and a
    /// decoy directory outside that nothing may touch.
    fn hostile() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let decoy = t.path().join("decoy");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&decoy).unwrap();
        std::fs::write(decoy.join("secret"), "host").unwrap();
        symlink(&decoy, root.join("abs")).unwrap();
        symlink("../decoy", root.join("rel")).unwrap();
        symlink("etc/../../decoy", root.join("dotdot")).unwrap();
        symlink("abs", root.join("chain")).unwrap();
        symlink(decoy.join("new"), root.join("dangling")).unwrap();
        symlink("/etc", root.join("inner")).unwrap();
        (t, root, decoy)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn creation_never_leaves_the_tree() {
        let (_t, root, decoy) = hostile();
        let tree = Tree::open(&root).unwrap();
        for link in ["abs", "rel", "dotdot", "chain", "dangling", "inner"] {
            for (rel, kind) in [
                (format!("{link}/x/y"), Kind::Dir),
                (format!("{link}/f"), Kind::File),
                (link.to_owned(), Kind::File),
            ] {
                // Created, wherever the links lead, inside the tree.
                let fd = tree.create_in_root(&rel, kind).unwrap();
                assert!(tree.inner_path(&fd).is_some(), "{rel} left the tree");
            }
        }
        assert_eq!(listing(&decoy), ["secret"], "the decoy was written");
        // Absolute links resolve to the tree's own directories.
        assert!(root.join("etc/x/y").is_dir());
        // A dangling absolute link is followed inside the tree.
        let path_inside = decoy.strip_prefix("/").unwrap().join("new");
        assert!(root.join(path_inside).exists());
    }

    #[test]
    fn reads_stay_inside_and_are_bounded() {
        let (_t, root, _decoy) = hostile();
        let tree = Tree::open(&root).unwrap();
        for link in ["abs/secret", "rel/secret", "dotdot/secret", "chain/secret"] {
            assert!(tree.read_in_root(link, 100).is_err(), "{link} was read");
        }
        std::fs::write(root.join("etc/big"), vec![b'x'; 200]).unwrap();
        let e = tree.read_in_root("etc/big", 100).unwrap_err();
        assert!(e.to_string().contains("/etc/big"), "{e}");
        assert_eq!(tree.read_in_root("inner/big", 200).unwrap().len(), 200);
        rustix::fs::mknodat(
            tree.fd(),
            "etc/fifo",
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = tree.read_in_root("etc/fifo", 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(tree.resolve("inner/big").as_deref(), Some("/etc/big"));

        assert_eq!(
            tree.read_dir_in_root("inner").unwrap(),
            [
                ("big".to_owned(), FileType::RegularFile),
                ("fifo".to_owned(), FileType::Fifo)
            ]
        );
        // Where a name leads, existing or not: dangling links followed inside the tree.
        assert_eq!(tree.leads_to("inner/new/x"), "/etc/new/x");
        symlink("/run/binfmtctl", root.join("etc/dangling")).unwrap();
        assert_eq!(tree.leads_to("etc/dangling"), "/run/binfmtctl");
        assert_eq!(tree.leads_to("/"), "/");
    }

    #[test]
    fn beneath_follows_no_symlink() {
        let (_t, root, decoy) = hostile();
        let tree = Tree::open(&root).unwrap();
        for link in ["abs", "rel", "inner"] {
            assert!(create_beneath(tree.fd(), &format!("{link}/x"), Kind::Dir, 0o755).is_err());
            assert!(create_beneath(tree.fd(), &format!("{link}/f"), Kind::File, 0o644).is_err());
            assert!(symlink_beneath(tree.fd(), &format!("{link}/l"), "/").is_err());
            // The last component itself is not followed either.
            assert!(create_beneath(tree.fd(), link, Kind::File, 0o644).is_err());
        }
        assert_eq!(listing(&decoy), ["secret"]);
        create_beneath(tree.fd(), "own", Kind::Dir, 0o755).unwrap();
        create_beneath(tree.fd(), "own/f", Kind::File, 0o644).unwrap();
        symlink_beneath(tree.fd(), "own/l", "f").unwrap();
        assert!(root.join("own/f").is_file());
    }

    #[test]
    fn link_loops_end_in_an_error() {
        let (_t, root, decoy) = hostile();
        symlink("b/x", root.join("a")).unwrap();
        symlink("a/y", root.join("b")).unwrap();
        symlink("self", root.join("self")).unwrap();
        let tree = Tree::open(&root).unwrap();
        for rel in ["a/z", "b/z", "self", "self/z"] {
            assert!(tree.create_in_root(rel, Kind::File).is_err(), "{rel}");
        }
        assert_eq!(listing(&decoy), ["secret"]);
    }

    #[test]
    fn names_that_cannot_be_created() {
        for bad in ["", "/", "a/..", "."] {
            assert!(split_last(bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_last("/a/b/c").unwrap(), ("a/b", "c"));
        assert_eq!(normalize("a/./b//c/../d"), "a/b/d");
        assert_eq!(normalize("../../x"), "x");
    }
}
