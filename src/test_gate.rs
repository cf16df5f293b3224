//! The gate of unit tests that need what `cargo test` as an ordinary user lacks: root (files
//! owned by someone else, `chown`) or Debian's static QEMU on the real file system. They run
//! with `BINFMTCTL_TEST_ROOT=1`, as the integration tests that need root do (scripts/test.sh
//! sets it); otherwise they say on the terminal that they skipped, and pass.

/// Whether a unit test that needs root and the real static QEMU may run; when not, says so.
pub fn root(test: &str) -> bool {
    use std::io::Write;
    if std::env::var_os("BINFMTCTL_TEST_ROOT").as_deref() == Some("1".as_ref()) {
        return true;
    }
    // Straight to the file descriptor: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root and qemu-user-static; set BINFMTCTL_TEST_ROOT=1 to run it"
    );
    false
}
