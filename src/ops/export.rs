//! Export: the registrations install would make (every check made, nothing written), as the
//! files other tools read: binfmt.d (systemd-binfmt) and update-binfmts' import format.

use anyhow::Result;

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
    let p = prepare(host, search, &wanted, all)?;
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
