//! End-to-end: the real binfmtctl binary against the real kernel's binfmt_misc (a private
//! instance per test), Debian's static QEMU, and real foreign binaries.

#[macro_use]
mod common;

use common::{as_nobody, ns, ns_with};
use serde_json::Value;

/// The JSON document of a `== marker` section whose last line is `rc=N`; returns it and N.
#[track_caller]
fn json_and_rc(r: &common::Run, marker: &str) -> (Value, i32) {
    let s = r.section(marker);
    let (doc, rc) = s
        .trim_end()
        .rsplit_once("rc=")
        .unwrap_or_else(|| panic!("section {marker} has no rc=: {s}"));
    let v = serde_json::from_str(doc).unwrap_or_else(|e| {
        panic!(
            "section {marker}: not JSON ({e}): {doc}\n--- stderr\n{}",
            r.stderr
        )
    });
    (v, rc.trim().parse().unwrap())
}

/// `(action, name)` of every row of a `--json` report.
fn rows(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("not a report: {report}"))
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn row(action: &str, name: &str) -> (String, String) {
    (action.to_owned(), name.to_owned())
}

#[test]
fn install_arm64_riscv64_runs_real_foreign_binaries() {
    gate!(Root);
    let r = ns(r#"
echo "== install"; $B install arm64,riscv64; echo "rc=$?"
echo "== arm64"; $A/busybox-arm64 uname -m
echo "== riscv64"; $A/hello-riscv64; echo "rc=$?"; $A/hello-riscv64 x; echo "rc=$?"
echo "== argv0"; bash -c "exec -a custom-argv0 $A/hello-riscv64"
echo "== entries"; entries
echo "== entry"; cat $R/qemu-aarch64
"#);
    let install = r.section("install");
    r.expect("install succeeds", install.contains("rc=0"));
    r.expect(
        "both registered with the static interpreter and flags PF",
        install
            .contains("registered      qemu-aarch64       /usr/bin/qemu-aarch64-static flags=PF")
            && install.contains(
                "registered      qemu-riscv64       /usr/bin/qemu-riscv64-static flags=PF",
            ),
    );
    r.expect("QEMU version reported", install.contains("(QEMU 7."));
    r.expect(
        "arm64 busybox reports aarch64",
        r.section("arm64").trim() == "aarch64",
    );
    let rv = r.section("riscv64");
    r.expect("riscv64 binary runs", rv.contains("hello from riscv64"));
    r.expect(
        "exit codes pass through",
        rv.contains("rc=0") && rv.contains("rc=7"),
    );
    r.expect(
        "P flag: argv[0] arrives intact",
        r.section("argv0").contains("argv0=custom-argv0"),
    );
    r.expect(
        "only our two entries",
        r.section("entries").trim() == "qemu-aarch64 qemu-riscv64",
    );
    let entry = r.section("entry");
    r.expect(
        "kernel shows our record",
        entry.contains("enabled")
            && entry.contains("flags: PF")
            && entry.contains("magic 7f454c460201010000000000000000000200b700"),
    );
}

#[test]
fn second_install_is_a_noop() {
    gate!(Root);
    let r = ns(r#"
$B install arm64,riscv64 >/dev/null || exit 1
echo "== before"; ls -i $R | sort
echo "== again"; $B install linux/arm64,riscv64gc-unknown-linux-gnu --json; echo "rc=$?"
echo "== after"; ls -i $R | sort
"#);
    let (again, rc) = json_and_rc(&r, "again");
    assert_eq!(rc, 0, "{again}");
    assert_eq!(
        rows(&again),
        [row("kept", "qemu-aarch64"), row("kept", "qemu-riscv64")],
        "second run keeps both"
    );
    assert_eq!(again["summary"], serde_json::json!({"kept": 2}));
    r.expect(
        "entries untouched (same inodes)",
        r.section("before") == r.section("after"),
    );
}

#[test]
fn install_all_covers_every_debian_arch_and_leaves_natives_alone() {
    gate!(Root, X86_64Host);
    let r = ns(r#"
echo "== install"; $B install all --json; echo "rc=$?"
for a in arm64 armhf armel mips64el mipsel ppc64el s390x i386; do
  echo "== $a"; $A/busybox-$a uname -m
done
echo "== native"; /bin/uname -m; $A/busybox-i386 true && echo i386-ok
echo "== entries"; entries
printf ':binfmtctl-test-pyz:E::pyz::/usr/bin/python3:\n' > $R/register
echo "== uninstall"; $B uninstall all; echo "rc=$?"
echo "== left"; entries
"#);
    let (install, rc) = json_and_rc(&r, "install");
    assert_eq!(rc, 0, "install all succeeds: {install}");
    let install = rows(&install);
    for n in ["qemu-x86_64", "qemu-i386", "qemu-i486"] {
        assert!(
            install.contains(&row("skipped-native", n)),
            "{n} is skipped as native: {install:?}"
        );
    }
    let want = [
        ("arm64", "aarch64"),
        ("armhf", "armv7l"),
        ("armel", "armv7l"),
        ("mips64el", "mips64"),
        ("mipsel", "mips"),
        ("ppc64el", "ppc64le"),
        ("s390x", "s390x"),
        // Native: the kernel's own answer, not QEMU's i686.
        ("i386", "x86_64"),
    ];
    for (deb, machine) in want {
        r.expect(
            &format!("{deb} busybox runs"),
            r.section(deb).trim() == machine,
        );
    }
    r.expect(
        "host binaries run natively",
        r.section("native").contains("x86_64\ni386-ok"),
    );
    let entries = r.section("entries");
    r.expect(
        "at least 30 emulators",
        entries.split_whitespace().count() >= 30,
    );
    r.expect(
        "no native arch registered",
        !entries.contains("qemu-x86_64 ")
            && !entries.contains("qemu-i386 ")
            && !entries.contains("qemu-i486 "),
    );
    r.expect(
        "uninstall all succeeds",
        r.section("uninstall").contains("rc=0"),
    );
    r.expect(
        "uninstall all removes qemu-* only",
        r.section("left").trim() == "binfmtctl-test-pyz",
    );
}

#[test]
fn conflicting_entry_is_replaced_unless_keep_existing() {
    gate!(Root);
    let r = ns(r#"
old=':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:OF'
printf '%s' "$old" > $R/register
echo "== keep"; $B install arm64 --keep-existing; echo "rc=$?"; grep flags $R/qemu-aarch64
echo "== status"; $B status
echo "== replace"; $B install arm64 --json; echo "rc=$?"
echo "== flags"; grep flags $R/qemu-aarch64
echo "== json"; $B install arm64 --json
"#);
    let keep = r.section("keep");
    r.expect(
        "--keep-existing keeps theirs",
        keep.contains("kept-existing") && keep.contains("flags: OF"),
    );
    r.expect(
        "status flags the difference",
        r.section("status").contains("DIFFERS"),
    );
    let (rep, rc) = json_and_rc(&r, "replace");
    assert_eq!(rc, 0, "{rep}");
    assert_eq!(rows(&rep), [row("replaced", "qemu-aarch64")]);
    let was = &rep["results"][0]["previous"];
    assert_eq!(
        (was["interpreter"].as_str(), was["flags"].as_str()),
        (Some("/usr/bin/qemu-aarch64-static"), Some("OF")),
        "replaced, saying what it was: {rep}"
    );
    r.expect("now ours", r.section("flags").trim() == "flags: PF");
    let v: serde_json::Value = serde_json::from_str(&r.section("json")).expect("valid JSON");
    assert_eq!(v["results"][0]["action"], "kept");
    assert_eq!(v["summary"]["kept"], 1);
}

#[test]
fn overlapping_entry_is_reported_with_the_winner() {
    gate!(Root);
    let r = ns(r#"
other=':fex-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F'
printf '%s' "$other" > $R/register
echo "== install"; $B install arm64; echo "rc=$?"
echo "== entries"; entries
echo "== ours-runs"; $A/busybox-arm64 uname -m
S=$(mktemp -d); chmod 755 $S; printf '#!/bin/sh\necho handled-by-late\n' > $S/late; chmod 755 $S/late
late=$(printf '%s' "$other" | sed "s|:fex-aarch64:|:late-aarch64:|; s|/usr/bin/qemu-aarch64-static:F|$S/late:|")
printf '%s' "$late" > $R/register
echo "== late"; $B install arm64; echo "rc=$?"
echo "== late-runs"; $A/busybox-arm64 uname -m
echo 0 > $R/late-aarch64
echo "== disabled"; $B install arm64 | grep late-aarch64
echo "== disabled-runs"; $A/busybox-arm64 uname -m
"#);
    r.expect(
        "prediction: ours, and the kernel runs ours",
        r.section("ours-runs").trim() == "aarch64",
    );
    r.expect(
        "a newer overlapping entry is predicted to win",
        r.section("late")
            .contains("qemu-aarch64 overlaps late-aarch64")
            && r.section("late")
                .contains("the kernel will run late-aarch64"),
    );
    r.expect(
        "and the kernel does run it",
        r.section("late-runs").trim() == "handled-by-late",
    );
    r.expect(
        "disabled, it no longer wins",
        r.section("disabled")
            .contains("disabled): the kernel will run qemu-aarch64"),
    );
    r.expect(
        "and the kernel agrees",
        r.section("disabled-runs").trim() == "aarch64",
    );
    let out = r.section("install");
    r.expect(
        "overlap reported; we registered last so we win",
        out.contains("note: qemu-aarch64 overlaps fex-aarch64 (/usr/bin/qemu-aarch64-static, enabled): the kernel will run qemu-aarch64"),
    );
    r.expect(
        "the other entry is left alone",
        r.section("entries").trim() == "fex-aarch64 qemu-aarch64",
    );
}

#[test]
fn failure_midway_rolls_back_on_the_real_kernel() {
    gate!(Root);
    // qemu-arm exists with other flags (so it gets replaced), then registering qemu-riscv64
    // fails: the new qemu-aarch64 must go, and the old qemu-arm must come back as it was.
    let r = ns_with(
        &[("BINFMTCTL_FAILPOINT", "register:qemu-riscv64")],
        r#"
old=':qemu-arm:M::\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-arm-static:F'
printf '%s' "$old" > $R/register
echo 0 > $R/qemu-arm
echo "== before"; for e in $(entries); do echo "[$e]"; cat $R/$e; done
echo "== install"; $B install arm64,armhf,riscv64 2>&1; echo "rc=$?"
echo "== after"; for e in $(entries); do echo "[$e]"; cat $R/$e; done
"#,
        true,
    );
    let install = r.section("install");
    r.expect("exit 1", install.contains("rc=1"));
    r.expect(
        "error names the entry and rollback",
        install.contains("registering qemu-riscv64 failed")
            && install.contains("rolled back: qemu-arm, qemu-aarch64"),
    );
    r.expect(
        "kernel state is exactly as before",
        r.section("before") == r.section("after"),
    );
    r.expect(
        "old qemu-arm restored disabled",
        r.section("after")
            .contains("disabled\ninterpreter /usr/bin/qemu-arm-static\nflags: F"),
    );
}

#[test]
fn bad_input_is_refused_with_nothing_registered() {
    gate!(Root, X86_64Host);
    let r = ns(r#"
T=$(mktemp -d); chmod 755 $T
cp /usr/bin/qemu-aarch64-static $T/; chmod 777 $T/qemu-aarch64-static
cp /bin/true $T/qemu-s390x-static
cp $A/busybox-arm64 $T/qemu-riscv64-static
run() { echo "== $1"; shift; "$@" 2>&1; echo "rc=$?"; entries; }
run unknown $B install arm64,arm46
run flags $B install arm64 --flags FZ
run native $B install x86_64
run native386 $B install linux/386
run missing $B install xtensa --qemu-path $T
run writable $B install arm64 --qemu-path $T
run dynamic $B install s390x --qemu-path $T
run wrongarch $B install riscv64 --qemu-path $T
run uninstall-unknown $B uninstall nonsense
rm -rf $T
"#);
    let cases: &[(&str, &str)] = &[
        ("unknown", "unknown architecture \"arm46\"; did you mean"),
        (
            "flags",
            "invalid flags \"FZ\": 'Z' at position 1 is not a flag",
        ),
        ("native", "x86_64: runs natively on this host"),
        ("native386", "i386: runs natively on this host"),
        ("missing", "no interpreter found (looked for"),
        ("writable", "is writable by group or others (mode 777)"),
        ("dynamic", "is dynamically linked"),
        ("wrongarch", "is built for another CPU (ELF machine 183"),
        ("uninstall-unknown", "unknown architecture \"nonsense\""),
    ];
    for (name, msg) in cases {
        let s = r.section(name);
        r.expect(&format!("{name}: message"), s.contains(msg));
        r.expect(&format!("{name}: exit 2"), s.contains("rc=2"));
        r.expect(
            &format!("{name}: nothing registered"),
            s.lines().last() == Some(""),
        );
    }
}

#[test]
fn unmounted_binfmt_misc_is_mounted_and_unmountable_is_exit_3() {
    gate!(Root);
    let r = ns(r#"
M=$(mktemp -d)
echo "== dry"; $B install arm64 --binfmt-misc $M --dry-run --json; echo "rc=$?"
echo "== dry-mount"; mountpoint -q $M && echo mounted || echo not-mounted
echo "== mount"; $B install arm64 --binfmt-misc $M; echo "rc=$?"; ls $M | tr '\n' ' '; echo
echo "== nodir"; $B install arm64 --binfmt-misc /nonexistent/binfmt 2>&1; echo "rc=$?"
"#);
    let (dry, rc) = json_and_rc(&r, "dry");
    assert_eq!(rc, 0, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(rows(&dry), [row("would-register", "qemu-aarch64")]);
    assert!(
        dry["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().ends_with(": would mount it")),
        "{dry}"
    );
    r.expect(
        "dry run plans without mounting",
        r.section("dry-mount").trim() == "not-mounted",
    );
    let m = r.section("mount");
    r.expect(
        "mounts and says so",
        m.contains("note: mounted binfmt_misc at") && m.contains("rc=0"),
    );
    r.expect(
        "registered there",
        m.contains("qemu-aarch64 register status"),
    );
    let nodir = r.section("nodir");
    r.expect(
        "missing mount point: exit 3 with cause",
        nodir.contains("rc=3") && nodir.contains("mount point does not exist"),
    );

    // Not root and no namespace: cannot mount anything.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let r = as_nobody(&[
        common::bin().to_str().unwrap(),
        "install",
        "arm64",
        "--binfmt-misc",
        d,
    ]);
    r.expect("exit 3", r.code == 3);
    r.expect(
        "says why and what to do",
        r.stderr.contains("needs CAP_SYS_ADMIN; run as root"),
    );
}

#[test]
fn rootless_install_as_nobody_in_a_user_namespace() {
    gate!(Root);
    // An unprivileged user gets a private instance: host root's files show up as the
    // overflow uid there, like every other owner the namespace does not map, so nothing in it
    // can prove they are root's. binfmtctl refuses them and says why; with
    // --trust-unmapped-owner the caller vouches for them, and then it works without root.
    let r = as_nobody(&[
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 99
echo '== refused'; $B install arm64 2>&1; echo \"rc=$?\"; ls /proc/sys/fs/binfmt_misc | tr '\\n' ' '; echo
echo '== vouched'; $B install --trust-unmapped-owner arm64 && $A/busybox-arm64 uname -m",
    ]);
    let refused = r.section("refused");
    r.expect(
        "unmapped owner refused with the reason and the ways out, nothing registered",
        refused.contains("has owners not mapped into this user namespace")
            && refused.contains("/usr/bin/qemu-aarch64-static")
            && refused.contains("they show as uid 65534")
            && refused.contains("--trust-unmapped-owner")
            && refused.contains("rc=2\nregister status \n"),
    );
    r.expect(
        "works without root once vouched for",
        r.code == 0 && r.section("vouched").trim_end().ends_with("aarch64"),
    );
}

#[test]
fn status_json_schema() {
    gate!(Root);
    let r = ns(r#"
$B install arm64,armhf >/dev/null || exit 1
echo 0 > $R/qemu-arm
printf ':binfmtctl-test-pyz:E::pyz::/usr/bin/python3:\n' > $R/register
echo "== json"; $B status --json
echo "== human"; $B status
"#);
    let v: serde_json::Value = serde_json::from_str(&r.section("json")).expect("valid JSON");
    let supported: Vec<&str> = v["supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(supported[0], "linux/amd64", "native first: {supported:?}");
    assert!(supported.contains(&"linux/386"));
    assert!(supported.contains(&"linux/arm64"));
    assert!(
        !supported.contains(&"linux/arm/v7"),
        "disabled entry does not count"
    );
    let emulators: Vec<&str> = v["emulators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(emulators, ["binfmtctl-test-pyz", "qemu-aarch64"]);
    let entries = v["entries"].as_array().unwrap();
    let aarch64 = entries
        .iter()
        .find(|e| e["name"] == "qemu-aarch64")
        .unwrap();
    assert_eq!(aarch64["arch"], "aarch64");
    assert_eq!(aarch64["platform"], "linux/arm64");
    assert_eq!(aarch64["flags"], "PF");
    assert_eq!(aarch64["matches_table"], true);
    let pyz = entries
        .iter()
        .find(|e| e["name"] == "binfmtctl-test-pyz")
        .unwrap();
    assert_eq!(pyz["arch"], "unknown");
    assert_eq!(pyz["type"], "extension");
    assert!(pyz["matches_table"].is_null());
    assert_eq!(aarch64["captures_native"], false);
    let human = r.section("human");
    // The human table: one row per entry, its columns separated by blanks.
    let arm: Vec<&str> = human
        .lines()
        .find(|l| l.starts_with("qemu-arm "))
        .unwrap_or_else(|| panic!("no qemu-arm row:\n{human}"))
        .split_whitespace()
        .take(3)
        .collect();
    assert_eq!(
        arm,
        ["qemu-arm", "no", "arm"],
        "name, enabled, arch:\n{human}"
    );
    r.expect("no false alarm", !human.contains("WARNING"));
}

#[test]
fn status_warns_about_an_entry_that_captures_native_binaries() {
    gate!(Assets, X86_64Host);
    // Registered disabled (so the namespace keeps working): x86_64's pattern on an x86_64 host.
    let r = ns(r#"
printf ':qemu-x86_64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-x86_64-static:' > $R/register
echo 0 > $R/qemu-x86_64
echo "== human"; $B status
echo "== json"; $B status --json
"#);
    let human = r.section("human");
    r.expect(
        "warning names the entry and the fix",
        human.contains("WARNING: entry qemu-x86_64 (disabled) matches this host's own executables")
            && human.contains("binfmtctl uninstall qemu-x86_64"),
    );
    let v: serde_json::Value = serde_json::from_str(&r.section("json")).expect("valid JSON");
    assert_eq!(v["entries"][0]["captures_native"], true);
}

#[test]
fn concurrent_runs_wait_for_the_instance_lock() {
    gate!(Root);
    // A holder takes the same lock binfmtctl uses (flock on the instance's status file) and
    // writes a line when it releases; binfmtctl's output must come after that line.
    let r = ns(r#"
L=$(mktemp)
flock $R/status sh -c "echo locked > $L.ready; sleep 1; echo holder-released >> $L" &
while [ ! -e $L.ready ]; do sleep 0.05; done
$B install arm64 --json >> $L 2>&1
wait
echo "== log"; cat $L
"#);
    let log = r.section("log");
    let released = log.find("holder-released");
    let registered = log.find(r#""action": "registered""#);
    r.expect("both happened", released.is_some() && registered.is_some());
    r.expect("binfmtctl waited for the lock", released < registered);
}

#[test]
fn relative_qemu_path_is_made_absolute() {
    gate!(Root);
    // Regression: a relative --qemu-path produced a relative interpreter, which the kernel
    // cannot use; it was refused as an invalid record.
    let r = ns(r#"
cd /usr/lib && $B install arm64 --qemu-path ../bin; echo "rc=$?"; grep interpreter $R/qemu-aarch64
"#);
    r.expect(
        "registered with the absolute path",
        r.stdout.contains("rc=0")
            && r.stdout
                .contains("interpreter /usr/bin/qemu-aarch64-static"),
    );
}

/// Issue 8, item 7: names are bytes. Other tools' entries named with spaces and bytes that are
/// not UTF-8 (the kernel accepts them) survive `uninstall all` and `uninstall '*'`, which touch
/// only binfmtctl's qemu-* entries; an exact name removes them; a failure midway restores them
/// byte for byte and prints no "removed"; an empty target is bad input.
#[test]
fn uninstall_treats_names_as_bytes_and_globs_touch_only_managed_entries() {
    gate!(Root);
    let r = ns(r#"
O="$(printf 'other tool \377')"
Q="$(printf 'qemu-odd \377x')"
snap() { for f in $R/*; do echo "== $f"; cat "$f"; done; }
$B install riscv64 >/dev/null || exit 1
printf ':other tool \377:E::zzz::/usr/bin/python3:\n' > $R/register || exit 1
printf ':foo bar:E::yyy::/usr/bin/python3:\n' > $R/register || exit 1
echo 0 > "$R/$O" || exit 1
echo "== empty"; $B uninstall ''; echo "rc=$?"
echo "== unknown"; $B uninstall "$(printf 'nope \377')"; echo "rc=$?"
before=$(snap)
echo "== rollback"; BINFMTCTL_FAILPOINT=remove:qemu-riscv64 $B uninstall "$O" riscv64; echo "rc=$?"
echo "== restored"; [ "$(snap)" = "$before" ] && echo yes
printf ':qemu-odd \377x:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xfe\xfe::/usr/bin/qemu-aarch64-static:F\n' > $R/register || exit 1
echo "== all"; $B uninstall all --json; echo "rc=$?"
echo "== all-left"; ls -b $R | tr '\n' ' '; echo
echo "== glob"; $B uninstall '*'; echo "rc=$?"; ls -b $R | tr '\n' ' '; echo
echo "== status"; $B status
echo "== exact"; $B uninstall "$O" 'foo bar'; echo "rc=$?"; ls -b $R | tr '\n' ' '; echo
"#);
    let empty = r.section("empty");
    r.expect(
        "empty target: exit 2 with the fix",
        empty.contains("rc=2") && r.stderr.contains("an empty target names nothing"),
    );
    r.expect(
        "unknown raw name: exit 2",
        r.section("unknown").contains("rc=2") && r.stderr.contains(r"no entry is named nope \xff"),
    );
    let rb = r.section("rollback");
    r.expect(
        "failure midway: exit 1, nothing reported removed, the other tool's entry restored",
        rb.contains("rc=1")
            && !rb.contains("removed")
            && r.stderr.contains(r"rolled back: other tool \xff")
            && r.section("restored").trim() == "yes",
    );
    let (all, rc) = json_and_rc(&r, "all");
    assert_eq!(rc, 0, "{all}");
    let mut removed = rows(&all);
    removed.sort();
    assert_eq!(
        removed,
        [
            row("removed", r"qemu-odd \xffx"),
            row("removed", "qemu-riscv64")
        ],
        "all removes only qemu-* entries, the odd one by its exact bytes"
    );
    r.expect(
        "the other tools' entries are left",
        r.section("all-left") == "foo\\ bar other\\ tool\\ \\377 register status \n",
    );
    let glob = r.section("glob");
    r.expect(
        "'*' touches no other tool's entry",
        glob.contains("rc=0")
            && glob.ends_with("foo\\ bar other\\ tool\\ \\377 register status \n"),
    );
    r.expect(
        "status shows the name escaped",
        r.section("status").contains(r"other tool \xff"),
    );
    let exact = r.section("exact");
    // The human report (uninstall's one check of it): a row per entry, the action, the name
    // (escaped), then what the entry ran.
    let removed = |name: &str| {
        exact.lines().any(|l| {
            l.strip_prefix("removed ").is_some_and(|rest| {
                rest.trim_start()
                    .strip_prefix(name)
                    .is_some_and(|r| r.trim_start().starts_with("/usr/bin/python3 "))
            })
        })
    };
    r.expect(
        "exact names remove them",
        removed(r"other tool \xff")
            && removed("foo bar")
            && exact.ends_with("rc=0\nregister status \n"),
    );
}

/// Issue 8, item 1: `status --json` uses the full native-capture guard, not only binfmtctl's
/// own header: an i386-only pattern and an x86_64 ET_EXEC pattern with the OS ABI byte masked
/// both capture native programs on an x86_64 host.
#[test]
fn status_flags_every_kind_of_native_capture() {
    gate!(Assets, X86_64Host);
    let r = ns(r#"
printf ':i386-only:M:18:\x03\x00::/usr/bin/qemu-i386-static:\n' > $R/register || exit 1
printf ':x86-exec:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff:/usr/bin/qemu-x86_64-static:\n' > $R/register || exit 1
echo 0 > $R/i386-only; echo 0 > $R/x86-exec
echo "== json"; $B status --json
echo "== human"; $B status
"#);
    let v: serde_json::Value = serde_json::from_str(&r.section("json")).expect("valid JSON");
    for e in v["entries"].as_array().unwrap() {
        assert_eq!(e["captures_native"], true, "{e}");
    }
    let human = r.section("human");
    r.expect(
        "each warning says what it captures",
        human.contains("WARNING: entry i386-only (disabled) matches native i386 programs")
            && human.contains(
                "WARNING: entry x86-exec (disabled) matches native x86_64 programs (ET_EXEC, OS ABI 0)",
            ),
    );
}

/// SIGTERM, SIGINT or SIGHUP during `install all` finish like a failed write: everything this
/// run changed is rolled back (here mid-replace: the old qemu-riscv64 is removed and ours not
/// yet registered when the signal arrives), and the exit status is 128 + the signal. A debug
/// failpoint pauses after that write until the signal comes, so the test does not rely on timing.
#[test]
fn a_signal_during_install_all_rolls_everything_back() {
    gate!(Root);
    let r = ns(r#"
printf ':binfmtctl-test-pyz:E::pyz::/usr/bin/python3:\n' > $R/register
$B install riscv64 --flags F >/dev/null && echo 0 > $R/qemu-riscv64
snap() { for e in $(entries); do echo "[$e]"; cat $R/$e; done; }
echo "== before"; snap
for sig in TERM INT HUP; do
  E=$(mktemp)
  BINFMTCTL_FAILPOINT=pause-after:qemu-riscv64 $B install all >/dev/null 2>$E &
  pid=$!
  i=0; until grep -q "failpoint: paused" $E; do sleep 0.02; i=$((i+1)); [ $i -gt 3000 ] && break; done
  echo "== during-$sig"; entries
  kill -$sig $pid; wait $pid; echo "rc=$?"
  echo "== err-$sig"; cat $E
  echo "== after-$sig"; snap
done
"#);
    let before = r.section("before");
    r.expect(
        "the starting state has the disabled riscv64 entry",
        before.contains("[qemu-riscv64]\ndisabled"),
    );
    for (sig, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let during = r.section(&format!("during-{sig}"));
        r.expect(
            &format!("{sig}: paused mid-replace, after other entries were registered"),
            during.contains("qemu-aarch64") && !during.contains("qemu-riscv64"),
        );
        let err = r.section(&format!("err-{sig}"));
        r.expect(
            &format!("{sig}: exit {code}"),
            during.ends_with(&format!("\nrc={code}\n")),
        );
        r.expect(
            &format!("{sig}: the error says so"),
            err.contains(&format!(
                "binfmtctl: error: install failed: interrupted by SIG{sig}; rolled back: qemu-riscv64, qemu-"
            )) && err.matches("interrupted").count() == 1,
        );
        r.expect(
            &format!("{sig}: the instance is exactly as before"),
            r.section(&format!("after-{sig}")) == before,
        );
    }
}

/// A mistyped `--qemu-path` is bad input (exit 2), not "33 skipped" and exit 0.
#[test]
fn install_all_with_a_missing_qemu_path_is_refused() {
    gate!(Assets);
    let r = ns(r#"
echo "== typo"; $B install all --qemu-path /typo 2>&1; echo "rc=$?"; entries
echo "== file"; $B install arm64 --qemu-path /etc/passwd 2>&1; echo "rc=$?"; entries
"#);
    let typo = r.section("typo");
    r.expect(
        "names the directory and the fix",
        typo.contains("interpreter search path /typo: no such directory: check --qemu-path"),
    );
    r.expect("exit 2, nothing registered", typo.ends_with("rc=2\n\n"));
    r.expect("nothing was skipped silently", !typo.contains("skipped"));
    let file = r.section("file");
    r.expect(
        "a file is not a directory",
        file.contains("/etc/passwd: regular file, not a directory") && file.ends_with("rc=2\n\n"),
    );
}

/// `--binfmt-misc PATH` never mounts over a directory with contents (it would hide them), a
/// file or a symlink; `status` does not call such a directory an instance.
#[test]
fn binfmt_misc_option_never_mounts_over_a_directory_with_contents() {
    gate!(Root);
    let r = ns(r#"
D=$(mktemp -d); touch $D/keep; L=$(mktemp -u); ln -s $D $L
echo "== install"; $B install arm64 --binfmt-misc $D 2>&1; echo "rc=$?"; ls $D; mountpoint -q $D && echo mounted
echo "== status"; $B status --binfmt-misc $D 2>&1; echo "rc=$?"; mountpoint -q $D && echo mounted
echo "== uninstall"; $B uninstall all --binfmt-misc $D 2>&1; echo "rc=$?"
echo "== link"; $B install arm64 --binfmt-misc $L 2>&1; echo "rc=$?"; mountpoint -q $D && echo mounted
echo "== file"; $B status --binfmt-misc /etc/hostname 2>&1; echo "rc=$?"
echo "== real"; $B status --binfmt-misc $R 2>&1 | head -1
"#);
    for case in ["install", "status", "uninstall"] {
        let s = r.section(case);
        r.expect(
            &format!("{case}: refused with the reason and the fix"),
            s.contains("a directory that is not empty, and no binfmt_misc is mounted there: refusing to mount binfmt_misc over it"),
        );
        r.expect(
            &format!("{case}: exit 2, nothing mounted"),
            s.contains("rc=2\n") && !s.contains("mounted\n"),
        );
    }
    r.expect(
        "the directory keeps its contents",
        r.section("install").ends_with("rc=2\nkeep\n"),
    );
    let link = r.section("link");
    r.expect(
        "a symlink is refused",
        link.contains("a symbolic link, and no binfmt_misc") && link.ends_with("rc=2\n"),
    );
    let file = r.section("file");
    r.expect(
        "a file is refused",
        file.contains("/etc/hostname: a regular file, and no binfmt_misc is mounted there"),
    );
    r.expect("a file: exit 2", file.ends_with("rc=2\n"));
    r.expect(
        "a real instance is one",
        r.section("real")
            .starts_with("binfmt_misc: /proc/sys/fs/binfmt_misc (enabled)"),
    );
}

/// A look changes nothing (issue 21): with binfmt_misc not mounted, `status` (also with
/// `--binfmt-misc DIR` and `--json`), `inspect` and `test` report it and leave it unmounted.
#[test]
fn looking_never_mounts_binfmt_misc() {
    gate!(Root, Assets);
    // No binfmt_misc at the usual place: our instance goes, and an empty tmpfs hides any the
    // host may have mounted (inherited, locked: it cannot be unmounted here). The count of
    // binfmt_misc mounts must not grow.
    let r = ns(r#"
umount $R && mount -t tmpfs -o size=4k tmpfs $R || exit 7
D=$(mktemp -d)
base=$(grep -c ' binfmt_misc ' /proc/self/mounts)
n() { echo $(( $(grep -c ' binfmt_misc ' /proc/self/mounts) - base )); }
echo "== status"; $B status 2>&1; echo "rc=$? mounts=$(n)"
echo "== json"; $B status --json; echo "rc=$? mounts=$(n)"
echo "== dir"; $B status --binfmt-misc $D 2>&1; echo "rc=$? mounts=$(n)"
echo "== inspect"; $B inspect $A/busybox-arm64 >/dev/null 2>&1; echo "rc=$? mounts=$(n)"
echo "== test"; $B test arm64 >/dev/null 2>&1; echo "rc=$? mounts=$(n)"
"#);
    let st = r.section("status");
    r.expect(
        "status says binfmt_misc is not mounted",
        st.starts_with("binfmt_misc: not mounted at /proc/sys/fs/binfmt_misc"),
    );
    r.expect(
        "status --json says so too",
        r.section("json").contains("\"mounted\": false")
            || r.section("json").contains("\"mounted\":false"),
    );
    r.expect(
        "status --binfmt-misc DIR names DIR",
        r.section("dir")
            .contains("binfmt_misc: not mounted at /tmp/"),
    );
    for s in ["status", "json", "dir", "inspect", "test"] {
        r.expect(
            &format!("{s}: nothing mounted"),
            r.section(s).trim_end().ends_with("mounts=0"),
        );
    }
    r.expect("status exits 0", st.contains("rc=0 "));
}

/// Log lines have the program's own style (`binfmtctl: debug: ...`, `binfmtctl: warning:
/// ...`), never tracing's `WARN`/`DEBUG` (issue 21).
#[test]
fn log_lines_have_the_programs_own_style() {
    gate!(Root);
    let r = ns("D=$(mktemp -d); $B -vv install arm64 --binfmt-misc $D >/dev/null");
    r.expect(
        "debug lines in binfmtctl's style",
        r.stderr
            .contains("binfmtctl: debug: register name=qemu-aarch64")
            && r.stderr.contains("binfmtctl: info: mounted binfmt_misc"),
    );
    r.expect(
        "every log line starts with binfmtctl:",
        r.stderr.lines().all(|l| l.starts_with("binfmtctl: "))
            && !r.stderr.contains(" WARN ")
            && !r.stderr.contains("DEBUG"),
    );
}
