//! End-to-end tests of the emulated chroot (`run`), `rootfs create`, `cross env` and `build`
//! (issue 4), with real arm64 binaries, Debian's static QEMU and the real kernel. The host's
//! binfmt_misc is never touched: without a host handler, run uses a private instance.

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{as_nobody, bin, busybox_rootfs, debian_arm64_rootfs, host_mounts_containing, ns};

fn binfmtctl(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn host_binfmt() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn run_uname_exit_codes_and_nothing_left_behind() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let r = root.to_str().unwrap();
    let before = host_binfmt();
    let out = binfmtctl(&["run", "--rootfs", r, "--", "uname", "-m"]);
    assert_eq!(s(&out.stdout).trim(), "aarch64", "{}", s(&out.stderr));
    assert!(out.status.success());
    let out = binfmtctl(&["run", "--rootfs", r, "--", "sh", "-c", "exit 42"]);
    assert_eq!(
        out.status.code(),
        Some(42),
        "the command's exit status is binfmtctl's"
    );
    let out = binfmtctl(&["run", "--rootfs", r, "--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        s(&out.stderr).contains("no-such-command: command not found in the rootfs"),
        "{}",
        s(&out.stderr)
    );
    // The sandbox's view: our tmpfs /dev and /tmp, a read-only /sys, the host's resolv.conf.
    let out = binfmtctl(&[
        "run",
        "--rootfs",
        r,
        "--",
        "sh",
        "-c",
        "cat /proc/self/mounts; ls /dev",
    ]);
    let view = s(&out.stdout);
    assert!(
        view.contains("/dev tmpfs")
            && view.contains("/tmp tmpfs")
            && view.contains("/dev/pts devpts"),
        "{view}"
    );
    assert!(
        view.lines()
            .any(|l| l.starts_with("sysfs /sys sysfs ro") || l.contains(" /sys sysfs ro")),
        "{view}"
    );
    assert!(!view.contains("devtmpfs /dev "), "never devtmpfs: {view}");
    for node in ["null", "zero", "urandom", "tty", "ptmx", "shm"] {
        assert!(view.lines().any(|l| l == node), "/dev/{node}: {view}");
    }
    // --user: by name from the rootfs's /etc/passwd, or numeric.
    let out = binfmtctl(&[
        "run",
        "--rootfs",
        r,
        "--user",
        "1234:5678",
        "--",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(s(&out.stdout), "1234\n5678\n", "{}", s(&out.stderr));
    let out = binfmtctl(&["run", "--rootfs", r, "--user", "root", "--", "id", "-u"]);
    assert_eq!(s(&out.stdout), "0\n");
    assert_eq!(
        host_mounts_containing(r),
        Vec::<String>::new(),
        "no mount left on the host"
    );
    assert_eq!(host_binfmt(), before, "the host's binfmt_misc is untouched");
    // rm -rf of the rootfs afterwards only removes the rootfs.
    std::fs::remove_dir_all(&root).unwrap();
    assert!(std::path::Path::new("/dev/null").exists());
}

#[test]
fn run_with_the_host_handler_and_binds_env_workdir() {
    gate!(Root);
    // In a namespace with its own instance standing in for "the host": root mode uses it.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("in.txt"), "from the host\n").unwrap();
    let r = ns(&format!(
        r#"
$B install arm64 -q
echo "== run"; $B run --rootfs {root} --bind {share}:/src --workdir /src --env GREETING=hi -- sh -c 'cat in.txt; echo $GREETING; uname -m; touch out.txt'; echo "rc=$?"
echo "== ro"; $B run --rootfs {root} --bind {share}:/src:ro -- touch /src/nope; echo "rc=$?"
"#,
        root = root.display(),
        share = share.display()
    ));
    let run = r.section("run");
    r.expect(
        "bind, workdir, env, emulation",
        run == "from the host\nhi\naarch64\nrc=0\n",
    );
    assert!(share.join("out.txt").exists(), "written through the bind");
    let ro = r.section("ro");
    r.expect("read-only bind", ro.contains("rc=1"));
}

/// arm64's pattern (binfmtctl's own table) with the interpreter Debian installs, and `flags`.
fn aarch64_record(name: &str, flags: &str) -> String {
    format!(
        r":{name}:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:{flags}"
    )
}

#[test]
fn a_host_entry_binfmtctl_would_not_register_gets_a_private_instance_instead() {
    gate!(Root);
    // As root on a host whose aarch64 entry someone else registered: in an identity-mapped
    // namespace whose own instance stands in for the host's, so nothing here depends on (or
    // touches) the real host's entries.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let argv0 = "sh -c 'echo hello | grep -c hell'";
    let r = common::ns_identity(&format!(
        r#"
host() {{ for e in $(entries); do echo -1 > $R/$e; done; printf '%s' "$1" > $R/register || exit 1; }}
go() {{ echo "== $1"; shift; $B run "$@" --rootfs {root} -- {argv0} 2>&1; echo "rc=$?"; }}
host '{f_only}'
go f-only
go f-only-host-handlers --host-handlers
echo "== f-only-after"; entries; grep flags $R/qemu-aarch64
host '{p_only}'
go p-only
go p-only-host-handlers --host-handlers
host '{pf}'
go pf
"#,
        root = root.display(),
        // What tonistiigi/binfmt registers: F without P.
        f_only = aarch64_record("qemu-aarch64", "F"),
        p_only = aarch64_record("aarch64", "P"),
        // What binfmtctl (and quickstart) registers.
        pf = aarch64_record("qemu-aarch64", "PF"),
    ));
    let private = "emulating in a private binfmt_misc instance with binfmtctl's own checked entry instead (the host's entries are untouched; --host-handlers uses the host's)";
    let f_only = r.section("f-only");
    r.expect(
        "F only: argv[0] kept in a private instance, and a warning says why",
        f_only.ends_with("\n1\nrc=0\n")
            && f_only.contains("binfmtctl: warning: the host's aarch64 handler qemu-aarch64 lacks the P flag, so programs lose their argv[0] (busybox applets fail): ")
            && f_only.contains(private),
    );
    // What the private instance spared the run: under the host's entry as it is, busybox's
    // applets lose argv[0] (here `grep` runs as the shell: "/bin/sh: hell: not found").
    let as_is = r.section("f-only-host-handlers");
    r.expect(
        "--host-handlers: the host's F-only entry, busybox loses argv[0]",
        as_is.contains("not found") && as_is.ends_with("rc=127\n") && !as_is.contains("warning"),
    );
    r.expect(
        "the host's entry is untouched",
        r.section("f-only-after") == "qemu-aarch64 \nflags: F\n",
    );
    let p_only = r.section("p-only");
    r.expect(
        "no F: a private instance (the interpreter need not be in the rootfs)",
        p_only.ends_with("\n1\nrc=0\n")
            && p_only.contains("the host's aarch64 handler aarch64 lacks the F flag, so its interpreter /usr/bin/qemu-aarch64-static would have to exist inside the rootfs")
            && p_only.contains(private),
    );
    r.expect(
        "--host-handlers keeps refusing a handler without F",
        r.section("p-only-host-handlers")
            .contains("the handler aarch64 lacks the F flag, so it cannot work inside the chroot")
            && r.section("p-only-host-handlers").ends_with("rc=3\n"),
    );
    r.expect(
        "PF with Debian's interpreter: the host's handler, nothing said",
        r.section("pf") == "1\nrc=0\n",
    );
}

#[test]
fn resolv_conf_symlink_lands_inside_the_rootfs() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    // What the host has under the symlink's target directory, to compare afterwards.
    let host_resolve_dir = || {
        std::fs::read_dir("/run/systemd/resolve")
            .map(|d| d.count())
            .ok()
    };
    let host_before = host_resolve_dir();
    // Like systemd-resolved systems: an absolute symlink into /run.
    std::os::unix::fs::symlink(
        "/run/systemd/resolve/stub-resolv.conf",
        root.join("etc/resolv.conf"),
    )
    .unwrap();
    let out = binfmtctl(&[
        "run",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(
        s(&out.stdout),
        std::fs::read_to_string("/etc/resolv.conf").unwrap()
    );
    assert_eq!(
        host_resolve_dir(),
        host_before,
        "nothing created on the host's /run/systemd/resolve"
    );
    assert!(
        !root.join("run/systemd").exists(),
        "created only in the sandbox's tmpfs /run"
    );
}

/// Starts `binfmtctl run ... sleep 30` and waits until the command is running.
fn start_sleeper(root: &std::path::Path, marker_dir: &std::path::Path) -> std::process::Child {
    let child = Command::new(bin())
        .args(["run", "--rootfs"])
        .arg(root)
        .arg("--bind")
        .arg(format!("{}:/src", marker_dir.display()))
        .args(["--", "sh", "-c", "touch /src/started; exec sleep 30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker_dir.join("started").exists() {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Processes whose root directory is `root` (i.e. still inside the emulated chroot).
fn processes_in(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("root")).is_ok_and(|p| p == root))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn signals_reach_the_command_and_kill_9_leaves_nothing() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let root = std::fs::canonicalize(&root).unwrap();
    // SIGTERM to binfmtctl reaches the command, and its status comes back as 128 + 15.
    let m1 = dir.path().join("m1");
    std::fs::create_dir(&m1).unwrap();
    let mut c = start_sleeper(&root, &m1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = c.wait().unwrap();
    assert_eq!(status.code(), Some(143), "sleep was terminated by SIGTERM");
    // kill -9 of binfmtctl: the sandbox dies with it and no mount remains on the host.
    let m2 = dir.path().join("m2");
    std::fs::create_dir(&m2).unwrap();
    let mut c = start_sleeper(&root, &m2);
    assert!(
        !processes_in(&root).is_empty(),
        "the command runs chrooted in the rootfs"
    );
    c.kill().unwrap();
    c.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_in(&root).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left in the rootfs: {:?}",
            processes_in(&root)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        host_mounts_containing(root.to_str().unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn rootless_as_nobody_leaves_the_host_binfmt_alone() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    // nobody must reach the rootfs.
    for p in [dir.path(), root.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let before = host_binfmt();
    let r = as_nobody(&[
        bin().to_str().unwrap(),
        "run",
        "--rootless",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "uname -m; id -u",
    ]);
    r.expect("runs as nobody", r.code == 0 && r.stdout == "aarch64\n0\n");
    assert_eq!(host_binfmt(), before, "no new entry on the host");
}

#[test]
fn tarball_rootfs_is_unpacked_once_and_reused() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let tgz = dir.path().join("root.tar.gz");
    common::tar_gz(&root, &tgz);
    let cache = dir.path().join("cache");
    let run = || {
        Command::new(bin())
            .args(["-v", "run", "--rootfs"])
            .arg(&tgz)
            .args(["--", "uname", "-m"])
            .env("XDG_CACHE_HOME", &cache)
            .env("BINFMTCTL_ROOTFS_CACHE", &cache)
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(s(&first.stdout).trim(), "aarch64", "{}", s(&first.stderr));
    let second = run();
    assert_eq!(s(&second.stdout).trim(), "aarch64");
    assert!(
        s(&second.stderr).contains("reusing unpacked rootfs"),
        "{}",
        s(&second.stderr)
    );
}

#[test]
fn bad_input() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let r = root.to_str().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not a rootfs").unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "--rootfs", junk.to_str().unwrap(), "--", "true"],
            2,
            "is neither a directory nor a .tar, .tar.gz or .tar.zst file",
        ),
        (
            &["run", "--rootfs", "/nonexistent/rootfs", "--", "true"],
            2,
            "cannot read /nonexistent/rootfs",
        ),
        (
            &["run", "--rootfs", r, "--arch", "riscv64", "--", "true"],
            2,
            "arch mismatch: the rootfs is aarch64 (its /bin/sh), but --arch says riscv64",
        ),
        (
            &[
                "run",
                "--rootfs",
                r,
                "--bind",
                "/nonexistent/src:/src",
                "--",
                "true",
            ],
            2,
            "the source /nonexistent/src does not exist",
        ),
        (
            &["run", "--rootfs", r, "--env", "NOEQUALS", "--", "true"],
            2,
            "expected NAME=VALUE",
        ),
        (
            &["run", "--rootfs", r, "--user", "nosuchuser", "--", "true"],
            2,
            "no user \"nosuchuser\"",
        ),
    ];
    for (args, code, msg) in cases {
        let out = binfmtctl(args);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{args:?}: {}",
            s(&out.stderr)
        );
        assert!(s(&out.stderr).contains(msg), "{args:?}: {}", s(&out.stderr));
    }
}

#[test]
fn rootfs_create_and_build_both_ways() {
    gate!(Root);
    let rootfs = debian_arm64_rootfs();
    // The rootfs is a real Debian arm64 system.
    let out = binfmtctl(&["inspect", rootfs.join("usr/bin/dpkg").to_str().unwrap()]);
    assert!(
        s(&out.stdout).contains("machine 183 = aarch64"),
        "{}",
        s(&out.stdout)
    );
    let out = binfmtctl(&[
        "run",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "uname -m; dpkg --print-architecture",
    ]);
    assert_eq!(s(&out.stdout), "aarch64\narm64\n", "{}", s(&out.stderr));

    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("prog.c"),
        "#include <stdio.h>\nint main(void){unsigned long h=5381;for(int i=0;i<100000;i++)h=h*33+(i&0xff);printf(\"%lu %zu\\n\",h,sizeof(long));return 0;}\n",
    )
    .unwrap();
    let sd = src.path().to_str().unwrap();
    let out = binfmtctl(&[
        "build",
        "--arch",
        "arm64",
        "--strategy",
        "cross",
        "--src",
        sd,
        "--",
        "sh",
        "-c",
        "$CC -O2 -static -o prog-cross prog.c",
    ]);
    assert!(out.status.success(), "cross: {}", s(&out.stderr));
    let out = binfmtctl(&[
        "build",
        "--arch",
        "arm64",
        "--strategy",
        "emulate",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--src",
        sd,
        "--",
        "gcc",
        "-O2",
        "-static",
        "-o",
        "prog-emul",
        "prog.c",
    ]);
    assert!(out.status.success(), "emulate: {}", s(&out.stderr));
    // Both are aarch64 and print the same under emulation.
    let out = binfmtctl(&[
        "inspect",
        "--json",
        &format!("{sd}/prog-cross"),
        &format!("{sd}/prog-emul"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in v["files"].as_array().unwrap() {
        assert_eq!(f["arch"], "aarch64", "{f}");
    }
    let out = binfmtctl(&[
        "run",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--bind",
        &format!("{sd}:/src"),
        "--",
        "sh",
        "-c",
        "/src/prog-cross; /src/prog-emul",
    ]);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2, "{}", s(&out.stderr));
    assert_eq!(lines[0], lines[1]);
    assert!(lines[0].ends_with(" 8"), "64-bit long: {}", lines[0]);
    // auto picks cross here (a toolchain is installed) and says so.
    let out = binfmtctl(&["build", "--arch", "arm64", "--src", sd, "--", "true"]);
    assert!(
        s(&out.stderr).contains("build: cross"),
        "{}",
        s(&out.stderr)
    );
}

#[test]
fn cross_env_for_cargo_and_build_systems() {
    gate!(Root);
    let out = binfmtctl(&[
        "cross",
        "env",
        "--arch",
        "aarch64-unknown-linux-gnu",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["CC"], "/usr/bin/aarch64-linux-gnu-gcc");
    assert_eq!(
        v["CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"],
        "/usr/bin/aarch64-linux-gnu-gcc"
    );
    assert_eq!(
        v["CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"],
        "/usr/bin/qemu-aarch64-static"
    );
    assert_eq!(v["QEMU_LD_PREFIX"], "/usr/aarch64-linux-gnu");
    // No toolchain: which package provides one.
    let out = binfmtctl(&["cross", "env", "--arch", "s390x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        s(&out.stderr).contains("apt-get install gcc-s390x-linux-gnu"),
        "{}",
        s(&out.stderr)
    );
}

#[test]
fn a_terminal_passes_through() {
    gate!(Root);
    // script(1) gives binfmtctl a pty; the command must see it as its terminal, by name too.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    std::os::unix::fs::symlink("busybox", root.join("bin/tty")).unwrap();
    let cmd = format!(
        "{} run --rootfs {} -- sh -c 'test -t 0 && test -t 1 && echo tty-ok; tty'",
        bin().display(),
        root.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = s(&out.stdout).replace('\r', "");
    assert!(text.contains("tty-ok\n/dev/pts/"), "{text}");
    // Without a terminal, none is pretended.
    let out = binfmtctl(&["run", "--rootfs", root.to_str().unwrap(), "--", "tty"]);
    assert_eq!(s(&out.stdout).trim(), "not a tty");
}

// ---- Issue 8: the safety promise on the emulation paths ----------------------------------

/// A plain tar of `root` (members "./..."), then whatever `extra` appends.
fn tarball_with(
    root: &std::path::Path,
    out: &std::path::Path,
    extra: impl FnOnce(&mut tar::Builder<std::fs::File>),
) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", root).unwrap();
    extra(&mut b);
    b.finish().unwrap();
}

/// A tar header for `path` of `kind` with `mode`, owned by root.
fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// Appends `n` small files under `many/` (a tarball that takes a while to unpack).
fn many_files(b: &mut tar::Builder<std::fs::File>, n: usize) {
    for i in 0..n {
        let h = header(
            &format!("many/{:02}/f{i}", i % 50),
            tar::EntryType::Regular,
            0o644,
            1,
        );
        b.append(&h, &b"x"[..]).unwrap();
    }
}

/// Entries of the cache directory whose name contains `needle`.
fn cache_entries(cache: &std::path::Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}

/// The unpacked tree in `cache` (the one directory whose name is a bare SHA-256).
fn unpacked_tree(cache: &std::path::Path) -> std::path::PathBuf {
    let trees: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().contains('.'))
        .map(|e| e.path())
        .collect();
    assert_eq!(trees.len(), 1, "one unpacked tree in the cache: {trees:?}");
    trees[0].clone()
}

fn run_tarball(
    tarball: &std::path::Path,
    cache: &std::path::Path,
    extra: &[&str],
    cmd: &[&str],
) -> Command {
    let mut c = Command::new(bin());
    c.args(["run", "--rootfs"])
        .arg(tarball)
        .args(extra)
        .arg("--")
        .args(cmd)
        .env("BINFMTCTL_ROOTFS_CACHE", cache);
    c
}

#[test]
fn the_callers_environment_stays_outside_the_sandbox() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    std::os::unix::fs::symlink("busybox", root.join("bin/env")).unwrap();
    let r = root.to_str().unwrap();
    let probe = "echo '== pid1-environ'; cat /proc/1/environ | tr '\\0' '\\n'; echo '== pid1-cmdline'; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo '== env'; env | sort";
    let run = |extra: &[&str]| {
        let out = Command::new(bin())
            .args(["run", "--rootfs", r])
            .args(extra)
            .args(["--", "sh", "-c", probe])
            .env("SECRET_TOKEN", "s3cr3t-from-the-caller")
            .env("TERM", "xterm-test")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        common::Run {
            code: 0,
            stdout: s(&out.stdout),
            stderr: s(&out.stderr),
        }
    };
    let out = run(&[]);
    out.expect(
        "the caller's environment is nowhere inside",
        !out.stdout.contains("s3cr3t") && !out.stdout.contains("SECRET_TOKEN"),
    );
    out.expect(
        "PID 1 keeps no environment",
        out.section("pid1-environ").trim().is_empty(),
    );
    // The command gets the documented defaults (PATH, HOME, TERM) and nothing else; sh adds
    // its own PWD/SHLVL.
    let names: Vec<String> = out
        .section("env")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .filter(|k| k != "PWD" && k != "SHLVL")
        .collect();
    out.expect(
        "only PATH, HOME and TERM by default",
        names == ["HOME", "PATH", "TERM"] && out.section("env").contains("TERM=xterm-test\n"),
    );
    // --env passes a value on, to the command only.
    let out = run(&["--env", "SECRET_TOKEN=given-on-purpose"]);
    out.expect(
        "--env reaches the command",
        out.section("env")
            .contains("SECRET_TOKEN=given-on-purpose\n"),
    );
    out.expect(
        "but not PID 1's environment or command line",
        out.section("pid1-environ").trim().is_empty()
            && !out.section("pid1-cmdline").contains("given-on-purpose")
            && !out.stdout.contains("s3cr3t"),
    );
    // A descriptor the caller left open (not close-on-exec) stays outside too.
    let secret = dir.path().join("secret-file");
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 7<{}; {} run --rootfs {r} -- sh -c 'ls -l /proc/1/fd /proc/self/fd; cat /proc/1/fd/7 /proc/self/fd/7'",
            secret.display(),
            bin().display()
        ))
        .output()
        .unwrap();
    assert!(
        s(&out.stdout).contains("/proc/self/fd:")
            && !s(&out.stdout).contains("secret-file")
            && !s(&out.stdout).contains("s3cr3t"),
        "{}\n{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    // Rootless (as nobody): the same.
    for p in [dir.path(), root.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let r = as_nobody(&[
        "env",
        "SECRET_TOKEN=s3cr3t-from-the-caller",
        bin().to_str().unwrap(),
        "run",
        "--rootless",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        probe,
    ]);
    r.expect(
        "rootless: nothing of the caller's environment inside",
        r.code == 0 && !r.stdout.contains("s3cr3t") && r.section("pid1-environ").trim().is_empty(),
    );
}

#[test]
fn a_command_line_of_hundreds_of_kilobytes_runs() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let r = root.to_str().unwrap();
    // 4000 arguments of 50 bytes: 200 KB, more than one environment string may hold (128 KiB).
    let many: Vec<String> = (0..4000).map(|i| format!("{i:050}")).collect();
    let out = Command::new(bin())
        .args([
            "run",
            "--rootfs",
            r,
            "--",
            "sh",
            "-c",
            "echo $#; echo ${4000}",
            "_",
        ])
        .args(&many)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(s(&out.stdout), format!("4000\n{}\n", many[3999]));
    // One argument of 120 KB (execve takes up to 128 KiB per string).
    let big = "y".repeat(120_000);
    let out = binfmtctl(&[
        "run",
        "--rootfs",
        r,
        "--",
        "sh",
        "-c",
        "echo ${#1}",
        "_",
        &big,
    ]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(s(&out.stdout), "120000\n");
}

#[test]
fn concurrent_runs_of_one_tarball_share_one_unpack() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let tarball = dir.path().join("root.tar");
    tarball_with(&root, &tarball, |b| many_files(b, 3000));
    let cache = dir.path().join("cache");
    // Three at once: each must find its tree intact while it runs.
    let children: Vec<_> = (0..3)
        .map(|_| {
            run_tarball(
                &tarball,
                &cache,
                &[],
                &["sh", "-c", "sleep 1; ls /many/07 | grep -c f; uname -m"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(s(&out.stdout), "60\naarch64\n", "{}", s(&out.stderr));
    }
    assert_eq!(cache_entries(&cache, ".partial"), Vec::<String>::new());
    unpacked_tree(&cache);
}

#[test]
fn kill_9_during_unpack_leaves_nothing_the_next_run_keeps() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let tarball = dir.path().join("root.tar");
    tarball_with(&root, &tarball, |b| many_files(b, 10000));
    let cache = dir.path().join("cache");
    // Kill a run while it unpacks (again, should a fast machine finish before the kill lands).
    'attempt: for attempt in 0.. {
        assert!(attempt < 5, "never caught the unpack midway");
        let _ = std::fs::remove_dir_all(&cache);
        let mut c = run_tarball(&tarball, &cache, &[], &["true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while cache_entries(&cache, ".partial").is_empty() {
            assert!(Instant::now() < deadline, "the unpack did not start");
            if c.try_wait().unwrap().is_some() {
                continue 'attempt;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        c.kill().unwrap();
        c.wait().unwrap();
        if !cache_entries(&cache, ".partial").is_empty() {
            break;
        }
    }
    // The next run removes the dead run's partial tree and unpacks completely.
    let out = run_tarball(
        &tarball,
        &cache,
        &[],
        &["sh", "-c", "ls /many/49 | grep -c f"],
    )
    .output()
    .unwrap();
    assert_eq!(s(&out.stdout), "200\n", "{}", s(&out.stderr));
    assert_eq!(cache_entries(&cache, ".partial"), Vec::<String>::new());
    assert_eq!(
        host_mounts_containing(cache.to_str().unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn the_tarball_cache_hands_out_no_privileges() {
    gate!(Root);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let tarball = dir.path().join("root.tar");
    tarball_with(&root, &tarball, |b| {
        b.append(
            &header("bin/suid", tar::EntryType::Regular, 0o4755, 2),
            &b"#!"[..],
        )
        .unwrap();
        b.append(
            &header("bin/sgid", tar::EntryType::Regular, 0o2755, 2),
            &b"#!"[..],
        )
        .unwrap();
        let mut mem = header("etc/mem", tar::EntryType::Char, 0o666, 0);
        mem.set_device_major(1).unwrap();
        mem.set_device_minor(1).unwrap();
        mem.set_cksum();
        b.append(&mem, &b""[..]).unwrap();
    });
    // A cache left world-readable (as earlier versions made it) is made owner-only.
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run_tarball(&tarball, &cache, &[], &["true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid()),
        (0o700, 0),
        "cache owner-only, root's"
    );
    let tree = unpacked_tree(&cache);
    for f in ["bin/suid", "bin/sgid"] {
        let mode = std::fs::metadata(tree.join(f)).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o755, "{f}: setuid/setgid dropped");
    }
    assert!(
        std::fs::symlink_metadata(tree.join("etc/mem")).is_err(),
        "device nodes skipped"
    );
    // --keep-privileges keeps them (a separate cache entry).
    let out = run_tarball(&tarball, &cache, &["--keep-privileges"], &["true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let kept: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.to_string_lossy().ends_with("-privileged"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", cache_entries(&cache, ""));
    assert_eq!(
        std::fs::metadata(kept[0].join("bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    let mem = std::fs::symlink_metadata(kept[0].join("etc/mem")).unwrap();
    assert!(mem.file_type().is_char_device() && mem.rdev() == nix_makedev(1, 1));
    // The rootless user's own cache is owner-only too.
    let home = dir.path().join("nobody");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    for p in [dir.path(), home.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        &tarball,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let ncache = home.join("cache");
    let r = as_nobody(&[
        "env",
        &format!("BINFMTCTL_ROOTFS_CACHE={}", ncache.display()),
        bin().to_str().unwrap(),
        "run",
        "--rootless",
        "--rootfs",
        tarball.to_str().unwrap(),
        "--",
        "uname",
        "-m",
    ]);
    r.expect(
        "rootless tarball run",
        r.code == 0 && r.stdout == "aarch64\n",
    );
    let meta = std::fs::metadata(&ncache).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o700, 65534));
    let tree = unpacked_tree(&ncache);
    assert_eq!(
        std::fs::metadata(tree.join("bin/suid")).unwrap().mode() & 0o7777,
        0o755
    );
}

fn nix_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfffff000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffffff00) << 12)
        | (minor & 0xff)
}

#[test]
fn unsafe_mount_points_and_binds_are_refused() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    let r = root.to_str().unwrap();
    let out = binfmtctl(&["run", "--rootfs", r, "--bind", "/tmp:/", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", s(&out.stderr));
    assert!(
        s(&out.stderr).contains("--bind /tmp:/: the target is the rootfs's root"),
        "{}",
        s(&out.stderr)
    );
    for target in ["/.", "//", "/src/.."] {
        let b = format!("/tmp:{target}");
        let out = binfmtctl(&["run", "--rootfs", r, "--bind", &b, "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{b}: {}", s(&out.stderr));
    }
    // A rootfs whose /dev (or /proc, /sys, /tmp, /run) is a symlink: refused, nothing mounted.
    for (name, link) in [
        ("dev", "/dev"),
        ("tmp", "../../../../../tmp"),
        ("proc", "/"),
    ] {
        let bad = dir.path().join(format!("bad-{name}"));
        busybox_rootfs(&bad);
        std::fs::remove_dir(bad.join(name)).unwrap();
        std::os::unix::fs::symlink(link, bad.join(name)).unwrap();
        let out = binfmtctl(&["run", "--rootfs", bad.to_str().unwrap(), "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", s(&out.stderr));
        assert!(
            s(&out.stderr).contains(&format!("/{name} is a symlink")),
            "{name}: {}",
            s(&out.stderr)
        );
    }
}

#[test]
fn root_in_a_user_namespace_is_told_to_use_rootless() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    // Root of a user namespace that maps one id: no handler in its binfmt_misc, and no identity
    // mapping possible.
    let r = ns(&format!(
        "echo '== root'; $B run --rootfs {root} -- uname -m 2>&1; echo \"rc=$?\"\necho '== rootless'; $B run --rootless --rootfs {root} -- uname -m; echo \"rc=$?\"\necho '== create'; $B rootfs create --arch arm64 {new} 2>&1; echo \"rc=$?\"\n",
        root = root.display(),
        new = dir.path().join("new").display()
    ));
    let plain = r.section("root");
    r.expect(
        "a clear message, exit 3, and the hint",
        plain.contains("rc=3")
            && plain.contains("--rootless")
            && !plain.contains("writing uid_map"),
    );
    r.expect(
        "--rootless works there",
        r.section("rootless") == "aarch64\nrc=0\n",
    );
    let create = r.section("create");
    r.expect(
        "rootfs create says why it cannot work there, before bootstrapping anything",
        create.contains("rc=3")
            && create.contains("maps only some")
            && !dir.path().join("new").exists(),
    );
}

/// Docs-drift issue, item 11: `build --rootfs` that cannot be used is an error (exit 2) even
/// when cross-compiling would win; it used to exit 0 through cross without a word.
#[test]
fn build_refuses_a_rootfs_it_cannot_use() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let arm64 = dir.path().join("arm64");
    common::busybox_rootfs(&arm64);
    let b = common::bin();
    let run = |rootfs: &str| {
        std::process::Command::new(&b)
            .args([
                "build", "--arch", "riscv64", "--rootfs", rootfs, "--", "true",
            ])
            .output()
            .unwrap()
    };
    let out = run("/nonexistent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--rootfs /nonexistent: No such file or directory"),
        "{err}"
    );
    let out = run(arm64.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("it is aarch64") && err.contains("--arch says riscv64"),
        "{err}"
    );
}
