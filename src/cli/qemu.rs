//! `binfmtctl qemu …`: the store of static QEMU versions (versions, fetch, list, use, verify,
//! gc), and the glue that lets `install --qemu` and `status` see it. The work is in
//! `crate::qemu`; switching entries goes through the same plan/apply/rollback as install.

use std::path::{Path, PathBuf};

use super::*;
use crate::qemu::archive::{self, Archive, HttpOptions};
use crate::qemu::store::{self, Store, Stored};
use crate::qemu::verify::Keyring;
use crate::qemu::{self as q, Fetched, QemuError, Source};

#[derive(Debug, Subcommand)]
pub enum QemuCommand {
    /// What Debian's archive offers (per suite) and what the local store holds
    Versions {
        #[command(flatten)]
        net: NetOpts,
    },
    /// Download, verify (InRelease signature → Packages hash → .deb hash), unpack and store a
    /// QEMU version: a number (10.0), a suite (trixie, bookworm-backports) or `latest`
    Fetch {
        #[arg(
            value_name = "VERSION|SUITE|latest",
            required_unless_present = "from_deb"
        )]
        spec: Option<String>,
        /// Store the interpreters of a .deb you already have (recorded as unverified)
        #[arg(long, value_name = "FILE", conflicts_with = "spec")]
        from_deb: Option<PathBuf>,
        #[command(flatten)]
        net: NetOpts,
    },
    /// The store: version, suite, package, .deb sha256, which entries use it; and the
    /// system's own QEMU
    List {
        #[command(flatten)]
        kernel: KernelOpt,
    },
    /// Switch every registered qemu-* entry to a stored version, all or nothing
    Use {
        #[arg(value_name = "VERSION")]
        version: String,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
    /// Re-hash every stored file against its manifest (detects tampering)
    Verify,
    /// Remove stored versions that no entry uses (or only the VERSIONs named, refusing any in use)
    Gc {
        #[arg(value_name = "VERSION")]
        versions: Vec<String>,
        #[command(flatten)]
        kernel: KernelOpt,
        #[command(flatten)]
        dry_run: DryRunOpt,
    },
}

/// `--qemu-store` for `binfmtctl qemu` and each of its subcommands.
#[derive(Debug, Args, Clone, Default)]
pub struct QemuStoreOpt {
    /// The QEMU store [default: /var/lib/binfmtctl/qemu]
    #[arg(long, global = true, value_name = "DIR")]
    pub qemu_store: Option<PathBuf>,
}

impl QemuCommand {
    /// The option groups each subcommand takes (those that read or change binfmt_misc).
    pub(super) fn takes(&self) -> Takes<'_> {
        match self {
            QemuCommand::List { kernel } => Takes {
                kernel: Some(kernel),
                ..Takes::default()
            },
            QemuCommand::Use {
                kernel, dry_run, ..
            }
            | QemuCommand::Gc {
                kernel, dry_run, ..
            } => Takes {
                kernel: Some(kernel),
                dry_run: Some(dry_run),
                ..Takes::default()
            },
            QemuCommand::Versions { .. } | QemuCommand::Fetch { .. } | QemuCommand::Verify => {
                Takes::default()
            }
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct NetOpts {
    /// A Debian mirror URL, e.g. the one in your apt sources (default: apt's)
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// OpenPGP keyring trusted for InRelease (default: the system's
    /// debian-archive-keyring.gpg, else the copy built into binfmtctl)
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Suites to consider (repeatable) [default: bookworm, trixie, bookworm-backports, sid]
    #[arg(long, value_name = "SUITE")]
    pub suite: Vec<String>,
    /// Seconds a connection or a single read may stall before giving up
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Keep verified indexes and .debs here, keyed by sha256, for later fetches
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

fn qemu_err(e: QemuError) -> anyhow::Error {
    anyhow::Error::new(e)
}

pub(super) fn store_of(ctx: &Ctx) -> Store {
    Store::new(
        ctx.g
            .qemu_store
            .clone()
            .unwrap_or_else(|| PathBuf::from(store::DEFAULT_ROOT)),
    )
}

/// Which stored version an interpreter path belongs to, if any.
pub(super) fn source_of(stored: &[Stored], interpreter: &str) -> String {
    stored
        .iter()
        .find(|s| store::uses(s, interpreter))
        .map_or_else(
            || "system".to_owned(),
            |s| format!("store {}", s.manifest.version),
        )
}

fn archive_of(ctx: &Ctx, net: &NetOpts) -> Result<Archive> {
    let mirror = match &net.mirror {
        Some(m) => m.clone(),
        None => archive::apt_mirror(Path::new("/"))
            .ok_or_else(|| qemu_err(QemuError::Archive(archive::ArchiveError::NoMirror)))?,
    };
    let keyring = Keyring::load(net.keyring.as_deref())?;
    let http = HttpOptions {
        connect_timeout: std::time::Duration::from_secs(net.timeout.max(1)),
        read_timeout: std::time::Duration::from_secs(net.timeout.max(1)),
    };
    let _ = ctx;
    Archive::new(&mirror, keyring, &http).map_err(|e| qemu_err(e.into()))
}

fn suites(net: &NetOpts) -> Vec<String> {
    if net.suite.is_empty() {
        q::LOOKUP_ORDER.iter().map(|s| (*s).to_owned()).collect()
    } else {
        net.suite.clone()
    }
}

fn deb_arch(ctx: &Ctx) -> Result<&'static str> {
    archive::debian_arch(&ctx.host.facts.machine).ok_or_else(|| {
        Unsupported(format!(
            "Debian has no binary-<arch> index for this host's CPU {:?}",
            ctx.host.facts.machine
        ))
        .into()
    })
}

pub(super) fn qemu_cmd(ctx: &Ctx, cmd: &QemuCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        QemuCommand::Versions { net } => versions(ctx, net, out),
        QemuCommand::Fetch {
            spec,
            from_deb,
            net,
        } => fetch(ctx, spec.as_deref(), from_deb.as_deref(), net, out),
        QemuCommand::List { .. } => list(ctx, out),
        QemuCommand::Use { version, .. } => use_version(ctx, version, out),
        QemuCommand::Verify => verify(ctx, out),
        QemuCommand::Gc { versions, .. } => gc(ctx, versions, out),
    }
}

fn versions(ctx: &Ctx, net: &NetOpts, out: &mut dyn Write) -> Result<()> {
    let a = archive_of(ctx, net)?;
    let mut suites = suites(net);
    // Listed oldest first.
    if net.suite.is_empty() {
        suites = archive::DEFAULT_SUITES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    }
    let offers = q::offers(&a, &suites, deb_arch(ctx)?, net.cache.as_deref());
    // Network trouble for every suite is an environment failure, not an empty answer.
    if let Some(Err((_, e))) = offers
        .iter()
        .find(|o| matches!(o, Err((_, e)) if e.is_environment()))
        && offers.iter().all(Result::is_err)
    {
        return Err(qemu_err(QemuError::Archive(clone_env(e))));
    }
    let stored = store_of(ctx).list();
    if ctx.g.json {
        let v: Vec<serde_json::Value> = offers
            .iter()
            .map(|o| match o {
                Ok(o) => json!(o),
                Err((s, e)) => json!({"suite": s, "error": e.to_string()}),
            })
            .collect();
        let st: Vec<&str> = stored.iter().map(|s| s.manifest.version.as_str()).collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"archive": v, "store": st, "mirror": a.mirror}))?
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<10} {:<18} DEBIAN VERSION",
        "SUITE", "QEMU", "PACKAGE"
    )?;
    for o in &offers {
        match o {
            Ok(o) => writeln!(
                out,
                "{:<20} {:<10} {:<18} {}",
                o.suite, o.upstream, o.package, o.version
            )?,
            Err((s, e)) => writeln!(out, "{s:<20} error: {e}")?,
        }
    }
    if stored.is_empty() {
        writeln!(out, "store: empty ({})", store_of(ctx).root.display())?;
    } else {
        let v: Vec<&str> = stored.iter().map(|s| s.manifest.version.as_str()).collect();
        writeln!(out, "store: {}", v.join(", "))?;
    }
    Ok(())
}

/// ArchiveError is not Clone; rebuild the environment ones for the summary error.
fn clone_env(e: &archive::ArchiveError) -> archive::ArchiveError {
    archive::ArchiveError::Network {
        url: "the mirror".into(),
        reason: e.to_string(),
    }
}

fn fetch(
    ctx: &Ctx,
    spec: Option<&str>,
    from_deb: Option<&Path>,
    net: &NetOpts,
    out: &mut dyn Write,
) -> Result<()> {
    let table = ctx.table;
    let req = ctx.requirements(true)?;
    let store = store_of(ctx);
    let fetched = if let Some(deb) = from_deb {
        if !deb.is_file() {
            return Err(BadInput(format!(
                "{}: no such file: pass the path of a qemu-user-static or qemu-user .deb",
                deb.display()
            ))
            .into());
        }
        q::fetch(&store, Source::LocalDeb(deb), table, &req).map_err(qemu_err)?
    } else {
        let spec = spec.unwrap_or("latest");
        let a = archive_of(ctx, net)?;
        let (release, package) =
            q::resolve(&a, spec, &suites(net), deb_arch(ctx)?, net.cache.as_deref())
                .map_err(qemu_err)?;
        if ctx.g.dry_run {
            writeln!(
                out,
                "would fetch {} {} from {} (verified: InRelease signed by {})",
                package.package, package.version, release.suite, release.signer
            )?;
            return Ok(());
        }
        q::fetch(
            &store,
            Source::Archive {
                archive: &a,
                release: &release,
                package: &package,
                cache: net.cache.as_deref(),
            },
            table,
            &req,
        )
        .map_err(qemu_err)?
    };
    let (what, s) = match fetched {
        Fetched::Stored(s) => ("stored", s),
        Fetched::AlreadyThere(s) => ("already-stored", s),
    };
    if ctx.g.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &json!({"action": what, "dir": s.dir, "manifest": s.manifest})
            )?
        )?;
        return Ok(());
    }
    let cpus: Vec<&str> = s.manifest.files.iter().map(|f| f.cpu.as_str()).collect();
    writeln!(
        out,
        "{what} QEMU {} ({} {} from {}) in {}: {} interpreters ({})",
        s.manifest.version,
        s.manifest.package,
        s.manifest.debian_version,
        s.manifest.suite,
        s.dir.display(),
        cpus.len(),
        cpus.join(" ")
    )?;
    writeln!(out, "origin: {}", s.manifest.origin)?;
    Ok(())
}

/// Registered entries (empty when binfmt_misc is not mounted or cannot be read).
fn entries(ctx: &Ctx) -> Vec<crate::binfmt::kernel::KernelEntry> {
    crate::binfmt::kernel::snapshot(&ctx.fs).unwrap_or_default()
}

fn users_of(s: &Stored, entries: &[crate::binfmt::kernel::KernelEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|k| store::uses(s, &k.entry.registration.interpreter))
        .map(|k| k.entry.registration.name.clone())
        .collect()
}

fn list(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let store = store_of(ctx);
    let stored = store.list();
    let entries = entries(ctx);
    // The system's own QEMU: what discovery finds on the default path for aarch64.
    let system = ctx.table.get("arm64").and_then(|a| {
        let dirs: Vec<PathBuf> = interpreter::DEFAULT_SEARCH
            .iter()
            .map(PathBuf::from)
            .collect();
        let req = ctx.requirements(true).ok()?;
        let d = interpreter::discover(a, &dirs, &req);
        d.chosen()
            .map(|c| (c.facts.path.clone(), c.facts.version.clone()))
    });
    if ctx.g.json {
        let v: Vec<serde_json::Value> = stored
            .iter()
            .map(|s| {
                json!({
                    "version": s.manifest.version,
                    "dir": s.dir,
                    "suite": s.manifest.suite,
                    "package": s.manifest.package,
                    "debian_version": s.manifest.debian_version,
                    "deb_sha256": s.manifest.deb_sha256,
                    "verified": s.manifest.verified,
                    "origin": s.manifest.origin,
                    "arches": s.manifest.files.iter().map(|f| &f.cpu).collect::<Vec<_>>(),
                    "used_by": users_of(s, &entries),
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({
                "store": store.root,
                "versions": v,
                "system": system.as_ref().map(|(p, v)| json!({"path": p, "version": v})),
            }))?
        )?;
        return Ok(());
    }
    writeln!(out, "store: {}", store.root.display())?;
    if stored.is_empty() {
        writeln!(out, "no stored versions (binfmtctl qemu fetch VERSION)")?;
    } else {
        writeln!(
            out,
            "{:<26} {:<20} {:<17} {:<3} {:<16} USED BY",
            "VERSION", "SUITE", "PACKAGE", "#", "DEB SHA256"
        )?;
        for s in &stored {
            let users = users_of(s, &entries);
            writeln!(
                out,
                "{:<26} {:<20} {:<17} {:<3} {:<16} {}",
                s.manifest.version,
                if s.manifest.verified {
                    s.manifest.suite.clone()
                } else {
                    format!("{} (unverified)", s.manifest.suite)
                },
                s.manifest.package,
                s.manifest.files.len(),
                &s.manifest.deb_sha256[..s.manifest.deb_sha256.len().min(16)],
                if users.is_empty() {
                    "-".into()
                } else {
                    users.join(",")
                }
            )?;
        }
    }
    match system {
        Some((p, v)) => writeln!(
            out,
            "system: {} (QEMU {})",
            p.display(),
            v.as_deref()
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
        )?,
        None => writeln!(out, "system: no QEMU installed on the default path")?,
    }
    Ok(())
}

/// Switches every registered qemu-* entry to `spec`'s interpreters: through install's checks
/// (resolved, checked interpreters; the native-capture guard), then one plan (replace each
/// entry, flags kept) applied with rollback: all or nothing.
fn use_version(ctx: &Ctx, spec: &str, out: &mut dyn Write) -> Result<()> {
    let s = store_of(ctx)
        .resolve(spec)
        .map_err(|e| qemu_err(e.into()))?;
    let stored = crate::ops::StoredBin::of(&s);
    let r = crate::ops::install::use_stored(&ctx.fs, &ctx.host, stored, spec, ctx.g.dry_run)?;
    show(ctx, out, r)
}

fn verify(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let store = store_of(ctx);
    let stored = store.list();
    let results: Vec<(&Stored, Vec<String>)> = stored
        .iter()
        .map(|s| (s, Store::verify_version(s)))
        .collect();
    let broken = store.broken();
    let bad: usize = results.iter().filter(|(_, p)| !p.is_empty()).count() + broken.len();
    if ctx.g.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(s, p)| json!({"version": s.manifest.version, "ok": p.is_empty(), "problems": p}))
            .chain(
                broken
                    .iter()
                    .map(|(d, e)| json!({"dir": d, "ok": false, "problems": [e]})),
            )
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"versions": v}))?
        )?;
    } else {
        for (s, p) in &results {
            if p.is_empty() {
                writeln!(
                    out,
                    "ok       {} ({} files match the manifest)",
                    s.manifest.version,
                    s.manifest.files.len()
                )?;
            } else {
                for line in p {
                    writeln!(out, "MISMATCH {}: {line}", s.manifest.version)?;
                }
            }
        }
        for (_, e) in &broken {
            writeln!(out, "MISMATCH {e}")?;
        }
        if results.is_empty() && broken.is_empty() {
            writeln!(out, "the store {} holds no version", store.root.display())?;
        }
    }
    if bad > 0 {
        return Err(anyhow::anyhow!(
            "{bad} stored version(s) do not match their manifest: remove them with `binfmtctl qemu gc VERSION` (after `qemu use` of another) and fetch them again"
        ));
    }
    Ok(())
}

fn gc(ctx: &Ctx, names: &[String], out: &mut dyn Write) -> Result<()> {
    let store = store_of(ctx);
    ctx.mount_to_read()?;
    let entries = entries(ctx);
    let targets: Vec<Stored> = if names.is_empty() {
        store.list()
    } else {
        let mut v = Vec::new();
        for n in names {
            v.push(store.resolve(n).map_err(|e| qemu_err(e.into()))?);
        }
        // Named versions in use are refused before anything is removed.
        for s in &v {
            let users = users_of(s, &entries);
            if !users.is_empty() {
                return Err(qemu_err(
                    store::StoreError::InUse {
                        version: s.manifest.version.clone(),
                        users: users.join(", "),
                    }
                    .into(),
                ));
            }
        }
        v
    };
    let mut rows = Vec::new();
    if targets.is_empty() {
        if ctx.g.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&json!({"gc": []}))?)?;
        } else {
            writeln!(out, "the store {} holds no version", store.root.display())?;
        }
        return Ok(());
    }
    let lock = if ctx.g.dry_run {
        None
    } else {
        Some(store.lock().map_err(|e| qemu_err(e.into()))?)
    };
    for s in &targets {
        let users = users_of(s, &entries);
        if !users.is_empty() {
            rows.push(json!({"version": s.manifest.version, "action": "kept", "used_by": users}));
            continue;
        }
        if let Some(l) = &lock {
            store.remove(l, s).map_err(|e| qemu_err(e.into()))?;
        }
        rows.push(json!({"version": s.manifest.version, "action": if ctx.g.dry_run { "would-remove" } else { "removed" }}));
    }
    if ctx.g.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"gc": rows}))?
        )?;
    } else {
        for r in &rows {
            let users = r["used_by"]
                .as_array()
                .map(|u| {
                    let n: Vec<&str> = u.iter().filter_map(|x| x.as_str()).collect();
                    format!(" (in use by {})", n.join(", "))
                })
                .unwrap_or_default();
            writeln!(
                out,
                "{:<13} {}{users}",
                r["action"].as_str().unwrap_or(""),
                r["version"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(())
}
