//! The only code that touches binfmt_misc (`Documentation/admin-guide/binfmt-misc.rst`).
//!
//! `BinfmtFs` is the seam: `ProcBinfmt` talks to a real instance (root, or a user namespace on
//! Linux >= 6.7 with its own mount); `RecordingBinfmt` is an in-memory fake that records every
//! call, for unit tests of the planner and the rollback path only.
//!
//! Privileges: mounting needs CAP_SYS_ADMIN in the user namespace owning the mount namespace;
//! writing `register` and entry files needs the same in the namespace owning the instance.
//!
//! Facts we rely on (checked on Linux 6.18, see docs/design.md, "Kernel facts"):
//! - every mount of one instance shares the same `status` inode, so `flock` on it serialises
//!   a boot unit, a container entrypoint and a person running binfmtctl at the same time;
//! - the kernel tries the newest entry first, and `readdir` lists entries newest first too
//!   (`d_alloc` puts a new dentry at the head of its parent's children, `dcache_readdir` walks
//!   from the head). Inode numbers are no guide: `get_next_ino()` hands them out in per-CPU
//!   batches, so a newer entry can have a smaller one;
//! - entry names are bytes: the kernel accepts any name without `/` (spaces and bytes that are
//!   not UTF-8 included), so `KernelEntry::name` keeps the raw bytes and every write uses them.

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use tracing::debug;

use crate::binfmt::registration::{
    Entry, EntryParseError, Registration, display_name, parse_entry, render_entry,
};

/// The conventional mount point.
pub const DEFAULT_ROOT: &str = "/proc/sys/fs/binfmt_misc";
/// `BINFMTFS_MAGIC` from `include/uapi/linux/magic.h`: the `f_type` statfs reports.
const BINFMTFS_MAGIC: i64 = 0x4249_4e4d;

/// An entry and its age as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEntry {
    /// The entry's name exactly as the kernel has it: bytes, not necessarily UTF-8 (other tools
    /// register names with spaces or any byte but `/`). `entry.registration.name` is only its
    /// printable form (`display_name`); everything that writes uses these bytes.
    pub name: Vec<u8>,
    pub entry: Entry,
    /// Larger is newer (from the directory order); the kernel tries newer entries first.
    pub age: u64,
}

/// What went wrong talking to the kernel. Each variant names the operation and the entry.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{root}: binfmt_misc is not mounted there")]
    NotMounted { root: PathBuf },
    #[error("cannot mount binfmt_misc at {root}: {}", mount_hint(*.errno))]
    Mount { root: PathBuf, errno: Errno },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: EntryParseError,
    },
    #[error("cannot open {path} to register {name}: {}", open_hint(*.errno))]
    OpenRegister {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("registering {name} failed: {}", register_hint(*.errno))]
    Register { name: String, errno: Errno },
    #[error("the kernel accepted only {written} of {len} bytes for {name}")]
    ShortWrite {
        name: String,
        written: usize,
        len: usize,
    },
    #[error("{action} {name} failed: {}", errno_words(*.errno))]
    Entry {
        name: String,
        action: &'static str,
        errno: Errno,
    },
    #[error("cannot lock {path}: {}", errno_words(*.errno))]
    Lock { path: PathBuf, errno: Errno },
    #[error("the record for {name} is invalid: {source}")]
    Invalid {
        name: String,
        source: crate::binfmt::registration::RecordError,
    },
    #[error(
        "cannot {what}: it needs CAP_SYS_ADMIN; run as root (or, on Linux >= 6.7, inside a user namespace with its own mount namespace)"
    )]
    NotPermitted { what: String },
    #[error(
        "{}: {what}, and no binfmt_misc is mounted there: refusing to mount binfmt_misc over it; pass the directory where binfmt_misc is mounted, or an empty directory",
        root.display()
    )]
    MountPoint { root: PathBuf, what: String },
}

impl crate::error::Classify for KernelError {
    fn kind(&self) -> crate::error::ErrorKind {
        if let KernelError::MountPoint { .. } = self {
            crate::error::ErrorKind::BadInput
        } else if self.is_environment() {
            crate::error::ErrorKind::Environment
        } else {
            crate::error::ErrorKind::Failed
        }
    }
}

impl KernelError {
    /// True when the environment, not the request, is at fault (exit code 3).
    pub fn is_environment(&self) -> bool {
        let perm = |e: &Errno| matches!(*e, Errno::PERM | Errno::ACCESS | Errno::ROFS);
        match self {
            KernelError::NotMounted { .. }
            | KernelError::Mount { .. }
            | KernelError::NotPermitted { .. } => true,
            KernelError::Lock { errno, .. } | KernelError::OpenRegister { errno, .. } => {
                perm(errno)
            }
            KernelError::Entry { errno, .. } => perm(errno),
            KernelError::Read { source, .. } => source.kind() == io::ErrorKind::PermissionDenied,
            _ => false,
        }
    }
}

fn errno_words(e: Errno) -> String {
    let s = io::Error::from_raw_os_error(e.raw_os_error()).to_string();
    // "Permission denied (os error 13)" -> "permission denied (EACCES)"
    let words = s.split(" (os error").next().unwrap_or(&s).to_lowercase();
    format!("{words} ({})", errno_name(e))
}

fn errno_name(e: Errno) -> &'static str {
    match e {
        Errno::INVAL => "EINVAL",
        Errno::NOENT => "ENOENT",
        Errno::ACCESS => "EACCES",
        Errno::PERM => "EPERM",
        Errno::EXIST => "EEXIST",
        Errno::NAMETOOLONG => "ENAMETOOLONG",
        Errno::NODEV => "ENODEV",
        Errno::BUSY => "EBUSY",
        Errno::ROFS => "EROFS",
        Errno::NOEXEC => "ENOEXEC",
        Errno::IO => "EIO",
        Errno::NOMEM => "ENOMEM",
        _ => "errno",
    }
}

fn register_hint(e: Errno) -> String {
    let cause = match e {
        Errno::INVAL => {
            "the kernel rejected the record; with the F flag this is what kernels older than 4.8 say"
        }
        Errno::NOENT => "the interpreter does not exist (F makes the kernel open it now)",
        Errno::ACCESS => {
            "the kernel cannot execute the interpreter (mode, noexec mount, or security module)"
        }
        Errno::EXIST => "an entry with this name appeared meanwhile (another tool registered it)",
        Errno::PERM => {
            "not permitted: run as root, or in a user namespace with its own binfmt_misc"
        }
        Errno::NAMETOOLONG => "the name is longer than 255 bytes",
        _ => "",
    };
    if cause.is_empty() {
        errno_words(e)
    } else {
        format!("{}: {cause}", errno_words(e))
    }
}

fn open_hint(e: Errno) -> String {
    match e {
        Errno::PERM | Errno::ACCESS | Errno::ROFS => format!(
            "{}: run as root (a read-only /proc, as in an unprivileged container, also does this)",
            errno_words(e)
        ),
        Errno::NOENT => format!("{}: is binfmt_misc mounted there?", errno_words(e)),
        _ => errno_words(e),
    }
}

fn mount_hint(e: Errno) -> String {
    let cause = match e {
        Errno::PERM | Errno::ACCESS => {
            "not permitted: run as root (or, on Linux >= 6.7, inside a user namespace with its own mount namespace)"
        }
        Errno::NODEV => "this kernel has no binfmt_misc: load it with `modprobe binfmt_misc`",
        Errno::NOENT | Errno::NOTDIR => "the mount point does not exist",
        _ => "",
    };
    if cause.is_empty() {
        errno_words(e)
    } else {
        format!("{}: {cause}", errno_words(e))
    }
}

/// An exclusive lock on the instance, released on drop.
pub struct LockGuard {
    _file: Option<File>,
}

/// Everything binfmtctl does to binfmt_misc.
pub trait BinfmtFs {
    /// Where the instance is (or should be) mounted.
    fn root(&self) -> &Path;
    fn is_mounted(&self) -> bool;
    fn mount(&self) -> Result<(), KernelError>;
    /// Every entry, newest first (the order in which the kernel tries them).
    fn list(&self) -> Result<Vec<KernelEntry>, KernelError>;
    /// Whether binfmt_misc as a whole is enabled (`status`).
    fn global_enabled(&self) -> Result<bool, KernelError>;
    /// One `write(2)` of the record to `register`, with `name` (raw bytes) as the entry's name
    /// instead of `reg.name`: how rollback restores another tool's entry byte for byte.
    fn register_named(&self, name: &[u8], reg: &Registration) -> Result<(), KernelError>;
    /// One `write(2)` of the record to `register`.
    fn register(&self, reg: &Registration) -> Result<(), KernelError> {
        self.register_named(reg.name.as_bytes(), reg)
    }
    /// Enables or disables the entry whose name is exactly these bytes.
    fn set_enabled_named(&self, name: &[u8], enabled: bool) -> Result<(), KernelError>;
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), KernelError> {
        self.set_enabled_named(name.as_bytes(), enabled)
    }
    /// Removes the entry whose name is exactly these bytes.
    fn remove_named(&self, name: &[u8]) -> Result<(), KernelError>;
    fn remove(&self, name: &str) -> Result<(), KernelError> {
        self.remove_named(name.as_bytes())
    }
    /// Serialises binfmtctl runs against the same instance.
    fn lock(&self) -> Result<LockGuard, KernelError>;
    /// Refuses, before any write, when this process may not `what` (mount, register, remove).
    fn require_privilege(&self, what: &str) -> Result<(), KernelError> {
        require_cap_sys_admin(what)
    }
}

/// CAP_SYS_ADMIN in the effective set (assumed present when it cannot be read).
pub fn require_cap_sys_admin(what: &str) -> Result<(), KernelError> {
    use caps::{CapSet, Capability};
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(true) {
        Ok(())
    } else {
        Err(KernelError::NotPermitted {
            what: what.to_owned(),
        })
    }
}

/// What `ensure_mounted` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounted {
    /// binfmt_misc was mounted already.
    Already,
    /// We mounted it. The entries of an instance live only while some mount of it exists
    /// (seen on 6.1 and 6.18): a mount made in a mount namespace that will go away takes them
    /// along (`host::mount_lifetime_warning` says when that may be the case).
    Now,
}

/// Makes sure binfmt_misc is mounted (mounting it if needed and allowed).
pub fn ensure_mounted(fs: &dyn BinfmtFs) -> Result<Mounted, KernelError> {
    if fs.is_mounted() {
        return Ok(Mounted::Already);
    }
    check_mount_point(fs.root())?;
    fs.require_privilege(&format!("mount binfmt_misc at {}", fs.root().display()))?;
    fs.mount()?;
    tracing::info!(root = %fs.root().display(), "mounted binfmt_misc");
    Ok(Mounted::Now)
}

/// For commands that must see the entries (status, uninstall, enable): mount binfmt_misc
/// when it is not mounted and we may (mounting changes no registration; never on a dry run).
/// Returns whether it is mounted now.
pub fn mount_to_read(fs: &dyn BinfmtFs, dry_run: bool) -> Result<bool, KernelError> {
    if fs.is_mounted() {
        return Ok(true);
    }
    check_mount_point(fs.root())?;
    if dry_run || fs.require_privilege("mount").is_err() {
        return Ok(false);
    }
    Ok(match fs.mount() {
        Ok(()) => {
            tracing::info!(root = %fs.root().display(), "mounted binfmt_misc to read its entries");
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot mount binfmt_misc");
            false
        }
    })
}

/// A mount point other than the usual one where no binfmt_misc is mounted (statfs magic
/// checked by `is_mounted`): binfmt_misc is mounted only at the usual place or on an empty
/// directory, never over a symlink, a file or a directory with contents (which it would hide).
pub fn check_mount_point(root: &Path) -> Result<(), KernelError> {
    if root == Path::new(DEFAULT_ROOT) {
        return Ok(());
    }
    let refuse = |what: &str| -> Result<(), KernelError> {
        Err(KernelError::MountPoint {
            root: root.to_owned(),
            what: what.to_owned(),
        })
    };
    match fs::symlink_metadata(root) {
        // Mounting reports it (exit 3).
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => refuse("a symbolic link"),
        Ok(m) if !m.is_dir() => refuse(crate::input::kind_of(m.file_type())),
        Ok(_) => {
            let empty = fs::read_dir(root).map_or(true, |mut rd| rd.next().is_none());
            if empty {
                Ok(())
            } else {
                refuse("a directory that is not empty")
            }
        }
    }
}

/// The entries (newest first), or none when binfmt_misc is not mounted: the kernel's view
/// before a plan.
pub fn snapshot(fs: &dyn BinfmtFs) -> Result<Vec<KernelEntry>, KernelError> {
    Ok(view(fs)?.0)
}

/// The entries (newest first) and whether binfmt_misc as a whole is enabled; empty and false
/// when it is not mounted.
pub fn view(fs: &dyn BinfmtFs) -> Result<(Vec<KernelEntry>, bool), KernelError> {
    if !fs.is_mounted() {
        return Ok((Vec::new(), false));
    }
    Ok((fs.list()?, fs.global_enabled()?))
}

/// A real binfmt_misc instance.
pub struct ProcBinfmt {
    root: PathBuf,
}

impl ProcBinfmt {
    pub fn new(root: impl Into<PathBuf>) -> ProcBinfmt {
        ProcBinfmt { root: root.into() }
    }

    fn write_entry(
        &self,
        name: &[u8],
        action: &'static str,
        value: &[u8],
    ) -> Result<(), KernelError> {
        // Exactly these bytes; a name is one path component (the kernel refuses '/').
        if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
            return Err(KernelError::Entry {
                name: display_name(name),
                action,
                errno: Errno::INVAL,
            });
        }
        let path = self.root.join(OsStr::from_bytes(name));
        let res = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write(value));
        res.map_err(|e| KernelError::Entry {
            name: display_name(name),
            action,
            errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
        })?;
        pause_after(&display_name(name));
        Ok(())
    }

    /// Debug builds only: `BINFMTCTL_FAILPOINT=register:<name>` (or `remove:<name>`,
    /// `enable:<name>`, `disable:<name>`) makes that operation on `<name>` fail with EIO before
    /// anything is written, so the integration tests can prove that a failure
    /// midway rolls back on the real kernel. Release builds ignore it.
    fn failpoint(&self, op: &str, name: &str) -> Result<(), Errno> {
        if cfg!(debug_assertions)
            && let Ok(fp) = std::env::var("BINFMTCTL_FAILPOINT")
            && fp == format!("{op}:{name}")
        {
            return Err(Errno::IO);
        }
        Ok(())
    }
}

/// Debug builds only: `BINFMTCTL_FAILPOINT=pause-after:<name>` makes the first write touching
/// `<name>` (register, remove, enable/disable) pause afterwards, once, until a termination signal
/// arrives (or 60 s pass), after telling so on stderr; the integration tests use it to send
/// SIGTERM/SIGINT at a known point of `install` without relying on timing.
fn pause_after(name: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static PAUSED: AtomicBool = AtomicBool::new(false);
    if cfg!(debug_assertions)
        && let Ok(fp) = std::env::var("BINFMTCTL_FAILPOINT")
        && fp == format!("pause-after:{name}")
        && !PAUSED.swap(true, Ordering::SeqCst)
    {
        eprintln!("binfmtctl: failpoint: paused after writing {name}");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while crate::binfmt::signals::pending_signal().is_none()
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Mounts a new binfmt_misc instance at `root` in this process's (new, private) user and mount
/// namespaces and checks that it is a fresh one (only `register` and `status`: no entry, so no
/// handler can take any exec). Linux >= 6.7 gives each user namespace an instance of its own;
/// before that the mount shows the host's instance, which is refused here.
pub fn mount_fresh_instance(root: &Path) -> Result<(), FreshInstanceError> {
    let fs = ProcBinfmt::new(root);
    fs.mount().map_err(|e| {
        FreshInstanceError::Mount(format!(
            "cannot mount a private binfmt_misc instance (needs Linux >= 6.7): {e}"
        ))
    })?;
    match fs.list() {
        Ok(entries) if entries.is_empty() => Ok(()),
        Ok(_) => Err(FreshInstanceError::NotFresh(
            "the binfmt_misc instance is not a fresh one".into(),
        )),
        Err(e) => Err(FreshInstanceError::NotFresh(format!(
            "cannot list the private binfmt_misc instance: {e}"
        ))),
    }
}

/// Why `mount_fresh_instance` failed: no mount (Linux < 6.7 in a user namespace), or a mount
/// that shows entries (not a private instance).
#[derive(Debug)]
pub enum FreshInstanceError {
    Mount(String),
    NotFresh(String),
}

impl BinfmtFs for ProcBinfmt {
    fn root(&self) -> &Path {
        &self.root
    }

    fn is_mounted(&self) -> bool {
        // f_type is i64 on x86_64 but a narrower or unsigned type on other targets.
        #[allow(clippy::unnecessary_cast)]
        rustix::fs::statfs(&self.root).is_ok_and(|s| s.f_type as i64 == BINFMTFS_MAGIC)
    }

    fn mount(&self) -> Result<(), KernelError> {
        use rustix::mount::{MountFlags, mount};
        // The flags systemd's proc-sys-fs-binfmt_misc.mount uses: nothing in it is a device,
        // a setuid binary or a program.
        let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        debug!(root = %self.root.display(), "mount binfmt_misc");
        mount("binfmt_misc", &self.root, "binfmt_misc", flags, None).map_err(|errno| {
            KernelError::Mount {
                root: self.root.clone(),
                errno,
            }
        })
    }

    fn list(&self) -> Result<Vec<KernelEntry>, KernelError> {
        let read_err = |path: &Path, source| KernelError::Read {
            path: path.to_owned(),
            source,
        };
        let mut out = Vec::new();
        for de in fs::read_dir(&self.root).map_err(|e| read_err(&self.root, e))? {
            let de = de.map_err(|e| read_err(&self.root, e))?;
            let raw = de.file_name().as_bytes().to_vec();
            if raw == b"register" || raw == b"status" {
                continue;
            }
            let name = display_name(&raw);
            let path = de.path();
            let text = match read_proc_text(&path) {
                Ok(t) => t,
                // Removed between readdir and read: another tool is at work; skip it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(&path, e)),
            };
            let entry = parse_entry(&name, &text).map_err(|source| KernelError::Parse {
                path: path.clone(),
                source,
            })?;
            out.push(KernelEntry {
                name: raw,
                entry,
                age: 0,
            });
        }
        // readdir order is newest first: number the ages downwards from there.
        let n = out.len() as u64;
        for (i, k) in out.iter_mut().enumerate() {
            k.age = n - i as u64;
        }
        Ok(out)
    }

    fn global_enabled(&self) -> Result<bool, KernelError> {
        let path = self.root.join("status");
        let s = read_proc_text(&path).map_err(|source| KernelError::Read { path, source })?;
        Ok(s.trim() == "enabled")
    }

    fn register_named(&self, raw: &[u8], reg: &Registration) -> Result<(), KernelError> {
        let name = display_name(raw);
        let record = reg
            .to_record_named(raw)
            .map_err(|source| KernelError::Invalid {
                name: name.clone(),
                source,
            })?;
        debug!(%name, flags = %reg.flags, interpreter = %reg.interpreter, "register");
        let fail = |errno| KernelError::Register {
            name: name.clone(),
            errno,
        };
        self.failpoint("register", &name).map_err(fail)?;
        let path = self.root.join("register");
        let mut f =
            OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| KernelError::OpenRegister {
                    name: name.clone(),
                    path: path.clone(),
                    errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
                })?;
        // One write(2): the kernel parses each write as a whole record.
        let n = f
            .write(&record)
            .map_err(|e| fail(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
        if n != record.len() {
            return Err(KernelError::ShortWrite {
                name: name.clone(),
                written: n,
                len: record.len(),
            });
        }
        pause_after(&reg.name);
        Ok(())
    }

    fn set_enabled_named(&self, name: &[u8], enabled: bool) -> Result<(), KernelError> {
        debug!(name = %display_name(name), enabled, "set enabled");
        let (action, value): (&'static str, &[u8]) = if enabled {
            ("enabling", b"1")
        } else {
            ("disabling", b"0")
        };
        // `enable:<name>` / `disable:<name>`, as for register (debug builds only).
        let op = if enabled { "enable" } else { "disable" };
        self.failpoint(op, &display_name(name))
            .map_err(|errno| KernelError::Entry {
                name: display_name(name),
                action,
                errno,
            })?;
        self.write_entry(name, action, value)
    }

    fn remove_named(&self, name: &[u8]) -> Result<(), KernelError> {
        debug!(name = %display_name(name), "remove");
        self.failpoint("remove", &display_name(name))
            .map_err(|errno| KernelError::Entry {
                name: display_name(name),
                action: "removing",
                errno,
            })?;
        self.write_entry(name, "removing", b"-1")
    }

    fn lock(&self) -> Result<LockGuard, KernelError> {
        let path = self.root.join("status");
        let fail = |errno| KernelError::Lock {
            path: path.clone(),
            errno,
        };
        let f =
            File::open(&path).map_err(|e| fail(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
        crate::lock::take(&f, crate::lock::Kind::Exclusive, true, || {
            format!("another binfmtctl changing {}", self.root.display())
        })
        .map_err(fail)?;
        Ok(LockGuard { _file: Some(f) })
    }
}

/// One call the fake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount,
    Register(String),
    Enable(String, bool),
    Remove(String),
    Lock,
}

/// In-memory binfmt_misc for planner and rollback tests. Mimics the kernel's rules that matter
/// to the caller: duplicate names fail with EEXIST, unknown names with ENOENT, newest first.
#[derive(Default)]
pub struct RecordingBinfmt {
    pub entries: RefCell<Vec<KernelEntry>>,
    pub calls: RefCell<Vec<Call>>,
    pub mounted: Cell<bool>,
    next_age: Cell<u64>,
    /// `(call, errno)` pairs: the first call equal to one fails once with its errno.
    pub fail: RefCell<Vec<(Call, Errno)>>,
}

impl RecordingBinfmt {
    pub fn mounted_with(entries: &[Entry]) -> RecordingBinfmt {
        let fake = RecordingBinfmt::default();
        fake.mounted.set(true);
        for e in entries {
            fake.push(e.clone());
        }
        fake
    }

    fn push(&self, entry: Entry) {
        let name = entry.registration.name.as_bytes().to_vec();
        self.push_named(&name, entry);
    }

    /// Adds an entry under a raw name (any bytes the kernel accepts), as another tool would.
    pub fn push_named(&self, name: &[u8], mut entry: Entry) {
        let age = self.next_age.get() + 1;
        self.next_age.set(age);
        entry.registration.name = display_name(name);
        self.entries.borrow_mut().insert(
            0,
            KernelEntry {
                name: name.to_vec(),
                entry,
                age,
            },
        );
    }

    fn record(&self, call: Call) -> Result<(), Errno> {
        self.calls.borrow_mut().push(call.clone());
        let mut fail = self.fail.borrow_mut();
        match fail.iter().position(|(c, _)| *c == call) {
            Some(i) => Err(fail.remove(i).1),
            None => Ok(()),
        }
    }

    /// The entries as text, the way the kernel would show them (for assertions).
    pub fn rendered(&self) -> Vec<(String, String)> {
        self.entries
            .borrow()
            .iter()
            .map(|k| (k.entry.registration.name.clone(), render_entry(&k.entry)))
            .collect()
    }

    /// Raw names and rendered entries, for byte-exact assertions.
    pub fn rendered_raw(&self) -> Vec<(Vec<u8>, String)> {
        let mut v: Vec<(Vec<u8>, String)> = self
            .entries
            .borrow()
            .iter()
            .map(|k| (k.name.clone(), render_entry(&k.entry)))
            .collect();
        v.sort();
        v
    }
}

impl BinfmtFs for RecordingBinfmt {
    fn root(&self) -> &Path {
        Path::new("/fake/binfmt_misc")
    }

    fn is_mounted(&self) -> bool {
        self.mounted.get()
    }

    fn mount(&self) -> Result<(), KernelError> {
        self.record(Call::Mount)
            .map_err(|errno| KernelError::Mount {
                root: self.root().to_owned(),
                errno,
            })?;
        self.mounted.set(true);
        Ok(())
    }

    fn list(&self) -> Result<Vec<KernelEntry>, KernelError> {
        Ok(self.entries.borrow().clone())
    }

    fn global_enabled(&self) -> Result<bool, KernelError> {
        Ok(true)
    }

    fn register_named(&self, raw: &[u8], reg: &Registration) -> Result<(), KernelError> {
        let name = display_name(raw);
        let fail = |errno| KernelError::Register {
            name: name.clone(),
            errno,
        };
        reg.to_record_named(raw).map_err(|_| fail(Errno::INVAL))?;
        self.record(Call::Register(name.clone())).map_err(fail)?;
        if self.entries.borrow().iter().any(|k| k.name == raw) {
            return Err(fail(Errno::EXIST));
        }
        self.push_named(
            raw,
            Entry {
                registration: Registration {
                    flags: reg.flags.normalized(),
                    ..reg.clone()
                },
                enabled: true,
            },
        );
        Ok(())
    }

    fn set_enabled_named(&self, raw: &[u8], enabled: bool) -> Result<(), KernelError> {
        let name = display_name(raw);
        let fail = |errno| KernelError::Entry {
            name: name.clone(),
            action: "enabling",
            errno,
        };
        self.record(Call::Enable(name.clone(), enabled))
            .map_err(fail)?;
        let mut es = self.entries.borrow_mut();
        let k = es
            .iter_mut()
            .find(|k| k.name == raw)
            .ok_or_else(|| fail(Errno::NOENT))?;
        k.entry.enabled = enabled;
        Ok(())
    }

    fn remove_named(&self, raw: &[u8]) -> Result<(), KernelError> {
        let name = display_name(raw);
        let fail = |errno| KernelError::Entry {
            name: name.clone(),
            action: "removing",
            errno,
        };
        self.record(Call::Remove(name.clone())).map_err(fail)?;
        let mut es = self.entries.borrow_mut();
        let before = es.len();
        es.retain(|k| k.name != raw);
        if es.len() == before {
            return Err(fail(Errno::NOENT));
        }
        Ok(())
    }

    fn lock(&self) -> Result<LockGuard, KernelError> {
        self.calls.borrow_mut().push(Call::Lock);
        Ok(LockGuard { _file: None })
    }

    /// The fake asks for no privilege.
    fn require_privilege(&self, _what: &str) -> Result<(), KernelError> {
        Ok(())
    }
}

/// A binfmt_misc file's text. The kernel shows each in one page and reports its size as 0, so
/// `fs::read_to_string` would stat it and then read in growing steps from 32 bytes (five reads
/// for an entry); a page-sized buffer takes it in one read and the end in a second, with no
/// stat or seek (`File`'s own `read_to_string` asks for a size hint first).
fn read_proc_text(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut text = Vec::with_capacity(4096);
    let mut page = [0u8; 4096];
    loop {
        match file.read(&mut page) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&page[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_entry_errno_and_cause() {
        let e = KernelError::Register {
            name: "qemu-aarch64".into(),
            errno: Errno::INVAL,
        };
        let s = e.to_string();
        assert!(
            s.contains("qemu-aarch64") && s.contains("EINVAL") && s.contains("4.8"),
            "{s}"
        );
        let e = KernelError::Register {
            name: "q".into(),
            errno: Errno::NOENT,
        };
        assert!(e.to_string().contains("interpreter does not exist"));
        let e = KernelError::Mount {
            root: "/x".into(),
            errno: Errno::PERM,
        };
        assert!(e.to_string().contains("run as root"), "{e}");
        assert!(e.is_environment());
        let e = KernelError::OpenRegister {
            name: "qemu-arm".into(),
            path: "/p/register".into(),
            errno: Errno::ACCESS,
        };
        assert!(e.to_string().starts_with("cannot open /p/register to register qemu-arm: permission denied (EACCES): run as root"), "{e}");
        assert!(e.is_environment());
    }

    #[test]
    fn fake_mimics_kernel_rules() {
        let reg = crate::binfmt::arch::Table::builtin()
            .get("aarch64")
            .unwrap()
            .registration(
                "/usr/bin/qemu-aarch64-static",
                crate::binfmt::registration::Flags::DEFAULT,
            );
        let fake = RecordingBinfmt::mounted_with(&[]);
        fake.register(&reg).unwrap();
        let e = fake.register(&reg).unwrap_err();
        assert!(matches!(
            e,
            KernelError::Register {
                errno: Errno::EXIST,
                ..
            }
        ));
        fake.remove("qemu-aarch64").unwrap();
        assert!(fake.remove("qemu-aarch64").is_err());
        assert_eq!(
            *fake.calls.borrow(),
            [
                Call::Register("qemu-aarch64".into()),
                Call::Register("qemu-aarch64".into()),
                Call::Remove("qemu-aarch64".into()),
                Call::Remove("qemu-aarch64".into()),
            ]
        );
    }

    #[test]
    fn unmounted_directory_is_not_binfmt_misc() {
        let d = tempfile::tempdir().unwrap();
        assert!(!ProcBinfmt::new(d.path()).is_mounted());
    }
}
