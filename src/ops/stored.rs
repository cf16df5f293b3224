//! The QEMU store as the other commands see it: the store the settings name (its root made
//! absolute), a stored version resolved for registering its interpreters (under the store's
//! shared lock), and the archive options of `qemu versions`/`fetch` completed from the config
//! file. Reads the store and the config file; takes the store's lock.

use std::path::{Path, PathBuf};

use super::Host;
use super::qemu::ArchiveOptions;
use crate::binfmt::arch::Table;
use crate::config::ConfigError;
use crate::qemu::QemuError;
use crate::qemu::store::{self, Store, StoreLock, Stored};

/// The store at `root` (default: /var/lib/binfmtctl/qemu), its root made absolute (not
/// resolved): interpreters are registered by absolute path, so `--qemu-store ./store` must
/// name the same directory the kernel will open.
pub fn store(root: Option<&Path>) -> Store {
    let root = root.map_or_else(|| PathBuf::from(store::DEFAULT_ROOT), Path::to_path_buf);
    Store::new(std::path::absolute(&root).unwrap_or(root))
}

/// The stored version `spec` selects, for registering its interpreters: with the store's
/// shared lock held (until the lock is dropped, after the kernel write), so a concurrent gc
/// cannot remove it in between. A dry run writes nothing to the kernel and takes no lock.
pub fn resolve(
    store: &Store,
    host: &Host,
    spec: &str,
    dry_run: bool,
) -> Result<(Option<StoreLock>, Stored), QemuError> {
    if dry_run {
        return Ok((None, store.resolve(spec)?));
    }
    let (lock, s) = store.resolve_shared(spec, host.unmapped_uid())?;
    Ok((Some(lock), s))
}

/// The archive options given, completed by the config file's `qemu_mirror` and
/// `qemu_keyring` (read only when one is missing; a missing file is no error).
pub fn with_config(
    mut o: ArchiveOptions,
    config: &Path,
    table: &Table,
) -> Result<ArchiveOptions, ConfigError> {
    if o.mirror.is_none() || o.keyring.is_none() {
        match crate::config::load(config, table) {
            Ok(c) => {
                o.mirror = o.mirror.or(c.qemu_mirror);
                o.keyring = o.keyring.or(c.qemu_keyring);
            }
            Err(ConfigError::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(o)
}
