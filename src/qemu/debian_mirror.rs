//! Debian's archive as a source of QEMU: the mirror (from apt's sources or the config), the
//! HTTP client (rustls, timeouts, the proxy from the environment), and the trust chain
//! `InRelease` (OpenPGP) → `Packages` (SHA256 in InRelease) → `.deb` (SHA256 in Packages).
//!
//! Formats: deb822 control stanzas (Debian Policy §5), the repository layout of
//! `dists/<suite>/` (Debian wiki "DebianRepository/Format"), dpkg version ordering
//! (Debian Policy §5.6.12). Needs network, no privileges; downloads go to caller-given files.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::progress::{Progress, Silent, Unit};

use super::openpgp::{Keyring, VerifyError};
use super::store::Expired;
pub use super::version::{compare_versions, upstream, version_matches};
pub use crate::input::hex;

/// The suites `qemu versions` asks about, oldest first.
pub const DEFAULT_SUITES: &[&str] = &["bookworm", "bookworm-backports", "trixie", "forky", "sid"];
/// Longest index we accept (compressed or not); sid's main Packages is about 60 MB today.
const MAX_INDEX: u64 = 512 << 20;
/// Longest `InRelease` we accept: Debian's are about 150 KiB (they list every index's
/// hashes); apt itself refuses a Release file above 10 MiB (`APT::Acquire::MaxReleaseFileSize`).
pub const MAX_RELEASE: u64 = 10 << 20;
/// Each request must finish within `DEADLINE_FACTOR` × `--timeout` ...
pub const DEADLINE_FACTOR: u32 = 10;
/// ... plus one second per `MIN_RATE` bytes the signed index says it carries: a mirror that
/// trickles a byte at a time never trips a per-read timeout, so only a total deadline ends it.
pub const MIN_RATE: u64 = 32 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "no Debian mirror is known: apt's sources name none; pass --mirror URL (a Debian mirror URL, e.g. the one in your apt sources)"
    )]
    NoMirror,
    #[error("bad mirror URL {url:?}: it must start with http:// or https://")]
    BadMirror { url: String },
    #[error(
        "{step}: cannot reach {url}: {reason}: check the network, the mirror URL and http_proxy/https_proxy/no_proxy"
    )]
    Network {
        step: Step,
        url: String,
        reason: String,
    },
    #[error(
        "{step}: {url}: timed out ({reason}); the server stalled: try again or pick another mirror with --mirror"
    )]
    Timeout {
        step: Step,
        url: String,
        reason: String,
    },
    #[error(
        "{step}: {url} did not finish within its deadline of {secs} s ({got} bytes received): the mirror is too slow or trickles the file; try again, pick another mirror with --mirror, or raise --timeout (the deadline is {DEADLINE_FACTOR} x --timeout plus 1 s per 32 KiB of the file)"
    )]
    Deadline {
        step: Step,
        url: String,
        secs: u64,
        got: u64,
    },
    #[error(
        "{step}: {url} is larger than {limit} bytes, more than any such file of Debian's archive: the mirror served something else; pick another mirror with --mirror"
    )]
    TooLarge { step: Step, url: String, limit: u64 },
    #[error(
        "unknown suite {suite:?}: the mirror has no {url} (HTTP {status}); known suites: {known}"
    )]
    UnknownSuite {
        suite: String,
        url: String,
        status: u16,
        known: String,
    },
    #[error("{url}: HTTP {status}: the mirror lacks the file; try another mirror with --mirror")]
    Http { url: String, status: u16 },
    #[error("step 1 (InRelease signature) failed for suite {suite}: {err}")]
    Signature { suite: String, err: VerifyError },
    #[error("step 1 (InRelease) failed for suite {suite}: {reason}")]
    Release { suite: String, reason: String },
    #[error(
        "step 2 (Packages index) failed: {path} {reason}: the mirror served a file the signed InRelease does not vouch for; nothing was stored"
    )]
    IndexHash { path: String, reason: String },
    #[error(
        "step 3 (.deb) failed: {url} {reason}: the file does not match the signed Packages index; nothing was stored"
    )]
    DebHash { url: String, reason: String },
    #[error(
        "the cache directory {path} is unsafe: {reason}: use a directory only root (or you) can write, e.g. one under /var/cache"
    )]
    UnsafeCache { path: PathBuf, reason: String },
    #[error("{url}: truncated download ({got} of {want} bytes): try again")]
    Truncated { url: String, got: u64, want: u64 },
    #[error("cannot write {path}: {err}: {}", super::store::io_hint(err))]
    Write { path: PathBuf, err: std::io::Error },
    #[error(
        "suite {suite} has no package {wanted} for {arch}: it may not ship QEMU, pick another suite (see `binfmtctl qemu versions`)"
    )]
    NoPackage {
        suite: String,
        wanted: String,
        arch: String,
    },
}

impl ArchiveError {
    /// The environment (network, server) rather than the request is at fault.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            ArchiveError::Network { .. }
                | ArchiveError::Timeout { .. }
                | ArchiveError::Deadline { .. }
                | ArchiveError::Write { .. }
        )
    }

    /// The request itself is wrong (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ArchiveError::NoMirror
                | ArchiveError::BadMirror { .. }
                | ArchiveError::UnknownSuite { .. }
                | ArchiveError::NoPackage { .. }
                | ArchiveError::UnsafeCache { .. }
        )
    }
}

/// One deb822 stanza: lowercase field names to values (continuation lines joined by `\n`).
/// Comment lines (`#`) are skipped.
pub fn parse_stanza(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                let v = out.entry(k.clone()).or_default();
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            out.insert(k.clone(), v.trim().to_owned());
            last = Some(k);
        }
    }
    out
}

/// What a signed `InRelease` says.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    /// The directory under dists/ the InRelease was fetched from (the name the user asked
    /// for): the indexes come from the same directory, never from the Suite field's alias of
    /// it (`stable` vs `trixie`), which a caching mirror may serve from an older copy.
    pub dist: String,
    /// `Acquire-By-Hash: yes`: the indexes are also published under their hash, where a
    /// mirror in the middle of a sync still serves exactly the file the InRelease names.
    pub by_hash: bool,
    /// path under dists/<suite>/ → (sha256, size)
    pub sha256: BTreeMap<String, (String, u64)>,
    /// The key that verified it.
    pub signer: String,
    /// Its `Valid-Until` had passed, and it was used as allowed (`Archive::allow_expired`).
    pub expired: Option<Expired>,
}

/// Seconds since the Unix epoch of an RFC 2822 date as Debian's Release files write it
/// (`Sat, 29 Nov 2025 08:21:03 UTC`; the weekday is optional, the zone UTC, GMT or +0000).
pub fn parse_release_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.split_once(", ").map_or(s, |(_, rest)| rest);
    let w: Vec<&str> = s.split_whitespace().collect();
    let [day, mon, year, time, zone] = w[..] else {
        return None;
    };
    if !matches!(zone, "UTC" | "GMT" | "+0000" | "Z") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = i64::try_from(MONTHS.iter().position(|x| *x == mon)? + 1).ok()?;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let t: Vec<i64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [hh, mm, ss] = t[..] else { return None };
    if !(1..=31).contains(&d)
        || !(0..24).contains(&hh)
        || !(0..60).contains(&mm)
        || !(0..61).contains(&ss)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

impl Release {
    /// Parses the *signed* text; checks that it describes `requested` (by Suite or Codename),
    /// so a validly signed InRelease of another suite cannot be replayed, and that it has not
    /// expired (`Valid-Until`, which Debian sets on suites that change often), so an old signed
    /// InRelease that still lists a vulnerable QEMU cannot be replayed either. `now` is seconds
    /// since the epoch.
    ///
    /// `allow_expired` (what allows it: `--allow-expired`, apt's setting) takes an expired one
    /// (a dated snapshot mirror's), recorded in `expired`.
    pub fn parse(
        requested: &str,
        signed: &str,
        signer: &str,
        now: i64,
        allow_expired: Option<&str>,
    ) -> Result<Release, ArchiveError> {
        let head = signed.split("\n\n").next().unwrap_or("");
        let f = parse_stanza(head);
        let mut expired = None;
        if let Some(v) = f.get("valid-until") {
            let Some(until) = parse_release_date(v) else {
                return Err(ArchiveError::Release {
                    suite: requested.to_owned(),
                    reason: format!(
                        "the signed InRelease has a Valid-Until date that cannot be read ({v:?}): the mirror served a damaged file"
                    ),
                });
            };
            if until < now {
                match allow_expired {
                    Some(by) => {
                        expired = Some(Expired {
                            valid_until: v.clone(),
                            allowed_by: by.to_owned(),
                        })
                    }
                    None => {
                        return Err(ArchiveError::Release {
                            suite: requested.to_owned(),
                            reason: format!(
                                "the signed InRelease expired on {v} (Valid-Until): the mirror serves an outdated copy, which could hide security updates; use an up-to-date mirror (or check this machine's clock), or, for a dated snapshot mirror you mean to use, pass --allow-expired (with the mirror from apt's sources, apt's Acquire::Check-Valid-Until \"false\" or the source's check-valid-until=no count too)"
                            ),
                        });
                    }
                }
            }
        }
        let suite = f.get("suite").cloned().unwrap_or_default();
        let codename = f.get("codename").cloned().unwrap_or_default();
        if requested != suite && requested != codename {
            return Err(ArchiveError::Release {
                suite: requested.to_owned(),
                reason: format!(
                    "the signed InRelease describes suite {suite:?} (codename {codename:?}), not {requested:?}: the mirror served another suite's file"
                ),
            });
        }
        let mut sha256 = BTreeMap::new();
        for line in f.get("sha256").map(String::as_str).unwrap_or("").lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let [hash, size, path] = w[..]
                && let Ok(size) = size.parse()
            {
                sha256.insert(path.to_owned(), (hash.to_ascii_lowercase(), size));
            }
        }
        if sha256.is_empty() {
            return Err(ArchiveError::Release {
                suite: requested.to_owned(),
                reason: "the signed InRelease lists no SHA256 hashes".into(),
            });
        }
        let by_hash = f
            .get("acquire-by-hash")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
        Ok(Release {
            suite,
            codename,
            dist: requested.to_owned(),
            by_hash,
            sha256,
            signer: signer.to_owned(),
            expired,
        })
    }
}

/// One binary package from a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    pub package: String,
    pub version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub installed_size: u64,
}

/// Every stanza of a `Packages` index whose package is one of `names`.
pub fn packages_named(index: &str, names: &[&str]) -> Vec<PackageInfo> {
    let mut out = Vec::new();
    for stanza in index.split("\n\n") {
        // Cheap pre-filter: the index has ~60k stanzas.
        let Some(first) = stanza.trim_start().lines().next() else {
            continue;
        };
        let Some(name) = first.strip_prefix("Package:") else {
            continue;
        };
        if !names.contains(&name.trim()) {
            continue;
        }
        let f = parse_stanza(stanza);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        out.push(PackageInfo {
            package: get("package"),
            version: get("version"),
            filename: get("filename"),
            size: get("size").parse().unwrap_or(0),
            sha256: get("sha256").to_ascii_lowercase(),
            installed_size: get("installed-size").parse().unwrap_or(0),
        });
    }
    out
}

/// The package that carries static interpreters in a suite: `qemu-user-static` while it is
/// the real thing (bookworm and older), `qemu-user` once that is static and
/// `qemu-user-static` a small transitional package (trixie and later). Highest version wins
/// within a name.
pub fn pick_package(pkgs: &[PackageInfo]) -> Option<&PackageInfo> {
    let best = |name: &str| {
        pkgs.iter()
            .filter(|p| p.package == name)
            .max_by(|a, b| compare_versions(&a.version, &b.version))
    };
    match best("qemu-user-static") {
        // A transitional package is a few hundred KiB; the real one is hundreds of MiB.
        Some(p) if p.installed_size >= 10_000 => Some(p),
        _ => best("qemu-user"),
    }
}

/// Makes sure the `--cache` directory is one only root (or the caller) can change: created
/// 0755 if missing; refused when it is a symlink, not a directory, owned by someone else, or
/// writable by group or others. Files in it are read only after their hash matched, and
/// written by `cache_put`, so nothing there is ever written through.
pub fn check_cache_dir(dir: &Path) -> Result<(), ArchiveError> {
    use std::os::unix::fs::DirBuilderExt;
    let unsafe_ = |reason: String| ArchiveError::UnsafeCache {
        path: dir.to_owned(),
        reason,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => {}
        Err(err) => {
            return Err(ArchiveError::Write {
                path: dir.to_owned(),
                err,
            });
        }
    }
    crate::input::private_dir(dir, None)
        .map_err(|err| ArchiveError::Write {
            path: dir.to_owned(),
            err,
        })?
        .map_err(unsafe_)?;
    Ok(())
}

/// Puts `bytes` into the cache as `name`: a new file (`O_EXCL`, so never through a symlink or
/// into an existing file) renamed over `name` (which replaces a link, never follows it). Best
/// effort: the cache is an optimisation, so a failure only means no copy is kept.
pub fn cache_put(dir: &Path, name: &str, bytes: &[u8]) {
    let _ = crate::atomic::replace(&dir.join(name), bytes, 0o644);
}

/// Reads a cached file, only a regular one (a FIFO planted there cannot hang the fetch).
fn cache_get(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut b = Vec::new();
    (&f).take(super::store::MAX_DEB).read_to_end(&mut b).ok()?;
    Some(b)
}

/// Which step of the trust chain a request belongs to, for the errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Release,
    Packages,
    Deb,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Release => "step 1 (InRelease)",
            Step::Packages => "step 2 (Packages index)",
            Step::Deb => "step 3 (.deb)",
        })
    }
}

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub connect_timeout: Duration,
    /// Longest wait for any single read (a stalled server).
    pub read_timeout: Duration,
    /// Every request's total budget before its size is counted (`deadline_for`).
    pub deadline: Duration,
}

impl HttpOptions {
    /// Connect and per-read timeouts of `timeout`, and a total deadline of
    /// `DEADLINE_FACTOR` x `timeout` per request (plus its size's share, `deadline_for`).
    pub fn with_timeout(timeout: Duration) -> HttpOptions {
        HttpOptions {
            connect_timeout: timeout,
            read_timeout: timeout,
            deadline: timeout * DEADLINE_FACTOR,
        }
    }

    /// The total time a request carrying `bytes` (as the signed index says; 0 when unknown)
    /// may take, from the connection to the last byte.
    pub fn deadline_for(&self, bytes: u64) -> Duration {
        self.deadline + Duration::from_secs(bytes / MIN_RATE)
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::with_timeout(Duration::from_secs(30))
    }
}

/// A response being read, with the instant its request must have finished by.
struct Response {
    step: Step,
    url: String,
    status: u16,
    body: ureq::Body,
    started: Instant,
    budget: Duration,
}

/// A mirror plus the keyring that vouches for it.
pub struct Archive {
    pub mirror: String,
    pub keyring: Keyring,
    /// Take an InRelease past its `Valid-Until`; says what allows it (`--allow-expired`, or
    /// apt's setting and where). `None`: refuse it.
    pub allow_expired: Option<String>,
    agent: ureq::Agent,
    http: HttpOptions,
    /// Told of each step of the trust chain and of the bytes downloaded (`with_progress`).
    progress: Arc<dyn Progress + Send>,
}

impl Archive {
    pub fn new(
        mirror: &str,
        keyring: Keyring,
        http: &HttpOptions,
    ) -> Result<Archive, ArchiveError> {
        if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
            return Err(ArchiveError::BadMirror {
                url: mirror.to_owned(),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(http.connect_timeout))
            .timeout_per_read(Some(http.read_timeout))
            .timeout_resolve(Some(http.connect_timeout))
            .http_status_as_error(false)
            .proxy(ureq::Proxy::try_from_env())
            .user_agent(concat!("binfmtctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Archive {
            mirror: mirror.trim_end_matches('/').to_owned(),
            keyring,
            allow_expired: None,
            agent,
            http: http.clone(),
            progress: Arc::new(Silent),
        })
    }

    /// The archive, reporting its steps (each download's bytes, then the check of the
    /// signature or hash) to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress + Send>) -> Archive {
        self.progress = progress;
        self
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{}", self.mirror, rel.trim_start_matches('/'))
    }

    /// GET → the response, whose whole exchange (connection, headers, body) must finish
    /// within `deadline_for(expected)`: ureq enforces it as the request's global timeout, and
    /// `stream` checks it after every read. Network failures are mapped here.
    fn get(&self, step: Step, url: &str, expected: u64) -> Result<Response, ArchiveError> {
        tracing::debug!(url, "GET");
        let budget = self.http.deadline_for(expected);
        let started = Instant::now();
        let call = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .call();
        match call {
            Ok(resp) => Ok(Response {
                step,
                url: url.to_owned(),
                status: resp.status().as_u16(),
                body: resp.into_body(),
                started,
                budget,
            }),
            Err(_) if started.elapsed() >= budget => Err(ArchiveError::Deadline {
                step,
                url: url.to_owned(),
                secs: budget.as_secs(),
                got: 0,
            }),
            Err(e) => Err(map_err(step, url, e)),
        }
    }

    /// Streams the response into `sink`, at most `limit` bytes; returns (bytes, sha256 hex).
    /// A longer body is cut at `limit` (not an error here): the callers pass one byte more
    /// than the signed size (or their cap), so a longer file is refused by them. Past the
    /// request's deadline the download ends with `ArchiveError::Deadline`.
    fn stream(
        &self,
        resp: Response,
        limit: u64,
        sink: &mut dyn Write,
        sink_path: &Path,
    ) -> Result<(u64, String), ArchiveError> {
        let Response {
            step,
            url,
            body,
            started,
            budget,
            ..
        } = resp;
        let url = url.as_str();
        let mut reader = body.into_with_config().limit(u64::MAX).reader().take(limit);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let late = |got| ArchiveError::Deadline {
                step,
                url: url.to_owned(),
                secs: budget.as_secs(),
                got,
            };
            let k = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) if started.elapsed() >= budget => return Err(late(n)),
                Err(e) => return Err(map_io(step, url, e)),
            };
            if started.elapsed() >= budget {
                return Err(late(n + k as u64));
            }
            h.update(&buf[..k]);
            self.progress.advance(k as u64);
            sink.write_all(&buf[..k])
                .map_err(|err| ArchiveError::Write {
                    path: sink_path.to_owned(),
                    err,
                })?;
            n += k as u64;
        }
        Ok((n, hex(&h.finalize())))
    }

    /// Step 1: `dists/<suite>/InRelease`, signature checked, parsed from the signed text.
    pub fn release(&self, suite: &str) -> Result<Release, ArchiveError> {
        if suite.is_empty()
            || !suite
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ArchiveError::UnknownSuite {
                suite: suite.to_owned(),
                url: "(not fetched)".into(),
                status: 0,
                known: DEFAULT_SUITES.join(", "),
            });
        }
        let url = self.url(&format!("dists/{suite}/InRelease"));
        self.progress
            .begin(&format!("{suite}: InRelease"), None, Unit::Bytes);
        let resp = self.get(Step::Release, &url, 0)?;
        let status = resp.status;
        if status == 404 {
            return Err(ArchiveError::UnknownSuite {
                suite: suite.to_owned(),
                url,
                status,
                known: DEFAULT_SUITES.join(", "),
            });
        }
        if status != 200 {
            return Err(ArchiveError::Http { url, status });
        }
        let mut bytes = Vec::new();
        let (n, _) = self.stream(resp, MAX_RELEASE + 1, &mut bytes, Path::new("(memory)"))?;
        if n > MAX_RELEASE {
            return Err(ArchiveError::TooLarge {
                step: Step::Release,
                url,
                limit: MAX_RELEASE,
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        self.progress.begin(
            &format!("{suite}: checking the InRelease signature"),
            None,
            Unit::Items,
        );
        let (signed, signer) = self
            .keyring
            .verify_cleartext(&url.to_string(), &text)
            .map_err(|err| ArchiveError::Signature {
                suite: suite.to_owned(),
                err,
            })?;
        self.progress.end();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Release::parse(suite, &signed, &signer, now, self.allow_expired.as_deref())
    }

    /// Step 2: `main/binary-<arch>/Packages{.xz,.gz,}`, hash checked against the release,
    /// decompressed. `cache` (if given) keeps verified compressed indexes by their hash.
    pub fn packages(
        &self,
        rel: &Release,
        deb_arch: &str,
        cache: Option<&Path>,
    ) -> Result<String, ArchiveError> {
        if let Some(c) = cache {
            check_cache_dir(c)?;
        }
        let base = format!("main/binary-{deb_arch}/Packages");
        let (path, (hash, size)) = ["xz", "gz", ""]
            .iter()
            .map(|x| {
                if x.is_empty() {
                    base.clone()
                } else {
                    format!("{base}.{x}")
                }
            })
            .find_map(|p| rel.sha256.get(&p).map(|v| (p, v.clone())))
            .ok_or_else(|| ArchiveError::IndexHash {
                path: format!("dists/{}/{base}", rel.dist),
                reason: "is not listed in the signed InRelease".into(),
            })?;
        if size > MAX_INDEX {
            return Err(ArchiveError::IndexHash {
                path: format!("dists/{}/{path}", rel.dist),
                reason: format!(
                    "is {size} bytes by the signed InRelease, more than the {MAX_INDEX} binfmtctl reads"
                ),
            });
        }
        // InRelease also lists the uncompressed index's hash: a cached decompressed copy that
        // matches it needs no download and no decompression (xz is the slow part).
        let plain = rel.sha256.get(&base).cloned();
        let plain_cache = match (&plain, cache) {
            (Some((h, _)), Some(c)) => Some(c.join(format!("index-{h}"))),
            _ => None,
        };
        let dist = &rel.dist;
        if let (Some((h, _)), Some(p)) = (&plain, &plain_cache)
            && let Some(b) = cache_get(p)
            && &hex(&Sha256::digest(&b)) == h
        {
            return Ok(String::from_utf8_lossy(&b).into_owned());
        }
        let cached = cache
            .filter(|_| plain_cache.is_none())
            .map(|c| c.join(format!("index-{hash}")));
        let compressed = match cached.as_ref().and_then(|p| cache_get(p)) {
            Some(b) if hex(&Sha256::digest(&b)) == hash => b,
            _ => {
                let bytes = self.download_index(rel, &path, &hash, size)?;
                if let Some(c) = cache.filter(|_| cached.is_some()) {
                    cache_put(c, &format!("index-{hash}"), &bytes);
                }
                bytes
            }
        };
        self.progress.begin(
            &format!("{dist}: checking the Packages hash"),
            None,
            Unit::Items,
        );
        // Decompressed, the index is bounded too: a small signed file must not inflate
        // without end.
        let text = decompress_index(&path, compressed, MAX_INDEX)?;
        if let Some((h, _)) = &plain {
            let got = hex(&Sha256::digest(&text));
            if &got != h {
                return Err(ArchiveError::IndexHash {
                    path: format!("dists/{}/{base}", rel.dist),
                    reason: format!("decompresses to sha256 {got}, the signed InRelease says {h}"),
                });
            }
            if let Some(c) = cache.filter(|_| plain_cache.is_some()) {
                cache_put(c, &format!("index-{h}"), &text);
            }
        }
        self.progress.end();
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// The compressed index `path` of `rel`, `size` bytes of sha256 `hash` as the signed
    /// InRelease says, downloaded (by hash when the archive offers it) and checked.
    fn download_index(
        &self,
        rel: &Release,
        path: &str,
        hash: &str,
        size: u64,
    ) -> Result<Vec<u8>, ArchiveError> {
        let dist = &rel.dist;
        // By hash first (apt does the same): the plain name changes at every
        // mirror sync and can be newer or older than the InRelease fetched a moment
        // ago; the by-hash name is the file the InRelease vouches for or nothing.
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        self.progress
            .begin(&format!("{dist}: {path}"), Some(size), Unit::Bytes);
        let mut got = None;
        if rel.by_hash {
            let url = self.url(&format!("dists/{}/{dir}/by-hash/SHA256/{hash}", rel.dist));
            let resp = self.get(Step::Packages, &url, size)?;
            if resp.status == 200 {
                got = Some(resp);
            } else {
                tracing::debug!(url, resp.status, "no by-hash copy; the plain name is used");
            }
        }
        let resp = match got {
            Some(g) => g,
            None => {
                let url = self.url(&format!("dists/{}/{path}", rel.dist));
                let resp = self.get(Step::Packages, &url, size)?;
                if resp.status != 200 {
                    return Err(ArchiveError::Http {
                        url,
                        status: resp.status,
                    });
                }
                resp
            }
        };
        let url = resp.url.clone();
        let mut bytes = Vec::new();
        let (n, got) = self.stream(
            resp,
            size.saturating_add(1),
            &mut bytes,
            Path::new("(memory)"),
        )?;
        if n != size {
            let has = if n > size {
                "is longer than".to_owned()
            } else {
                format!("has {n} bytes,")
            };
            return Err(ArchiveError::IndexHash {
                path: url,
                reason: format!("{has} the {size} bytes the signed InRelease says"),
            });
        }
        if got != hash {
            return Err(ArchiveError::IndexHash {
                path: url,
                reason: format!("has sha256 {got}, the signed InRelease says {hash}"),
            });
        }
        Ok(bytes)
    }

    /// The package carrying static QEMU in `suite` for `deb_arch`.
    pub fn qemu_package(
        &self,
        suite: &str,
        deb_arch: &str,
        cache: Option<&Path>,
    ) -> Result<(Release, PackageInfo), ArchiveError> {
        let rel = self.release(suite)?;
        let index = self.packages(&rel, deb_arch, cache)?;
        let pkgs = packages_named(&index, &["qemu-user-static", "qemu-user"]);
        let p = pick_package(&pkgs)
            .cloned()
            .ok_or_else(|| ArchiveError::NoPackage {
                suite: suite.to_owned(),
                wanted: "qemu-user-static or qemu-user".into(),
                arch: deb_arch.to_owned(),
            })?;
        Ok((rel, p))
    }

    /// Step 3: downloads the .deb into `dest` (a new file), checking size and sha256 against
    /// the signed index. `cache` (if given) keeps verified .debs by their hash.
    pub fn download_deb(
        &self,
        p: &PackageInfo,
        dest: &Path,
        cache: Option<&Path>,
    ) -> Result<(), ArchiveError> {
        let url = self.url(&p.filename);
        let write_err = |err| ArchiveError::Write {
            path: dest.to_owned(),
            err,
        };
        if let Some(c) = cache {
            check_cache_dir(c)?;
            let cached = c.join(format!("deb-{}", p.sha256));
            if let Some(b) = cache_get(&cached)
                && hex(&Sha256::digest(&b)) == p.sha256
            {
                std::fs::write(dest, &b).map_err(write_err)?;
                return Ok(());
            }
        }
        if p.size > super::store::MAX_DEB || p.sha256.len() != 64 {
            return Err(ArchiveError::DebHash {
                url,
                reason: "has no usable Size/SHA256 in the index".into(),
            });
        }
        let name = p.filename.rsplit('/').next().unwrap_or(&p.filename);
        self.progress.begin(name, Some(p.size), Unit::Bytes);
        let resp = self.get(Step::Deb, &url, p.size)?;
        if resp.status != 200 {
            return Err(ArchiveError::Http {
                url,
                status: resp.status,
            });
        }
        let mut f = std::fs::File::create(dest).map_err(write_err)?;
        let (n, got) = self.stream(resp, p.size.saturating_add(1), &mut f, dest)?;
        self.progress
            .begin("checking the .deb hash", None, Unit::Items);
        if n < p.size {
            return Err(ArchiveError::Truncated {
                url,
                got: n,
                want: p.size,
            });
        }
        if n != p.size || got != p.sha256 {
            return Err(ArchiveError::DebHash {
                url,
                reason: if n > p.size {
                    format!("is longer than the {} bytes the signed index says", p.size)
                } else {
                    format!(
                        "has {n} bytes with sha256 {got}; the signed index says {} bytes with sha256 {}",
                        p.size, p.sha256
                    )
                },
            });
        }
        f.sync_all().map_err(write_err)?;
        if let Some(c) = cache
            && let Ok(b) = std::fs::read(dest)
        {
            cache_put(c, &format!("deb-{}", p.sha256), &b);
        }
        self.progress.end();
        Ok(())
    }
}

/// An index as fetched (`path` ends in `.xz`, `.gz` or neither), decompressed to at most
/// `limit` bytes.
fn decompress_index(path: &str, compressed: Vec<u8>, limit: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut text = Vec::new();
    let bad = |e: String| ArchiveError::IndexHash {
        path: path.to_owned(),
        reason: format!("cannot be decompressed ({e})"),
    };
    let too_big = || bad(format!("it inflates past {limit} bytes"));
    if path.ends_with(".xz") {
        let mut out = Bounded {
            buf: &mut text,
            limit,
            full: false,
        };
        lzma_rs::xz_decompress(&mut &compressed[..], &mut out).map_err(|e| {
            if out.full {
                too_big()
            } else {
                bad(e.to_string())
            }
        })?;
    } else if path.ends_with(".gz") {
        flate2::read::GzDecoder::new(&compressed[..])
            .take(limit + 1)
            .read_to_end(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        if text.len() as u64 > limit {
            return Err(too_big());
        }
    } else {
        text = compressed;
    }
    Ok(text)
}

/// A `Write` into memory that takes at most `limit` bytes (then fails, and says so in `full`).
struct Bounded<'a> {
    buf: &'a mut Vec<u8>,
    limit: u64,
    full: bool,
}

impl Write for Bounded<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() as u64 + b.len() as u64 > self.limit {
            self.full = true;
            return Err(std::io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn map_err(step: Step, url: &str, e: ureq::Error) -> ArchiveError {
    match e {
        ureq::Error::Timeout(t) => ArchiveError::Timeout {
            step,
            url: url.to_owned(),
            reason: t.to_string(),
        },
        ureq::Error::Io(io) => map_io(step, url, io),
        other => ArchiveError::Network {
            step,
            url: url.to_owned(),
            reason: other.to_string(),
        },
    }
}

fn map_io(step: Step, url: &str, e: std::io::Error) -> ArchiveError {
    if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
        return ArchiveError::Timeout {
            step,
            url: url.to_owned(),
            reason: e.to_string(),
        };
    }
    // ureq wraps its own errors (timeouts included) in io::Error while a body is read.
    let text = e.to_string();
    if text.contains("timeout") || text.contains("timed out") {
        return ArchiveError::Timeout {
            step,
            url: url.to_owned(),
            reason: text,
        };
    }
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return ArchiveError::Network {
            step,
            url: url.to_owned(),
            reason: format!("the connection closed early ({text}); truncated download"),
        };
    }
    ArchiveError::Network {
        step,
        url: url.to_owned(),
        reason: text,
    }
}

/// Debian's name for the host's CPU (the `binary-<arch>` of the index).
pub fn debian_arch(machine: &str) -> Option<&'static str> {
    Some(match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i586" | "i386" => "i386",
        "armv7l" | "armv8l" => "armhf",
        "ppc64le" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" => "mips64el",
        _ => return None,
    })
}

impl crate::error::Classify for ArchiveError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::of(self.is_usage(), self.is_environment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Cache files are written as new files and renamed into place: links planted at the
    /// temporary name or at the final name are never written through.
    #[test]
    fn cache_writes_never_follow_links() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let dir = t.path().join("cache");
        check_cache_dir(&dir).unwrap();
        let tmp = dir.join(format!(".deb-x.binfmtctl-{}-0", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("deb-x")).unwrap();
        cache_put(&dir, "deb-x", b"new");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read(dir.join("deb-x")).unwrap(), b"new");
        // The planted link is skipped (another temporary name is used), neither followed nor
        // removed.
        assert!(std::fs::symlink_metadata(&tmp).unwrap().is_symlink());
        // A link as the cache directory itself is refused.
        std::os::unix::fs::symlink(&dir, t.path().join("link")).unwrap();
        assert!(matches!(
            check_cache_dir(&t.path().join("link")),
            Err(ArchiveError::UnsafeCache { .. })
        ));
    }

    /// A compressed index is bounded when it is decompressed (xz and gzip), not only by its
    /// signed compressed size.
    #[test]
    fn indexes_inflate_only_up_to_the_limit() {
        let plain = vec![b'a'; 100_000];
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &plain[..], &mut xz).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        for (path, bytes) in [("Packages.xz", &xz), ("Packages.gz", &gz)] {
            assert_eq!(
                decompress_index(path, bytes.clone(), 100_000).unwrap(),
                plain
            );
            let e = decompress_index(path, bytes.clone(), 99_999)
                .unwrap_err()
                .to_string();
            assert!(e.contains("it inflates past 99999 bytes"), "{path}: {e}");
        }
    }

    #[test]
    fn no_mirror_is_a_usage_error_naming_the_option() {
        let e = ArchiveError::NoMirror;
        assert!(e.is_usage() && e.to_string().contains("--mirror URL"));
    }

    #[test]
    fn picks_the_static_package_by_suite() {
        let p = |package: &str, version: &str, isize| PackageInfo {
            package: package.into(),
            version: version.into(),
            filename: format!("pool/{package}_{version}.deb"),
            size: 1,
            sha256: String::new(),
            installed_size: isize,
        };
        // bookworm: the real qemu-user-static; qemu-user is dynamic.
        let bookworm = [
            p("qemu-user", "1:7.2", 50_000),
            p("qemu-user-static", "1:7.2", 300_000),
        ];
        assert_eq!(pick_package(&bookworm).unwrap().package, "qemu-user-static");
        // trixie: qemu-user-static is transitional.
        let trixie = [
            p("qemu-user-static", "1:10.0", 40),
            p("qemu-user", "1:10.0", 200_000),
        ];
        assert_eq!(pick_package(&trixie).unwrap().package, "qemu-user");
        let idx = "Package: qemu-user\nVersion: 1:10.0\nFilename: pool/q.deb\nSize: 5\nSHA256: AB\nInstalled-Size: 9\n\nPackage: qemu-user-dbgsym\nVersion: 1\n";
        let got = packages_named(idx, &["qemu-user"]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sha256, "ab");
        assert_eq!(got[0].size, 5);
    }

    #[test]
    fn release_dates_parse_as_debian_writes_them() {
        assert_eq!(parse_release_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_release_date("Sat, 29 Nov 2025 08:21:03 UTC"),
            Some(1_764_404_463)
        );
        assert_eq!(
            parse_release_date("29 Feb 2024 23:59:59 GMT"),
            Some(1_709_251_199)
        );
        for bad in [
            "",
            "Sat, 29 Nov 2025",
            "Sat, 29 Foo 2025 08:21:03 UTC",
            "Sat, 29 Nov 2025 08:21:03 CET",
            "Sat, 32 Nov 2025 08:21:03 UTC",
        ] {
            assert_eq!(parse_release_date(bad), None, "{bad}");
        }
    }

    /// An expired InRelease (Valid-Until in the past) is refused, naming the date; one still
    /// valid, or without the field, is accepted; an unreadable date is refused.
    #[test]
    fn an_expired_release_is_refused() {
        let text = |valid: &str| {
            format!(
                "Suite: stable-backports\nCodename: bookworm-backports\n{valid}SHA256:\n 0123 10 main/binary-amd64/Packages.xz\n"
            )
        };
        let now = 1_764_404_463; // Sat, 29 Nov 2025 08:21:03 UTC
        let e = Release::parse(
            "bookworm-backports",
            &text("Valid-Until: Sat, 22 Nov 2025 08:21:03 UTC\n"),
            "k",
            now,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("expired on Sat, 22 Nov 2025 08:21:03 UTC")
                && e.contains("up-to-date mirror"),
            "{e}"
        );
        assert!(
            Release::parse(
                "bookworm-backports",
                &text("Valid-Until: Sat, 06 Dec 2025 08:21:03 UTC\n"),
                "k",
                now,
                None
            )
            .is_ok()
        );
        assert!(Release::parse("bookworm-backports", &text(""), "k", now, None).is_ok());
        let e = Release::parse(
            "bookworm-backports",
            &text("Valid-Until: someday\n"),
            "k",
            now,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be read"), "{e}");
        // Allowed: taken, and recorded with the date and what allowed it.
        let r = Release::parse(
            "bookworm-backports",
            &text("Valid-Until: Sat, 22 Nov 2025 08:21:03 UTC\n"),
            "k",
            now,
            Some("--allow-expired"),
        )
        .unwrap();
        assert_eq!(
            r.expired,
            Some(Expired {
                valid_until: "Sat, 22 Nov 2025 08:21:03 UTC".into(),
                allowed_by: "--allow-expired".into()
            })
        );
        let r = Release::parse(
            "bookworm-backports",
            &text("Valid-Until: Sat, 06 Dec 2025 08:21:03 UTC\n"),
            "k",
            now,
            Some("--allow-expired"),
        )
        .unwrap();
        assert_eq!(r.expired, None, "not expired: nothing to record");
        // An unreadable date stays refused even when expiry is allowed.
        assert!(
            Release::parse(
                "bookworm-backports",
                &text("Valid-Until: someday\n"),
                "k",
                now,
                Some("x")
            )
            .is_err()
        );
    }

    #[test]
    fn release_must_name_the_requested_suite() {
        let signed = "Origin: Debian\nSuite: stable\nCodename: bookworm\nSHA256:\n abcd 12 main/binary-amd64/Packages.xz\n";
        let r = Release::parse("bookworm", signed, "k", 0, None).unwrap();
        assert_eq!(
            r.sha256["main/binary-amd64/Packages.xz"],
            ("abcd".into(), 12)
        );
        assert!(Release::parse("stable", signed, "k", 0, None).is_ok());
        let e = Release::parse("trixie", signed, "k", 0, None).unwrap_err();
        assert!(e.to_string().contains("another suite"), "{e}");
    }

    #[test]
    fn indexes_come_from_the_requested_directory_and_by_hash_when_offered() {
        let signed = "Suite: stable\nCodename: trixie\nAcquire-By-Hash: yes\nSHA256:\n abcd 12 main/binary-amd64/Packages.xz\n";
        let r = Release::parse("trixie", signed, "k", 0, None).unwrap();
        assert_eq!(
            (r.dist.as_str(), r.suite.as_str(), r.by_hash),
            ("trixie", "stable", true)
        );
        let no = signed.replace("Acquire-By-Hash: yes\n", "");
        assert!(!Release::parse("stable", &no, "k", 0, None).unwrap().by_hash);
    }
}
