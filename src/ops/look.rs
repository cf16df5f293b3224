//! The commands that look without changing anything: `inspect` (what a binary is and what the
//! kernel will do with it), `scan` (which arches a root file system or tarball needs, and
//! which of them lack a handler now) and `test` (a probe program per arch run through the
//! kernel). Each reads the kernel's entries through the `BinfmtFs` seam and returns a typed
//! report, serialized as the documented JSON (docs/json.md); the CLI renders it.
//!
//! Reads the files named (regular files only, through `input`); `test` runs the probes (and
//! re-executes binfmtctl as the `__probe-chroot` helper).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::Host;
use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::{self, BinfmtFs};
use crate::error::{Classify, ErrorKind};
use crate::inspection::scan::{ArchCount, FileArch, Scan, UnknownCount};
use crate::inspection::selftest::{ArchResult, Status};
use crate::progress::Progress;

/// What looking found wrong, after its report was made.
#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error("{failed} of {total} files could not be inspected")]
    Uninspectable { failed: usize, total: usize },
    #[error(
        "no qemu-* handler is registered, so nothing was tested: run `binfmtctl install ARCHES` first, or `binfmtctl test all`"
    )]
    NothingToTest,
    #[error("emulation test failed for {0} arch(es)")]
    TestFailed(usize),
}

impl Classify for LookError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The files named cannot be inspected (missing, unreadable, not ELF, malformed):
            // bad input, as docs/exit-codes.md says (issue 21).
            LookError::Uninspectable { .. } => ErrorKind::BadInput,
            LookError::NothingToTest | LookError::TestFailed(_) => ErrorKind::Failed,
        }
    }
}

/// `inspect`: one result per file, in the order given.
#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub files: Vec<Inspected>,
}

/// One inspected file: its report, or why it could not be inspected.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Inspected {
    Ok {
        path: PathBuf,
        ok: bool,
        #[serde(flatten)]
        report: Box<crate::inspection::inspect::Report>,
    },
    Failed {
        path: PathBuf,
        ok: bool,
        error: String,
    },
}

impl InspectReport {
    /// The error to return after showing the report: some files could not be inspected.
    pub fn failure(&self) -> Option<LookError> {
        let failed = self
            .files
            .iter()
            .filter(|f| matches!(f, Inspected::Failed { .. }))
            .count();
        (failed > 0).then_some(LookError::Uninspectable {
            failed,
            total: self.files.len(),
        })
    }
}

/// `inspect`: each file's ELF facts and the kernel's choice for it (`interp_exists`: whether a
/// program interpreter exists on this host).
pub fn inspect(
    fs: &dyn BinfmtFs,
    host: &Host,
    files: &[PathBuf],
    interp_exists: &dyn Fn(&str) -> bool,
) -> Result<InspectReport> {
    let (entries, enabled) = kernel::view(fs)?;
    let machine = crate::inspection::inspect::Machine {
        table: host.table,
        native: host.native(),
        entries: &entries,
        binfmt_enabled: enabled,
        interp_exists,
    };
    let files = files
        .iter()
        .map(|path| match inspect_one(&machine, path) {
            Ok(report) => Inspected::Ok {
                path: path.clone(),
                ok: true,
                report: Box::new(report),
            },
            Err(error) => Inspected::Failed {
                path: path.clone(),
                ok: false,
                error,
            },
        })
        .collect();
    Ok(InspectReport { files })
}

/// One file's report, or the one-line reason it has none.
fn inspect_one(
    machine: &crate::inspection::inspect::Machine,
    path: &Path,
) -> std::result::Result<crate::inspection::inspect::Report, String> {
    // A regular file only: a FIFO or device would block or never end.
    let file = crate::input::open_regular(path).map_err(|e| match e {
        crate::input::InputError::Missing { .. } => "cannot open: no such file".into(),
        crate::input::InputError::Open { cause, .. } => format!("cannot open: {cause}"),
        crate::input::InputError::NotRegular { kind, .. } => {
            format!("{kind}, not a regular file")
        }
        other => other.to_string(),
    })?;
    let mut header = vec![0u8; crate::binfmt::registration::BINPRM_BUF_SIZE];
    let n = file
        .read_at(&mut header, 0)
        .map_err(|e| format!("cannot read: {e}"))?;
    header.truncate(n);
    let facts = crate::elf::inspect_file(&file).map_err(|e| match e {
        crate::elf::ElfError::NotElf => {
            let start: String = String::from_utf8_lossy(&header[..n.min(16)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            format!("not an ELF file (starts with {start:?})")
        }
        other => other.to_string(),
    })?;
    Ok(crate::inspection::inspect::report(
        machine,
        &path.to_string_lossy(),
        &header,
        &facts,
    ))
}

/// `scan`: the tree's or tarball's ELF files by arch, each arch with the handler the kernel
/// would pick for it now.
#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub path: PathBuf,
    pub files: usize,
    pub elf_files: usize,
    pub special_files: usize,
    pub arches: Vec<ArchCount>,
    pub unknown: Vec<UnknownCount>,
    pub errors: Vec<ScanFileError>,
    pub seconds: f64,
    /// With `--files`: every ELF file with its arch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf: Option<Vec<FileArch>>,
}

/// A file the scan could not read.
#[derive(Debug, Serialize)]
pub struct ScanFileError {
    pub path: String,
    pub error: String,
}

/// `scan` over `path` with `threads` readers; `list`: keep every ELF file in the report.
/// `progress` is told of the files walked and read (of the bytes read, for an archive).
pub fn scan(
    fs: &dyn BinfmtFs,
    host: &Host,
    path: &Path,
    threads: usize,
    list: bool,
    progress: &dyn Progress,
) -> Result<ScanReport> {
    let (entries, enabled) = kernel::view(fs)?;
    let started = std::time::Instant::now();
    // Unreadable or malformed input, a corrupt archive included: exit 2 (ScanError says so).
    let s: Scan = crate::inspection::scan::scan(host.table, path, threads, progress)?;
    let elapsed = started.elapsed();
    let native: Vec<String> = host.native().iter().map(|n| n.arch.clone()).collect();
    // The handler the kernel would pick for an executable of this arch: asked with our probe's
    // header, which is what such executables look like to binfmt_misc.
    let handler_of = |arch: &str| {
        let a = host.table.get(arch)?;
        let header = crate::inspection::probe::representative_header(a);
        crate::inspection::inspect::kernel_choice(&entries, enabled, &header, "/x")
            .map(|k| k.entry.registration.name.clone())
    };
    let (arches, unknown) =
        crate::inspection::scan::summarize(&s, host.table, &native, &handler_of);
    Ok(ScanReport {
        path: path.to_path_buf(),
        files: s.files,
        elf_files: s.elf.len(),
        special_files: s.special,
        arches,
        unknown,
        errors: s
            .errors
            .into_iter()
            .map(|(path, error)| ScanFileError { path, error })
            .collect(),
        seconds: elapsed.as_secs_f64(),
        elf: list.then_some(s.elf),
    })
}

/// `test`: one result per arch, and the counts.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub results: Vec<ArchResult>,
    pub summary: TestSummary,
}

#[derive(Debug, Serialize)]
pub struct TestSummary {
    pub pass: usize,
    pub fail: usize,
    pub skipped: usize,
}

impl TestReport {
    /// The error to return after showing the report: some arch failed.
    pub fn failure(&self) -> Option<LookError> {
        (self.summary.fail > 0).then_some(LookError::TestFailed(self.summary.fail))
    }
}

/// `test`: the arches named (`all`: every arch with a probe), or every registered qemu-*
/// handler; `self_exe` is binfmtctl, re-executed as the `__probe-chroot` helper.
pub fn selftest(
    fs: &dyn BinfmtFs,
    host: &Host,
    names: &[String],
    self_exe: &Path,
    strict: bool,
) -> Result<TestReport> {
    use crate::inspection::selftest::{Env, Workdir, test_arch};
    let (entries, enabled) = kernel::view(fs)?;
    let targets: Vec<(&Arch, bool)> = if names.is_empty() {
        let registered: Vec<(&Arch, bool)> = host
            .table
            .arches
            .iter()
            .filter(|a| {
                entries
                    .iter()
                    .any(|k| k.entry.registration.name == a.entry_name())
            })
            .map(|a| (a, true))
            .collect();
        if registered.is_empty() {
            return Err(LookError::NothingToTest.into());
        }
        registered
    } else {
        let (all, arches) = host.resolve_list(names)?;
        arches.into_iter().map(|a| (a, !all)).collect()
    };
    let work = Workdir::new().context("cannot create a directory for the probes")?;
    let env = Env {
        entries: &entries,
        binfmt_enabled: enabled,
        host_machine: &host.facts.machine,
        self_exe,
        work: &work,
    };
    let mut results: Vec<ArchResult> = targets
        .iter()
        .map(|(a, explicit)| test_arch(a, host.is_native(&a.name).is_some(), *explicit, &env))
        .collect();
    if strict {
        // Asked to prove everything (the empty-chroot check is F's proof): a check that
        // could not run fails the arch.
        for r in &mut results {
            if r.status == Status::Pass && r.checks.iter().any(|c| c.ok.is_none()) {
                for c in r.checks.iter_mut().filter(|c| c.ok.is_none()) {
                    c.ok = Some(false);
                    c.detail = format!("not run, and --strict needs every check: {}", c.detail);
                }
                r.status = Status::Fail;
            }
        }
    }
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let summary = TestSummary {
        pass: count(Status::Pass),
        fail: count(Status::Fail),
        skipped: count(Status::Skipped),
    };
    Ok(TestReport { results, summary })
}
