//! The QEMU store: `<root>/<version>/bin/qemu-<cpu>` plus `<root>/<version>/manifest.json`
//! (origin, package, version, the .deb's sha256, each file's sha256), default root
//! `/var/lib/binfmtctl/qemu`.
//!
//! Invariants: a version directory appears whole or not at all (built in `<root>/.tmp-*`,
//! then `rename(2)`d into place); writers (fetch, gc) hold `flock(2)` on `<root>/.lock`
//! exclusively, and whoever takes it removes `.tmp-*` left by a killed writer; users (install
//! `--qemu`, `qemu use`, `apply` with `qemu = …`) hold it shared from resolving the version
//! through the kernel write, so gc cannot remove a version between their checks and the
//! registration; directories are 0755 and files 0755,
//! root-owned (we run as root and create them), so the interpreter checks accept them.
//! Needs root (write access to the root directory) for every change; reading needs nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::version::{compare_versions, version_matches};
use crate::input::hex;

pub const DEFAULT_ROOT: &str = "/var/lib/binfmtctl/qemu";
/// Largest .deb we accept.
pub(crate) const MAX_DEB: u64 = 1 << 30;
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write the store at {path}: {err}: {}", io_hint(err))]
    Write { path: PathBuf, err: std::io::Error },
    #[error("cannot lock the store ({path}): {reason}")]
    Lock { path: PathBuf, reason: String },
    #[error(
        "no QEMU {spec} in the store {root}: run `binfmtctl qemu fetch {spec}` first (`binfmtctl qemu list` shows what is there; `binfmtctl qemu use system` goes back to the system's QEMU)"
    )]
    NotFound { spec: String, root: PathBuf },
    #[error("QEMU {version} is already in the store ({path})")]
    Exists { version: String, path: PathBuf },
    #[error(
        "{path}: bad manifest ({reason}): run `binfmtctl qemu verify`; remove the version and fetch it again"
    )]
    BadManifest { path: PathBuf, reason: String },
    #[error(
        "QEMU {version} is used by {users}: switch them first (`binfmtctl qemu use OTHER`) or uninstall them"
    )]
    InUse { version: String, users: String },
    /// A local .deb of a version the store holds from another .deb: `detail` says where the
    /// stored copy came from, both hashes and the way out (`qemu::fetch`).
    #[error("QEMU {version} is already in the store {detail}")]
    Conflict { version: String, detail: String },
    #[error(
        "the store {path} is unsafe: {reason}: keep the store in a directory only root can change (the default is /var/lib/binfmtctl/qemu)"
    )]
    Unsafe { path: PathBuf, reason: String },
}

impl StoreError {
    pub fn is_environment(&self) -> bool {
        matches!(self, StoreError::Write { .. } | StoreError::Lock { .. })
    }
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::InUse { .. }
                | StoreError::Unsafe { .. }
                | StoreError::Conflict { .. }
        )
    }
}

/// The fix for a failed write, by errno.
pub fn io_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(28) => {
            "the disk is full: free space, or put the store elsewhere with --qemu-store DIR"
        }
        Some(30) => "the file system is read-only: put the store elsewhere with --qemu-store DIR",
        Some(13) | Some(1) => "permission denied: run as root, or use --qemu-store DIR",
        _ => "check the directory, or use --qemu-store DIR",
    }
}

fn write_err(path: &Path, err: std::io::Error) -> StoreError {
    StoreError::Write {
        path: path.to_owned(),
        err,
    }
}

/// One file of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// `qemu-aarch64`
    pub name: String,
    /// QEMU's CPU name
    pub cpu: String,
    pub sha256: String,
    pub size: u64,
    /// The path inside the .deb
    pub member: String,
    /// `qemu-aarch64 version 10.0.6 (Debian …)`, as embedded in the binary
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qemu_version: Option<String>,
}

/// Where a version came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Debian version without the epoch: the directory name
    pub version: String,
    /// Full Debian version
    pub debian_version: String,
    pub package: String,
    /// `trixie`, …, or `local` for --from-deb
    pub suite: String,
    /// `debian-archive (InRelease signed by <fpr>)` or `unverified (local .deb)`
    pub origin: String,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mirror: Option<String>,
    /// The InRelease it was verified by was past its `Valid-Until`, used as allowed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expired: Option<Expired>,
    pub deb_sha256: String,
    pub deb_size: u64,
    /// Seconds since the epoch
    pub fetched_at: u64,
    pub files: Vec<FileEntry>,
}

/// An InRelease used past its `Valid-Until` (a dated snapshot mirror), and what allowed it:
/// `--allow-expired`, or apt's `Acquire::Check-Valid-Until "false"` / a source's
/// `check-valid-until=no` (with file and line) for the mirror taken from apt's sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    /// The `Valid-Until` date, as the InRelease writes it.
    pub valid_until: String,
    pub allowed_by: String,
}

/// A version present in the store.
#[derive(Debug, Clone)]
pub struct Stored {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Stored {
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }
}

/// Held while writing (exclusive) or while registering a stored version (shared); released
/// on drop. No file: a shared lock inside a user namespace that cannot open the host's
/// `.lock` (see `Store::lock_shared`).
pub struct StoreLock {
    _file: Option<File>,
}

/// A version being built; removed on drop unless committed.
pub struct Staging {
    pub dir: PathBuf,
    done: bool,
}

impl Staging {
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// A private (0700) directory with `bin/` outside any store, for a dry run: removed on
    /// drop, never committed.
    pub fn scratch() -> Result<Staging, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("binfmtctl-fetch-{}-{nanos}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| write_err(&dir, e))?;
        let st = Staging { dir, done: false };
        Store::mkdir(&st.bin())?;
        Ok(st)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Store {
    pub root: PathBuf,
    /// Wait for another holder of the lock (the default); `false`: fail at once with
    /// `StoreError::Lock`.
    pub wait: bool,
}

/// The directory name for a Debian version (epoch dropped: `:` is awkward in paths).
pub fn dir_name(debian_version: &str) -> String {
    debian_version
        .split_once(':')
        .map_or(debian_version, |(_, r)| r)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-.~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            wait: true,
        }
    }

    fn mkdir(path: &Path) -> Result<(), StoreError> {
        match fs::DirBuilder::new().mode(0o755).create(path) {
            Ok(()) => {
                // The umask may have narrowed it; the interpreter checks want 0755 exactly.
                fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| write_err(path, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(write_err(path, e)),
        }
    }

    /// Takes the writer lock (waiting for another writer, with a note on stderr), creating
    /// the root if needed, and removes what a killed writer left behind.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        if let Some(parent) = self.root.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| write_err(parent, e))?;
        }
        Self::mkdir(&self.root)?;
        self.check_owner()?;
        let lock = self.open_lock(true, false)?;
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    tracing::info!(path = %e.path().display(), "removing what an interrupted fetch left");
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(lock)
    }

    /// Takes `.lock` exclusively (a writer) or shared (a user of a version): at once, else
    /// (with a note on stderr) waiting unless `wait` is off.
    fn flock(&self, f: &File, path: &Path, exclusive: bool) -> Result<(), StoreError> {
        use crate::lock::Kind;
        let (kind, who) = if exclusive {
            (Kind::Exclusive, "using or writing")
        } else {
            (Kind::Shared, "writing")
        };
        crate::lock::take(f, kind, self.wait, || {
            format!("another binfmtctl {who} the store {}", self.root.display())
        })
        .map_err(|e| StoreError::Lock {
            path: path.to_owned(),
            reason: if e == rustix::io::Errno::WOULDBLOCK {
                format!("another binfmtctl is {who} the store")
            } else {
                e.to_string()
            },
        })
    }

    /// Takes the lock shared, for registering interpreters of a stored version: gc (which
    /// takes it exclusively) waits until the kernel holds them. The same checks as a writer's:
    /// the root is a directory, not a symlink, owned by root or the caller (`unmapped`: or
    /// that uid, the overflow uid inside a user namespace when the caller vouches for it),
    /// not writable by group or others; `.lock` is never opened through a symlink and must be
    /// a regular file. The root is not created. Inside a user namespace where the root's
    /// owner is not mapped, the host's `.lock` (0600) cannot be opened: nothing in here can
    /// hold off the host's gc anyway, so the lock is then empty.
    pub fn lock_shared(&self, unmapped: Option<u32>) -> Result<StoreLock, StoreError> {
        let owner = self.check_owner_with(unmapped)?;
        self.open_lock(false, unmapped.is_some() && Some(owner) == unmapped)
    }

    /// Opens and takes `.lock` (the root already checked), for writers (`exclusive`) and
    /// users alike: never through a symlink (`O_NOFOLLOW`), with `O_NONBLOCK` so that a FIFO
    /// planted there cannot hang the open, created 0600 with `O_EXCL` when missing, and only
    /// a regular file is locked (`fstat`); then `flock`, waiting unless `wait` is off.
    /// `unmapped_owner`: the root's owner is not mapped here, and a `.lock` that cannot be
    /// opened gives an empty lock (see `lock_shared`).
    fn open_lock(&self, exclusive: bool, unmapped_owner: bool) -> Result<StoreLock, StoreError> {
        use rustix::fs::{Mode, OFlags, open};
        use rustix::io::Errno;
        let path = self.root.join(".lock");
        let ro = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let opened = match open(&path, ro, Mode::empty()) {
            Err(Errno::NOENT) => open(
                &path,
                ro | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            )
            .or_else(|e| {
                // Another process made it in between.
                if e == Errno::EXIST {
                    open(&path, ro, Mode::empty())
                } else {
                    Err(e)
                }
            }),
            other => other,
        };
        let unsafe_ = |what: &str| StoreError::Unsafe {
            path: self.root.clone(),
            reason: format!("{} is {what}, not a regular file", path.display()),
        };
        let f = match opened {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => return Err(unsafe_("a symbolic link")),
            Err(Errno::ACCESS) if unmapped_owner => {
                tracing::info!(path = %path.display(), "the store's lock belongs to an owner not mapped here: not taken");
                return Ok(StoreLock { _file: None });
            }
            Err(e) => return Err(write_err(&path, e.into())),
        };
        let m = f.metadata().map_err(|e| write_err(&path, e))?;
        if !m.is_file() {
            return Err(unsafe_(crate::input::kind_of(m.file_type())));
        }
        self.flock(&f, &path, exclusive)?;
        Ok(StoreLock { _file: Some(f) })
    }

    /// The newest stored version `spec` selects, with the shared lock held (see
    /// `lock_shared`): resolved once to report a missing version as such, then again under
    /// the lock, since a gc may have removed it meanwhile.
    pub fn resolve_shared(
        &self,
        spec: &str,
        unmapped: Option<u32>,
    ) -> Result<(StoreLock, Stored), StoreError> {
        self.find(spec)?;
        let lock = self.lock_shared(unmapped)?;
        let (s, skipped) = self.pick(spec)?;
        tell_the_choice(&s, skipped.as_ref());
        Ok((lock, s))
    }

    /// Writers refuse a store root someone else could change: there they could swap the
    /// staging directory for a symlink while root writes into it, or plant `.lock` as a
    /// symlink for root to create a file through. The root must be a directory (not a
    /// symlink), owned by root or the caller, and not writable by group or others.
    fn check_owner(&self) -> Result<(), StoreError> {
        self.check_owner_with(None).map(|_| ())
    }

    /// `check_owner`, also accepting `unmapped` as the owner; returns the owner.
    fn check_owner_with(&self, unmapped: Option<u32>) -> Result<u32, StoreError> {
        let unsafe_ = |reason: String| StoreError::Unsafe {
            path: self.root.clone(),
            reason,
        };
        crate::input::private_dir(&self.root, unmapped)
            .map_err(|e| write_err(&self.root, e))?
            .map_err(unsafe_)
    }

    /// A fresh staging directory (with `bin/`) under the root.
    pub fn staging(&self, _lock: &StoreLock) -> Result<Staging, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = self
            .root
            .join(format!(".tmp-{}-{nanos}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(|e| write_err(&dir, e))?;
        let st = Staging { dir, done: false };
        fs::set_permissions(&st.dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| write_err(&st.dir, e))?;
        Self::mkdir(&st.bin())?;
        Ok(st)
    }

    pub fn version_dir(&self, manifest: &Manifest) -> PathBuf {
        self.root.join(&manifest.version)
    }

    /// Writes the manifest into the staging directory, syncs, and renames it into place.
    pub fn commit(
        &self,
        _lock: &StoreLock,
        mut staging: Staging,
        manifest: &Manifest,
    ) -> Result<Stored, StoreError> {
        // Never write a manifest that would not be read back.
        check_manifest(manifest).map_err(|reason| StoreError::BadManifest {
            path: staging.dir.join(MANIFEST),
            reason,
        })?;
        let target = self.version_dir(manifest);
        if target.exists() {
            return Err(StoreError::Exists {
                version: manifest.version.clone(),
                path: target,
            });
        }
        let mpath = staging.dir.join(MANIFEST);
        write_manifest(&mpath, manifest)?;
        sync_dirs(&staging)?;
        fs::rename(&staging.dir, &target).map_err(|e| write_err(&target, e))?;
        staging.done = true;
        if let Ok(d) = File::open(&self.root) {
            let _ = d.sync_all();
        }
        tracing::info!(version = %manifest.version, dir = %target.display(), "stored QEMU");
        Ok(Stored {
            dir: target,
            manifest: manifest.clone(),
        })
    }

    /// Every complete version (a directory with a readable manifest), oldest first.
    pub fn list(&self) -> Vec<Stored> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(&self.root) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            if let Ok(m) = read_manifest(&e.path()) {
                out.push(Stored {
                    dir: e.path(),
                    manifest: m,
                });
            }
        }
        out.sort_by(|a, b| {
            compare_versions(&a.manifest.debian_version, &b.manifest.debian_version)
        });
        out
    }

    /// Directories that look like versions but whose manifest is missing or unreadable.
    pub fn broken(&self) -> Vec<(PathBuf, String)> {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.') && e.path().is_dir())
            .filter_map(|e| {
                read_manifest(&e.path())
                    .err()
                    .map(|err| (e.path(), err.to_string()))
            })
            .collect()
    }

    /// The stored version `spec` selects (`10.0`, `10.0.6`, a full version, a suite name, or
    /// `latest`) for registering its interpreters: as `find`, and a warning on stderr when
    /// it is an unverified one (from `fetch --from-deb`).
    pub fn resolve(&self, spec: &str) -> Result<Stored, StoreError> {
        let (s, skipped) = self.pick(spec)?;
        tell_the_choice(&s, skipped.as_ref());
        Ok(s)
    }

    /// The stored version `spec` selects, verified ones first: the newest verified version it
    /// matches, else the newest unverified one. A version directory whose manifest is bad is
    /// reported as such when its name matches (not as missing).
    pub fn find(&self, spec: &str) -> Result<Stored, StoreError> {
        self.pick(spec).map(|(s, _)| s)
    }

    /// `find`, and the newer unverified version it passed over for a verified one, if any.
    fn pick(&self, spec: &str) -> Result<(Stored, Option<Stored>), StoreError> {
        let all = self.list();
        let matches = |s: &Stored| {
            spec == "latest"
                || version_matches(spec, &s.manifest.debian_version)
                || s.manifest.version == spec
                || s.manifest.suite == spec
        };
        let candidates: Vec<&Stored> = all.iter().filter(|s| matches(s)).collect();
        let found = candidates
            .iter()
            .rev()
            .find(|s| s.manifest.verified)
            .or(candidates.last());
        if let Some(s) = found {
            let skipped = candidates
                .last()
                .filter(|n| n.dir != s.dir)
                .map(|n| (*n).clone());
            return Ok(((*s).clone(), skipped));
        }
        let named = |d: &Path| {
            d.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n == spec || version_matches(spec, &n)
            })
        };
        if let Some((dir, _)) = self.broken().into_iter().find(|(d, _)| named(d)) {
            return Err(read_manifest(&dir).err().unwrap_or(StoreError::NotFound {
                spec: spec.to_owned(),
                root: self.root.clone(),
            }));
        }
        Err(StoreError::NotFound {
            spec: spec.to_owned(),
            root: self.root.clone(),
        })
    }

    /// Puts a verified version in place of the unverified copy of the same version: one
    /// `renameat2(RENAME_EXCHANGE)` swaps the two directories (the version's path never
    /// vanishes, entries registered from it now reach the verified files), then the old copy
    /// is removed.
    pub fn replace(
        &self,
        lock: &StoreLock,
        mut staging: Staging,
        manifest: &Manifest,
    ) -> Result<Stored, StoreError> {
        check_manifest(manifest).map_err(|reason| StoreError::BadManifest {
            path: staging.dir.join(MANIFEST),
            reason,
        })?;
        let target = self.version_dir(manifest);
        if !target.exists() {
            return self.commit(lock, staging, manifest);
        }
        let mpath = staging.dir.join(MANIFEST);
        write_manifest(&mpath, manifest)?;
        sync_dirs(&staging)?;
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &staging.dir,
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| write_err(&target, e.into()))?;
        // `staging.dir` now holds the old copy: dropping `staging` removes it.
        if let Ok(d) = File::open(&self.root) {
            let _ = d.sync_all();
        }
        let _ = fs::remove_dir_all(&staging.dir);
        staging.done = true;
        tracing::info!(version = %manifest.version, dir = %target.display(), "replaced the unverified copy of QEMU with a verified one");
        Ok(Stored {
            dir: target,
            manifest: manifest.clone(),
        })
    }

    /// Re-hashes every file of `s` against its manifest and checks modes and owners.
    pub fn verify_version(s: &Stored) -> Vec<String> {
        let mut problems = Vec::new();
        let bin = s.bin();
        let mut listed: Vec<&str> = Vec::new();
        for f in &s.manifest.files {
            listed.push(&f.name);
            let p = bin.join(&f.name);
            // Only a regular file is read (a link to /dev/zero or a FIFO is reported, not read).
            if fs::symlink_metadata(&p).is_ok_and(|m| !m.file_type().is_file()) {
                problems.push(format!("{}: not a regular file", p.display()));
                continue;
            }
            match fs::read(&p) {
                Ok(b) => {
                    let h = hex(&Sha256::digest(&b));
                    if h != f.sha256 {
                        problems.push(format!(
                            "{}: sha256 {h}, the manifest says {} (tampered or corrupted)",
                            p.display(),
                            f.sha256
                        ));
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", p.display())),
            }
            if let Ok(m) = fs::symlink_metadata(&p) {
                if !m.file_type().is_file() {
                    problems.push(format!("{}: not a regular file", p.display()));
                }
                if m.mode() & 0o022 != 0 || m.uid() != 0 {
                    problems.push(format!(
                        "{}: mode {:o} uid {}: must be root-owned and not writable by others",
                        p.display(),
                        m.mode() & 0o7777,
                        m.uid()
                    ));
                }
            }
        }
        if let Ok(rd) = fs::read_dir(&bin) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !listed.contains(&n.as_str()) {
                    problems.push(format!(
                        "{}: not in the manifest (added after the fetch)",
                        e.path().display()
                    ));
                }
            }
        }
        for d in [s.dir.clone(), bin] {
            if let Ok(m) = fs::metadata(&d)
                && (m.mode() & 0o022 != 0 || m.uid() != 0)
            {
                problems.push(format!(
                    "{}: mode {:o} uid {}: must be root-owned and not writable by others",
                    d.display(),
                    m.mode() & 0o7777,
                    m.uid()
                ));
            }
        }
        problems
    }

    /// Removes a version: renamed away first (so it vanishes at once), then deleted. The
    /// caller checks it is unused.
    pub fn remove(&self, _lock: &StoreLock, s: &Stored) -> Result<(), StoreError> {
        let gone = self.root.join(format!(
            ".tmp-gc-{}-{}",
            s.manifest.version,
            std::process::id()
        ));
        fs::rename(&s.dir, &gone).map_err(|e| write_err(&s.dir, e))?;
        fs::remove_dir_all(&gone).map_err(|e| write_err(&gone, e))?;
        tracing::info!(version = %s.manifest.version, "removed QEMU from the store");
        Ok(())
    }
}

/// Writes `manifest` as a new file at `path`, synced.
fn write_manifest(path: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let text = serde_json::to_string_pretty(manifest).unwrap_or_default() + "\n";
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| write_err(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| write_err(path, e))
}

/// Syncs a staged version's directories before it is renamed into place.
fn sync_dirs(staging: &Staging) -> Result<(), StoreError> {
    for d in [staging.bin(), staging.dir.clone()] {
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| write_err(&d, e))?;
    }
    Ok(())
}

/// Says on stderr which version is about to be registered when it is not simply the newest
/// match: a newer unverified one was passed over (`skipped`), or it is unverified itself (no
/// signed index vouches for its interpreters: `fetch --from-deb`), which is a warning.
fn tell_the_choice(s: &Stored, skipped: Option<&Stored>) {
    if let Some(newer) = skipped {
        eprintln!(
            "binfmtctl: note: using QEMU {} (verified); the newer {} in the store is unverified (from a local .deb): name it exactly to use it",
            s.manifest.version, newer.manifest.version
        );
    }
    if !s.manifest.verified {
        eprintln!(
            "binfmtctl: warning: QEMU {} in the store is unverified ({}): no signed Debian index vouches for it; `binfmtctl qemu fetch {}` stores the archive's verified copy in its place",
            s.manifest.version,
            crate::escape::escape(&s.manifest.origin),
            s.manifest.version
        );
    }
}

/// The largest manifest read: 1 MiB (a real one is about 1 KiB per interpreter).
const MAX_MANIFEST: u64 = 1 << 20;

/// Reads and checks `<dir>/manifest.json` (`check_manifest`); the version must be the
/// directory's name. Read as every input: a regular file, at most `MAX_MANIFEST` bytes.
pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let p = dir.join(MANIFEST);
    let bad = |reason: String| StoreError::BadManifest {
        path: p.clone(),
        reason,
    };
    let bytes = crate::input::open_regular(&p)
        .and_then(|f| crate::input::read_bounded(&p, f, MAX_MANIFEST))
        .map_err(|e| bad(e.to_string()))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    check_manifest(&m).map_err(bad)?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if name.as_deref() != Some(m.version.as_str()) {
        return Err(bad(format!(
            "field version: {:?} is not the name of its directory",
            m.version
        )));
    }
    Ok(m)
}

/// Is `s` `len` lowercase hex digits (a sha256 as binfmtctl writes it)?
fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks every field of a manifest (`Err` names the field): what `qemu list`, `verify`,
/// `install --qemu` and `use` show and join to paths is then what binfmtctl wrote. Hashes
/// are 64 lowercase hex digits (a non-ASCII `deb_sha256` made `qemu list` panic when it cut
/// it, and `qemu verify` called the manifest ok), sizes at most those of a .deb, the version
/// the directory name of the Debian version, names only plain `qemu-<cpu>` files (they are
/// joined to the version's bin/: a `/` or `..` would reach outside the store), and no text
/// field holds control characters.
pub fn check_manifest(m: &Manifest) -> Result<(), String> {
    let max = MAX_DEB;
    let text = |field: &str, v: &str, max_len: usize| {
        if v.is_empty() || v.len() > max_len || v.contains(char::is_control) {
            Err(format!(
                "field {field}: {v:?} is not 1 to {max_len} bytes of text without control characters"
            ))
        } else {
            Ok(())
        }
    };
    text("debian_version", &m.debian_version, 256)?;
    if !m
        .debian_version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-.~:".contains(&b))
    {
        return Err(format!(
            "field debian_version: {:?} is not a Debian version",
            m.debian_version
        ));
    }
    if m.version != dir_name(&m.debian_version) {
        return Err(format!(
            "field version: {:?} is not the directory name of {:?} ({:?})",
            m.version,
            m.debian_version,
            dir_name(&m.debian_version)
        ));
    }
    text("package", &m.package, 256)?;
    text("suite", &m.suite, 256)?;
    text("origin", &m.origin, 4096)?;
    if let Some(u) = &m.mirror {
        text("mirror", u, 4096)?;
    }
    if !is_hex(&m.deb_sha256, 64) {
        return Err(format!(
            "field deb_sha256: {:?} is not 64 lowercase hex digits",
            m.deb_sha256
        ));
    }
    if m.deb_size == 0 || m.deb_size > max {
        return Err(format!(
            "field deb_size: {} is not a size from 1 to {max} bytes",
            m.deb_size
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, f) in m.files.iter().enumerate() {
        if f.name != format!("qemu-{}", f.cpu)
            || f.cpu.is_empty()
            || !f
                .cpu
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "field files[{i}].name: file {:?} (cpu {:?}) is not a qemu-<cpu> file name",
                f.name, f.cpu
            ));
        }
        if !names.insert(f.name.as_str()) {
            return Err(format!(
                "field files[{i}].name: {:?} is listed twice",
                f.name
            ));
        }
        if !is_hex(&f.sha256, 64) {
            return Err(format!(
                "field files[{i}].sha256: {:?} is not 64 lowercase hex digits",
                f.sha256
            ));
        }
        if f.size > max {
            return Err(format!(
                "field files[{i}].size: {} is larger than {max} bytes",
                f.size
            ));
        }
        text(&format!("files[{i}].member"), &f.member, 4096)?;
        if let Some(v) = &f.qemu_version {
            text(&format!("files[{i}].qemu_version"), v, 4096)?;
        }
    }
    Ok(())
}

/// Does an interpreter path lie inside this stored version? Entries hold the resolved path
/// (install registers the file, never a symlink), so the version's directory is compared
/// resolved too: a store named through a symlink or with `..` (`--qemu-store`, or a
/// symlinked `/var/lib`) still sees its users, and `gc` never removes a version in use.
pub fn uses(s: &Stored, interpreter: &str) -> bool {
    let bin = s.bin();
    let p = Path::new(interpreter);
    p.starts_with(&bin) || fs::canonicalize(&bin).is_ok_and(|b| p.starts_with(b))
}

impl crate::error::Classify for StoreError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::of(self.is_usage(), self.is_environment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(v: &str) -> Manifest {
        Manifest {
            version: dir_name(v),
            debian_version: v.into(),
            package: "qemu-user".into(),
            suite: "trixie".into(),
            origin: "test".into(),
            verified: false,
            mirror: None,
            expired: None,
            deb_sha256: "0".repeat(64),
            deb_size: 1,
            fetched_at: 0,
            files: vec![],
        }
    }

    #[test]
    fn staged_versions_appear_whole_and_resolve() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("qemu"));
        let lock = store.lock().unwrap();
        let st = store.staging(&lock).unwrap();
        let staged = st.dir.clone();
        assert!(
            store.list().is_empty(),
            "a staging directory is not a version"
        );
        store
            .commit(&lock, st, &manifest("1:10.0.6+ds-0+deb13u2"))
            .unwrap();
        assert!(!staged.exists());
        let st = store.staging(&lock).unwrap();
        store
            .commit(&lock, st, &manifest("1:7.2+dfsg-7+deb12u18"))
            .unwrap();
        let l = store.list();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].manifest.version, "7.2+dfsg-7+deb12u18");
        assert_eq!(
            store.resolve("10.0").unwrap().manifest.version,
            "10.0.6+ds-0+deb13u2"
        );
        assert_eq!(
            store.resolve("latest").unwrap().manifest.version,
            "10.0.6+ds-0+deb13u2"
        );
        assert!(matches!(
            store.resolve("9.1"),
            Err(StoreError::NotFound { .. })
        ));
        // A dropped staging directory is removed; a leftover one is cleaned by the next lock.
        let st = store.staging(&lock).unwrap();
        let d = st.dir.clone();
        drop(st);
        assert!(!d.exists());
        std::mem::forget(store.staging(&lock).unwrap());
        drop(lock);
        let _lock = store.lock().unwrap();
        let left: Vec<_> = fs::read_dir(&store.root)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Writers (fetch, gc) refuse a store root others may change or that is a link, and
    /// never create `.lock` through a symlink.
    #[test]
    fn writers_refuse_a_store_others_can_change() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("qemu");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let victim = t.path().join("nologin");
        std::os::unix::fs::symlink(&victim, root.join(".lock")).unwrap();
        let e = Store::new(&root).lock().err().expect("refused");
        assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("writable by group or others (mode 777)")
        );
        assert!(!victim.exists(), "nothing created through the planted link");
        std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
        let e = Store::new(t.path().join("link"))
            .lock()
            .err()
            .expect("refused");
        assert!(e.to_string().contains("it is a symbolic link"), "{e}");
        // Fixed modes: the link at .lock is still never followed.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Store::new(&root).lock().is_err());
        assert!(!victim.exists());
        fs::remove_file(root.join(".lock")).unwrap();
        assert!(Store::new(&root).lock().is_ok());
    }

    /// A writer opens `.lock` as users do: a FIFO planted there is refused at once (the
    /// open does not wait for a peer, nothing is locked) and a symlink is never followed,
    /// both as the store being unsafe; a shared user refuses them the same way.
    #[test]
    fn writers_refuse_a_fifo_or_a_symlink_at_lock_without_hanging() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("qemu");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let lock = root.join(".lock");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &lock,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for store in [
            Store::new(&root),
            Store {
                wait: false,
                ..Store::new(&root)
            },
        ] {
            let e = store.lock().err().expect("a FIFO is refused");
            assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
            assert!(
                e.to_string().contains("is a FIFO, not a regular file"),
                "{e}"
            );
            let e = store.lock_shared(None).err().expect("a FIFO is refused");
            assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
        }
        fs::remove_file(&lock).unwrap();
        let victim = t.path().join("victim");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let e = Store::new(&root)
            .lock()
            .err()
            .expect("a symlink is refused");
        assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        let e = Store::new(&root).lock_shared(None).err().expect("refused");
        assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
        assert!(!victim.exists(), "nothing created through the planted link");
        assert!(
            fs::symlink_metadata(&lock)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Once the plant is gone, the writer creates a regular 0600 `.lock` and holds it.
        fs::remove_file(&lock).unwrap();
        let held = Store::new(&root).lock().unwrap();
        let m = fs::symlink_metadata(&lock).unwrap();
        assert!(m.is_file());
        assert_eq!(m.mode() & 0o077, 0, "no access for group or others");
        let busy = Store {
            wait: false,
            ..Store::new(&root)
        };
        assert!(matches!(
            busy.lock_shared(None),
            Err(StoreError::Lock { .. })
        ));
        drop(held);
    }

    /// Users (install --qemu, qemu use, apply) take the lock shared with the writers' checks:
    /// never through a symlinked root or `.lock`, never in a store others can change; the
    /// root is not created.
    #[test]
    fn users_lock_shared_with_the_writers_checks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("qemu");
        assert!(Store::new(&root).lock_shared(None).is_err());
        assert!(!root.exists(), "a user does not create the store");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let e = Store::new(&root).lock_shared(None).err().expect("refused");
        assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
        let e = Store::new(t.path().join("link"))
            .lock_shared(None)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("it is a symbolic link"), "{e}");
        let victim = t.path().join("victim");
        std::os::unix::fs::symlink(&victim, root.join(".lock")).unwrap();
        assert!(Store::new(&root).lock_shared(None).is_err());
        assert!(!victim.exists(), "nothing created through the planted link");
        fs::remove_file(root.join(".lock")).unwrap();
        let a = Store::new(&root).lock_shared(None).unwrap();
        let b = Store::new(&root).lock_shared(None).unwrap();
        assert!(root.join(".lock").is_file());
        drop((a, b));
    }

    /// A manifest cannot point outside its version's bin/ (a name with `/` or `..`), and
    /// `verify` does not read through a link planted in bin/ (to `/dev/zero`, say).
    #[test]
    fn manifests_name_only_plain_files_and_verify_reads_only_regular_ones() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("qemu"));
        let lock = store.lock().unwrap();
        let mut m = manifest("1:10.0.6+ds-0+deb13u2");
        m.files.push(FileEntry {
            name: "qemu-aarch64".into(),
            cpu: "aarch64".into(),
            sha256: "0".repeat(64),
            size: 0,
            member: "usr/bin/qemu-aarch64".into(),
            qemu_version: None,
        });
        let st = store.staging(&lock).unwrap();
        std::os::unix::fs::symlink("/dev/zero", st.bin().join("qemu-aarch64")).unwrap();
        let s = store.commit(&lock, st, &m).unwrap();
        // Rewrite the manifest to point outside: it is no longer a readable version.
        for name in ["../../../etc/passwd", "/etc/passwd", "qemu-x/../../y"] {
            let mut bad = m.clone();
            bad.files[0].name = name.into();
            fs::write(s.dir.join(MANIFEST), serde_json::to_string(&bad).unwrap()).unwrap();
            assert!(
                matches!(read_manifest(&s.dir), Err(StoreError::BadManifest { .. })),
                "{name}"
            );
        }
        fs::write(s.dir.join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
        let problems = Store::verify_version(&s);
        assert!(
            problems
                .iter()
                .any(|p| p.ends_with("qemu-aarch64: not a regular file")),
            "{problems:?}"
        );
    }

    /// Manifests are checked when read, each refusal naming the file and the field: a
    /// non-ASCII `deb_sha256` made `qemu list` panic and `qemu verify` call it ok.
    #[test]
    fn malformed_manifests_are_refused_naming_the_field() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("qemu"));
        let lock = store.lock().unwrap();
        let mut m = manifest("1:10.0.6+ds-0+deb13u2");
        m.files.push(FileEntry {
            name: "qemu-aarch64".into(),
            cpu: "aarch64".into(),
            sha256: "a".repeat(64),
            size: 1,
            member: "usr/bin/qemu-aarch64".into(),
            qemu_version: None,
        });
        let st = store.staging(&lock).unwrap();
        let s = store.commit(&lock, st, &m).unwrap();
        assert!(read_manifest(&s.dir).is_ok());
        let path = s.dir.join(MANIFEST);
        let good: serde_json::Value = serde_json::to_value(&m).unwrap();
        for (edit, field) in [
            (
                ("deb_sha256", serde_json::json!("é".repeat(32))),
                "deb_sha256",
            ),
            (
                ("deb_sha256", serde_json::json!("AB".repeat(32))),
                "deb_sha256",
            ),
            (("deb_sha256", serde_json::json!("ab")), "deb_sha256"),
            (("deb_size", serde_json::json!(0)), "deb_size"),
            (("deb_size", serde_json::json!(u64::MAX)), "deb_size"),
            (("version", serde_json::json!("9.9")), "version"),
            (
                ("debian_version", serde_json::json!("1:10.0.6 x")),
                "debian_version",
            ),
            (("package", serde_json::json!("qemu\u{1b}[2J")), "package"),
            (("suite", serde_json::json!("")), "suite"),
            (("origin", serde_json::json!("a\nb")), "origin"),
            (
                (
                    "files",
                    serde_json::json!([{"name": "qemu-aarch64", "cpu": "aarch64", "sha256": "xyz", "size": 1, "member": "m"}]),
                ),
                "files[0].sha256",
            ),
            (
                (
                    "files",
                    serde_json::json!([{"name": "qemu-aarch64", "cpu": "aarch64", "sha256": "a".repeat(64), "size": u64::MAX, "member": "m"}]),
                ),
                "files[0].size",
            ),
            (
                (
                    "files",
                    serde_json::json!([{"name": "qemu-aarch64", "cpu": "aarch64", "sha256": "a".repeat(64), "size": 1, "member": "m"}, {"name": "qemu-aarch64", "cpu": "aarch64", "sha256": "a".repeat(64), "size": 1, "member": "m"}]),
                ),
                "files[1].name",
            ),
        ] {
            let mut bad = good.clone();
            bad[edit.0] = edit.1.clone();
            fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
            let e = read_manifest(&s.dir)
                .err()
                .unwrap_or_else(|| panic!("{edit:?} accepted"));
            let e = e.to_string();
            assert!(
                e.starts_with(&format!(
                    "{}: bad manifest (field {field}: ",
                    path.display()
                )),
                "{edit:?}: {e}"
            );
            assert!(store.list().is_empty(), "{edit:?}");
            assert_eq!(store.broken().len(), 1, "{edit:?}");
            // Asked for by name, the version is reported as bad, not as missing.
            let e = store.resolve("10.0").unwrap_err();
            assert!(matches!(e, StoreError::BadManifest { .. }), "{edit:?}: {e}");
        }
        // A directory renamed after its version is not that version.
        fs::write(&path, serde_json::to_string(&good).unwrap()).unwrap();
        fs::rename(&s.dir, store.root.join("10.0.7")).unwrap();
        let e = read_manifest(&store.root.join("10.0.7"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field version: \"10.0.6+ds-0+deb13u2\" is not the name of its directory"),
            "{e}"
        );
        // Nothing malformed is ever written.
        let mut bad = m.clone();
        bad.deb_sha256 = "é".repeat(32);
        let st = store.staging(&lock).unwrap();
        assert!(matches!(
            store.commit(&lock, st, &bad),
            Err(StoreError::BadManifest { .. })
        ));
    }

    /// An entry holds the resolved interpreter path; the store may be named through a
    /// symlink or with `..`: the version is still in use (so `gc` keeps it).
    #[test]
    fn a_store_named_through_a_symlink_sees_its_users() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("qemu");
        let store = Store::new(&real);
        let lock = store.lock().unwrap();
        let st = store.staging(&lock).unwrap();
        store
            .commit(&lock, st, &manifest("1:10.0.6+ds-0+deb13u2"))
            .unwrap();
        drop(lock);
        let registered = fs::canonicalize(&real)
            .unwrap()
            .join("10.0.6+ds-0+deb13u2/bin/qemu-aarch64");
        let registered = registered.to_str().unwrap();
        std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
        for root in [
            real.clone(),
            t.path().join("link"),
            t.path().join("link/../qemu"),
        ] {
            let s = Store::new(&root).resolve("10.0").unwrap();
            assert!(uses(&s, registered), "{}", root.display());
            assert!(!uses(&s, "/usr/bin/qemu-aarch64-static"));
        }
    }
}
