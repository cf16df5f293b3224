//! Status: the entries as the kernel has them, whether binfmt_misc is mounted and enabled,
//! which entries capture this host's own programs, and the platforms the machine can run;
//! `report` adds where each interpreter comes from and where Nix's view disagrees, as
//! `status` shows it (docs/json.md, "status").

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::view::{EntryView, entry_view_with, source_of};
use super::{Host, arch_of};
use crate::binfmt::kernel::{BinfmtFs, KernelEntry};
use crate::host::NativeArch;
use crate::ops::nix::Hint;
use crate::qemu::store::Stored;

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

/// Reads the kernel's view. A look changes nothing: binfmt_misc not mounted is reported as
/// such (docs/troubleshooting.md), never mounted to be read.
pub fn status(fs: &dyn BinfmtFs, host: &Host) -> Result<Status> {
    let mounted = fs.is_mounted();
    if !mounted {
        // A path that could never hold binfmt_misc is bad input (exit 2), as for install.
        crate::binfmt::kernel::check_mount_point(fs.root())?;
    }
    let entries = if mounted { fs.list()? } else { Vec::new() };
    let enabled = mounted && fs.global_enabled()?;
    let guard = host.native_guard();
    let mut supported: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        if !supported.iter().any(|s| s == p) {
            supported.push(p.to_owned());
        }
    };
    for n in host.native() {
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

/// `status` as it is shown.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The OCI platforms the machine runs (`Status::supported`).
    pub supported: Vec<String>,
    /// The enabled entries' names.
    pub emulators: Vec<String>,
    pub entries: Vec<EntryView>,
    pub native: Vec<NativeArch>,
    pub binfmt_misc: Instance,
    /// Only when binfmtctl told Nix about handlers (`install --nix`): where both disagree.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nix_warnings: Vec<Hint>,
    /// The kernel's entries, in `entries`' order, with what each captures.
    #[serde(skip)]
    pub kernel: Vec<StatusEntry>,
}

/// The binfmt_misc instance.
#[derive(Debug, Serialize)]
pub struct Instance {
    pub path: PathBuf,
    pub mounted: bool,
    pub enabled: bool,
}

/// `status` of the instance at `root` (as the user named it), the store's versions `stored`
/// (to tell stored interpreters from the system's) and Nix's configuration `nix`.
pub fn report(
    fs: &dyn BinfmtFs,
    host: &Host,
    root: &Path,
    stored: &[Stored],
    nix: &crate::nix::Paths,
) -> Result<StatusReport> {
    let st = status(fs, host)?;
    let entries: Vec<EntryView> = st
        .entries
        .iter()
        .map(|s| {
            let mut e = entry_view_with(host.table, &s.kernel.entry, s.captures.is_some());
            e.source = Some(source_of(stored, &e.interpreter));
            e
        })
        .collect();
    let emulators = entries
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.clone())
        .collect();
    let kernel_entries: Vec<KernelEntry> = st.entries.iter().map(|s| s.kernel.clone()).collect();
    Ok(StatusReport {
        supported: st.supported,
        emulators,
        entries,
        native: host.native().to_vec(),
        binfmt_misc: Instance {
            path: root.to_path_buf(),
            mounted: st.mounted,
            enabled: st.enabled,
        },
        nix_warnings: super::nix::status_hints(host.table, nix, &kernel_entries),
        kernel: st.entries,
    })
}
