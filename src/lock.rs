//! Taking an `flock(2)` lock, and saying so when another process holds it: the one home for
//! the kernel's (binfmt_misc's `status`), the QEMU store's, Nix's, the config file's and the
//! rootfs cache's locks.

use std::os::fd::AsFd;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Shared (readers, users) or exclusive (writers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Shared,
    Exclusive,
}

/// Takes the lock on `fd` at once if it is free. Otherwise, when `wait` is on, says on stderr
/// what it waits for (`waiting_for`: "another binfmtctl changing /proc/sys/fs/binfmt_misc")
/// and blocks; when `wait` is off, fails with `EWOULDBLOCK`.
pub fn take(
    fd: &impl AsFd,
    kind: Kind,
    wait: bool,
    waiting_for: impl FnOnce() -> String,
) -> Result<(), Errno> {
    let (now, block) = match kind {
        Kind::Shared => (
            FlockOperation::NonBlockingLockShared,
            FlockOperation::LockShared,
        ),
        Kind::Exclusive => (
            FlockOperation::NonBlockingLockExclusive,
            FlockOperation::LockExclusive,
        ),
    };
    match rustix::fs::flock(fd, now) {
        Ok(()) => return Ok(()),
        Err(Errno::WOULDBLOCK) if wait => {}
        Err(e) => return Err(e),
    }
    eprintln!("binfmtctl: waiting for {}", waiting_for());
    rustix::fs::flock(fd, block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_or_refuses_when_held() {
        let f = tempfile::tempfile().unwrap();
        take(&f, Kind::Exclusive, false, String::new).unwrap();
        // A second open file description conflicts with the first.
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f));
        let g = std::fs::File::open(path).unwrap();
        assert_eq!(
            take(&g, Kind::Shared, false, String::new),
            Err(Errno::WOULDBLOCK)
        );
        drop(f);
        take(&g, Kind::Shared, false, String::new).unwrap();
    }
}
