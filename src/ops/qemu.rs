//! The QEMU store's commands: `qemu versions`, `fetch`, `list`, `verify` and `gc`. Each takes
//! the store (and, where entries matter, the binfmt_misc seam) and returns a typed report that
//! serializes to the documented JSON (docs/schemas); the CLI renders it. The work itself is in
//! `crate::qemu` (archive, .deb, store). `qemu use` is `install::use_version`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;

use super::Host;
use crate::binfmt::kernel::{self, BinfmtFs, KernelEntry};
use crate::progress::Progress;
use crate::qemu::debian_mirror::{self, Archive, HttpOptions};
use crate::qemu::interpreter;
use crate::qemu::openpgp::Keyring;
use crate::qemu::store::{self, Manifest, Store, StoreError, Stored};
use crate::qemu::{self as q, Fetched, Offer, QemuError, Source};

/// Where the archive is and how to read it (`--mirror`, `--keyring`, … or the config's
/// `qemu_mirror` and `qemu_keyring`).
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// A Debian mirror URL; `None`: the one in apt's sources.
    pub mirror: Option<String>,
    /// The keyring trusted for InRelease; `None`: the system's, else the built-in copy.
    pub keyring: Option<PathBuf>,
    /// Suites to consider; empty: the default ones.
    pub suites: Vec<String>,
    /// Seconds a connection or a single read may stall; each request's total deadline is
    /// `debian_mirror::DEADLINE_FACTOR` times this, plus its size's share (`HttpOptions::deadline_for`).
    pub timeout: u64,
    /// Verified indexes and .debs kept here, keyed by sha256.
    pub cache: Option<PathBuf>,
    /// `--allow-expired`: take an InRelease past its `Valid-Until` (a dated snapshot mirror),
    /// with a warning; recorded in the manifest.
    pub allow_expired: bool,
}

impl ArchiveOptions {
    /// The archive: the mirror (given, or apt's), the keyring and the timeouts checked, and
    /// whether an expired InRelease is taken (`Archive::allow_expired`): with `--allow-expired`;
    /// or, for the mirror taken from apt's sources, when apt itself would (that source's
    /// `check-valid-until=no`, else apt's `Acquire::Check-Valid-Until "false"`). apt's files
    /// are read only then, and a setting they hold that cannot be read is bad input (exit 2).
    pub fn archive(&self, progress: Arc<dyn Progress + Send>) -> Result<Archive, QemuError> {
        self.archive_at(Path::new("/"), progress)
    }

    /// `archive`, with apt's configuration under `root` (`/`; a parameter for tests).
    pub fn archive_at(
        &self,
        root: &Path,
        progress: Arc<dyn Progress + Send>,
    ) -> Result<Archive, QemuError> {
        let (mirror, apt_allows) = match &self.mirror {
            Some(m) => (m.clone(), None),
            None => {
                let src = q::apt::source(root)?.ok_or(debian_mirror::ArchiveError::NoMirror)?;
                let allows = src.waives_valid_until(root)?;
                (src.uri, allows)
            }
        };
        let keyring = Keyring::load(self.keyring.as_deref())?;
        let t = std::time::Duration::from_secs(self.timeout.max(1));
        let http = HttpOptions::with_timeout(t);
        let mut a = Archive::new(&mirror, keyring, &http)?.with_progress(progress);
        a.allow_expired = if self.allow_expired {
            Some("--allow-expired".to_owned())
        } else {
            apt_allows
        };
        Ok(a)
    }

    /// An unsafe `--cache` is bad input (exit 2) before anything is fetched: checked here,
    /// before the first request, not when the first index is about to be cached (it was
    /// checked only after `InRelease` had been downloaded, and a version spec then reported
    /// it as the mirror's failure).
    pub fn check_cache(cache: Option<&Path>) -> Result<(), QemuError> {
        if let Some(c) = cache {
            debian_mirror::check_cache_dir(c)?;
        }
        Ok(())
    }

    /// The suites to look at for a version number, in lookup order.
    fn lookup_suites(&self) -> Vec<String> {
        if self.suites.is_empty() {
            q::LOOKUP_ORDER.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.suites.clone()
        }
    }
}

/// The Debian architecture of this host (the `binary-<arch>` index the store fetches from):
/// that of the host's own arch (our executable's header: an arm64 binfmtctl fetches arm64's
/// QEMU even under a 32-bit personality), else of `uname -m`.
pub fn deb_arch(host: &Host) -> Result<&'static str, QemuError> {
    host.facts
        .host_arch(host.table)
        .and_then(|a| a.debian.first())
        .map(String::as_str)
        .or_else(|| debian_mirror::debian_arch(&host.facts.machine))
        .ok_or_else(|| QemuError::NoDebianArch {
            machine: host.facts.machine.clone(),
        })
}

/// What one suite offers, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SuiteOffer {
    Offer(Offer),
    Error { suite: String, error: String },
}

/// `qemu versions`: what the archive offers (per suite) and what the store holds.
#[derive(Debug, Clone, Serialize)]
pub struct VersionsReport {
    pub archive: Vec<SuiteOffer>,
    /// The stored versions, oldest first.
    pub store: Vec<String>,
    pub mirror: String,
    #[serde(skip)]
    pub store_root: PathBuf,
}

/// Asks each suite (oldest first) what it offers. Network trouble for every suite is an
/// environment failure (the first such error), not an empty answer. `progress` is told of
/// each download and check.
pub fn versions(
    host: &Host,
    store: &Store,
    o: &ArchiveOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<VersionsReport, QemuError> {
    // `--cache` is checked before the first request (see `ArchiveOptions::check_cache`).
    ArchiveOptions::check_cache(o.cache.as_deref())?;
    let a = o.archive(progress)?;
    let suites: Vec<String> = if o.suites.is_empty() {
        debian_mirror::DEFAULT_SUITES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        o.suites.clone()
    };
    let mut offers = q::offers(&a, &suites, deb_arch(host)?, o.cache.as_deref());
    for o in offers.iter().flatten() {
        if let Some(e) = &o.expired {
            warn_expired(&o.suite, e);
        }
    }
    if offers.iter().all(Result::is_err)
        && let Some(i) = offers
            .iter()
            .position(|o| matches!(o, Err((_, e)) if e.is_environment()))
        && let Err((_, e)) = offers.swap_remove(i)
    {
        return Err(e.into());
    }
    Ok(VersionsReport {
        archive: offers
            .into_iter()
            .map(|o| match o {
                Ok(o) => SuiteOffer::Offer(o),
                Err((suite, e)) => SuiteOffer::Error {
                    suite,
                    error: e.to_string(),
                },
            })
            .collect(),
        store: store
            .list()
            .into_iter()
            .map(|s| s.manifest.version)
            .collect(),
        mirror: a.mirror.clone(),
        store_root: store.root.clone(),
    })
}

/// The warning for an InRelease used past its `Valid-Until`.
pub fn warn_expired(suite: &str, e: &store::Expired) {
    eprintln!(
        "binfmtctl: warning: the InRelease of {suite} expired on {} (Valid-Until); used because {} allows it: check that this mirror is the dated snapshot you mean",
        e.valid_until, e.allowed_by
    );
}

/// What `fetch` did with the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchAction {
    Stored,
    AlreadyStored,
    /// `--dry-run`: checked, not stored.
    WouldStore,
}

impl FetchAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchAction::Stored => "stored",
            FetchAction::AlreadyStored => "already-stored",
            FetchAction::WouldStore => "would-store",
        }
    }
}

/// `qemu fetch`: the version's directory in the store (where it would go, on a dry run) and
/// its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    pub action: FetchAction,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Where `fetch` takes the version from.
#[derive(Debug, Clone, Copy)]
pub enum FetchFrom<'a> {
    /// A version number, a suite or `latest`, from the archive.
    Archive(&'a str, &'a ArchiveOptions),
    /// A .deb the user has (stored as unverified).
    Deb(&'a Path),
}

/// Fetches one version into the store: the archive's signature chain, the .deb's hashes,
/// unpacking and the interpreter checks, then an atomic store. `dry_run`: all of it in a
/// scratch directory, storing nothing. `progress` is told of each step, in that order, and
/// of the bytes downloaded and unpacked.
pub fn fetch(
    host: &Host,
    store: &Store,
    from: FetchFrom<'_>,
    dry_run: bool,
    progress: Arc<dyn Progress + Send>,
) -> Result<FetchReport> {
    let req = host.requirements(true)?;
    let fetched = match from {
        FetchFrom::Deb(deb) => {
            // Opened once, before the store is touched: a FIFO, a device or a directory is
            // refused here, and the copy reads this descriptor (no swap after a check).
            let file = crate::input::open_regular(deb).map_err(|e| {
                if e.is_missing() {
                    QemuError::NoDeb {
                        path: deb.to_owned(),
                    }
                } else {
                    QemuError::from(e)
                }
            })?;
            q::fetch(
                store,
                Source::LocalDeb(deb, &file),
                host.table,
                &req,
                dry_run,
                &*progress,
            )?
        }
        FetchFrom::Archive(spec, o) => {
            // A dry run writes nothing, so it keeps no cache either.
            let cache = o.cache.as_deref().filter(|_| !dry_run);
            ArchiveOptions::check_cache(cache)?;
            let a = o.archive(progress.clone())?;
            let (release, package) =
                q::resolve(&a, spec, &o.lookup_suites(), deb_arch(host)?, cache)?;
            if let Some(e) = &release.expired {
                warn_expired(&release.dist, e);
            }
            let source = Source::Archive {
                archive: &a,
                release: &release,
                package: &package,
                cache,
            };
            q::fetch(store, source, host.table, &req, dry_run, &*progress)?
        }
    };
    let (action, s) = match fetched {
        Fetched::Stored(s) => (FetchAction::Stored, s),
        Fetched::AlreadyThere(s) => (FetchAction::AlreadyStored, s),
        Fetched::WouldStore(s) => (FetchAction::WouldStore, s),
    };
    Ok(FetchReport {
        action,
        dir: s.dir,
        manifest: s.manifest,
    })
}

/// Registered entries, for reports (empty when binfmt_misc is not mounted or cannot be read;
/// `gc` reads them strictly instead).
fn entries(fs: &dyn BinfmtFs) -> Vec<KernelEntry> {
    kernel::snapshot(fs).unwrap_or_default()
}

/// The entries whose interpreter lies in the stored version.
fn users_of(s: &Stored, entries: &[KernelEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|k| store::uses(s, &k.entry.registration.interpreter))
        .map(|k| k.entry.registration.name.clone())
        .collect()
}

/// One stored version, as `qemu list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedVersion {
    pub version: String,
    pub dir: PathBuf,
    pub suite: String,
    pub package: String,
    pub debian_version: String,
    pub deb_sha256: String,
    pub verified: bool,
    pub origin: String,
    /// Verified by an InRelease past its `Valid-Until`, as allowed (the manifest's record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<store::Expired>,
    /// QEMU CPU names of the stored interpreters.
    pub arches: Vec<String>,
    /// Entries of this binfmt_misc instance whose interpreter is in this version.
    pub used_by: Vec<String>,
}

/// The system's own QEMU (found on the default search path).
#[derive(Debug, Clone, Serialize)]
pub struct SystemQemu {
    pub path: PathBuf,
    pub version: Option<String>,
}

/// `qemu list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub store: PathBuf,
    pub versions: Vec<ListedVersion>,
    pub system: Option<SystemQemu>,
}

/// The store's versions, which entries use each, and the system's own QEMU (what discovery
/// finds on the default path for aarch64).
pub fn list(fs: &dyn BinfmtFs, host: &Host, store: &Store) -> ListReport {
    let entries = entries(fs);
    // A version whose manifest is missing or malformed is left out, and said so (`qemu
    // verify` fails on it).
    for (_, e) in store.broken() {
        eprintln!("binfmtctl: warning: {e}");
    }
    let versions = store
        .list()
        .iter()
        .map(|s| ListedVersion {
            version: s.manifest.version.clone(),
            dir: s.dir.clone(),
            suite: s.manifest.suite.clone(),
            package: s.manifest.package.clone(),
            debian_version: s.manifest.debian_version.clone(),
            deb_sha256: s.manifest.deb_sha256.clone(),
            verified: s.manifest.verified,
            origin: s.manifest.origin.clone(),
            expired: s.manifest.expired.clone(),
            arches: s.manifest.files.iter().map(|f| f.cpu.clone()).collect(),
            used_by: users_of(s, &entries),
        })
        .collect();
    let system = host.table.get("arm64").and_then(|a| {
        let dirs: Vec<PathBuf> = interpreter::default_search();
        let req = host.requirements(true).ok()?;
        let d = host.discover(a, &dirs, &req);
        d.chosen().map(|c| SystemQemu {
            path: c.facts.path.clone(),
            version: c.facts.version.clone(),
        })
    });
    ListReport {
        store: store.root.clone(),
        versions,
        system,
    }
}

/// One version's check, or a directory without a readable manifest.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Verified {
    Version {
        version: String,
        ok: bool,
        problems: Vec<String>,
        /// How many files the manifest lists.
        #[serde(skip)]
        files: usize,
    },
    Broken {
        dir: PathBuf,
        ok: bool,
        problems: Vec<String>,
    },
}

impl Verified {
    pub fn ok(&self) -> bool {
        match self {
            Verified::Version { ok, .. } | Verified::Broken { ok, .. } => *ok,
        }
    }
}

/// `qemu verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub versions: Vec<Verified>,
    #[serde(skip)]
    pub store_root: PathBuf,
}

impl VerifyReport {
    /// The error to return after showing the report: some version does not match.
    pub fn failure(&self) -> Option<QemuError> {
        let count = self.versions.iter().filter(|v| !v.ok()).count();
        (count > 0).then_some(QemuError::Mismatch { count })
    }
}

/// Re-hashes every stored file against its manifest (and checks owners and modes); lists the
/// directories whose manifest is missing or unreadable.
pub fn verify(store: &Store) -> VerifyReport {
    let mut versions: Vec<Verified> = store
        .list()
        .iter()
        .map(|s| {
            let problems = Store::verify_version(s);
            Verified::Version {
                version: s.manifest.version.clone(),
                ok: problems.is_empty(),
                problems,
                files: s.manifest.files.len(),
            }
        })
        .collect();
    versions.extend(store.broken().into_iter().map(|(dir, e)| Verified::Broken {
        dir,
        ok: false,
        problems: vec![e],
    }));
    VerifyReport {
        versions,
        store_root: store.root.clone(),
    }
}

/// What `gc` did with a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GcAction {
    Removed,
    WouldRemove,
    /// In use by an entry.
    Kept,
}

impl GcAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GcAction::Removed => "removed",
            GcAction::WouldRemove => "would-remove",
            GcAction::Kept => "kept",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GcRow {
    pub version: String,
    pub action: GcAction,
    /// On kept: the entries that use the version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}

/// `qemu gc`.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub gc: Vec<GcRow>,
    #[serde(skip)]
    pub store_root: PathBuf,
}

/// Removes the stored versions no entry uses (`names` empty), or the versions named, refusing
/// (before removing anything) any named version an entry uses. binfmt_misc is mounted to read
/// the entries when it is not and we may (never on a dry run); a dry run removes nothing.
///
/// The store's lock is taken (exclusively) before the versions and the entries are read, and
/// held to the end: an install, `qemu use` or `apply` registering a stored version holds it
/// shared, so a version is never removed between their checks and their kernel write, nor
/// between this reading of the entries and the removal. A store that does not exist is not
/// created; a dry run takes no lock.
pub fn gc(fs: &dyn BinfmtFs, store: &Store, names: &[String], dry_run: bool) -> Result<GcReport> {
    let unknown = |reason: String| QemuError::EntriesUnknown {
        root: fs.root().to_owned(),
        reason,
    };
    if !kernel::mount_to_read(fs, dry_run)? {
        // Unmounted here, the instance's entries may still exist (another mount holds them):
        // every version would look unused.
        return Err(unknown(if dry_run {
            "it is not mounted (a dry run does not mount it)".into()
        } else {
            "it is not mounted".into()
        })
        .into());
    }
    let lock = if dry_run || !store.root.exists() {
        None
    } else {
        Some(store.lock().map_err(QemuError::from)?)
    };
    let entries = kernel::snapshot(fs).map_err(|e| unknown(e.to_string()))?;
    let targets: Vec<Stored> = if names.is_empty() {
        store.list()
    } else {
        let v = names
            .iter()
            .map(|n| store.find(n))
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(QemuError::from)?;
        if let Some((s, users)) = v
            .iter()
            .map(|s| (s, users_of(s, &entries)))
            .find(|(_, u)| !u.is_empty())
        {
            return Err(QemuError::from(StoreError::InUse {
                version: s.manifest.version.clone(),
                users: users.join(", "),
            })
            .into());
        }
        v
    };
    let mut report = GcReport {
        gc: Vec::new(),
        store_root: store.root.clone(),
    };
    if targets.is_empty() {
        return Ok(report);
    }
    for s in &targets {
        let used_by = users_of(s, &entries);
        let action = if !used_by.is_empty() {
            GcAction::Kept
        } else if let Some(l) = &lock {
            store.remove(l, s).map_err(QemuError::from)?;
            GcAction::Removed
        } else {
            GcAction::WouldRemove
        };
        report.gc.push(GcRow {
            version: s.manifest.version.clone(),
            action,
            used_by,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::binfmt::arch::Table;
    use crate::binfmt::kernel::{Call, RecordingBinfmt};
    use crate::binfmt::registration::{Entry, Flags};
    use crate::error::ErrorKind;
    use crate::exit::kind_of;
    use crate::qemu::debian_mirror::hex;
    use crate::qemu::store::FileEntry;
    use sha2::{Digest, Sha256};

    fn host() -> Host {
        Host::gather(Table::builtin())
    }

    /// Stores a version through the store's own API: files in a staging directory, then the
    /// manifest committed.
    fn put(store: &Store, debian_version: &str, cpus: &[&str]) -> Stored {
        let lock = store.lock().unwrap();
        let st = store.staging(&lock).unwrap();
        let files = cpus
            .iter()
            .map(|cpu| {
                let name = format!("qemu-{cpu}");
                let body = format!("interpreter for {cpu} {debian_version}\n");
                let p = st.bin().join(&name);
                std::fs::write(&p, &body).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                FileEntry {
                    name: name.clone(),
                    cpu: (*cpu).to_owned(),
                    sha256: hex(&Sha256::digest(body.as_bytes())),
                    size: body.len() as u64,
                    member: format!("./usr/bin/{name}-static"),
                    qemu_version: None,
                }
            })
            .collect();
        let manifest = Manifest {
            version: store::dir_name(debian_version),
            debian_version: debian_version.to_owned(),
            package: "qemu-user-static".into(),
            suite: "trixie".into(),
            origin: "test".into(),
            verified: true,
            mirror: None,
            expired: None,
            deb_sha256: "ab".repeat(32),
            deb_size: 1,
            fetched_at: 0,
            files,
        };
        store.commit(&lock, st, &manifest).unwrap()
    }

    /// An entry for aarch64 whose interpreter is in `s`.
    fn entry_in(s: &Stored) -> Entry {
        let interp = s.bin().join("qemu-aarch64");
        Entry {
            registration: Table::builtin()
                .get("arm64")
                .unwrap()
                .registration(interp.to_str().unwrap(), Flags::DEFAULT),
            enabled: true,
        }
    }

    fn two_versions() -> (tempfile::TempDir, Store, Stored, Stored) {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("qemu"));
        let old = put(&store, "1:9.2.0+ds-1", &["aarch64", "riscv64"]);
        let new = put(&store, "1:10.0.6+ds-0+deb13u2", &["aarch64"]);
        (t, store, old, new)
    }

    #[test]
    fn list_shows_each_version_and_the_entries_using_it() {
        let (_t, store, old, _new) = two_versions();
        let fs = RecordingBinfmt::mounted_with(&[entry_in(&old)]);
        let r = list(&fs, &host(), &store);
        assert_eq!(r.store, store.root);
        let v: Vec<(&str, &[String], &[String])> = r
            .versions
            .iter()
            .map(|v| {
                (
                    v.version.as_str(),
                    v.arches.as_slice(),
                    v.used_by.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            v,
            [
                (
                    "9.2.0+ds-1",
                    &["aarch64".to_owned(), "riscv64".to_owned()][..],
                    &["qemu-aarch64".to_owned()][..]
                ),
                ("10.0.6+ds-0+deb13u2", &["aarch64".to_owned()][..], &[][..]),
            ]
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["versions"][0]["used_by"][0], "qemu-aarch64");
        assert!(
            json.get("system").is_some(),
            "system is always present: {json}"
        );
    }

    #[test]
    fn verify_reports_a_tampered_file_and_a_broken_directory() {
        // The store's files must be root's.
        if !crate::test_gate::root("verify_reports_a_tampered_file_and_a_broken_directory") {
            return;
        }
        let (_t, store, old, new) = two_versions();
        let r = verify(&store);
        assert!(r.failure().is_none(), "{r:?}");
        assert_eq!(r.versions.len(), 2);
        // One byte appended to a stored interpreter, and a directory without a manifest.
        let tampered = old.bin().join("qemu-riscv64");
        let mut body = std::fs::read(&tampered).unwrap();
        body.push(b'x');
        std::fs::write(&tampered, body).unwrap();
        std::fs::create_dir(store.root.join("92.0")).unwrap();
        let r = verify(&store);
        let bad: Vec<&Verified> = r.versions.iter().filter(|v| !v.ok()).collect();
        assert_eq!(bad.len(), 2, "{r:?}");
        match bad[0] {
            Verified::Version {
                version, problems, ..
            } => {
                assert_eq!(version, &old.manifest.version);
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert!(
                    problems[0].contains("qemu-riscv64: sha256")
                        && problems[0].contains("tampered"),
                    "{problems:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(bad[1], Verified::Broken { dir, .. } if dir.ends_with("92.0")));
        assert!(r.versions.iter().any(|v| v.ok()
            && matches!(v, Verified::Version { version, .. } if *version == new.manifest.version)));
        let e = r.failure().unwrap();
        assert!(matches!(e, QemuError::Mismatch { count: 2 }), "{e}");
        assert_eq!(
            crate::error::Classify::kind(&e),
            ErrorKind::Failed,
            "a mismatch is a failure, not bad input"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["versions"][2]["ok"], false, "{json}");
        assert!(json["versions"][2]["dir"].is_string(), "{json}");
    }

    #[test]
    fn gc_keeps_what_an_entry_uses_and_a_dry_run_removes_nothing() {
        let (_t, store, old, new) = two_versions();
        let fs = RecordingBinfmt::mounted_with(&[entry_in(&old)]);
        let actions = |r: &GcReport| -> Vec<(String, GcAction, Vec<String>)> {
            r.gc.iter()
                .map(|g| (g.version.clone(), g.action, g.used_by.clone()))
                .collect()
        };
        let r = gc(&fs, &store, &[], true).unwrap();
        assert_eq!(
            actions(&r),
            [
                (
                    old.manifest.version.clone(),
                    GcAction::Kept,
                    vec!["qemu-aarch64".to_owned()]
                ),
                (new.manifest.version.clone(), GcAction::WouldRemove, vec![]),
            ]
        );
        assert_eq!(store.list().len(), 2, "a dry run removes nothing");
        // A named version in use is refused before anything is removed.
        let e = gc(
            &fs,
            &store,
            &[new.manifest.version.clone(), "9.2".to_owned()],
            false,
        )
        .unwrap_err();
        assert_eq!(kind_of(&e), ErrorKind::BadInput, "{e:#}");
        assert!(
            format!("{e:#}").contains("QEMU 9.2.0+ds-1 is used by qemu-aarch64"),
            "{e:#}"
        );
        assert_eq!(store.list().len(), 2);
        // gc reads entries only: no write reaches binfmt_misc.
        assert!(
            fs.calls.borrow().iter().all(|c| matches!(c, Call::Lock)),
            "{:?}",
            fs.calls.borrow()
        );
        let r = gc(&fs, &store, &[], false).unwrap();
        assert_eq!(r.gc[1].action, GcAction::Removed);
        let left: Vec<String> = store
            .list()
            .into_iter()
            .map(|s| s.manifest.version)
            .collect();
        assert_eq!(left, std::slice::from_ref(&old.manifest.version));
        assert!(!new.dir.exists());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["gc"][1],
            serde_json::json!({"version": new.manifest.version, "action": "removed"})
        );
        // Nothing left to remove but the used one.
        assert_eq!(actions(&gc(&fs, &store, &[], false).unwrap()).len(), 1);
    }

    /// A binfmt_misc that notes, when its entries are read, whether the store's lock is
    /// held by someone else (a shared lock cannot be taken at once).
    struct Probing<'a> {
        inner: &'a RecordingBinfmt,
        store: Store,
        locked_when_read: std::cell::Cell<Option<bool>>,
    }

    impl BinfmtFs for Probing<'_> {
        fn root(&self) -> &Path {
            self.inner.root()
        }
        fn is_mounted(&self) -> bool {
            self.inner.is_mounted()
        }
        fn mount(&self) -> Result<(), kernel::KernelError> {
            self.inner.mount()
        }
        fn list(&self) -> Result<Vec<KernelEntry>, kernel::KernelError> {
            self.locked_when_read
                .set(Some(self.store.lock_shared(None).is_err()));
            self.inner.list()
        }
        fn global_enabled(&self) -> Result<bool, kernel::KernelError> {
            self.inner.global_enabled()
        }
        fn register_named(
            &self,
            name: &[u8],
            reg: &crate::binfmt::registration::Registration,
        ) -> Result<(), kernel::KernelError> {
            self.inner.register_named(name, reg)
        }
        fn set_enabled_named(&self, name: &[u8], enabled: bool) -> Result<(), kernel::KernelError> {
            self.inner.set_enabled_named(name, enabled)
        }
        fn remove_named(&self, name: &[u8]) -> Result<(), kernel::KernelError> {
            self.inner.remove_named(name)
        }
        fn lock(&self) -> Result<kernel::LockGuard, kernel::KernelError> {
            self.inner.lock()
        }
    }

    /// gc reads the entries with the store's lock already held: a user that registered a
    /// version while gc waited for the lock is seen, and its version kept.
    /// Entries it cannot read (binfmt_misc unmounted here and not mountable, or a dry run that
    /// does not mount) would make every version look unused: gc refuses and removes nothing.
    #[test]
    fn gc_removes_nothing_when_it_cannot_read_the_entries() {
        let (_t, store, _old, _new) = two_versions();
        let fs = RecordingBinfmt::default();
        for dry_run in [true, false] {
            fs.fail
                .borrow_mut()
                .push((Call::Mount, rustix::io::Errno::PERM));
            let e = gc(&fs, &store, &[], dry_run).unwrap_err();
            assert_eq!(kind_of(&e), ErrorKind::Environment, "{e:#}");
            assert!(format!("{e:#}").contains("removes nothing it cannot prove unused"));
            assert_eq!(store.list().len(), 2, "dry run {dry_run}");
        }
    }

    #[test]
    fn gc_reads_the_entries_under_the_store_lock() {
        let (_t, store, old, _new) = two_versions();
        let inner = RecordingBinfmt::mounted_with(&[entry_in(&old)]);
        let mut probe_store = Store::new(&store.root);
        probe_store.wait = false;
        let fs = Probing {
            inner: &inner,
            store: probe_store,
            locked_when_read: std::cell::Cell::new(None),
        };
        let r = gc(&fs, &store, &[], false).unwrap();
        assert_eq!(fs.locked_when_read.get(), Some(true));
        assert_eq!(r.gc[0].action, GcAction::Kept);
        assert_eq!(r.gc[1].action, GcAction::Removed);
    }

    /// gc takes the store's lock before it reads anything: while an install (or `qemu use`,
    /// `apply`) holds it shared between resolving a version and registering it, gc removes
    /// nothing (here it does not wait, so it reports the lock); once released, it does.
    #[test]
    fn gc_removes_nothing_while_a_version_is_being_registered() {
        let (_t, store, old, new) = two_versions();
        let fs = RecordingBinfmt::mounted_with(&[]);
        let (user, s) = store.resolve_shared("10.0", None).unwrap();
        assert_eq!(s.manifest.version, new.manifest.version);
        let mut busy = Store::new(&store.root);
        busy.wait = false;
        for names in [vec![], vec!["10.0".to_owned()]] {
            let e = gc(&fs, &busy, &names, false).unwrap_err();
            assert_eq!(kind_of(&e), ErrorKind::Environment, "{e:#}");
            assert!(
                format!("{e:#}").contains("another binfmtctl is using or writing the store"),
                "{e:#}"
            );
            assert!(old.dir.exists() && new.dir.exists(), "nothing removed");
        }
        // A fetch (a writer) is held off too; a second user is not.
        assert!(busy.lock().is_err());
        let other = busy.lock_shared(None).unwrap();
        drop((user, other));
        let r = gc(&fs, &busy, &[], false).unwrap();
        assert!(r.gc.iter().all(|g| g.action == GcAction::Removed), "{r:?}");
        assert!(store.list().is_empty());
        // And a user waits for (here: is refused during) a writer.
        let w = store.lock().unwrap();
        assert!(matches!(
            busy.lock_shared(None),
            Err(StoreError::Lock { .. })
        ));
        drop(w);
    }

    #[test]
    fn fetch_from_a_missing_deb_is_bad_input() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("qemu"));
        let e = fetch(
            &host(),
            &store,
            FetchFrom::Deb(&t.path().join("nope.deb")),
            true,
            std::sync::Arc::new(crate::progress::Silent),
        )
        .unwrap_err();
        assert_eq!(kind_of(&e), ErrorKind::BadInput, "{e:#}");
        assert!(format!("{e}").contains("nope.deb: no such file"), "{e}");
        assert!(!store.root.exists());
    }

    /// A FIFO or a device given as --from-deb is refused at once (never read, never copied),
    /// as bad input, before the store is touched.
    #[test]
    fn fetch_from_a_fifo_or_a_device_is_refused_before_reading() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("qemu"));
        let fifo = t.path().join("q.deb");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for (deb, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            for dry_run in [true, false] {
                let silent = std::sync::Arc::new(crate::progress::Silent);
                let e = fetch(&host(), &store, FetchFrom::Deb(deb), dry_run, silent).unwrap_err();
                assert_eq!(kind_of(&e), ErrorKind::BadInput, "{e:#}");
                assert!(
                    format!("{e:#}").contains(&format!("is {kind}, not a regular file")),
                    "{e:#}"
                );
                assert!(!store.root.exists(), "nothing stored");
            }
        }
    }

    /// Who may waive `Valid-Until`: `--allow-expired` always; apt's words only for the mirror
    /// taken from apt's sources (the source's own option over apt's global setting); a setting
    /// that cannot be read is bad input naming the file and line.
    #[test]
    fn expired_releases_are_allowed_as_apt_or_the_flag_says() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let apt = r.join("etc/apt");
        std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
        std::fs::create_dir_all(apt.join("apt.conf.d")).unwrap();
        let sources = apt.join("sources.list.d/debian.sources");
        let conf = apt.join("apt.conf.d/99snapshot");
        let allowed = |o: &ArchiveOptions| {
            o.archive_at(r, std::sync::Arc::new(crate::progress::Silent))
                .map(|a| a.allow_expired)
        };
        let from_apt = ArchiveOptions::default();
        std::fs::write(
            &sources,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\nComponents: main\n",
        )
        .unwrap();
        assert_eq!(
            allowed(&from_apt).unwrap(),
            None,
            "nothing says so: refused"
        );
        std::fs::write(&conf, "Acquire::Check-Valid-Until \"false\";\n").unwrap();
        assert_eq!(
            allowed(&from_apt).unwrap().unwrap(),
            format!(
                "apt's Acquire::Check-Valid-Until \"false\" at {}:1",
                conf.display()
            )
        );
        let given = ArchiveOptions {
            mirror: Some("http://deb.debian.org/debian".into()),
            ..ArchiveOptions::default()
        };
        assert_eq!(
            allowed(&given).unwrap(),
            None,
            "a mirror not taken from apt: apt's setting is not about it"
        );
        let flag = ArchiveOptions {
            allow_expired: true,
            ..given
        };
        assert_eq!(allowed(&flag).unwrap().as_deref(), Some("--allow-expired"));
        // The source's own option wins over apt's global one, either way.
        std::fs::write(
            &sources,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\nCheck-Valid-Until: yes\n",
        )
        .unwrap();
        assert_eq!(allowed(&from_apt).unwrap(), None);
        std::fs::remove_file(&conf).unwrap();
        std::fs::write(
            &sources,
            "# snapshot\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\nCheck-Valid-Until: no\n",
        )
        .unwrap();
        assert_eq!(
            allowed(&from_apt).unwrap().unwrap(),
            format!(
                "check-valid-until=no of the source at {}:2",
                sources.display()
            )
        );
        // Unreadable settings: exit 2, file and line.
        std::fs::write(
            &sources,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: forky\n",
        )
        .unwrap();
        std::fs::write(&conf, "Acquire {\n  Check-Valid-Until \"false\";\n").unwrap();
        let e = allowed(&from_apt).unwrap_err();
        assert_eq!(
            crate::error::Classify::kind(&e),
            crate::error::ErrorKind::BadInput
        );
        assert!(
            e.to_string().starts_with(&format!(
                "{}:2: the scope Acquire {{ is not closed",
                conf.display()
            )),
            "{e}"
        );
    }
}
