//! Status: the entries as the kernel has them, whether binfmt_misc is mounted and enabled,
//! which entries capture this host's own programs, and the platforms the machine can run.

use anyhow::Result;

use super::{Host, arch_of};
use crate::binfmt::kernel::{self, BinfmtFs, KernelEntry};

/// One entry, with what its pattern would capture of this host's own programs.
#[derive(Debug, Clone)]
pub struct StatusEntry {
    pub kernel: KernelEntry,
    /// What native program (or interpreter) the pattern accepts, if any.
    pub captures: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub mounted: bool,
    /// binfmt_misc as a whole is enabled (no entry is used when it is not).
    pub enabled: bool,
    pub entries: Vec<StatusEntry>,
    /// The OCI platforms the machine runs: native first, then every arch an enabled entry
    /// emulates (when binfmt_misc is enabled), each once.
    pub supported: Vec<String>,
}

/// Reads the kernel's view (mounting binfmt_misc to read it when it is not and we may).
pub fn status(fs: &dyn BinfmtFs, host: &Host) -> Result<Status> {
    let mounted = kernel::mount_to_read(fs, false)?;
    let entries = if mounted { fs.list()? } else { Vec::new() };
    let enabled = mounted && fs.global_enabled()?;
    let guard = host.native_guard();
    let mut supported: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        if !supported.iter().any(|s| s == p) {
            supported.push(p.to_owned());
        }
    };
    for n in &host.native {
        if let Some(a) = host.table.get(&n.arch) {
            a.oci.iter().for_each(|p| push(p));
        }
    }
    if enabled {
        // In table order, so the list is stable whatever order entries were registered in.
        for a in &host.table.arches {
            let emulated = entries.iter().any(|k| {
                k.entry.enabled
                    && arch_of(host.table, &k.entry.registration).is_some_and(|x| x.name == a.name)
            });
            if emulated {
                a.oci.iter().for_each(|p| push(p));
            }
        }
    }
    let entries = entries
        .into_iter()
        .map(|k| StatusEntry {
            captures: guard.captures(&k.entry.registration).map(str::to_owned),
            kernel: k,
        })
        .collect();
    Ok(Status {
        mounted,
        enabled,
        entries,
        supported,
    })
}
