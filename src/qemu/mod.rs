//! Static QEMU interpreters owned by binfmtctl: fetched from Debian's archive (or a local
//! .deb), verified along the archive's signature chain, unpacked in Rust, checked like any
//! interpreter, and kept per version in a store that `install --qemu` and `qemu use`
//! register from.
//!
//! - `openpgp`: OpenPGP check of `InRelease` against Debian's archive keyring
//! - `debian_mirror`: mirror, HTTP, `InRelease` → `Packages` → `.deb` hashes
//! - `apt`: the mirror apt's own sources name
//! - `deb`: ar + data.tar.{xz,zst,gz} unpacking of the `qemu-<cpu>` files only
//! - `interpreter`, `layouts`: finding and checking interpreters; where distributions put them
//! - `store`: `<root>/<version>/` with a manifest, atomic appearance, a writer lock
//! - `version`: dpkg version order and version specs
//!
//! Fetching needs the network and write access to the store (root); nothing here touches
//! binfmt_misc.

pub mod apt;
pub mod deb;
pub mod debian_mirror;
pub mod interpreter;
pub mod layouts;
pub mod openpgp;
pub mod store;
pub mod version;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use self::interpreter::Requirements;
use crate::binfmt::arch::Table;
use crate::progress::{Counting, Progress, Unit};
use debian_mirror::{
    Archive, ArchiveError, PackageInfo, Release, compare_versions, hex, version_matches,
};
use store::{FileEntry, Manifest, Store, StoreError, Stored};

/// Suites tried, in this order, when a version number is asked for: releases first, then
/// backports, then unstable.
pub const LOOKUP_ORDER: &[&str] = &["bookworm", "trixie", "bookworm-backports", "forky", "sid"];

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Deb(#[from] deb::DebError),
    #[error(transparent)]
    Keyring(#[from] openpgp::VerifyError),
    /// apt's sources or configuration hold a setting that cannot be read.
    #[error(transparent)]
    Apt(#[from] apt::AptError),
    #[error(
        "Debian has no binary-<arch> index for this host's CPU {machine:?}: fetch on a supported host, or use --from-deb with a .deb built for it"
    )]
    NoDebianArch { machine: String },
    #[error("{}: no such file: pass the path of a qemu-user-static or qemu-user .deb", path.display())]
    NoDeb { path: PathBuf },
    /// `--from-deb` names something that is not a regular file, or one too large for a .deb.
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// `gc` cannot see which versions the registered entries use.
    #[error(
        "cannot read the entries of binfmt_misc at {}: {reason}; gc removes nothing it cannot prove unused: mount binfmt_misc there (or name the instance with --binfmt-misc) and run it again",
        root.display()
    )]
    EntriesUnknown { root: PathBuf, reason: String },
    #[error(
        "{count} stored version(s) do not match their manifest: remove them with `binfmtctl qemu gc VERSION` (after `qemu use` of another) and fetch them again"
    )]
    Mismatch { count: usize },
    #[error(
        "no suite offers QEMU {spec} (looked at: {offered}): pick one of those versions or a suite name"
    )]
    UnknownVersion { spec: String, offered: String },
    #[error("{path}: refused as an interpreter: {problems}; nothing was stored")]
    Refused { path: String, problems: String },
    #[error(
        "{path}: cannot tell the QEMU version (no `qemu-<cpu> version` string in its interpreters): is it a QEMU package?"
    )]
    NoVersion { path: PathBuf },
}

impl QemuError {
    pub fn is_environment(&self) -> bool {
        match self {
            QemuError::Archive(e) => e.is_environment(),
            QemuError::Store(e) => e.is_environment(),
            QemuError::Deb(deb::DebError::Write { .. })
            | QemuError::NoDebianArch { .. }
            | QemuError::EntriesUnknown { .. } => true,
            QemuError::Keyring(e) => {
                crate::error::Classify::kind(e) == crate::error::ErrorKind::Environment
            }
            _ => false,
        }
    }
    pub fn is_usage(&self) -> bool {
        match self {
            QemuError::Archive(e) => e.is_usage(),
            QemuError::Store(e) => e.is_usage(),
            QemuError::UnknownVersion { .. }
            | QemuError::NoDeb { .. }
            | QemuError::Input(_)
            | QemuError::Apt(_) => true,
            QemuError::Keyring(e) => {
                crate::error::Classify::kind(e) == crate::error::ErrorKind::BadInput
            }
            QemuError::Deb(deb::DebError::NotDeb { .. } | deb::DebError::NoInterpreters { .. }) => {
                true
            }
            _ => false,
        }
    }
}

impl crate::error::Classify for QemuError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::of(self.is_usage(), self.is_environment())
    }
}

/// Where to look for a package, and what the archive offers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Offer {
    pub suite: String,
    pub package: String,
    pub version: String,
    pub upstream: String,
    /// The suite's InRelease was past its `Valid-Until`, read as allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<store::Expired>,
}

/// Is `spec` a suite name (not a version number or `latest`)?
pub fn is_suite(spec: &str) -> bool {
    spec != "latest"
        && spec.starts_with(|c: char| c.is_ascii_lowercase())
        && spec
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What each of `suites` offers (suites that fail are reported with their error).
pub fn offers(
    a: &Archive,
    suites: &[String],
    deb_arch: &str,
    cache: Option<&Path>,
) -> Vec<Result<Offer, (String, ArchiveError)>> {
    suites
        .iter()
        .map(|s| {
            a.qemu_package(s, deb_arch, cache)
                .map(|(rel, p)| Offer {
                    suite: s.clone(),
                    upstream: debian_mirror::upstream(&p.version).to_owned(),
                    package: p.package,
                    version: p.version,
                    expired: rel.expired,
                })
                .map_err(|e| (s.clone(), e))
        })
        .collect()
}

/// Finds the package a spec (`10.0`, `trixie`, `latest`) names.
pub fn resolve(
    a: &Archive,
    spec: &str,
    suites: &[String],
    deb_arch: &str,
    cache: Option<&Path>,
) -> Result<(Release, PackageInfo), QemuError> {
    if is_suite(spec) {
        return Ok(a.qemu_package(spec, deb_arch, cache)?);
    }
    let mut seen = Vec::new();
    let mut best: Option<(Release, PackageInfo)> = None;
    for s in suites {
        let (rel, p) = match a.qemu_package(s, deb_arch, cache) {
            Ok(x) => x,
            // A suite the mirror lacks is skipped; network and trust failures stop here.
            Err(ArchiveError::UnknownSuite { .. } | ArchiveError::NoPackage { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        seen.push(format!("{s} {}", debian_mirror::upstream(&p.version)));
        if spec == "latest" {
            if best
                .as_ref()
                .is_none_or(|(_, b)| compare_versions(&p.version, &b.version).is_gt())
            {
                best = Some((rel, p));
            }
        } else if version_matches(spec, &p.version) {
            return Ok((rel, p));
        }
    }
    best.ok_or_else(|| QemuError::UnknownVersion {
        spec: spec.to_owned(),
        offered: if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        },
    })
}

/// The QEMU CPU names of the table (what we extract).
pub fn known_cpus(table: &Table) -> Vec<&str> {
    let mut v: Vec<&str> = table.arches.iter().map(|a| a.qemu.as_str()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Where a .deb is to come from.
pub enum Source<'a> {
    /// From the archive: the package a signed index vouches for.
    Archive {
        archive: &'a Archive,
        release: &'a Release,
        package: &'a PackageInfo,
        cache: Option<&'a Path>,
    },
    /// A .deb the user has (its path, and the regular file opened once from it, so what is
    /// checked is what is read); recorded as unverified.
    LocalDeb(&'a Path, &'a std::fs::File),
}

/// Copies the opened local .deb into the staging directory, at most the size of any .deb the
/// archive is trusted for: a larger file is refused, not copied until the disk is full.
fn copy_bounded(
    path: &Path,
    file: &std::fs::File,
    to: &Path,
    progress: &dyn Progress,
) -> Result<(), QemuError> {
    use std::io::Read;
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let total = file.metadata().ok().map(|m| m.len());
    progress.begin(&format!("copying {name}"), total, Unit::Bytes);
    let mut out = std::fs::File::create(to).map_err(|err| deb::DebError::Write {
        path: to.to_owned(),
        err,
    })?;
    let mut counted = Counting {
        inner: file.take(store::MAX_DEB + 1),
        progress,
    };
    let n = std::io::copy(&mut counted, &mut out).map_err(|err| deb::DebError::Read {
        path: path.to_owned(),
        err,
    })?;
    if n > store::MAX_DEB {
        return Err(crate::input::InputError::TooLarge {
            path: path.to_owned(),
            limit: store::MAX_DEB,
        }
        .into());
    }
    Ok(())
}

/// What `fetch` did.
pub enum Fetched {
    Stored(Stored),
    AlreadyThere(Stored),
    /// A dry run: the version checked and what it would be stored as (`dir` where it would go).
    WouldStore(Stored),
}

/// Downloads (or copies), unpacks, checks and stores one version. Every failure leaves the
/// store as it was: the work happens in a staging directory that is dropped on error.
///
/// `dry_run`: the same download, signature chain, hashes, unpacking and content checks, in a
/// private scratch directory outside the store (no lock, no write to the store); the files'
/// owner and mode are not checked there, since the store sets them when it stores.
pub fn fetch(
    store: &Store,
    source: Source<'_>,
    table: &Table,
    req: &Requirements,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Fetched, QemuError> {
    // For the archive we know the version before downloading: skip a verified copy that is
    // there (an unverified one is replaced: a verified copy always wins).
    if let Some(there) = verified_copy(store, &source) {
        return Ok(there);
    }
    let lock = if dry_run { None } else { Some(store.lock()?) };
    let staging = match &lock {
        Some(l) => store.staging(l)?,
        None => store::Staging::scratch()?,
    };
    let deb_path = staging.dir.join("package.deb");
    // Another writer may have stored it while we waited for the lock.
    if let Some(there) = verified_copy(store, &source) {
        return Ok(there);
    }
    let from = obtain(&source, &deb_path, progress)?;
    let deb_bytes = std::fs::read(&deb_path).map_err(|err| deb::DebError::Read {
        path: deb_path.clone(),
        err,
    })?;
    let deb_sha256 = hex(&Sha256::digest(&deb_bytes));
    let deb_size = deb_bytes.len() as u64;
    drop(deb_bytes);
    let known = known_cpus(table);
    let extracted = deb::extract_interpreters(&deb_path, &staging.bin(), &known, progress)?;
    let _ = std::fs::remove_file(&deb_path);
    let files = check_extracted(&staging, &extracted, table, req, lock.is_some(), progress)
        .map_err(|problems| QemuError::Refused {
            path: deb_path.display().to_string(),
            problems,
        })?;
    // A local .deb's version: from the Debian version QEMU embeds ("10.0.6 (Debian 1:10.0.6+ds-0+deb13u2)").
    let debian_version = match from.debian_version {
        Some(v) => v,
        None => files
            .iter()
            .find_map(|f| f.qemu_version.as_deref().map(debian_version_of))
            .ok_or(QemuError::NoVersion {
                path: deb_path.clone(),
            })?,
    };
    let manifest = Manifest {
        version: store::dir_name(&debian_version),
        debian_version,
        package: from.package,
        suite: from.suite,
        origin: from.origin,
        verified: from.verified,
        mirror: from.mirror,
        expired: from.expired,
        deb_sha256,
        deb_size,
        fetched_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        files,
    };
    place(store, lock.as_ref(), staging, manifest)
}

/// The verified copy of the archive's package already in the store, if there is one.
fn verified_copy(store: &Store, source: &Source<'_>) -> Option<Fetched> {
    let Source::Archive { package, .. } = source else {
        return None;
    };
    let dir = store.root.join(store::dir_name(&package.version));
    let m = store::read_manifest(&dir).ok()?;
    m.verified
        .then_some(Fetched::AlreadyThere(Stored { dir, manifest: m }))
}

/// Where a fetched .deb came from, for its manifest.
struct Provenance {
    /// The archive's Debian version (a local .deb's is read from its interpreters).
    debian_version: Option<String>,
    package: String,
    suite: String,
    origin: String,
    verified: bool,
    mirror: Option<String>,
    expired: Option<store::Expired>,
}

/// Puts the .deb at `deb_path`: downloaded from the archive (its hashes checked against the
/// signed index) or copied from a local file (unverified).
fn obtain(
    source: &Source<'_>,
    deb_path: &Path,
    progress: &dyn Progress,
) -> Result<Provenance, QemuError> {
    Ok(match source {
        Source::Archive {
            archive,
            release,
            package,
            cache,
        } => {
            archive.download_deb(package, deb_path, *cache)?;
            Provenance {
                debian_version: Some(package.version.clone()),
                package: package.package.clone(),
                suite: if release.codename.is_empty() {
                    release.suite.clone()
                } else {
                    release.codename.clone()
                },
                origin: format!(
                    "Debian archive: InRelease of {} signed by {} ({}), Packages and .deb hashes checked",
                    release.codename, release.signer, archive.keyring.origin
                ),
                verified: true,
                mirror: Some(archive.mirror.clone()),
                expired: release.expired.clone(),
            }
        }
        Source::LocalDeb(p, file) => {
            copy_bounded(p, file, deb_path, progress)?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The package name the file is named by (`qemu-user-static_…`), when it is one.
            let package = name.split('_').next().filter(|n| {
                n.len() > 1
                    && n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && n.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)
                    })
            });
            Provenance {
                debian_version: None,
                package: package.unwrap_or("unknown").to_owned(),
                suite: "local".to_owned(),
                origin: format!(
                    "unverified: local file {} (no signed index vouches for it)",
                    p.display()
                ),
                verified: false,
                mirror: None,
                expired: None,
            }
        }
    })
}

/// The same checks as any interpreter, on each extracted one: static, the host's ELF machine,
/// root-owned, not writable by others, safe directories (`locked`: a dry run, whose scratch
/// directory is the caller's, checks the contents only). Their manifest entries, or what is
/// wrong with them.
fn check_extracted(
    staging: &store::Staging,
    extracted: &[deb::Extracted],
    table: &Table,
    req: &Requirements,
    locked: bool,
    progress: &dyn Progress,
) -> Result<Vec<FileEntry>, String> {
    progress.begin(
        "checking the interpreters",
        Some(extracted.len() as u64),
        Unit::Items,
    );
    let mut files = Vec::new();
    let mut refused = Vec::new();
    for x in extracted {
        let path = staging.bin().join(&x.name);
        let Some(arch) = table.arches.iter().find(|a| a.qemu == x.cpu) else {
            continue;
        };
        let facts = interpreter::facts(&path, arch);
        let mut problems = interpreter::check(&facts, req);
        if !locked {
            problems.retain(is_content_problem);
        }
        if !problems.is_empty() {
            let why: Vec<String> = problems.iter().map(ToString::to_string).collect();
            refused.push(format!("{} {}", x.member, why.join("; ")));
        }
        files.push(FileEntry {
            name: x.name.clone(),
            cpu: x.cpu.clone(),
            sha256: x.sha256.clone(),
            size: x.size,
            member: x.member.clone(),
            qemu_version: facts.version,
        });
        progress.advance(1);
    }
    progress.end();
    if refused.is_empty() {
        Ok(files)
    } else {
        Err(refused.join(" | "))
    }
}

/// Stores the staged version (under the lock; without it, a dry run, says what would be
/// stored). A verified copy always wins: it replaces an unverified one of the same version,
/// and no local .deb replaces or shadows it. Two different local .debs of one version: the
/// second is refused, not silently dropped.
fn place(
    store: &Store,
    lock: Option<&store::StoreLock>,
    staging: store::Staging,
    manifest: Manifest,
) -> Result<Fetched, QemuError> {
    let dir = store.version_dir(&manifest);
    let verified = manifest.verified;
    let mut replace = false;
    if let Ok(m) = store::read_manifest(&dir) {
        let same = m.deb_sha256 == manifest.deb_sha256;
        if m.verified || (!verified && same) {
            if !same && !verified {
                return Err(conflict(
                    &dir,
                    &m,
                    &manifest,
                    "a verified copy always wins; to use this build, rebuild it with a version of its own",
                ));
            }
            return Ok(Fetched::AlreadyThere(Stored { dir, manifest: m }));
        }
        if !verified {
            return Err(conflict(
                &dir,
                &m,
                &manifest,
                &format!(
                    "remove the stored one first (`binfmtctl qemu gc {}`, after `binfmtctl qemu use` of another version if it is in use), or fetch the verified one (`binfmtctl qemu fetch {}`)",
                    m.version, m.version
                ),
            ));
        }
        replace = true;
    }
    let Some(lock) = lock else {
        return Ok(Fetched::WouldStore(Stored { dir, manifest }));
    };
    if replace {
        eprintln!(
            "binfmtctl: note: the unverified copy of QEMU {} in the store is replaced by the verified one",
            manifest.version
        );
        return Ok(Fetched::Stored(store.replace(lock, staging, &manifest)?));
    }
    Ok(Fetched::Stored(store.commit(lock, staging, &manifest)?))
}

/// A local .deb of a version the store holds from another .deb.
fn conflict(dir: &Path, stored: &Manifest, given: &Manifest, fix: &str) -> QemuError {
    let from = if stored.verified {
        "Debian's archive (verified)".to_owned()
    } else {
        format!(
            "another local .deb (unverified; {})",
            crate::escape::escape(&stored.origin)
        )
    };
    StoreError::Conflict {
        version: stored.version.clone(),
        detail: format!(
            "({}) from {from}, with a .deb of sha256 {}; this .deb (sha256 {}) is another build of that version, so nothing was stored: {fix}",
            dir.display(),
            stored.deb_sha256,
            given.deb_sha256
        ),
    }
    .into()
}

/// A problem of the interpreter itself (not of where it lies, its owner or its mode, which
/// the store sets).
fn is_content_problem(p: &interpreter::Problem) -> bool {
    use interpreter::Problem as P;
    matches!(
        p,
        P::Missing | P::NotRegular | P::NotElf { .. } | P::WrongHostArch { .. } | P::Dynamic { .. }
    )
}

/// `10.0.6 (Debian 1:10.0.6+ds-0+deb13u2)` → `1:10.0.6+ds-0+deb13u2`; else the first word.
pub fn debian_version_of(embedded: &str) -> String {
    if let Some(i) = embedded.find("(Debian ") {
        let rest = &embedded[i + 8..];
        if let Some(j) = rest.find(')') {
            return rest[..j].trim().to_owned();
        }
    }
    embedded
        .split_whitespace()
        .next()
        .unwrap_or(embedded)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert!(is_suite("trixie"));
        assert!(is_suite("bookworm-backports"));
        assert!(!is_suite("10.0"));
        assert!(!is_suite("latest"));
        assert_eq!(
            debian_version_of("10.0.6 (Debian 1:10.0.6+ds-0+deb13u2)"),
            "1:10.0.6+ds-0+deb13u2"
        );
        assert_eq!(debian_version_of("7.2.19"), "7.2.19");
    }

    #[test]
    fn every_table_cpu_is_extracted() {
        let cpus = known_cpus(Table::builtin());
        assert!(cpus.contains(&"aarch64") && cpus.contains(&"riscv64"));
    }
}
