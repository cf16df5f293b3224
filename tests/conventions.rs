//! The conventions Linux users expect, end to end in a private binfmt_misc instance with real
//! binaries: `enable`/`disable` keep an entry and switch it (the kernel then really stops and
//! starts running it), and compat arches are decided by running their probe.

#[macro_use]
mod common;

use common::ns;

/// `execv` without the shell fallback of `execvp` (which would retry an ENOEXEC file as a
/// script): prints the errno, or becomes the program.
const EXECV: &str = r#"python3 -c 'import os, sys
try:
    os.execv(sys.argv[1], sys.argv[1:])
except OSError as e:
    print("errno", e.errno)'"#;

#[test]
fn disable_keeps_the_entry_and_the_kernel_stops_running_it() {
    gate!(Root);
    let r = ns(&format!(
        r#"
X() {{ {EXECV} "$@"; }}
$B install arm64,riscv64 -q >/dev/null || exit 1
printf ':binfmtctl-test-pyz:E::pyz::/usr/bin/python3:\n' > $R/register
echo "== before"; X $A/busybox-arm64 uname -m
echo "== disable"; $B disable arm64,binfmtctl-test-pyz; echo "rc=$?"
echo "== state"; head -1 $R/qemu-aarch64 $R/binfmtctl-test-pyz $R/qemu-riscv64
echo "== disabled"; X $A/busybox-arm64 uname -m
echo "== again"; $B disable aarch64 --json; echo "rc=$?"
echo "== dry"; $B enable arm64 --dry-run; head -1 $R/qemu-aarch64
echo "== enable"; $B enable qemu-aarch64; echo "rc=$?"
echo "== after"; X $A/busybox-arm64 uname -m
echo "== missing"; $B disable s390x 2>&1; echo "rc=$?"
echo "== unknown"; $B disable pyz 2>&1; echo "rc=$?"
echo "== entries"; entries
"#
    ));
    r.expect(
        "ran under QEMU before",
        r.section("before").trim() == "aarch64",
    );
    r.expect(
        "disabled both, exit 0",
        r.section("disable")
            .contains("disabled        qemu-aarch64")
            && r.section("disable")
                .contains("disabled        binfmtctl-test-pyz")
            && r.section("disable").contains("rc=0"),
    );
    let state = r.section("state");
    r.expect(
        "entries kept, switched off; the other arch untouched",
        state.matches("disabled").count() == 2 && state.matches("enabled").count() == 1,
    );
    r.expect(
        "the kernel no longer runs it: ENOEXEC",
        r.section("disabled").trim() == "errno 8",
    );
    let again: serde_json::Value =
        serde_json::from_str(r.section("again").trim_end().trim_end_matches("rc=0")).unwrap();
    assert_eq!(again["results"][0]["action"], "kept", "{again}");
    assert_eq!(again["results"][0]["reason"], "already disabled");
    r.expect(
        "dry run writes nothing",
        r.section("dry").contains("would-enable    qemu-aarch64")
            && r.section("dry").contains("disabled"),
    );
    r.expect(
        "enabled again",
        r.section("enable").contains("enabled         qemu-aarch64")
            && r.section("enable").contains("rc=0"),
    );
    r.expect("runs again", r.section("after").trim() == "aarch64");
    r.expect(
        "a missing entry is bad input with the fix",
        r.section("missing")
            .contains("there is no entry qemu-s390x")
            && r.section("missing").contains("binfmtctl install s390x")
            && r.section("missing").contains("rc=2"),
    );
    r.expect(
        "other tools' entries by exact name only",
        r.section("unknown")
            .contains("unknown architecture \"pyz\"")
            && r.section("unknown").contains("rc=2"),
    );
    r.expect(
        "nothing removed",
        r.section("entries").trim() == "binfmtctl-test-pyz qemu-aarch64 qemu-riscv64",
    );
}

/// On this x86_64 host i386 is native because its probe runs with no handler able to take it;
/// `--not-native` overrides that, and then the kernel really runs i386 binaries through QEMU.
#[test]
fn i386_is_native_by_its_probe_and_the_override_wins() {
    gate!(Root, X86_64Host);
    let r = ns(r#"
echo "== status"; $B status --json
echo "== refused"; $B install i386 2>&1; echo "rc=$?"
echo "== native"; $A/busybox-i386 uname -m
echo "== forced"; $B install i386 --not-native i386 -q; echo "rc=$?"
echo "== emulated"; $A/busybox-i386 uname -m
echo "== status2"; $B status --not-native i386
echo "== bad"; $B status --native riscv64 2>&1; echo "rc=$?"
echo "== entries"; entries
"#);
    let v: serde_json::Value = serde_json::from_str(&r.section("status")).unwrap();
    let native = v["native"].as_array().unwrap();
    let i386 = native
        .iter()
        .find(|n| n["arch"] == "i386")
        .expect("i386 native");
    let evidence = i386["evidence"].as_str().unwrap();
    assert!(
        evidence.starts_with("its probe ran natively (uname -m x86_64)"),
        "{evidence}"
    );
    r.expect(
        "a native arch is refused, with the evidence",
        r.section("refused").contains("its probe ran natively")
            && r.section("refused").contains("rc=2"),
    );
    r.expect("runs natively", r.section("native").trim() == "x86_64");
    r.expect(
        "override registers it",
        r.section("forced").trim() == "rc=0",
    );
    r.expect(
        "now the kernel runs it through QEMU",
        r.section("emulated").trim() == "i686",
    );
    r.expect(
        "status without i386 as native",
        r.section("status2").contains("native: x86_64, i486"),
    );
    r.expect(
        "the override names compat arches only",
        r.section("bad").contains("not a compat arch of this host")
            && r.section("bad").contains("rc=2"),
    );
    r.expect("entries", r.section("entries").trim() == "qemu-i386");
}

/// Asserts that `status --json` in `section` of `r` lists i386 and i486 as native, each with
/// evidence starting with `evidence`.
fn compat_natives_by(r: &common::Run, section: &str, evidence: &str) {
    let v: serde_json::Value = serde_json::from_str(&r.section(section))
        .unwrap_or_else(|e| panic!("{section}: {e}: {}", r.stderr));
    let native = v["native"].as_array().unwrap();
    for arch in ["i386", "i486"] {
        let n = native
            .iter()
            .find(|n| n["arch"] == arch)
            .unwrap_or_else(|| panic!("{section}: {arch} native: {native:?}"));
        let got = n["evidence"].as_str().unwrap();
        assert!(got.starts_with(evidence), "{section}: {arch}: {got}");
    }
}

/// The compat probes run in this process only when binfmt_misc is mounted and none of its
/// entries can take them; and only a probe that ran counts from there. An entry that takes
/// every 32-bit ELF, with an interpreter no loader accepts (so a probe it took would fail with
/// ENOEXEC, as if the kernel had no i386 loader), must never make i386 "not native": seen, it
/// sends the probes to the helper's private instance (also when `$TMPDIR` is noexec or missing:
/// the helper then gets memory files); hidden (the instance mounted elsewhere, as in a
/// container), so it does too.
#[test]
fn a_handler_that_would_take_the_probes_never_makes_i386_foreign() {
    gate!(Root, X86_64Host);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, [0u8; 64]).unwrap();
    std::fs::set_permissions(
        &junk,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let r = ns(&format!(
        r#"
printf ':catch32:M::\x7fELF\x01::{junk}:' > $R/register || exit 1
echo "== seen"; $B status --json
mkdir -p {dir}/noexec && mount -t tmpfs -o noexec tmpfs {dir}/noexec || exit 1
echo "== noexec tmp"; TMPDIR={dir}/noexec $B status --json
echo "== left in noexec tmp"; ls -A {dir}/noexec
echo "== no tmp"; TMPDIR={dir}/not-there $B status --json
echo "== entries"; entries
mkdir -p {dir}/elsewhere && mount --bind $R {dir}/elsewhere && umount $R || exit 1
echo "== hidden"; $B status --json
echo "== still there"; ls {dir}/elsewhere
"#,
        junk = junk.display(),
        dir = dir.path().display()
    ));
    // The helper's files: a private directory under $TMPDIR, or memory files where that is
    // on a noexec mount or cannot be made; the probes run either way.
    for section in ["seen", "noexec tmp", "no tmp", "hidden"] {
        compat_natives_by(&r, section, "its probe ran natively (uname -m x86_64)");
    }
    r.expect(
        "nothing is left in a noexec $TMPDIR",
        r.section("left in noexec tmp").trim().is_empty(),
    );
    r.expect(
        "the entry is left as is",
        r.section("entries").trim() == "catch32",
    );
    r.expect(
        "the hidden instance still holds it",
        r.section("still there").contains("catch32"),
    );
}

/// Where memory files may not be executed (`vm.memfd_noexec = 2`, set here in a pid namespace
/// of our own, where the sysctl is kept), the probes go to the helper with files in a private
/// directory and still run; where nothing can run them either (`$TMPDIR` noexec as well), i386
/// is still native, by the kernel's config, and never called foreign.
#[test]
fn probes_run_where_memory_files_may_not_be_executed() {
    gate!(Root, X86_64Host);
    let dir = tempfile::tempdir().unwrap();
    let r = ns(&format!(
        r#"
mkdir -p {dir}/noexec && mount -t tmpfs -o noexec tmpfs {dir}/noexec || exit 1
unshare --pid --fork sh -c '
echo 2 > /proc/sys/vm/memfd_noexec || exit 1
echo "== sysctl"; cat /proc/sys/vm/memfd_noexec
echo "== sealed"; $B status --json
echo "== nothing can run"; TMPDIR={dir}/noexec $B status --json
' || exit 1
echo "== entries"; entries
"#,
        dir = dir.path().display()
    ));
    r.expect("memory files are sealed", r.section("sysctl").trim() == "2");
    compat_natives_by(&r, "sealed", "its probe ran natively (uname -m x86_64)");
    compat_natives_by(
        &r,
        "nothing can run",
        "kernel config CONFIG_IA32_EMULATION=y",
    );
    r.expect("no entry was made", r.section("entries").trim().is_empty());
}

/// microblaze binaries carry EM_MICROBLAZE (189) or the pre-2009 0xbaab; QEMU's loader takes
/// both, so `install microblaze` registers an entry for each, and the kernel hands both kinds
/// to QEMU (which then runs them: zeros are no-ops until the segment ends, so it faults, where
/// a header QEMU refused would give "Invalid ELF image").
#[test]
fn microblaze_old_machine_number_is_emulated_too() {
    gate!(Root);
    use binfmtctl::binfmt::arch::Endian;
    let dir = tempfile::tempdir().unwrap();
    for (name, endian, machine) in [
        ("new-be", Endian::Big, 189u16),
        ("old-be", Endian::Big, 0xbaab),
        ("old-le", Endian::Little, 0xbaab),
    ] {
        let bytes = binfmtctl::elf::write::elf_exec(32, endian, machine, 0, &[0u8; 64]);
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(
            &p,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
    }
    let r = ns(&format!(
        r#"
D={dir}
ulimit -c 0; cd $D
X() {{ {EXECV} "$@"; }}
echo "== native"; X $D/old-be
$B install microblaze,microblazeel -q || exit 1
echo "== entries"; entries
for f in new-be old-be old-le; do echo "== $f"; X $D/$f 2>&1; echo "rc=$?"; done
echo "== inspect"; $B inspect $D/old-le
echo "== uninstall"; $B uninstall microblaze,microblazeel -q; entries
"#,
        dir = dir.path().display()
    ));
    r.expect(
        "no handler: ENOEXEC",
        r.section("native").trim() == "errno 8",
    );
    r.expect(
        "two entries per arch",
        r.section("entries").trim()
            == "qemu-microblaze qemu-microblaze-old qemu-microblazeel qemu-microblazeel-old",
    );
    for f in ["new-be", "old-be", "old-le"] {
        let s = r.section(f);
        r.expect(
            &format!("{f}: QEMU took it and ran it"),
            !s.contains("errno 8") && !s.contains("Invalid ELF image") && !s.contains("rc=0"),
        );
    }
    r.expect(
        "inspect names the old entry",
        r.section("inspect")
            .contains("emulated by qemu-microblazeel-old"),
    );
    r.expect(
        "uninstall removes both",
        r.section("uninstall").trim().is_empty(),
    );
}

/// A failure midway through `disable` on the real kernel rolls back what it switched.
#[test]
fn disable_failure_midway_rolls_back() {
    gate!(Root);
    let r = common::ns_with(
        &[("BINFMTCTL_FAILPOINT", "disable:qemu-riscv64")],
        r#"
$B install arm64,riscv64 -q >/dev/null || exit 1
echo "== disable"; $B disable arm64,riscv64 2>&1; echo "rc=$?"
echo "== state"; head -1 $R/qemu-aarch64 $R/qemu-riscv64
echo "== runs"; $A/busybox-arm64 uname -m
"#,
        true,
    );
    let out = r.section("disable");
    r.expect(
        "exit 1, with the rollback named",
        out.contains("rc=1") && out.contains("rolled back: qemu-aarch64"),
    );
    r.expect(
        "both still enabled",
        r.section("state").matches("enabled").count() == 2
            && !r.section("state").contains("disabled"),
    );
    r.expect("still runs", r.section("runs").trim() == "aarch64");
}

/// Docs-drift issue, items 7 and 8: a closed pipe ends the program quietly with success
/// (`set -o pipefail` scripts keep working), and a mistyped subcommand is never pointed at a
/// hidden helper.
#[test]
fn a_closed_pipe_is_quiet_success_and_hidden_helpers_are_never_suggested() {
    let bin = env!("CARGO_BIN_EXE_binfmtctl");
    for _ in 0..5 {
        let out = std::process::Command::new("bash")
            .args([
                "-c",
                "set -o pipefail; \"$0\" arches | head -1 >/dev/null; echo rc=$?",
            ])
            .arg(bin)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(stdout, "rc=0\n", "{stderr}");
        assert!(!stderr.contains("Broken pipe"), "{stderr}");
    }
    let out = std::process::Command::new(bin)
        .arg("frobnicate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'") && !err.contains("__"),
        "{err}"
    );
    let out = std::process::Command::new(bin)
        .arg("instal")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'install'"), "real suggestions stay: {err}");
}
