//! The command context: the table, the host as the operations see it (after `--native`,
//! `--not-native` and the compat probes), the binfmt_misc seam and the settings, built once
//! per command; and `--qemu VERSION`'s stored interpreters with the store's shared lock.

use anyhow::Result;

use super::settings::Global;
use crate::ops;
use crate::ops::facade::{ProcBinfmt, Store, StoreLock, Table};

/// What every command needs: the table, the host as the operations see it, the kernel seam,
/// the options.
pub(super) struct Ctx<'g> {
    pub table: &'static Table,
    pub host: ops::Host,
    pub fs: ProcBinfmt,
    pub g: &'g Global,
    /// `--qemu VERSION`: the store directory interpreters come from instead of the search path.
    pub qemu_bin: Option<ops::StoredBin>,
    /// The store's shared lock while `qemu_bin` is registered (not on a dry run): gc cannot
    /// remove the version before the command ends.
    _store_lock: Option<StoreLock>,
}

impl<'g> Ctx<'g> {
    pub fn new(g: &'g Global) -> Result<Ctx<'g>> {
        let table = Table::builtin();
        let host = ops::Host::for_command(
            table,
            (&g.native, &g.not_native),
            g.probe_compat,
            g.trust_unmapped_owner,
        )?;
        Ok(Ctx {
            table,
            host,
            fs: ProcBinfmt::new(&g.binfmt_misc),
            g,
            qemu_bin: None,
            _store_lock: None,
        })
    }

    /// `--qemu VERSION`: take the interpreters from that stored version, with the store's
    /// shared lock unless this is a dry run (`ops::stored::resolve`; exit 2 when the store
    /// does not have it).
    pub fn use_stored_qemu(&mut self, version: Option<&str>) -> Result<()> {
        if let Some(v) = version {
            let (lock, s) = ops::stored::resolve(&self.store(), &self.host, v, self.g.dry_run)?;
            self._store_lock = lock;
            self.qemu_bin = Some(ops::StoredBin::of(&s));
        }
        Ok(())
    }

    /// The QEMU store the settings name (`--qemu-store`, else the default), made absolute.
    pub fn store(&self) -> Store {
        ops::stored::store(self.g.qemu_store.as_deref())
    }

    /// The observer of long work: bars on a terminal, unless `--json` or `-q` (`progress`).
    pub fn progress(&self) -> std::sync::Arc<dyn crate::progress::Progress + Send> {
        crate::text::progress::observer(self.g.json, self.g.quiet)
    }

    /// Where interpreters are looked for (`--qemu-path`, `--qemu`).
    pub fn search(&self) -> ops::Search {
        ops::Search {
            qemu_path: self.g.qemu_path.clone(),
            qemu_bin: self.qemu_bin.clone(),
        }
    }
}
