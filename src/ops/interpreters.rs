//! `interpreters`: for each arch, the interpreter discovery chooses (or why none), every
//! candidate with its checks, whether the arch runs natively here, and where the chosen one
//! comes from (the system, or a stored QEMU version). Reads the candidates' files.

use std::path::PathBuf;

use serde::Serialize;

use super::view::source_of;
use super::{Host, OpsError, Search};
use crate::binfmt::arch::Arch;
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
}

/// Discovers the interpreter of each arch named (none: every arch) as `install` would, with
/// flag F's requirements (static); `stored`: the store's versions.
pub fn interpreters(
    host: &Host,
    search: &Search,
    stored: &[Stored],
    names: &[String],
) -> Result<InterpretersReport, OpsError> {
    let arches: Vec<&Arch> = if names.is_empty() {
        host.table.arches.iter().collect()
    } else {
        host.resolve_list(names)?.1
    };
    let flags_need_static = true;
    let req = host.requirements(flags_need_static)?;
    let dirs = search.dirs();
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
            }
        })
        .collect();
    Ok(InterpretersReport { interpreters })
}
