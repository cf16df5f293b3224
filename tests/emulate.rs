//! End-to-end tests of the emulated chroot (`run`), `rootfs create`, `cross env` and `build`
//! (issue 4), with real arm64 binaries, Debian's static QEMU and the real kernel. The host's
//! binfmt_misc is never touched: without a host handler, run uses a private instance.

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

#[test]
fn resolv_conf_symlink_lands_inside_the_rootfs() {
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
