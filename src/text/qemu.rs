//! The QEMU store's reports (`ops::qemu`: versions, fetch, list, verify, gc) as text.

use std::io::{Result, Write};

use crate::ops::qemu::{
    FetchAction, FetchReport, GcReport, ListReport, SuiteOffer, Verified, VerifyReport,
    VersionsReport,
};

impl VersionsReport {
    /// What each suite offers (or why it could not be read), then what the store holds.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let r = self;
        writeln!(
            out,
            "{:<20} {:<10} {:<18} DEBIAN VERSION",
            "SUITE", "QEMU", "PACKAGE"
        )?;
        for o in &r.archive {
            match o {
                SuiteOffer::Offer(o) => writeln!(
                    out,
                    "{:<20} {:<10} {:<18} {}{}",
                    o.suite,
                    o.upstream,
                    o.package,
                    o.version,
                    o.expired.as_ref().map_or_else(String::new, |e| format!(
                        "  (InRelease expired {}, allowed by {})",
                        e.valid_until, e.allowed_by
                    ))
                )?,
                SuiteOffer::Error { suite, error } => {
                    writeln!(out, "{suite:<20} error: {error}")?;
                }
            }
        }
        if r.store.is_empty() {
            writeln!(out, "store: empty ({})", r.store_root.display())?;
        } else {
            writeln!(out, "store: {}", r.store.join(", "))?;
        }
        Ok(())
    }
}

impl FetchReport {
    /// What was stored (or would be), from where, and how it was verified.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let r = self;
        let m = &r.manifest;
        let cpus: Vec<&str> = m.files.iter().map(|f| f.cpu.as_str()).collect();
        writeln!(
            out,
            "{} QEMU {} ({} {} from {}) in {}: {} interpreters ({})",
            r.action.as_str(),
            m.version,
            m.package,
            m.debian_version,
            m.suite,
            r.dir.display(),
            cpus.len(),
            cpus.join(" ")
        )?;
        writeln!(out, "origin: {}", m.origin)?;
        if let Some(e) = &m.expired {
            writeln!(
                out,
                "expired: the InRelease was past its Valid-Until ({}), allowed by {}",
                e.valid_until, e.allowed_by
            )?;
        }
        if r.action == FetchAction::WouldStore {
            writeln!(out, "dry run: nothing was stored")?;
        }
        Ok(())
    }
}

impl ListReport {
    /// The stored versions as a table, the system's QEMU, and the expired InReleases.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let r = self;
        writeln!(out, "store: {}", r.store.display())?;
        if r.versions.is_empty() {
            writeln!(out, "no stored versions (binfmtctl qemu fetch VERSION)")?;
        } else {
            writeln!(
                out,
                "{:<26} {:<20} {:<17} {:<3} {:<16} USED BY",
                "VERSION", "SUITE", "PACKAGE", "#", "DEB SHA256"
            )?;
            for v in &r.versions {
                writeln!(
                    out,
                    "{:<26} {:<20} {:<17} {:<3} {:<16} {}",
                    v.version,
                    match (v.verified, &v.expired) {
                        (false, _) => format!("{} (unverified)", v.suite),
                        (true, Some(_)) => format!("{} (expired)", v.suite),
                        (true, None) => v.suite.clone(),
                    },
                    v.package,
                    v.arches.len(),
                    &v.deb_sha256[..v.deb_sha256.len().min(16)],
                    if v.used_by.is_empty() {
                        "-".into()
                    } else {
                        v.used_by.join(",")
                    }
                )?;
            }
        }
        match &r.system {
            Some(s) => writeln!(
                out,
                "system: {} (QEMU {})",
                s.path.display(),
                s.version
                    .as_deref()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("?")
            )?,
            None => writeln!(out, "system: no QEMU installed on the default path")?,
        }
        for v in r.versions.iter() {
            if let Some(e) = &v.expired {
                writeln!(
                    out,
                    "{}: verified by an InRelease past its Valid-Until ({}), allowed by {}",
                    v.version, e.valid_until, e.allowed_by
                )?;
            }
        }
        Ok(())
    }
}

impl VerifyReport {
    /// Each version: ok, or each mismatch with its manifest.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let r = self;
        for v in &r.versions {
            match v {
                Verified::Version {
                    version,
                    problems,
                    files,
                    ..
                } => {
                    if problems.is_empty() {
                        writeln!(out, "ok       {version} ({files} files match the manifest)")?;
                    }
                    for line in problems {
                        writeln!(out, "MISMATCH {version}: {line}")?;
                    }
                }
                Verified::Broken { problems, .. } => {
                    for e in problems {
                        writeln!(out, "MISMATCH {e}")?;
                    }
                }
            }
        }
        if r.versions.is_empty() {
            writeln!(out, "the store {} holds no version", r.store_root.display())?;
        }
        Ok(())
    }
}

impl GcReport {
    /// Each version with what gc did to it (or would do), and who uses it.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let r = self;
        if r.gc.is_empty() {
            writeln!(out, "the store {} holds no version", r.store_root.display())?;
        }
        for row in &r.gc {
            let users = if row.used_by.is_empty() {
                String::new()
            } else {
                format!(" (in use by {})", row.used_by.join(", "))
            };
            writeln!(out, "{:<13} {}{users}", row.action.as_str(), row.version)?;
        }
        Ok(())
    }
}
