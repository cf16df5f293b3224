//! Shared helpers for the integration tests: run a shell script inside a fresh user + mount
//! namespace that has its own binfmt_misc instance (Linux >= 6.7), with the real binfmtctl
//! binary, Debian's static QEMU and real foreign binaries.
//!
//! Nothing leaks: the instance and every mount die with the namespace when the script exits,
//! so tests run in parallel and leave the host's binfmt_misc untouched.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// What a test needs of the machine beyond `cargo test` as an ordinary user with nothing
/// installed. Each need is switched on by an environment variable; `scripts/test.sh` sets them
/// all, so CI runs everything. Without it the test says on the terminal that it skipped (the
/// harness captures `eprintln!`, not a direct write to stderr) and passes; with it, a machine
/// that lacks what the test needs fails the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// `BINFMTCTL_TEST_ROOT=1`: root, Debian's static QEMU (qemu-user-static) and the foreign
    /// binaries scripts/deps.sh fetches; the kernel's binfmt_misc in private instances (Linux
    /// >= 6.7). The host's own instance is never written.
    Root,
    /// `BINFMTCTL_TEST_VM=1`: qemu-system-x86_64 and KVM, to boot Debian's kernel (integration-vm/).
    Vm,
    /// `BINFMTCTL_TEST_CONTAINER=1`: rootful podman, whose privileged container registers on
    /// this machine's own binfmt_misc (briefly: entries the host lacks, removed afterwards). Run
    /// alone, after the rest (scripts/test.sh runs it in a step of its own).
    Container,
    /// The foreign binaries scripts/deps.sh fetches (no variable: present, or
    /// `BINFMTCTL_TEST_ROOT=1`, under which their absence fails the test).
    Assets,
    /// An x86_64 host (no variable): the test's expectations name x86_64 as the native arch
    /// (i386 as a compat arch, x86_64 patterns that capture native programs, ...).
    X86_64Host,
}

impl Needs {
    fn enabled(self) -> bool {
        self.var()
            .is_some_and(|v| std::env::var_os(v).as_deref() == Some("1".as_ref()))
    }

    fn var(self) -> Option<&'static str> {
        match self {
            Needs::Root => Some("BINFMTCTL_TEST_ROOT"),
            Needs::Vm => Some("BINFMTCTL_TEST_VM"),
            Needs::Container => Some("BINFMTCTL_TEST_CONTAINER"),
            Needs::Assets | Needs::X86_64Host => None,
        }
    }
}

/// Whether a test that `needs` something may run here; when not, says so on the terminal.
pub fn gate(test: &str, needs: &[Needs]) -> bool {
    use std::io::Write;
    for &n in needs {
        let missing = match n.var() {
            Some(var) => (!n.enabled()).then(|| format!("set {var}=1 to run it ({n:?})")),
            None if n == Needs::Assets => (!assets_dir().join(ASSETS[0]).exists()
                && !Needs::Root.enabled())
            .then(|| format!("the foreign binaries are missing in {}: run scripts/deps.sh (as root), or set BINFMTCTL_TEST_ROOT=1", assets_dir().display())),
            None => (std::env::consts::ARCH != "x86_64").then(|| {
                format!(
                    "it assumes an x86_64 host, this is {}",
                    std::env::consts::ARCH
                )
            }),
        };
        if let Some(why) = missing {
            // Straight to the file descriptor: libtest captures only the print macros.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            return false;
        }
    }
    true
}

/// `gate!(Root, X86_64Host)` at the top of a test: returns from it, saying so, unless every
/// need is met (see `Needs`). The test file declares `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! gate {
    ($($need:ident),+) => {
        if !common::gate(
            {
                fn f() {}
                let name = std::any::type_name_of_val(&f);
                name.strip_suffix("::f").unwrap_or(name)
            },
            &[$(common::Needs::$need),+],
        ) {
            return;
        }
    };
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code and the output of a finished command.
    pub fn of(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Fails the test with the whole transcript.
    #[track_caller]
    pub fn expect(&self, what: &str, ok: bool) {
        assert!(
            ok,
            "{what}\n--- exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
    }

    /// The lines after a `== marker` line, up to the next marker.
    pub fn section(&self, marker: &str) -> String {
        let start = format!("== {marker}");
        let mut out = String::new();
        let mut on = false;
        for l in self.stdout.lines() {
            if l.starts_with("== ") {
                on = l == start;
                continue;
            }
            if on {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_binfmtctl"))
}

/// The foreign binaries every test that uses them needs (`Needs::Assets` looks for the first).
const ASSETS: [&str; 3] = ["busybox-arm64", "hello-riscv64", "hello-arm64-dynamic"];

fn assets_dir() -> PathBuf {
    std::env::var_os("ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-assets"))
}

/// Real foreign binaries fetched by scripts/deps.sh.
pub fn assets() -> PathBuf {
    let dir = assets_dir();
    assert!(
        ASSETS.iter().all(|f| dir.join(f).exists()),
        "test assets missing in {}: run scripts/deps.sh (as root) first",
        dir.display()
    );
    dir
}

/// The shell prelude every namespace script starts with: a private binfmt_misc instance at
/// the usual place, and $B / $A pointing at binfmtctl and the assets.
/// A fresh instance holds only `register` and `status`; anything else means we are looking at
/// an inherited (host) instance, and the script stops before writing to it (exit 98): as real
/// root, a user namespace that inherited the host's mount can write the host's entries.
const PRELUDE: &str = "set -u\nmount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 99\nR=/proc/sys/fs/binfmt_misc\n[ \"$(ls $R | tr '\\n' ' ')\" = 'register status ' ] || exit 98\nentries() { ls $R | grep -v -x -e register -e status | sort | tr '\\n' ' '; echo; }\n";

/// Runs `script` with `sh` in a new user + mount namespace as (mapped) root.
pub fn ns(script: &str) -> Run {
    ns_with(&[], script, true)
}

/// Like `ns`, with extra environment and optionally without the private mount.
pub fn ns_with(env: &[(&str, &str)], script: &str, private_binfmt: bool) -> Run {
    let body = if private_binfmt {
        format!("{PRELUDE}{script}")
    } else {
        format!("set -u\n{script}")
    };
    let mut c = Command::new("unshare");
    c.args([
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
    ])
    .arg(body)
    .env("B", bin())
    .env("A", assets())
    .env_remove("BINFMTCTL_FAILPOINT");
    for (k, v) in env {
        c.env(k, v);
    }
    fresh_instance(Run::of(
        c.output().expect("unshare(1) from util-linux runs"),
    ))
}

/// Fails the test when the prelude found no fresh private instance.
fn fresh_instance(r: Run) -> Run {
    assert_ne!(
        r.code, 98,
        "the binfmt_misc instance in the namespace is not a fresh one"
    );
    assert_ne!(
        r.code, 99,
        "could not mount a private binfmt_misc in a user namespace (needs Linux >= 6.7): {}",
        r.stderr
    );
    r
}

/// Like `ns`, in a user namespace that maps every uid and gid to itself (needs real root):
/// there, as on the host, binfmtctl may give its sandbox an identity-mapped namespace of its
/// own, while this namespace's private binfmt_misc instance stands in for the host's.
pub fn ns_identity(script: &str) -> Run {
    use std::process::Stdio;
    // The maps of the new namespace are written from this one, uid_map then gid_map; the
    // script waits for the second (with only the first, a mount could still meet an unmapped
    // gid).
    let body = format!(
        "while [ -z \"$(cat /proc/self/gid_map)\" ]; do sleep 0.01; done\n{PRELUDE}{script}"
    );
    let child = Command::new("unshare")
        .args(["--user", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(body)
        .env("B", bin())
        .env("A", assets())
        .env_remove("BINFMTCTL_FAILPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare(1) from util-linux runs");
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_link(format!("/proc/{pid}/ns/user"))
        .ok()
        .as_ref()
        == Some(&ours)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "unshare made no user namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 4294967295\n")
            .unwrap_or_else(|e| panic!("writing {map} of the identity-mapped namespace: {e}"));
    }
    fresh_instance(Run::of(child.wait_with_output().unwrap()))
}

/// Runs a command as the unprivileged `nobody` user (setpriv from util-linux), outside any
/// namespace unless the script makes one.
pub fn as_nobody(args: &[&str]) -> Run {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .env("B", bin())
        .env("A", assets());
    Run::of(c.output().expect("setpriv(1) from util-linux runs"))
}

/// A tiny arm64 root file system: Debian's busybox-static with the applets the tests use.
pub fn busybox_rootfs(dir: &std::path::Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["etc", "proc", "sys", "dev", "tmp", "run", "src"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(assets().join("busybox-arm64"), bin.join("busybox")).unwrap();
    for applet in [
        "sh", "uname", "sleep", "true", "touch", "cat", "id", "ls", "echo", "grep", "kill",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

/// A Debian bookworm arm64 minbase rootfs with gcc, g++, libc6-dev and make, made by
/// `binfmtctl rootfs create` the first time and kept in /var/cache/binfmtctl-tests (so CI works
/// from nothing, and reruns are fast). One rootfs serves the emulate and the hybrid tests, so a
/// fresh machine bootstraps it once.
pub fn debian_arm64_rootfs() -> PathBuf {
    use std::sync::OnceLock;
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| cached_arm64_rootfs("bookworm-arm64-gxx-make", "gcc,g++,libc6-dev,make"))
        .clone()
}

/// The same rootfs, named for what the hybrid-build tests need of it (g++ and make).
pub fn debian_arm64_rootfs_gxx() -> PathBuf {
    debian_arm64_rootfs()
}

/// A Debian bookworm arm64 rootfs for the hybrid clang and Rust tests: the same as
/// `debian_arm64_rootfs` and clang-14, rustc, cargo, libstd-rust-dev and pkg-config (Debian's
/// own Rust 1.63, the version the host's Debian packages have).
pub fn debian_arm64_rootfs_clang_rust() -> PathBuf {
    use std::sync::OnceLock;
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        cached_arm64_rootfs(
            "bookworm-arm64-clang-rust",
            "gcc,g++,libc6-dev,make,clang-14,rustc,cargo,libstd-rust-dev,pkg-config",
        )
    })
    .clone()
}

/// A bookworm arm64 minbase rootfs with `include`, made once under the test cache as `name`
/// (one creator at a time; complete or remade).
fn cached_arm64_rootfs(name: &str, include: &str) -> PathBuf {
    let base = PathBuf::from(
        std::env::var("BINFMTCTL_TEST_CACHE")
            .unwrap_or_else(|_| "/var/cache/binfmtctl-tests".into()),
    );
    let dir = base.join(name);
    let done = base.join(format!("{name}.complete"));
    std::fs::create_dir_all(&base).unwrap();
    // One creator at a time, across test binaries too.
    let lock = std::fs::File::create(base.join("lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(bin())
            .args(["rootfs", "create", "--arch", "arm64", "--include", include])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rootfs create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&done, "").unwrap();
    }
    // The mount points the tests bind (`run` makes a missing one in the rootfs, as a user's
    // first run would): made here, before any test takes its manifest, so that a rootfs just
    // created compares as one used before.
    for mount_point in ["src", "vendor"] {
        std::fs::create_dir_all(dir.join(mount_point)).unwrap();
    }
    dir
}

/// Mount points on the host whose path contains `needle`.
pub fn host_mounts_containing(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// `tar -C dir -czf out .`, with tar(1) itself (members named "./...", as users' tarballs are).
pub fn tar_gz(dir: &std::path::Path, out: &std::path::Path) {
    let ok = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-czf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar -czf {}", out.display());
}

/// A digest of a whole rootfs as it is on disk: every entry's path, type and mode, owner, size
/// and mtime, every symlink's target, and the bytes of every regular file under the `hashed`
/// prefixes (where hybrid builds bind their launchers over the rootfs's files). Any change to
/// any of them changes the result; the tests compare it before and after a run.
pub fn rootfs_manifest(root: &std::path::Path, hashed: &[&str]) -> String {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let mut h = sha2::Sha256::new();
    let mut stack = vec![root.to_path_buf()];
    let mut n = 0usize;
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        h.update(format!(
            "{rel}\0{:o}\0{}:{}\0{}\0{}.{}\n",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ));
        if m.is_dir() {
            let mut kids: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            kids.sort();
            stack.extend(kids);
        } else if m.is_file() && hashed.iter().any(|d| rel.starts_with(d)) {
            h.update(std::fs::read(&p).unwrap());
        } else if m.file_type().is_symlink() {
            h.update(
                std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
            );
        }
        n += 1;
    }
    assert!(n > 1000, "a whole Debian rootfs: {n} entries");
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
