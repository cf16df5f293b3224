//! Hybrid builds (issue 11): `run --accelerate` and `build --strategy hybrid` on the real
//! kernel, with a real Debian bookworm arm64 rootfs (gcc, g++, libc6-dev, make; made once by
//! `binfmtctl rootfs create` and cached) and the host's Debian cross toolchain
//! (gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu). The host's binfmt_misc is never touched: without a host handler,
//! run uses a private instance.

#[macro_use]
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    as_nobody, assets, bin, busybox_rootfs, debian_arm64_rootfs_gxx, host_mounts_containing,
};

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn binfmtctl(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// `run --accelerate --rootfs ROOT -- true` must exit with `code`; its stderr.
#[track_caller]
fn accelerate_true_fails(root: &Path, code: i32) -> String {
    let out = binfmtctl(&[
        "run",
        "--accelerate",
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "true",
    ]);
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    err
}

/// The rootfs's digest (`common::rootfs_manifest`), with the bytes of the files where the
/// launchers are bound over its names.
fn manifest(root: &Path) -> String {
    common::rootfs_manifest(root, &["usr/bin/"])
}

const PROG: &str = "#include <stdio.h>\n#ifndef BINFMTCTL_ROOTFS_MARKER\n#error the rootfs's stdio.h was not used\n#endif\nint main(void){unsigned long h=5381;for(int i=0;i<100000;i++)h=h*33+(i&0xff);printf(\"%lu %zu %d\\n\",h,sizeof(long),BINFMTCTL_ROOTFS_MARKER);return 0;}\n";

/// A source directory with `prog.c`, and a copy of the rootfs's stdio.h with a marker define
/// (bound read-only over the rootfs's own, so the rootfs on disk stays as it is).
fn sources(rootfs: &Path) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("prog.c"), PROG).unwrap();
    let mut stdio = std::fs::read_to_string(rootfs.join("usr/include/stdio.h")).unwrap();
    stdio.push_str("\n#define BINFMTCTL_ROOTFS_MARKER 42\n");
    std::fs::write(src.path().join("stdio.h"), stdio).unwrap();
    // nobody (the rootless test) reads it.
    std::fs::set_permissions(
        src.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    src
}

fn run_accelerated(rootfs: &Path, src: &Path, extra: &[&str], script: &str) -> Output {
    let mut c = Command::new(bin());
    c.args(["run", "--accelerate", "--rootfs"])
        .arg(rootfs)
        .arg("--bind")
        .arg(format!("{}:/src", src.display()))
        .arg("--bind")
        .arg(format!("{}/stdio.h:/usr/include/stdio.h:ro", src.display()))
        .args(["--workdir", "/src"])
        .args(extra)
        .args(["--", "sh", "-c", script]);
    c.output().unwrap()
}

#[test]
fn accelerated_compile_is_native_faithful_and_leaves_the_rootfs_unchanged() {
    gate!(Root);
    let rootfs = debian_arm64_rootfs_gxx();
    let before = manifest(&rootfs);
    let src = sources(&rootfs);
    let out = run_accelerated(
        &rootfs,
        src.path(),
        &[],
        "uname -m; gcc -O2 -o prog prog.c && ./prog; echo | gcc -E -v - 2>&1 | sed -n '/<...> search starts/,/End of search/p'; echo \"tooldir: $(ls /run/binfmtctl/usr/aarch64-linux-gnu/include)\"",
    );
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    let stdout = s(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("aarch64"),
        "uname stays emulated: {stdout}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.ends_with(" 8 42") && l.split(' ').count() == 3),
        "the program, built with the rootfs's stdio.h, runs: {stdout}\n{err}"
    );
    // Only the rootfs's headers (the sysroot is /), never the cross toolchain's own copy;
    // /usr/local/include as the rootfs's own gcc has it.
    let search: Vec<String> = lines
        .filter(|l| l.starts_with(' '))
        .map(|l| l.replace("/usr/bin/../lib/", "/usr/lib/"))
        .collect();
    assert_eq!(
        search,
        [
            " /usr/local/include",
            " /usr/lib/gcc-cross/aarch64-linux-gnu/12/include",
            " /usr/lib/gcc-cross/aarch64-linux-gnu/12/../../../../aarch64-linux-gnu/include",
            " /usr/include/aarch64-linux-gnu",
            " /usr/include"
        ]
        .iter()
        .map(|p| p.replace(" /usr/lib/gcc-cross", " /run/binfmtctl/usr/lib/gcc-cross"))
        .collect::<Vec<_>>(),
        "{stdout}"
    );
    // The cross toolchain's include directory holds only libstdc++'s headers (the rootfs's).
    assert!(stdout.contains("\ntooldir: c++\n"), "{stdout}");
    // One line names the native toolchain and the versions.
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("accelerate:") && !l.contains("accelerate: native build tools"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].contains("native aarch64-linux-gnu-gcc-12 12.2.0")
            && said[0].contains("rootfs's gcc-12 12.2.0"),
        "{err}"
    );
    // The program is an aarch64 executable, written through the bind.
    let prog = std::fs::read(src.path().join("prog")).unwrap();
    assert_eq!(&prog[18..20], &[183, 0], "e_machine aarch64");
    // Nothing stays: no mount on the host, the rootfs on disk is as it was.
    assert_eq!(
        host_mounts_containing(rootfs.to_str().unwrap()),
        Vec::<String>::new()
    );
    assert!(!rootfs.join("run/binfmtctl").exists());
    assert_eq!(manifest(&rootfs), before, "the rootfs on disk is unchanged");
}

#[test]
fn the_toolchain_is_native_and_everything_else_emulated() {
    gate!(Root, X86_64Host);
    let rootfs = debian_arm64_rootfs_gxx();
    let src = sources(&rootfs);
    // e_machine of each program as the chroot sees it: 3e00 = x86_64 (a launcher), b700 =
    // aarch64. `gcc -v` names the driver's host; the driver's programs are launchers too.
    let script = r#"
m() { printf '%s ' "$1"; od -An -tx1 -j18 -N2 "$(command -v "$1" || echo "$1")" | tr -d ' \n'; echo; }
for p in cc gcc cpp aarch64-linux-gnu-gcc gcc-12 gcc-ar g++ c++ as ld ar ranlib nm objcopy strip sh uname make dpkg; do m $p; done
for p in cc1 collect2 lto-wrapper as ld; do m "$(gcc -print-prog-name=$p)"; done
m "$(g++ -print-prog-name=cc1plus)"
gcc -v 2>&1 | grep -o -- '--host=[^ ]*'
printf '#include <iostream>\n#include <map>\nint main(){std::map<int,const char*> m{{2,"b"},{1,"a"}};for(auto&[k,v]:m)std::cout<<k<<v;std::cout<<"\\n";}\n' > /tmp/p.cc
g++ -O2 -o /tmp/pcc /tmp/p.cc && /tmp/pcc
"#;
    let out = run_accelerated(&rootfs, src.path(), &[], script);
    let stdout = s(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", s(&out.stderr));
    let mut native = Vec::new();
    let mut emulated = Vec::new();
    for l in stdout.lines() {
        match l.rsplit_once(' ') {
            Some((p, "3e00")) => native.push(p.rsplit('/').next().unwrap().to_owned()),
            Some((p, "b700")) => emulated.push(p.to_owned()),
            _ => {}
        }
    }
    for p in [
        "cc",
        "gcc",
        "cpp",
        "aarch64-linux-gnu-gcc",
        "gcc-12",
        "gcc-ar",
        "g++",
        "c++",
        "cc1plus",
        "as",
        "ld",
        "ar",
        "ranlib",
        "nm",
        "objcopy",
        "strip",
        "cc1",
        "collect2",
        "lto-wrapper",
    ] {
        assert!(native.iter().any(|n| n == p), "{p} native: {stdout}");
    }
    // The driver's as and ld are the cross binutils' (under the toolchain's tree).
    assert!(
        stdout.lines().any(|l| l.starts_with("/run/binfmtctl/usr/")
            && l.ends_with("/../../../../aarch64-linux-gnu/bin/as 3e00")),
        "{stdout}"
    );
    // C++ with the rootfs's libstdc++ (headers and library), run emulated.
    assert!(stdout.contains("\n1a2b\n"), "{stdout}");
    // The build tools are the host's too (tests/hybrid_tools.rs); what tells the machine
    // stays the rootfs's own.
    for p in ["sh", "make"] {
        assert!(native.iter().any(|n| n == p), "{p} native: {stdout}");
    }
    for p in ["uname", "dpkg"] {
        assert!(emulated.iter().any(|n| n == p), "{p} emulated: {stdout}");
    }
    assert!(stdout.contains("--host=x86_64-linux-gnu"), "{stdout}");
}

#[test]
fn objects_match_the_emulated_compilers_but_for_the_comment() {
    gate!(Root);
    let rootfs = debian_arm64_rootfs_gxx();
    let src = sources(&rootfs);
    let compile = |accelerate: bool, out: &str| {
        let mut c = Command::new(bin());
        c.arg("run");
        if accelerate {
            c.arg("--accelerate");
        }
        let o = c
            .arg("--rootfs")
            .arg(&rootfs)
            .arg("--bind")
            .arg(format!("{}:/src", src.path().display()))
            .arg("--bind")
            .arg(format!(
                "{}/stdio.h:/usr/include/stdio.h:ro",
                src.path().display()
            ))
            .args([
                "--workdir",
                "/src",
                "--",
                "gcc",
                "-O2",
                "-g",
                "-c",
                "-o",
                out,
                "prog.c",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", s(&o.stderr));
        // The .comment section names the compiler's exact Debian version: drop it.
        let stripped = src.path().join(format!("{out}.nocomment"));
        let ok = Command::new("aarch64-linux-gnu-objcopy")
            .args(["--remove-section", ".comment"])
            .arg(src.path().join(out))
            .arg(&stripped)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::fs::read(stripped).unwrap()
    };
    let native = compile(true, "native.o");
    let emulated = compile(false, "emulated.o");
    assert!(native.len() > 1000);
    assert!(native == emulated, "the objects differ beyond .comment");
}

#[test]
fn kill_9_leaves_no_mount_and_no_process() {
    gate!(Root);
    let rootfs = debian_arm64_rootfs_gxx();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["run", "--accelerate", "--rootfs"])
        .arg(&rootfs)
        .arg("--bind")
        .arg(format!("{}:/src", dir.path().display()))
        .args([
            "--",
            "sh",
            "-c",
            "ls /run/binfmtctl/usr/bin > /src/started; exec sleep 30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = dir.path().join("started");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&started).map_or(true, |t| t.is_empty()) {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::read_to_string(&started)
            .unwrap()
            .contains("aarch64-linux-gnu-gcc-12")
    );
    // This run's sandbox: the pid namespace of its `sleep 30` (the other tests here run in the
    // same cached rootfs at the same time, so "any process in the rootfs" would count theirs).
    let in_rootfs = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == rootfs))
            .map(|e| e.path())
            .collect::<Vec<_>>()
    };
    let pid_ns = |p: &Path| std::fs::read_link(p.join("ns/pid")).ok();
    let sleeping = || {
        in_rootfs()
            .iter()
            .filter(|p| {
                // Emulated: the kernel ran QEMU with the program's path and arguments after it.
                std::fs::read(p.join("cmdline")).is_ok_and(|c| {
                    let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                    args.iter().any(|a| a.ends_with(b"sleep")) && args.contains(&&b"30"[..])
                })
            })
            .filter_map(|p| pid_ns(p))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ours = loop {
        let ours = sleeping();
        if !ours.is_empty() {
            break ours;
        }
        assert!(
            Instant::now() < deadline,
            "no sleep 30 of this run in the rootfs"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ours.len(), 1, "one sleep 30 of this run in the rootfs");
    child.kill().unwrap();
    child.wait().unwrap();
    let root = rootfs.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mounts = host_mounts_containing(root);
        let procs: Vec<_> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| pid_ns(&e.path()).is_some_and(|ns| ours.contains(&ns)))
            .collect();
        if mounts.is_empty() && procs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left: {mounts:?} {procs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small arm64 rootfs (busybox) that claims a gcc of `gcc_version` and binutils of
/// `binutils_version` the way Debian's would: /usr/bin/gcc leads to the triple's driver, and the
/// dpkg status lists the packages.
fn claimed_rootfs(
    dir: &Path,
    triple: &str,
    busybox: &str,
    major: &str,
    gcc_version: &str,
    binutils_version: &str,
) {
    busybox_rootfs(dir);
    std::fs::copy(assets().join(busybox), dir.join("bin/busybox")).unwrap();
    let usr_bin = dir.join("usr/bin");
    std::fs::create_dir_all(&usr_bin).unwrap();
    std::fs::write(usr_bin.join(format!("{triple}-gcc-{major}")), "").unwrap();
    std::os::unix::fs::symlink(format!("{triple}-gcc-{major}"), usr_bin.join("gcc")).unwrap();
    std::fs::create_dir_all(dir.join(format!("usr/lib/gcc/{triple}/{major}"))).unwrap();
    std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        dir.join("var/lib/dpkg/status"),
        format!(
            "Package: gcc-{major}\nStatus: install ok installed\nVersion: {gcc_version}\n\nPackage: binutils-{triple}\nStatus: install ok installed\nVersion: {binutils_version}\n"
        ),
    )
    .unwrap();
}

#[test]
fn version_mismatches_are_refused_unless_forced() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer");
    claimed_rootfs(
        &newer,
        "aarch64-linux-gnu",
        "busybox-arm64",
        "13",
        "13.2.0-25",
        "2.41-6",
    );
    let r = newer.to_str().unwrap();
    let out = binfmtctl(&["run", "--accelerate", "--rootfs", r, "--", "true"]);
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the host's cross gcc is 12 (gcc-12-aarch64-linux-gnu 12.2.0")
            && err.contains("the rootfs's is 13 (gcc-13 13.2.0-25)")
            && err.contains("apt-get install gcc-13-aarch64-linux-gnu")
            && err.contains("--accelerate=force"),
        "{err}"
    );
    // binutils are compared too (major.minor).
    let binutils = dir.path().join("binutils");
    claimed_rootfs(
        &binutils,
        "aarch64-linux-gnu",
        "busybox-arm64",
        "12",
        "12.2.0-14+deb12u1",
        "2.41-6",
    );
    let err = accelerate_true_fails(&binutils, 3);
    assert!(
        err.contains("cross binutils is 2.40 (binutils-aarch64-linux-gnu 2.40")
            && err.contains("the rootfs's is 2.41 (binutils-aarch64-linux-gnu 2.41-6)"),
        "{err}"
    );
    // Forced: the host's gcc 12 stands in for the claimed 13, and says so.
    let out = binfmtctl(&[
        "run",
        "--accelerate=force",
        "--rootfs",
        r,
        "--",
        "sh",
        "-c",
        "uname -m; gcc -dumpversion",
    ]);
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(s(&out.stdout), "aarch64\n12\n", "{err}");
    assert!(err.contains("[forced: the versions differ]"), "{err}");
    let out = binfmtctl(&["run", "--accelerate=sometimes", "--rootfs", r, "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn without_a_toolchain_or_a_rootfs_compiler_it_says_what_to_install() {
    gate!(Root, X86_64Host);
    let dir = tempfile::tempdir().unwrap();
    // s390x: no cross compiler on this host.
    let s390x = dir.path().join("s390x");
    claimed_rootfs(
        &s390x,
        "s390x-linux-gnu",
        "busybox-s390x",
        "12",
        "12.2.0-14+deb12u1",
        "2.40-2",
    );
    let err = accelerate_true_fails(&s390x, 3);
    assert!(
        err.contains("no native cross compiler for s390x-linux-gnu on this host")
            && err.contains("apt-get install gcc-12-s390x-linux-gnu"),
        "{err}"
    );
    // arm64, but the cross gcc is not on PATH.
    let arm64 = dir.path().join("arm64");
    claimed_rootfs(
        &arm64,
        "aarch64-linux-gnu",
        "busybox-arm64",
        "12",
        "12.2.0-14+deb12u1",
        "2.40-2",
    );
    let out = Command::new(bin())
        .args(["run", "--accelerate", "--rootfs"])
        .arg(&arm64)
        .args(["--", "true"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("apt-get install gcc-12-aarch64-linux-gnu"),
        "{err}"
    );
    // A bind over /run would put the injection into a host directory.
    let out = binfmtctl(&[
        "run",
        "--accelerate",
        "--rootfs",
        arm64.to_str().unwrap(),
        "--bind",
        &format!("{}:/run", dir.path().display()),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", s(&out.stderr));
    assert!(s(&out.stderr).contains("bind elsewhere"));
    // A rootfs this host runs natively (i386 on x86_64): nothing to speed up.
    let i386 = dir.path().join("i386");
    claimed_rootfs(
        &i386,
        "i686-linux-gnu",
        "busybox-i386",
        "12",
        "12.2.0-14+deb12u1",
        "2.40-2",
    );
    let out = binfmtctl(&[
        "run",
        "--accelerate",
        "--rootfs",
        i386.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", s(&out.stderr));
    assert!(
        s(&out.stderr).contains("runs natively"),
        "{}",
        s(&out.stderr)
    );
    // A rootfs without gcc: nothing to stand in for.
    let bare = dir.path().join("bare");
    busybox_rootfs(&bare);
    let err = accelerate_true_fails(&bare, 2);
    assert!(err.contains("the rootfs has no gcc"), "{err}");
}

#[test]
fn rootless_as_nobody() {
    gate!(Root);
    let rootfs = debian_arm64_rootfs_gxx();
    let src = sources(&rootfs);
    let bind = format!("{}:/src", src.path().display());
    let header = format!("{}/stdio.h:/usr/include/stdio.h:ro", src.path().display());
    let r = as_nobody(&[
        bin().to_str().unwrap(),
        "run",
        "--rootless",
        "--accelerate",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--bind",
        &bind,
        "--bind",
        &header,
        "--",
        "sh",
        "-c",
        "id -u; gcc -O2 -o /tmp/prog /src/prog.c && /tmp/prog && od -An -tx1 -j18 -N2 /usr/bin/gcc-12",
    ]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    r.expect(
        "an accelerated compile as nobody",
        r.code == 0
            && lines.len() == 3
            && lines[0] == "0"
            && lines[1].ends_with(" 8 42")
            && lines[2].trim() == "3e 00",
    );
}

#[test]
fn build_strategy_hybrid_and_auto_picks_it() {
    gate!(Root);
    let rootfs = debian_arm64_rootfs_gxx();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("prog.c"),
        "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n",
    )
    .unwrap();
    let sd = src.path().to_str().unwrap();
    let r = rootfs.to_str().unwrap();
    let out = binfmtctl(&[
        "build",
        "--arch",
        "arm64",
        "--strategy",
        "hybrid",
        "--rootfs",
        r,
        "--src",
        sd,
        "--",
        "sh",
        "-c",
        "gcc -O2 -o prog prog.c && ./prog",
    ]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(s(&out.stdout), "hi\n");
    assert!(s(&out.stderr).contains("accelerate: native aarch64-linux-gnu-gcc-12"));
    let out = binfmtctl(&[
        "build", "--arch", "arm64", "--rootfs", r, "--src", sd, "--", "true",
    ]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(
        s(&out.stderr).contains("build: hybrid (the host's native aarch64-linux-gnu-gcc-12"),
        "{}",
        s(&out.stderr)
    );
    let out = binfmtctl(&[
        "build",
        "--arch",
        "arm64",
        "--strategy",
        "hybrid",
        "--src",
        sd,
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(s(&out.stderr).contains("--strategy hybrid needs --rootfs"));
}

#[test]
fn with_the_host_handler_and_no_user_namespace_of_its_own() {
    gate!(Root);
    // In a namespace whose own binfmt_misc instance stands in for the host's: as root there,
    // run uses that handler and creates only a mount namespace; the injection works the same.
    let rootfs = debian_arm64_rootfs_gxx();
    let r = common::ns(&format!(
        r#"
$B install arm64 -q
echo "== run"; $B run --accelerate --rootfs {root} -- sh -c 'uname -m; od -An -tx1 -j18 -N2 /usr/bin/gcc-12; echo "int main(void){{return 7;}}" > /tmp/m.c && gcc -o /tmp/m /tmp/m.c; /tmp/m; echo "rc=$?"'
echo "== entries"; entries
"#,
        root = rootfs.display()
    ));
    r.expect(
        "accelerated run with the handler of the (stand-in) host",
        r.section("run") == "aarch64\n 3e 00\nrc=7\n" && r.section("entries") == "qemu-aarch64 \n",
    );
    r.expect(
        "the handler was the host's: no private instance announced",
        !r.stderr.contains("private binfmt_misc instance"),
    );
}

/// Every path under `dir` with its type, mode, owner and link target (not following links).
fn tree_listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let link = std::fs::read_link(&p)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        out.push(format!(
            "{} {:o} {}:{} {} {link}",
            p.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.len()
        ));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Issue 16's reproduction: a rootfs holding `src -> /run` and a project directory (nobody's)
/// holding `binfmtctl/usr/aarch64-linux-gnu/bin -> VICTIM`. `run --accelerate --bind DIR:/src`
/// bound the project over the sandbox's /run, then root wrote the injection into the project
/// and `as`, `ld`, ... into VICTIM, and exited 0. Now: refused (the bind's target is checked
/// where it resolves, before the run and again in the sandbox on the resolved object), as root
/// and as nobody, and for `build --strategy hybrid` (its default `--src .`); the project and
/// VICTIM are unchanged.
#[test]
fn a_hostile_rootfs_cannot_lead_the_injection_into_host_directories() {
    gate!(Root, X86_64Host);
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let r = dir.path().join("rootfs");
    claimed_rootfs(
        &r,
        "aarch64-linux-gnu",
        "busybox-arm64",
        "12",
        "12.2.0-14",
        "2.40-2",
    );
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(proj.join("binfmtctl/usr/aarch64-linux-gnu")).unwrap();
    symlink(&victim, proj.join("binfmtctl/usr/aarch64-linux-gnu/bin")).unwrap();
    std::fs::write(proj.join("main.c"), "int main(void){return 0;}\n").unwrap();
    for p in [&proj, &proj.join("binfmtctl"), &proj.join("binfmtctl/usr")] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    std::fs::remove_dir(r.join("src")).unwrap();
    let before = (tree_listing(&proj), tree_listing(&victim));
    let unchanged = |what: &str| {
        assert_eq!(
            (tree_listing(&proj), tree_listing(&victim)),
            before,
            "{what}: the project or VICTIM changed"
        );
    };
    let bind = format!("{}:/src", proj.display());
    let rootfs = r.to_str().unwrap().to_owned();
    let run = [
        "run",
        "--accelerate",
        "--rootfs",
        &rootfs,
        "--bind",
        &bind,
        "--",
        "/bin/sh",
        "-c",
        "true",
    ];
    // Links that all lead to the sandbox's /run (or its top), spelled every way.
    for (link, resolved) in [
        ("/run", "/run"),
        ("../../run", "/run"),
        ("./run/", "/run"),
        ("lnk", "/run"),
        ("/", "/"),
        ("..", "/"),
    ] {
        let _ = std::fs::remove_file(r.join("src"));
        let _ = std::fs::remove_file(r.join("lnk"));
        symlink("/run", r.join("lnk")).unwrap();
        symlink(link, r.join("src")).unwrap();
        let out = binfmtctl(&run);
        let err = s(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "src -> {link}: {err}");
        assert!(
            err.contains(&format!(
                "/src resolves (through the rootfs's symlinks) to {resolved}"
            )),
            "src -> {link}: {err}"
        );
        unchanged(link);
    }
    // The same as nobody, rootless.
    let _ = std::fs::remove_file(r.join("src"));
    symlink("/run", r.join("src")).unwrap();
    let mut nobody = vec![
        bin().to_str().unwrap().to_owned(),
        "run".into(),
        "--rootless".into(),
    ];
    nobody.extend(run[1..].iter().map(|a| a.to_string()));
    let args: Vec<&str> = nobody.iter().map(String::as_str).collect();
    let res = as_nobody(&args);
    res.expect(
        "refused as nobody",
        res.code == 2
            && res
                .stderr
                .contains("/src resolves (through the rootfs's symlinks) to /run"),
    );
    unchanged("rootless");
    // build --strategy hybrid binds the current directory at /src.
    let out = Command::new(bin())
        .current_dir(&proj)
        .args([
            "build",
            "--arch",
            "arm64",
            "--rootfs",
            &rootfs,
            "--strategy",
            "hybrid",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("resolves (through the rootfs's symlinks) to /run"),
        "{err}"
    );
    unchanged("build --strategy hybrid");
    // The sandbox's own check on the object it resolved holds by itself (the early check
    // skipped, as when the rootfs changes in between): for a rootfs without /run on disk, where
    // the link leads somewhere only once the sandbox has mounted its /run, and for a link into
    // the injection's place.
    std::fs::remove_dir(r.join("run")).ok();
    for (link, why) in [
        (
            "/run",
            "/src resolves (through the rootfs's symlinks) to /run: /run, where the sandbox mounts its own file system",
        ),
        (
            "/run/binfmtctl",
            "/src resolves (through the rootfs's symlinks) to /run/binfmtctl: where --accelerate keeps its files",
        ),
    ] {
        let _ = std::fs::remove_file(r.join("src"));
        symlink(link, r.join("src")).unwrap();
        let out = Command::new(bin())
            .args(run)
            .env("BINFMTCTL_FAILPOINT", "skip:bind-precheck")
            .output()
            .unwrap();
        let err = s(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "src -> {link}: {err}");
        assert!(err.contains(why), "src -> {link}: {err}");
        unchanged(link);
    }
    unchanged("no /run on disk");
}

/// The host's installed version of a Debian package (empty when dpkg knows none).
fn host_version(p: &str) -> String {
    s(&Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", p])
        .output()
        .unwrap()
        .stdout)
}

/// A claimed arm64 rootfs (busybox, `claimed_rootfs`) whose dpkg status also lists `packages`
/// (name, version) and whose /var/lib/dpkg/info holds `lists` (file, its text); with an
/// /etc/resolv.conf (the sandbox would make a missing one as a mount point).
fn rootfs_with_packages(r: &Path, packages: &[(&str, &str)], lists: &[(&str, &str)]) {
    claimed_rootfs(
        r,
        "aarch64-linux-gnu",
        "busybox-arm64",
        "12",
        "12.2.0-14",
        "2.40-2",
    );
    let status = r.join("var/lib/dpkg/status");
    let mut st = std::fs::read_to_string(&status).unwrap();
    for (p, v) in packages {
        st.push_str(&format!(
            "\nPackage: {p}\nStatus: install ok installed\nVersion: {v}\n"
        ));
    }
    std::fs::write(&status, st).unwrap();
    let info = r.join("var/lib/dpkg/info");
    std::fs::create_dir_all(&info).unwrap();
    for (name, text) in lists {
        std::fs::write(info.join(name), text).unwrap();
    }
    std::fs::write(r.join("etc/resolv.conf"), "").unwrap();
}

/// The native build tools' reads (issue 20): the rootfs's dpkg file lists and the programs
/// they name are read inside the rootfs only, and only files the host's own lists name are
/// bound. A rootfs whose `/bin/ls` is an absolute symlink to a host file, whose `cat` leads
/// to its busybox, whose `echo` leads through /proc/self/root, and whose dash.list is a
/// symlink to a host path (missing in the rootfs) gets its `true` (a real program of that
/// name) covered and nothing else; the host file and the rootfs are unchanged, nothing stays mounted.
#[test]
fn a_hostile_rootfs_cannot_lead_the_build_tools_to_host_files() {
    gate!(Root, X86_64Host);
    use std::os::unix::fs::symlink;
    let (coreutils, dash) = (host_version("coreutils"), host_version("dash"));
    if coreutils.is_empty() || dash.is_empty() {
        eprintln!("skipped: the host's dpkg knows no coreutils or dash");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("rootfs");
    rootfs_with_packages(
        &r,
        &[("coreutils", &coreutils), ("dash", &dash)],
        &[(
            "coreutils.list",
            "/bin/ls\n/bin/cat\n/bin/echo\n/bin/true\n/bin/../etc/passwd\n",
        )],
    );
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("ls"), "host file\n").unwrap();
    symlink(
        "/var/lib/dpkg/info/bash.list",
        r.join("var/lib/dpkg/info/dash.list"),
    )
    .unwrap();
    // The busybox rootfs's /bin/ls, /bin/true are links to busybox, /bin/cat stays one.
    let bin = r.join("bin");
    for n in ["ls", "echo", "true"] {
        let _ = std::fs::remove_file(bin.join(n));
    }
    symlink(victim.join("ls"), bin.join("ls")).unwrap();
    symlink("/proc/self/root/bin/echo", bin.join("echo")).unwrap();
    std::fs::copy(bin.join("busybox"), bin.join("true")).unwrap();
    let before = (tree_listing(&r), tree_listing(&victim));
    let out = binfmtctl(&[
        "run",
        "--accelerate",
        "--rootfs",
        r.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "/bin/true && echo ok",
    ]);
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(s(&out.stdout), "ok\n", "{err}");
    assert!(
        err.contains(&format!(
            "native build tools from the host: coreutils {coreutils} (1 programs)"
        )) && err.contains("dash (no file list)"),
        "{err}"
    );
    assert_eq!(std::fs::read(victim.join("ls")).unwrap(), b"host file\n");
    assert_eq!((tree_listing(&r), tree_listing(&victim)), before);
    assert_eq!(
        host_mounts_containing(dir.path().to_str().unwrap()),
        Vec::<String>::new()
    );
}

/// A cover goes only on a file of the rootfs itself (the attacker's review of issue 20): a
/// rootfs whose `/bin/true` leads to `/run/binfmtctl/host/bin/true` (a real program of that
/// name there on disk, so the plan covers it) would, once the sandbox's /run is mounted, have
/// the injection's own bound host program covered by its launcher. The run is refused, naming
/// the file; the rootfs is unchanged and nothing stays mounted.
#[test]
fn a_cover_never_lands_on_the_sandboxs_own_mounts() {
    gate!(Root, X86_64Host);
    use std::os::unix::fs::symlink;
    let coreutils = host_version("coreutils");
    if coreutils.is_empty() {
        eprintln!("skipped: the host's dpkg knows no coreutils");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("rootfs");
    rootfs_with_packages(
        &r,
        &[("coreutils", &coreutils)],
        &[("coreutils.list", "/bin/true\n")],
    );
    let decoy = r.join("run/binfmtctl/host/bin");
    std::fs::create_dir_all(&decoy).unwrap();
    std::fs::copy(r.join("bin/busybox"), decoy.join("true")).unwrap();
    let _ = std::fs::remove_file(r.join("bin/true"));
    symlink("/run/binfmtctl/host/bin/true", r.join("bin/true")).unwrap();
    let before = tree_listing(&r);
    let out = binfmtctl(&[
        "run",
        "--accelerate",
        "--rootfs",
        r.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo ran",
    ]);
    let err = s(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("/bin/true") && err.contains("leads onto a mount of the sandbox"),
        "{err}"
    );
    assert_eq!(s(&out.stdout), "", "{err}");
    assert_eq!(tree_listing(&r), before);
    assert_eq!(
        host_mounts_containing(dir.path().to_str().unwrap()),
        Vec::<String>::new()
    );
}
