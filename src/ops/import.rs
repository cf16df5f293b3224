//! Import: entries read from binfmt.d files, registered only after the checks install makes
//! (every entry passes them, or nothing is written).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::install::{Prepared, reconcile};
use super::{Host, OpsError, Reported, arch_of};
use crate::binfmt::interop::Imported;
use crate::binfmt::kernel::BinfmtFs;
use crate::binfmt::plan::Desired;
use crate::binfmt::registration::Matcher;
use crate::qemu::interpreter;

/// Reads the binfmt.d files named (a directory: its `*.conf` files, as systemd-binfmt orders
/// them): each a regular file of at most 1 MiB (a FIFO or /dev/zero is refused, not read).
pub fn read(paths: &[PathBuf]) -> Result<Vec<Imported>> {
    let mut imported = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            crate::binfmt::interop::conf_files(p)
                .with_context(|| format!("reading {}", p.display()))?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let text = crate::input::read_text(&f, crate::input::MAX_TEXT)?;
            imported.extend(crate::binfmt::interop::parse_binfmt_d(&f, &text)?);
        }
    }
    Ok(imported)
}

/// `import` without `--register`: the entries as `status` would show them, each with the
/// file and line it came from (docs/json.md, "import").
#[derive(Debug, Serialize)]
pub struct Listing {
    pub registrations: Vec<Listed>,
}

#[derive(Debug, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub entry: super::view::EntryView,
    pub file: PathBuf,
    pub line: usize,
}

/// The listing of `imported` (nothing is checked or registered).
pub fn listing(host: &Host, imported: &[Imported]) -> Listing {
    let guard = host.native_guard();
    let registrations = imported
        .iter()
        .map(|i| {
            let e = crate::binfmt::registration::Entry {
                registration: i.registration.clone(),
                enabled: true,
            };
            Listed {
                entry: super::view::entry_view(host.table, &guard, &e),
                file: i.path.clone(),
                line: i.line,
            }
        })
        .collect();
    Listing { registrations }
}

/// What `import --register` may register.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Entries with flag C.
    pub allow_credentials: bool,
    /// Extension (E) entries.
    pub allow_extension: bool,
    pub dry_run: bool,
}

/// The checks install makes, applied to imported entries: the native-capture guard (every kind
/// of native program, and the interpreter itself), the interpreter's whole path (resolved; every
/// directory and symlink root's; the file root's, executable, not writable by others; with F a
/// static ELF for this CPU), C and E only when asked for. Returns the registrations to make, with
/// the resolved interpreter path, or every refusal with its file and line.
pub fn check_imported(
    host: &Host,
    imported: &[Imported],
    opts: ImportOptions,
) -> Result<Vec<Desired>, OpsError> {
    let mut refused = Vec::new();
    let mut desired = Vec::new();
    let guard = host.native_guard();
    for i in imported {
        let r = &i.registration;
        let at = format!("{}:{}: {}", i.path.display(), i.line, r.name);
        let mut why: Vec<String> = Vec::new();
        if let Matcher::Extension(ext) = &r.matcher
            && !opts.allow_extension
        {
            why.push(format!(
                "an extension entry runs {} for every file named *.{ext}, native programs and scripts included: pass --allow-extension if that is intended",
                r.interpreter
            ));
        }
        if r.flags.credentials && !opts.allow_credentials {
            why.push(format!(
                "flag C makes setuid programs run {} with their owner's credentials (root's for setuid-root files): pass --allow-credentials if that is intended, or drop C",
                r.interpreter
            ));
        }
        let arch = arch_of(host.table, r);
        let facts = host.interpreter_facts(
            std::path::Path::new(&r.interpreter),
            arch.map(|a| a.qemu.as_str()),
        );
        let guard = guard.clone().with(
            format!("the interpreter {}", r.interpreter),
            facts.header.clone(),
        );
        if let Some(what) = guard.captures(r) {
            why.push(format!("its pattern would capture {what}"));
        }
        let problems = if r.flags.fix_binary {
            // F: the kernel pins the file now and runs it in every chroot and container, so it
            // must be what install accepts: a static ELF for this CPU.
            match host.requirements(true) {
                Ok(req) => interpreter::check(&facts, &req),
                Err(e) => {
                    why.push(e.to_string());
                    Vec::new()
                }
            }
        } else {
            interpreter::security_problems(&facts, host.owners())
        };
        if !problems.is_empty() {
            let p: Vec<String> = problems.iter().map(ToString::to_string).collect();
            why.push(format!(
                "the interpreter {} {}",
                r.interpreter,
                p.join("; ")
            ));
        }
        let resolved = facts.resolved.to_str();
        if resolved.is_none() {
            why.push(format!(
                "the interpreter {} resolves to a path that is not UTF-8 ({}): use a plain path",
                r.interpreter,
                facts.resolved.display()
            ));
        }
        if let (true, Some(resolved)) = (why.is_empty(), resolved) {
            let mut reg = r.clone();
            // The file itself, never a symlink someone could re-point later.
            reg.interpreter = resolved.to_owned();
            desired.push(Desired {
                arch: r.name.clone(),
                registration: reg,
            });
        } else {
            refused.push(format!("{at}: {}", why.join("; ")));
        }
    }
    if refused.is_empty() {
        Ok(desired)
    } else {
        Err(OpsError::Refused(refused))
    }
}

/// `import --register`: every check install makes, on every entry, before the first write;
/// then the same plan and apply as install.
pub fn register(
    fs: &dyn BinfmtFs,
    host: &Host,
    imported: &[Imported],
    opts: ImportOptions,
) -> Result<Reported> {
    let desired = check_imported(host, imported, opts)?;
    let versions = vec![None; desired.len()];
    let p = Prepared {
        desired,
        versions,
        ..Prepared::default()
    };
    reconcile(fs, p, Vec::new(), false, opts.dry_run)
}
