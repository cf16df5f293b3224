//! End-to-end tests of `inspect` and `test` (issue 3): real Debian binaries, our probes, the
//! real kernel in a private binfmt_misc instance, and Debian's static QEMU.

#[macro_use]
mod common;

use std::process::Command;

use binfmtctl::binfmt::arch::Table;
use common::{assets, bin, ns};

/// Every probe runs under the real QEMU, called directly (no binfmt_misc involved), prints the
/// expected machine and exits with the first byte of argv[0].
#[test]
fn every_probe_runs_under_real_qemu() {
    gate!(Root);
    let t = Table::builtin();
    let dir = tempfile::tempdir().unwrap();
    for name in binfmtctl::inspection::probe::available() {
        let arch = t.get(name).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, binfmtctl::inspection::probe::build(arch).unwrap()).unwrap();
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, exec).unwrap();
        let qemu = format!("/usr/bin/qemu-{}-static", arch.qemu);
        let out = Command::new(&qemu)
            .args(["-0", binfmtctl::inspection::probe::ARGV0])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{qemu}: {e}"));
        let machine = binfmtctl::inspection::probe::reported_machine(&out.stdout);
        let want = binfmtctl::inspection::selftest::expected_machines(name);
        assert!(
            want.contains(&machine.as_str()),
            "{name}: {machine:?} not in {want:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(i32::from(b'b')),
            "{name}: argv[0] byte"
        );
    }
}

#[test]
fn test_passes_for_every_arch_after_install_all() {
    gate!(Root, X86_64Host);
    let r = ns(r#"
$B install all -q >/dev/null || exit 1
echo "== all"; $B test all --json; echo "rc=$?"
echo "== default"; $B test --json; echo "rc=$?"
"#);
    let all = r.section("all");
    r.expect("exit 0", all.contains("rc=0"));
    let json = all.rsplit_once("rc=").unwrap().0;
    let v: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    let results = v["results"].as_array().unwrap();
    let status = |a: &str| {
        results
            .iter()
            .find(|r| r["arch"] == a)
            .map(|r| r["status"].as_str().unwrap().to_owned())
    };
    for a in [
        "aarch64",
        "arm",
        "riscv64",
        "ppc64le",
        "s390x",
        "mips64el",
        "mipsel",
        "loongarch64",
        "mipsn32",
        "riscv32",
        "m68k",
        "alpha",
        "sh4",
        "ppc",
        "ppc64",
        "armeb",
    ] {
        assert_eq!(status(a).as_deref(), Some("pass"), "{a}: {results:?}");
    }
    // Natives are run directly and must not be taken by any handler.
    for a in ["x86_64", "i386", "i486"] {
        assert_eq!(status(a).as_deref(), Some("pass"), "{a}");
        let r = results.iter().find(|r| r["arch"] == a).unwrap();
        assert_eq!(r["handler"], "native, no handler");
        assert_eq!(r["checks"][0]["detail"], "runs: uname -m x86_64");
    }
    let chroot_ok = results
        .iter()
        .filter(|r| r["status"] == "pass" && r["handler"] != "native, no handler")
        .all(|r| {
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "chroot" && c["ok"] == true)
        });
    assert!(
        chroot_ok,
        "every emulated pass includes the empty-chroot check"
    );
    assert_eq!(v["summary"]["fail"], 0);
    let default = r.section("default");
    let (json, rc) = default.trim_end().rsplit_once("rc=").unwrap();
    let d: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    assert_eq!(rc, "0", "{default}");
    let tested = d["results"].as_array().unwrap();
    assert!(
        tested
            .iter()
            .any(|r| r["arch"] == "aarch64" && r["status"] == "pass"),
        "default tests the registered handlers: {d}"
    );
    assert_eq!(d["summary"]["fail"], 0, "{d}");
}

#[test]
fn test_fails_with_the_right_message() {
    gate!(Root);
    let r = ns(r#"
$B install arm64,s390x,riscv64 -q >/dev/null || exit 1
echo 0 > $R/qemu-s390x
echo "== disabled"; $B test s390x; echo "rc=$?"
$B uninstall riscv64 -q
echo "== removed"; $B test riscv64; echo "rc=$?"
$B install riscv64 --flags P -q
echo "== no-f"; $B test riscv64; echo "rc=$?"
echo "== nothing"; $B uninstall all -q; $B test 2>&1; echo "rc=$?"
"#);
    let d = r.section("disabled");
    r.expect(
        "disabled",
        d.contains("FAIL     s390x")
            && d.contains("qemu-s390x is registered but disabled")
            && d.contains("rc=1"),
    );
    let m = r.section("removed");
    r.expect(
        "removed",
        m.contains("no handler: run `binfmtctl install riscv64`") && m.contains("rc=1"),
    );
    let f = r.section("no-f");
    r.expect(
        "without F: runs directly, fails in the empty chroot with the reason",
        f.contains("runs: uname -m riscv64")
            && f.contains("chroot FAILED: did not run in an empty chroot")
            && f.contains("the handler lacks the F flag")
            && f.contains("rc=1"),
    );
    r.expect(
        "nothing registered is not a pass",
        r.section("nothing").contains("nothing was tested")
            && r.section("nothing").contains("rc=1"),
    );
}

/// `file`'s architecture words for the binaries we test against, mapped to our arch names.
fn arch_from_file(desc: &str) -> Option<&'static str> {
    let bits64 = desc.contains("64-bit");
    let lsb = desc.contains("LSB");
    Some(match () {
        _ if desc.contains("ARM aarch64") => "aarch64",
        _ if desc.contains("ARM,") => "arm",
        _ if desc.contains("UCB RISC-V") => {
            if bits64 {
                "riscv64"
            } else {
                "riscv32"
            }
        }
        _ if desc.contains("PowerPC") => match (bits64, lsb) {
            (true, true) => "ppc64le",
            (true, false) => "ppc64",
            _ => "ppc",
        },
        _ if desc.contains("IBM S/390") => "s390x",
        _ if desc.contains("MIPS") => match (bits64, lsb, desc.contains("N32")) {
            (true, true, _) => "mips64el",
            (true, false, _) => "mips64",
            (false, true, true) => "mipsn32el",
            (false, false, true) => "mipsn32",
            (false, true, false) => "mipsel",
            (false, false, false) => "mips",
        },
        _ if desc.contains("Intel 80386") => "i386",
        _ if desc.contains("x86-64") => "x86_64",
        _ if desc.contains("LoongArch") => "loongarch64",
        _ => return None,
    })
}

#[test]
fn inspect_agrees_with_file_on_real_binaries() {
    gate!(Assets, X86_64Host);
    let a = assets();
    let mut files: Vec<std::path::PathBuf> = [
        "arm64", "armhf", "armel", "mips64el", "mipsel", "ppc64el", "s390x", "i386",
    ]
    .iter()
    .map(|d| a.join(format!("busybox-{d}")))
    .collect();
    files.push(a.join("hello-riscv64"));
    files.push(a.join("hello-arm64-dynamic"));
    files.push("/bin/ls".into());
    // The verdicts depend on the entries: a private instance without any, whatever the host has.
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let r = ns(&format!("$B inspect --json {}", list.join(" ")));
    r.expect("inspect succeeds", r.code == 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for (f, got) in files.iter().zip(v["files"].as_array().unwrap()) {
        let desc = String::from_utf8(
            Command::new("file")
                .arg("-b")
                .arg(f)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let want = arch_from_file(&desc).unwrap_or_else(|| panic!("file said {desc}"));
        assert_eq!(got["arch"], want, "{}: file says {desc}", f.display());
        // Build ids agree with file's too.
        if let Some(id) = desc.split("BuildID[sha1]=").nth(1) {
            assert_eq!(
                got["build_id"],
                id.split(',').next().unwrap().trim(),
                "{}",
                f.display()
            );
        }
    }
    let by = |n: &str| {
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(n))
            .unwrap()
            .clone()
    };
    assert_eq!(
        by("busybox-armhf")["abi"],
        serde_json::json!(["EABI5", "hard-float"])
    );
    assert_eq!(
        by("busybox-armel")["abi"],
        serde_json::json!(["EABI5", "soft-float"])
    );
    assert_eq!(by("busybox-mipsel")["abi"][0], "o32");
    assert_eq!(by("busybox-mips64el")["abi"][0], "n64");
    assert_eq!(by("busybox-ppc64el")["abi"], serde_json::json!(["ELFv2"]));
    assert_eq!(
        by("hello-riscv64")["abi"],
        serde_json::json!(["RVC", "double-float ABI"])
    );
    assert_eq!(by("busybox-i386")["verdict"]["kind"], "native");
    assert_eq!(by("/bin/ls")["static"], false);
    let dynamic = by("hello-arm64-dynamic");
    assert_eq!(dynamic["arch"], "aarch64");
    assert_eq!(dynamic["static"], false);
    assert_eq!(dynamic["interp"], "/lib/ld-linux-aarch64.so.1");
    assert_eq!(dynamic["interp_present"], false);
    assert!(
        dynamic["warnings"][0]
            .as_str()
            .unwrap()
            .contains("QEMU_LD_PREFIX"),
        "{dynamic}"
    );
}

#[test]
fn inspect_predicts_what_the_kernel_does() {
    gate!(Assets, X86_64Host);
    // Two overlapping entries for arm64: the newest enabled one wins, a disabled one is
    // skipped; we check inspect's prediction against which interpreter really runs.
    let r = ns(r#"
S=$(mktemp -d); chmod 755 $S
for n in old new; do printf '#!/bin/sh\necho handled-by-%s\n' $n > $S/$n; chmod 755 $S/$n; done
pat='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
printf ":old-arm64:M::$pat:$S/old:" > $R/register
printf ":new-arm64:M::$pat:$S/new:" > $R/register
echo "== predict1"; $B inspect $A/busybox-arm64 | grep kernel:
echo "== run1"; $A/busybox-arm64
echo 0 > $R/new-arm64
echo "== predict2"; $B inspect $A/busybox-arm64 | grep kernel:
echo "== run2"; $A/busybox-arm64
echo 0 > $R/old-arm64
echo "== predict3"; $B inspect $A/busybox-arm64 | grep kernel:
echo "== predict4"; $B inspect $A/busybox-i386 | grep kernel:
"#);
    r.expect(
        "newest wins: predicted",
        r.section("predict1").contains("emulated by new-arm64"),
    );
    r.expect(
        "newest wins: real",
        r.section("run1").trim() == "handled-by-new",
    );
    r.expect(
        "disabled skipped: predicted",
        r.section("predict2").contains("emulated by old-arm64"),
    );
    r.expect(
        "disabled skipped: real",
        r.section("run2").trim() == "handled-by-old",
    );
    r.expect(
        "none left",
        r.section("predict3")
            .contains("no handler — run: binfmtctl install linux/arm64"),
    );
    r.expect("native", r.section("predict4").contains("kernel: native"));
}

#[test]
fn inspect_reports_bad_files_and_goes_on() {
    gate!(Assets);
    let dir = tempfile::tempdir().unwrap();
    let trunc = dir.path().join("truncated");
    let full = std::fs::read(assets().join("busybox-arm64")).unwrap();
    std::fs::write(&trunc, &full[..40]).unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let out = Command::new(bin())
        .arg("inspect")
        .args([
            &trunc,
            &script,
            &dir.path().join("missing"),
            &assets().join("busybox-arm64"),
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    // Files that cannot be inspected are bad input (docs/exit-codes.md).
    assert_eq!(out.status.code(), Some(2));
    assert!(
        s.contains("truncated: truncated or malformed ELF header"),
        "{s}"
    );
    assert!(
        s.contains("script: not an ELF file (starts with \"#!/bin/sh.echo h\")"),
        "{s}"
    );
    assert!(s.contains("missing: cannot open"), "{s}");
    assert!(
        s.contains("machine 183 = aarch64"),
        "the good file is still reported: {s}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 4 files could not be inspected"));
}

#[test]
fn scan_directory_and_tarball_of_real_binaries() {
    gate!(Assets);
    let a = assets();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    for d in ["arm64", "armhf", "s390x", "mips64el"] {
        std::fs::copy(
            a.join(format!("busybox-{d}")),
            root.join(format!("usr/bin/busybox-{d}")),
        )
        .unwrap();
    }
    std::fs::copy(a.join("hello-riscv64"), root.join("usr/bin/hello")).unwrap();
    std::fs::write(root.join("usr/bin/script"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("/bin/ls", root.join("usr/bin/outside")).unwrap();
    let fifo = root.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let tgz = dir.path().join("root.tar.gz");
    common::tar_gz(&root, &tgz);

    for target in [&root, &tgz] {
        // In a private binfmt_misc instance with no entries, whatever the host has registered.
        let r = ns(&format!("$B scan --json --files {}", target.display()));
        r.expect("scan succeeds", r.code == 0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["elf_files"], 5, "{v}");
        let arches: Vec<&str> = v["arches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["arch"].as_str().unwrap())
            .collect();
        for want in ["aarch64", "arm", "s390x", "mips64el", "riscv64"] {
            assert!(arches.contains(&want), "{target:?}: {arches:?}");
        }
        let aarch64 = v["arches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arch"] == "aarch64")
            .unwrap();
        assert_eq!(aarch64["native"], false);
        assert!(
            aarch64["handler"].is_null(),
            "no handler in an instance without entries"
        );
        assert_eq!(aarch64["examples"][0], "/usr/bin/busybox-arm64");
    }
    // Same arch as file(1) for each.
    let out = Command::new(bin())
        .args(["scan", "--json", "--files"])
        .arg(&root)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for e in v["elf"].as_array().unwrap() {
        let p = root.join(e["path"].as_str().unwrap().trim_start_matches('/'));
        let desc = String::from_utf8(
            Command::new("file")
                .arg("-b")
                .arg(&p)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert_eq!(
            Some(e["arch"].as_str().unwrap()),
            arch_from_file(&desc),
            "{}",
            p.display()
        );
    }
}

#[test]
fn scan_reports_handlers_in_a_namespace() {
    gate!(Root, X86_64Host);
    let r = ns(r#"
$B install arm64 -q
echo "== scan"; $B scan $A
"#);
    let s = r.section("scan");
    r.expect(
        "arm64 handled, others not",
        s.contains("emulated by qemu-aarch64")
            && s.contains("NO HANDLER: binfmtctl install linux/s390x"),
    );
    r.expect(
        "i386 is native here",
        s.lines()
            .any(|l| l.starts_with("i386") && l.contains("native")),
    );
}

#[test]
fn scan_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    for (arg, msg) in [
        (
            junk.clone(),
            "is neither a directory nor a .tar, .tar.gz or .tar.zst archive",
        ),
        (dir.path().join("missing"), "cannot open"),
    ] {
        let out = Command::new(bin()).arg("scan").arg(&arg).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(msg),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `inspect` opens only regular files: a FIFO is not waited on, a device not read.
#[test]
fn inspect_refuses_fifos_and_devices_without_hanging() {
    gate!(Assets);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = Command::new("timeout")
        .arg("20")
        .arg(bin())
        .arg("inspect")
        .arg(&fifo)
        .args(["/dev/zero"])
        .arg(assets().join("busybox-arm64"))
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{s}");
    assert!(s.contains("fifo: a FIFO, not a regular file"), "{s}");
    assert!(
        s.contains("/dev/zero: a character device, not a regular file"),
        "{s}"
    );
    assert!(
        s.contains("machine 183 = aarch64"),
        "the good file is still reported: {s}"
    );
}

/// A corrupt archive is malformed input like a non-archive (exit 2), and each cause is said
/// once; a FIFO or device named as the tarball is refused without reading it.
#[test]
fn scan_corrupt_archive_is_bad_input_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("corrupt.tar.gz");
    let mut bytes = vec![0x1f, 0x8b];
    bytes.extend(std::iter::repeat_n(0x55u8, 3000));
    std::fs::write(&gz, bytes).unwrap();
    let fifo = dir.path().join("fifo.tar");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (arg, msg) in [
        (gz.clone(), "corrupt.tar.gz failed: "),
        (fifo, "fifo.tar is neither a directory nor"),
        ("/dev/zero".into(), "/dev/zero is neither a directory nor"),
    ] {
        let out = Command::new("timeout")
            .arg("20")
            .arg(bin())
            .arg("scan")
            .arg(&arg)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{e}");
        assert!(e.contains(msg), "{e}");
        // "...: invalid gzip header: invalid gzip header" was the cause printed twice.
        let parts: Vec<&str> = e.trim().split(": ").collect();
        assert!(
            parts.windows(2).all(|w| w[0] != w[1]),
            "a cause is repeated: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

/// File names are attacker-chosen: control characters in them (escape sequences, newlines)
/// are printed escaped, so they cannot rewrite the terminal or forge report lines.
#[test]
fn scan_and_inspect_escape_control_characters_in_names() {
    gate!(Assets);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let evil = tree.join("busybox\x1b[2J\nx86_64 native");
    std::fs::copy(assets().join("busybox-arm64"), &evil).unwrap();
    let out = Command::new(bin())
        .arg("scan")
        .arg(&tree)
        .arg("--files")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(!s.contains('\x1b'), "raw escape printed: {s:?}");
    assert!(
        s.contains("aarch64\t/busybox\\u{1b}[2J\\nx86_64 native"),
        "{s}"
    );
    let out = Command::new(bin())
        .arg("inspect")
        .arg(&evil)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(!s.contains('\x1b'), "raw escape printed: {s:?}");
    assert!(
        s.starts_with(&format!(
            "{}/busybox\\u{{1b}}[2J\\nx86_64 native\n",
            tree.display()
        )),
        "{s}"
    );
    // Error messages too (stderr).
    let out = Command::new(bin())
        .arg("scan")
        .arg(tree.join("missing\x1b[2J"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        !e.contains('\x1b') && e.contains("missing\\u{1b}[2J"),
        "{e:?}"
    );
}

/// A closed stdout is a failure (exit 1, a message on stderr), never a silent success.
#[test]
fn closed_stdout_fails() {
    for cmd in ["binfmtctl arches >&-", "binfmtctl status >&-"] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd}; echo \"rc=$?\" >&2"))
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", bin().parent().unwrap().display()),
            )
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.ends_with("rc=1\n"), "{cmd}: {e}");
        assert!(
            e.starts_with("binfmtctl: error: standard output is closed"),
            "{cmd}: {e}"
        );
        assert!(!e.contains("panicked"), "{cmd}: {e}");
    }
    // A daemon with 0, 1 and 2 on /dev/null (read-write, as start-stop-daemon sets them up)
    // is not mistaken for a closed stdout.
    let st = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" arches 0<>/dev/null 1<>/dev/null 2<>/dev/null")
        .arg(bin())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Without the privileges the empty-chroot (F) check needs, `test` says the check did not run
/// and that F is not proved; `--strict` turns that into a failure, exit 1 (issue 21).
#[test]
fn test_without_chroot_privileges_says_f_is_not_proved_and_strict_fails() {
    gate!(Root);
    let r = ns(r#"
$B install arm64 -q || exit 5
nocaps() { setpriv --inh-caps=-all --bounding-set=-all -- "$@"; }
echo "== plain"; nocaps $B test arm64 2>&1; echo "rc=$?"
echo "== strict"; nocaps $B test arm64 --strict 2>&1; echo "rc=$?"
echo "== root"; $B test arm64 --strict 2>&1; echo "rc=$?"
"#);
    let plain = r.section("plain");
    r.expect(
        "the chroot check is reported as not run, and F as not proved; exit 0",
        plain.contains("chroot not run: needs root or a user namespace")
            && plain.contains("1 check(s) not run, so F (the empty chroot) is not proved")
            && plain.trim_end().ends_with("rc=0"),
    );
    let strict = r.section("strict");
    r.expect(
        "--strict fails the arch, exit 1",
        strict.starts_with("FAIL ")
            && strict.contains("chroot FAILED: not run, and --strict needs every check")
            && strict.trim_end().ends_with("rc=1"),
    );
    r.expect(
        "--strict passes where every check runs",
        r.section("root").contains("works in an empty chroot")
            && r.section("root").trim_end().ends_with("rc=0"),
    );
}

/// Progress is drawn on a terminal only: with stderr a pipe, `scan` (of a directory and of a
/// tarball) and `doctor --rootfs` write nothing to it; on a terminal (a pty from script(1)) the
/// steps are drawn, and with `--json` or `-q` they are not.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    use std::io::Write;
    let t = Table::builtin();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    for arch in ["aarch64", "riscv64"] {
        let elf = binfmtctl::inspection::probe::build(t.get(arch).unwrap()).unwrap();
        std::fs::write(root.join("usr/bin").join(arch), elf).unwrap();
    }
    let tarball = dir.path().join("root.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
        b.append_dir_all(".", &root).unwrap();
        b.finish().unwrap();
    }
    let (root, tarball) = (root.to_str().unwrap(), tarball.to_str().unwrap());
    let commands: [&[&str]; 3] = [
        &["scan", root],
        &["scan", tarball],
        &["doctor", "--rootfs", root],
    ];
    for args in commands {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(
            o.status.code().is_some_and(|c| c <= 1) && o.stderr.is_empty(),
            "{args:?}: stderr is not a terminal, so nothing is drawn: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if !std::path::Path::new("/usr/bin/script").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the terminal half of progress_is_drawn_on_a_terminal_only: no script(1) (util-linux)"
        );
        return;
    }
    // script(1) runs the command on a pty and copies what it writes there to its stdout; the pty
    // is made wide, so the step names (the last thing on a bar's line) are not cut short.
    let on_pty = |args: &[&str]| {
        let line = std::iter::once(bin().display().to_string())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        // A terminal that draws: whoever runs the suite (CI, a cron job, TERM=dumb) may have
        // none, and on a dumb one no bar is drawn, as it should not be.
        let o = Command::new("script")
            .env("TERM", "xterm")
            .args([
                "-qec",
                &format!("stty rows 50 cols 500; {line} >/dev/null"),
                "/dev/null",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let drawn = on_pty(&["scan", root]);
    assert!(
        drawn.contains("walking") && drawn.contains("reading headers"),
        "{drawn:?}"
    );
    let drawn = on_pty(&["scan", tarball]);
    assert!(drawn.contains(&format!("reading {tarball}")), "{drawn:?}");
    let drawn = on_pty(&["doctor", "--rootfs", root]);
    assert!(drawn.contains("reading ELF files"), "{drawn:?}");
    for quiet in [
        &["--json", "scan", root][..],
        &["-q", "scan", root],
        &["--json", "doctor", "--rootfs", root],
    ] {
        let drawn = on_pty(quiet);
        assert!(
            !drawn.contains("walking") && !drawn.contains("reading"),
            "{quiet:?}: {drawn:?}"
        );
    }
}
