//! How entries are shown in reports: an entry as `status`, `export --format json`, `import`
//! and the `previous` of a replace show it (docs/json.md, "Entries"), and where an
//! interpreter comes from (the system, or a stored QEMU version). Pure.

use serde::Serialize;

use super::arch_of;
use crate::binfmt::arch::Table;
use crate::binfmt::plan::NativeGuard;
use crate::binfmt::registration::{Entry, Matcher};
use crate::qemu::store::{self, Stored};

/// An entry as `status --json` and reports show it.
#[derive(Debug, Serialize)]
pub struct EntryView {
    pub name: String,
    pub enabled: bool,
    pub arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub interpreter: String,
    pub flags: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub magic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// For entries named qemu-<arch>: does the pattern match our table? (null for others)
    pub matches_table: Option<bool>,
    /// The entry's pattern accepts this host's own executables: with it enabled, native
    /// programs run through its interpreter (or fail).
    pub captures_native: bool,
    /// Where the interpreter comes from: `system` or `store <version>` (status only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub fn entry_view(table: &Table, guard: &NativeGuard, e: &Entry) -> EntryView {
    entry_view_with(table, e, guard.captures(&e.registration).is_some())
}

/// An entry as reports show it, whose capture of native programs is known
/// (`captures_native`).
pub fn entry_view_with(table: &Table, e: &Entry, captures_native: bool) -> EntryView {
    let r = &e.registration;
    let by_name = table.arch_of_entry(&r.name);
    let arch = arch_of(table, r);
    let (kind, offset, magic, mask, extension) = match &r.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => (
            "magic",
            Some(*offset),
            Some(crate::input::hex(magic)),
            mask.as_deref().map(crate::input::hex),
            None,
        ),
        Matcher::Extension(x) => ("extension", None, None, None, Some(x.clone())),
    };
    EntryView {
        name: r.name.clone(),
        enabled: e.enabled,
        arch: arch.map_or_else(|| "unknown".to_owned(), |a| a.name.clone()),
        platform: arch.and_then(|a| a.platform().map(str::to_owned)),
        interpreter: r.interpreter.clone(),
        flags: r.flags.to_string(),
        kind,
        offset,
        magic,
        mask,
        extension,
        matches_table: by_name.map(|(_, m)| m.same_pattern(&r.matcher)),
        captures_native,
        source: None,
    }
}

/// Which stored version an interpreter path belongs to, if any.
pub fn source_of(stored: &[Stored], interpreter: &str) -> String {
    stored
        .iter()
        .find(|s| store::uses(s, interpreter))
        .map_or_else(
            || "system".to_owned(),
            |s| format!("store {}", s.manifest.version),
        )
}
