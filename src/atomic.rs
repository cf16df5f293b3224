//! Replacing a file atomically: the one home for it (the config file, Nix's files, exported
//! registrations, the archive cache).
//!
//! The new content goes to a temporary file created beside the name (`O_CREAT|O_EXCL|
//! O_NOFOLLOW`: never through a symlink, never into an existing file), is synced, and is
//! `renameat(2)`d over the name, which replaces a file or symlink there and never follows it.
//! The directory is held by descriptor from the start, so a directory swapped on the way cannot
//! redirect the rename; it is synced after. Dropping a staged file without committing removes
//! the temporary file.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

/// Opens a directory to write into (never a symlink at the last component).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// New content for `name`, written and synced under a temporary name in the same directory;
/// [`Staged::commit`] puts it in place.
#[derive(Debug)]
pub struct Staged {
    dir: OwnedFd,
    name: OsString,
    tmp: Option<OsString>,
}

impl Staged {
    /// Writes `bytes` (mode `mode`) to a new temporary file beside `name` in `dir`.
    pub fn new(dir: &impl AsFd, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<Self> {
        let dir = dir.as_fd().try_clone_to_owned()?;
        let mut last = None;
        for i in 0..100u32 {
            let mut tmp = OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".binfmtctl-{}-{i}", std::process::id()));
            let fd = match rustix::fs::openat(
                &dir,
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::EXIST) => {
                    last = Some(io::Error::from(rustix::io::Errno::EXIST));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let staged = Staged {
                dir,
                name: name.to_owned(),
                tmp: Some(tmp),
            };
            let mut f = std::fs::File::from(fd);
            f.write_all(bytes)?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode & 0o7777))?;
            f.sync_all()?;
            return Ok(staged);
        }
        Err(last.unwrap_or_else(|| io::Error::other("no temporary name left")))
    }

    /// Renames the new content over the name and syncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        if let Err(e) = rustix::fs::renameat(&self.dir, &tmp, &self.dir, &self.name) {
            let _ = rustix::fs::unlinkat(&self.dir, &tmp, AtFlags::empty());
            return Err(e.into());
        }
        rustix::fs::fsync(&self.dir)?;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = rustix::fs::unlinkat(&self.dir, &tmp, AtFlags::empty());
        }
    }
}

/// Replaces `path` with `bytes` (mode `mode`) atomically.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    Staged::new(&open_dir(parent)?, name, bytes, mode)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_symlink_never_writing_through_it() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = d.path().join("file");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        replace(&link, b"new", 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let m = std::fs::symlink_metadata(&link).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o640
        );
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        // Nothing but the two names is left.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_dropped_stage_leaves_nothing_and_a_planted_name_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // A symlink planted at the first temporary name is neither followed nor removed.
        let planted = d
            .path()
            .join(format!(".f.binfmtctl-{}-0", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let dir = open_dir(d.path()).unwrap();
        let s = Staged::new(&dir, OsStr::new("f"), b"x", 0o644).unwrap();
        drop(s);
        assert!(!d.path().join("f").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        Staged::new(&dir, OsStr::new("f"), b"x", 0o644)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("f")).unwrap(), "x");
    }
}
