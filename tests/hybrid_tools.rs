//! Hybrid builds with the host's native build tools (issue 20): under `run --accelerate` the
//! rootfs's dash, make, coreutils, sed, grep, awk, diffutils and findutils are covered by the
//! host's programs of the same Debian package version, while `uname`, dpkg and every program
//! the build makes stay emulated. On the real kernel (a private binfmt_misc instance), with
//! real QEMU and the cached Debian bookworm arm64 rootfs; the host's binfmt_misc is untouched.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bin, debian_arm64_rootfs, host_mounts_containing};

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The rootfs's digest (`common::rootfs_manifest`), with the bytes of the files where the
/// launchers are bound over its names.
fn manifest(root: &Path) -> String {
    common::rootfs_manifest(root, &["usr/bin/"])
}

/// GNU hello 2.10's source (Debian's orig tarball, downloaded once into the test cache),
/// unpacked into a fresh directory; returns it and the source tree in it.
fn hello_source() -> (tempfile::TempDir, PathBuf) {
    let tgz = Path::new("/var/cache/binfmtctl-tests/hello_2.10.orig.tar.gz");
    if !tgz.is_file() {
        std::fs::create_dir_all(tgz.parent().unwrap()).unwrap();
        let part = tgz.with_extension("part");
        let ok = Command::new("curl")
            .args(["-sSf", "-o"])
            .arg(&part)
            .arg("http://deb.debian.org/debian/pool/main/h/hello/hello_2.10.orig.tar.gz")
            .status()
            .unwrap()
            .success();
        assert!(ok, "downloading GNU hello 2.10");
        std::fs::rename(&part, tgz).unwrap();
    }
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(std::fs::read(tgz).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest,
        "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b",
        "{}",
        tgz.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(tgz)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let src = dir.path().join("hello-2.10");
    (dir, src)
}

/// `binfmtctl run [--accelerate] --rootfs ROOTFS --bind SRC:/src --workdir /src -- sh -c SCRIPT`.
fn run_in(rootfs: &Path, src: &Path, accelerate: bool, script: &str) -> Output {
    let mut c = Command::new(bin());
    c.arg("run");
    if accelerate {
        c.arg("--accelerate");
    }
    c.arg("--rootfs")
        .arg(rootfs)
        .arg("--bind")
        .arg(format!("{}:/src", src.display()))
        .args(["--workdir", "/src", "--", "sh", "-c", script]);
    c.output().unwrap()
}

/// The value of `key=` on its own line of `out`.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// GNU hello 2.10's `./configure && make && make check` under `run --accelerate`: the build
/// tools ran natively (the shell's /proc/self/exe is the host's loader under /run/binfmtctl,
/// make and sed are x86_64 covers), the machine is still aarch64 for config.guess, uname and
/// configure, the program is aarch64 and runs (emulated: the kernel hands it to QEMU), its test
/// suite passes, and the rootfs on disk is unchanged.
#[test]
fn gnu_hello_configures_builds_and_passes_its_tests_with_native_tools() {
    gate!(Root, X86_64Host);
    let rootfs = debian_arm64_rootfs();
    let before = manifest(&rootfs);
    let (_keep, src) = hello_source();
    let script = r#"
./configure > configure.out 2>&1 && make > make.out 2>&1 && make check > check.out 2>&1
echo "status=$?"
echo "uname=$(uname -m)"
echo "guess=$(./build-aux/config.guess)"
echo "shexe=$(readlink /proc/$$/exe)"
echo "makeexe=$(make -s -f /dev/null -E 'all:;@readlink /proc/$$PPID/exe')"
m() { od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'; }
echo "machines=$(m /usr/bin/make) $(m /usr/bin/sed) $(m /usr/bin/grep) $(m /usr/bin/uname) $(m ./hello)"
echo "hello=$(./hello)"
"#;
    let out = run_in(&rootfs, &src, true, script);
    let (stdout, err) = (s(&out.stdout), s(&out.stderr));
    let log = |f: &str| std::fs::read_to_string(src.join(f)).unwrap_or_default();
    assert!(out.status.success(), "{stdout}\n{err}");
    assert_eq!(
        field(&stdout, "status"),
        Some("0"),
        "{stdout}\n{}\n{}\n{}",
        log("configure.out"),
        log("make.out"),
        log("check.out")
    );
    // The note names the native tools, and what stays emulated.
    let note = err
        .lines()
        .find(|l| l.contains("accelerate: native build tools from the host: "))
        .unwrap_or_else(|| panic!("{err}"));
    for pkg in ["dash ", "make ", "coreutils ", "grep "] {
        assert!(note.contains(pkg), "{note}");
    }
    assert!(
        note.contains("; emulated: uname, arch, dpkg, dpkg-architecture"),
        "{note}"
    );
    // The tools ran natively: the shell's executable is the host's loader, injected.
    assert_eq!(
        field(&stdout, "shexe"),
        Some("/run/binfmtctl/lib0/ld-linux-x86-64.so.2"),
        "{stdout}"
    );
    assert_eq!(
        field(&stdout, "makeexe"),
        Some("/run/binfmtctl/lib0/ld-linux-x86-64.so.2"),
        "{stdout}"
    );
    // make (and sed, grep where the host has the rootfs's versions) are x86_64 launchers;
    // uname and the program built are aarch64.
    let machines = field(&stdout, "machines").unwrap_or_default();
    let m: Vec<&str> = machines.split(' ').collect();
    assert_eq!(m[0], "3e00", "make: {stdout}");
    if note.contains(" sed ") {
        assert_eq!(m[1], "3e00", "sed: {stdout}");
    }
    if note.contains(" grep ") {
        assert_eq!(m[2], "3e00", "grep: {stdout}");
    }
    assert_eq!(&m[3..], ["b700", "b700"], "uname, hello: {stdout}");
    // The machine is aarch64 for everyone who asks.
    assert_eq!(field(&stdout, "uname"), Some("aarch64"));
    assert_eq!(field(&stdout, "guess"), Some("aarch64-unknown-linux-gnu"));
    let config_log = log("config.log");
    assert!(
        config_log.contains("checking build system type... aarch64-unknown-linux-gnu")
            || log("configure.out")
                .contains("checking build system type... aarch64-unknown-linux-gnu"),
        "{}",
        log("configure.out")
    );
    // Not cross compiling: configure ran its test programs (aarch64, emulated).
    assert!(
        log("configure.out").contains("checking whether we are cross compiling... no"),
        "{}",
        log("configure.out")
    );
    // The program is aarch64, runs, and its test suite passed.
    assert_eq!(field(&stdout, "hello"), Some("Hello, world!"), "{stdout}");
    let prog = std::fs::read(src.join("hello")).unwrap();
    assert_eq!(&prog[18..20], &[183, 0], "e_machine aarch64");
    let suite = log("test-suite.log");
    assert!(suite.contains("# FAIL:  0"), "{suite}");
    let passed: u32 = suite
        .lines()
        .find_map(|l| l.strip_prefix("# PASS:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed >= 4, "{suite}");
    // Nothing stays: no mount on the host, the rootfs on disk is as it was.
    assert_eq!(
        host_mounts_containing(rootfs.to_str().unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(manifest(&rootfs), before, "the rootfs on disk is unchanged");
}

/// A small configure-style project (a shell script that asks uname, counts with grep and awk,
/// fills a header with sed, sorts, and writes a Makefile; then make builds the program) gives
/// the same header, the same output and a byte-identical program with the native tools as
/// fully emulated, but for `.comment` (it names the compiler's exact Debian version) and the
/// GNU build ID (ld's hash of the whole output, `.comment` included). GNU hello's own comparison (an emulated build takes a
/// minute and a half) is in bench/hybrid.sh.
#[test]
fn a_configure_style_build_is_the_same_with_native_tools_as_emulated() {
    gate!(Root, X86_64Host);
    let rootfs = debian_arm64_rootfs();
    let configure = r#"#!/bin/sh
set -e
host=$(uname -m)
n=$(printf '%s\n' alpha beta gamma delta | grep -c a)
w=$(echo "one two three four five" | awk '{ print NF }')
first=$(printf '%s\n' pear apple fig | sort | head -n 1)
len=$(expr length "$first")
sed -e "s/@HOST@/$host/" -e "s/@N@/$n/" -e "s/@W@/$w/" -e "s/@FIRST@/$first/" -e "s/@LEN@/$len/" config.h.in > config.h
echo "project" | tr a-z A-Z | sed 's/^/#define NAME "/; s/$/"/' >> config.h
cmp -s config.h config.h || exit 1
find . -name '*.c' | wc -l | sed 's/^/#define SOURCES /' >> config.h
printf 'prog: prog.o\n\t$(CC) -o prog prog.o\nprog.o: prog.c config.h\n\t$(CC) -O2 -g -c prog.c\n' > Makefile
"#;
    let header = "#define HOST \"@HOST@\"\n#define N @N@\n#define W @W@\n#define FIRST \"@FIRST@\"\n#define LEN @LEN@\n";
    let prog = "#include <stdio.h>\n#include \"config.h\"\nint main(void){printf(\"%s %s %d %d %s %d %d\\n\",NAME,HOST,N,W,FIRST,LEN,SOURCES);return 0;}\n";
    let build = |accelerate: bool| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("configure"), configure).unwrap();
        std::fs::write(dir.path().join("config.h.in"), header).unwrap();
        std::fs::write(dir.path().join("prog.c"), prog).unwrap();
        let out = run_in(
            &rootfs,
            dir.path(),
            accelerate,
            "sh ./configure && make CC=gcc && ./prog && readlink /proc/$$/exe",
        );
        assert!(
            out.status.success(),
            "{}\n{}",
            s(&out.stdout),
            s(&out.stderr)
        );
        let stripped = dir.path().join("prog.nocomment");
        let ok = Command::new("aarch64-linux-gnu-objcopy")
            .args(["--remove-section", ".comment"])
            .args(["--remove-section", ".note.gnu.build-id"])
            .arg(dir.path().join("prog"))
            .arg(&stripped)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        (
            s(&out.stdout),
            std::fs::read_to_string(dir.path().join("config.h")).unwrap(),
            std::fs::read(stripped).unwrap(),
        )
    };
    let (native_out, native_h, native_prog) = build(true);
    let (emulated_out, emulated_h, emulated_prog) = build(false);
    let lines = |o: &str| o.lines().map(str::to_owned).collect::<Vec<_>>();
    let (n, e) = (lines(&native_out), lines(&emulated_out));
    // The build's last line: the shell's executable, the host's loader only with --accelerate.
    assert_eq!(
        n.last().map(String::as_str),
        Some("/run/binfmtctl/lib0/ld-linux-x86-64.so.2"),
        "{native_out}"
    );
    assert!(
        e.last().is_some_and(|l| !l.starts_with("/run/binfmtctl")),
        "{emulated_out}"
    );
    let printed = |v: &[String]| {
        v.iter()
            .find(|l| l.starts_with("PROJECT "))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(printed(&n), "PROJECT aarch64 4 5 apple 5 1", "{native_out}");
    assert_eq!(printed(&n), printed(&e), "{emulated_out}");
    assert_eq!(native_h, emulated_h);
    assert!(native_prog.len() > 1000);
    assert!(
        native_prog == emulated_prog,
        "the programs differ beyond .comment and the build ID"
    );
}
