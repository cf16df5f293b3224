//! Export: the registrations install would make (every check made, nothing written), as the
//! files other tools read: binfmt.d (systemd-binfmt) and update-binfmts' import format.

use std::path::Path;

use anyhow::{Context, Result};

use super::install::prepare;
use super::{Host, OpsError, Search};
use crate::binfmt::arch::Arch;
use crate::binfmt::interop::{ExportError, to_binfmt_d, to_update_binfmts};
use crate::binfmt::plan::Desired;
use crate::binfmt::registration::Flags;

/// The registrations for `names` with `flags`, after install's checks (any refusal: none).
pub fn registrations(
    host: &Host,
    search: &Search,
    names: &[String],
    flags: Flags,
) -> Result<Vec<Desired>> {
    let (all, arches) = host.resolve_list(names)?;
    let wanted: Vec<(&'static Arch, Flags)> = arches.iter().map(|a| (*a, flags)).collect();
    let p = prepare(host, search, &wanted, all, false)?;
    if !p.refused.is_empty() {
        return Err(OpsError::Refused(p.refused).into());
    }
    Ok(p.desired)
}

/// The file formats other tools read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `NAME.conf` per entry, for systemd-binfmt.
    BinfmtD,
    /// One file per entry, named as the entry, for `update-binfmts --import`.
    UpdateBinfmts,
}

/// One (file name, content) per registration.
pub fn files(desired: &[Desired], format: Format) -> Result<Vec<(String, String)>, ExportError> {
    desired
        .iter()
        .map(|d| {
            let r = &d.registration;
            Ok(match format {
                Format::BinfmtD => (format!("{}.conf", r.name), to_binfmt_d(r, &d.arch)?),
                Format::UpdateBinfmts => (r.name.clone(), to_update_binfmts(r, "binfmtctl")?),
            })
        })
        .collect()
}

/// The files of `format` (`binfmt.d`, `update-binfmts` or `json`): (file name, content).
pub fn format_files(
    host: &Host,
    desired: &[Desired],
    format: &str,
) -> Result<Vec<(String, String)>> {
    Ok(match format {
        "binfmt.d" => files(desired, Format::BinfmtD)?,
        "update-binfmts" => files(desired, Format::UpdateBinfmts)?,
        "json" => vec![("binfmtctl.json".into(), json_file(host, desired)?)],
        other => {
            return Err(crate::error::BadInput(format!(
                "unknown format {other:?}: use binfmt.d, update-binfmts or json"
            ))
            .into());
        }
    })
}

/// `--format json`: each registration as `status` shows an entry, with its register record
/// (docs/json.md, "export"); keys in alphabetical order.
fn json_file(host: &Host, desired: &[Desired]) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Exported {
        #[serde(flatten)]
        entry: super::view::EntryView,
        record: String,
    }
    #[derive(serde::Serialize)]
    struct Doc {
        registrations: Vec<Exported>,
    }
    let guard = host.native_guard();
    let registrations = desired
        .iter()
        .map(|d| {
            let e = crate::binfmt::registration::Entry {
                registration: d.registration.clone(),
                enabled: true,
            };
            Exported {
                entry: super::view::entry_view(host.table, &guard, &e),
                record: d.registration.to_record().unwrap_or_default(),
            }
        })
        .collect();
    let v = serde_json::to_value(Doc { registrations })?;
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

/// Whether `text` (the start of a file) is one `export` wrote, in any of its formats.
fn written_by_export(text: &str) -> bool {
    text.lines()
        .take(3)
        .any(|l| l.contains("written by `binfmtctl export"))
        || text.starts_with("package binfmtctl\n")
        || text.starts_with("{\n  \"registrations\": [")
}

/// The files in `dir` that exist and that `export` did not write (read without following a
/// symlink; a symlink or anything but a regular file counts as not ours).
fn not_ours(dir: &Path, files: &[(String, String)]) -> Vec<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    files
        .iter()
        .filter_map(|(name, _)| {
            let path = dir.join(name);
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let ours = meta.is_file()
                && std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .ok()
                    .and_then(|f| {
                        let mut head = String::new();
                        f.take(4096).read_to_string(&mut head).ok()?;
                        Some(written_by_export(&head))
                    })
                    .unwrap_or(false);
            (!ours).then(|| path.display().to_string())
        })
        .collect()
}

/// Writes each file into `dir` (created if missing, `created` told so), calling `written`
/// after each. A file of the same name that `export` did not write is refused before anything
/// is written (bad input), unless `force`.
pub fn write_files(
    dir: &Path,
    files: &[(String, String)],
    force: bool,
    written: &mut dyn FnMut(&Path, bool) -> Result<()>,
) -> Result<()> {
    if !force {
        let others = not_ours(dir, files);
        if !others.is_empty() {
            return Err(crate::error::BadInput(format!(
                "refusing to overwrite {}: not written by binfmtctl export; move it away, or pass --force to replace it",
                others.join(", ")
            ))
            .into());
        }
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        written(dir, true)?;
    }
    for (name, text) in files {
        write_new_file(dir, name, text)?;
        written(&dir.join(name), false)?;
    }
    Ok(())
}

/// Writes `name` in `dir` without following any symlink (`atomic`: a new file beside it,
/// synced, renamed over `name`; a symlink or file there is replaced, never written through).
fn write_new_file(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    crate::atomic::open_dir(dir)
        .and_then(|dfd| {
            crate::atomic::Staged::new(&dfd, name.as_ref(), text.as_bytes(), 0o644)?.commit()
        })
        .with_context(|| format!("cannot write {}", path.display()))
}
