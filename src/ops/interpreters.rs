//! `interpreters`: for each arch, the interpreter discovery chooses (or why none), every
//! candidate with its checks, whether the arch runs natively here, and where the chosen one
//! comes from (the system, or a stored QEMU version); and the interpreter the kernel's entry
//! for the arch really runs, when one is registered (read only: binfmt_misc is never mounted
//! for it). Reads the candidates' files.

use std::path::PathBuf;

use serde::Serialize;

use super::view::source_of;
use super::{Host, Search};
use crate::binfmt::arch::Arch;
use crate::binfmt::kernel::{BinfmtFs, KernelEntry};
use crate::qemu::interpreter::Candidate;
use crate::qemu::store::Stored;

/// `interpreters`, one row per arch in table order (or the order named).
#[derive(Debug, Serialize)]
pub struct InterpretersReport {
    pub interpreters: Vec<InterpreterRow>,
}

/// One arch's interpreter.
#[derive(Debug, Serialize)]
pub struct InterpreterRow {
    pub arch: String,
    pub native: bool,
    /// `ok`, `missing` (no candidate exists) or `refused` (none passes the checks).
    pub status: &'static str,
    pub interpreter: Option<PathBuf>,
    /// `system` or `store <version>`; absent when no interpreter was chosen (the schema has
    /// it as a string: `null` there failed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub version: Option<String>,
    pub candidates: Vec<Candidate>,
    pub searched: Vec<PathBuf>,
    /// Why every candidate was refused (empty unless `status` is `refused`).
    #[serde(skip)]
    pub refusal: String,
    /// The arch's `qemu-*` entry in the kernel, when one is registered: what really runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<Registered>,
}

/// The interpreter an arch's registered entry runs.
#[derive(Debug, Serialize)]
pub struct Registered {
    pub entry: String,
    pub interpreter: PathBuf,
    /// `system` or `store <version>`, as `source`.
    pub source: String,
    pub version: Option<String>,
    pub enabled: bool,
}

/// Discovers the interpreter of each arch named (none: every arch) as `install` would, with
/// flag F's requirements (static); `stored`: the store's versions; `fs`: the instance whose
/// registered entries are shown (not mounted when it is not).
pub fn interpreters(
    fs: &dyn BinfmtFs,
    host: &Host,
    search: &Search,
    stored: &[Stored],
    names: &[String],
) -> anyhow::Result<InterpretersReport> {
    let arches: Vec<&Arch> = if names.is_empty() {
        host.table.arches.iter().collect()
    } else {
        host.resolve_list(names)?.1
    };
    let flags_need_static = true;
    let req = host.requirements(flags_need_static)?;
    let dirs = search.dirs();
    let entries: Vec<KernelEntry> = if fs.is_mounted() {
        fs.list()?
    } else {
        Vec::new()
    };
    let registered = |a: &Arch| {
        let name = a.entry_name();
        entries
            .iter()
            .find(|k| k.entry.registration.name == name)
            .map(|k| {
                let path = PathBuf::from(&k.entry.registration.interpreter);
                Registered {
                    entry: name,
                    source: source_of(stored, &k.entry.registration.interpreter),
                    version: host.interpreter_facts(&path, Some(&a.qemu)).version,
                    interpreter: path,
                    enabled: k.entry.enabled,
                }
            })
    };
    let interpreters = arches
        .iter()
        .map(|a| {
            let d = host.discover(a, &dirs, &req);
            let chosen = d.chosen();
            let status = if chosen.is_some() {
                "ok"
            } else if d.candidates.is_empty() {
                "missing"
            } else {
                "refused"
            };
            InterpreterRow {
                arch: d.arch.clone(),
                native: host.is_native(&a.name).is_some(),
                status,
                interpreter: chosen.map(|c| c.facts.path.clone()),
                source: chosen.map(|c| source_of(stored, &c.facts.path.to_string_lossy())),
                version: chosen.and_then(|c| c.facts.version.clone()),
                refusal: if status == "refused" {
                    d.refusal()
                } else {
                    String::new()
                },
                candidates: d.candidates,
                searched: d.searched,
                registered: registered(a),
            }
        })
        .collect();
    Ok(InterpretersReport { interpreters })
}
