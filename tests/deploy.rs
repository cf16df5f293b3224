//! Issue 5 on this machine: the config file and `apply`, `install --persist`, export checked by
//! the real `systemd-binfmt` and `update-binfmts`, import, and the systemd unit. Everything runs
//! in private binfmt_misc instances.

#[macro_use]
mod common;

use std::process::Command;

use common::{assets, bin, ns};

#[test]
fn apply_reconciles_to_the_config_and_remove_takes_only_its_own() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "# boot-time emulators\narches = [\"arm64\", \"linux/riscv64\"]\nflags = \"FP\"\n",
    )
    .unwrap();
    let r = ns(&format!(
        r#"
C={cfg}
printf ':binfmtctl-test-pyz:E::pyz::/usr/bin/python3:\n' > $R/register
echo "== dry"; $B --config $C apply --dry-run; echo "rc=$?"; entries
echo "== apply"; $B --config $C apply; echo "rc=$?"
echo "== run"; $A/busybox-arm64 uname -m
echo "== again"; $B --config $C apply; echo "rc=$?"
echo "== remove"; $B --config $C apply --remove; echo "rc=$?"; entries
"#,
        cfg = cfg.display()
    ));
    let dry = r.section("dry");
    r.expect(
        "dry run plans, changes nothing",
        dry.contains("would-register  qemu-aarch64") && dry.contains("rc=0\nbinfmtctl-test-pyz \n"),
    );
    let apply = r.section("apply");
    r.expect(
        "apply registers both",
        apply.contains("registered      qemu-aarch64")
            && apply.contains("registered      qemu-riscv64")
            && apply.contains("rc=0"),
    );
    r.expect("emulation works", r.section("run").trim() == "aarch64");
    r.expect("idempotent", r.section("again").contains("summary: 2 kept"));
    let remove = r.section("remove");
    r.expect(
        "remove takes only the config's entries",
        remove.contains("removed         qemu-aarch64")
            && remove.ends_with("rc=0\nbinfmtctl-test-pyz \n"),
    );
}

#[test]
fn bad_config_is_refused_with_position_and_nothing_changes() {
    gate!(Assets);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "arches = [\"arm64\"]\nkeep_existin = true\n",
            "config.toml:2:1: unknown field `keep_existin`",
        ),
        (
            "arches = [\"arm64\", \"riscv46\"]\n",
            "config.toml:1:20: unknown architecture \"riscv46\"; did you mean riscv32, riscv64?",
        ),
        (
            "arches = [\"arm64\"]\nflags = \"FX\"\n",
            "config.toml:2:9: invalid flags \"FX\"",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("{i}/config.toml"));
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, text).unwrap();
        let r = ns(&format!(
            "$B --config {} apply 2>&1; echo \"rc=$?\"; entries",
            cfg.display()
        ));
        r.expect(want, r.stdout.contains(want));
        r.expect("exit 2, nothing registered", r.stdout.ends_with("rc=2\n\n"));
    }
    let r = ns("$B --config /nonexistent/config.toml apply 2>&1; echo \"rc=$?\"");
    r.expect(
        "missing file",
        r.stdout
            .contains("/nonexistent/config.toml does not exist: create it")
            && r.stdout.contains("rc=2"),
    );
}

#[test]
fn install_persist_writes_the_config() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("etc/binfmtctl/config.toml");
    let r = ns(&format!(
        "$B --config {c} install arm64 --persist; $B --config {c} install riscv64,arm64 --persist >/dev/null; cat {c}",
        c = cfg.display()
    ));
    r.expect("noted", r.stdout.contains("note: added arm64 to"));
    r.expect(
        "both arches, once each",
        r.stdout.contains("arches = [\"arm64\", \"riscv64\"]"),
    );
}

#[test]
fn exported_binfmt_d_is_accepted_by_systemd_binfmt() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let r = ns(&format!(
        r#"
$B export --format binfmt.d --dir {d}/binfmt.d arm64,riscv64 >/dev/null || exit 1
SB=$(command -v systemd-binfmt || echo /lib/systemd/systemd-binfmt)
echo "== sb"; $SB {d}/binfmt.d/qemu-aarch64.conf {d}/binfmt.d/qemu-riscv64.conf; echo "rc=$?"
echo "== status"; $B status --json
echo "== run"; $A/busybox-arm64 uname -m
"#
    ));
    r.expect(
        "systemd-binfmt accepts them",
        r.section("sb").contains("rc=0"),
    );
    let v: serde_json::Value = serde_json::from_str(&r.section("status")).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        assert_eq!(e["matches_table"], true, "{e}");
        assert_eq!(e["flags"], "PF");
    }
    r.expect("and they work", r.section("run").trim() == "aarch64");
}

#[test]
fn exported_update_binfmts_files_are_accepted_by_update_binfmts() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let ub = assets().join("update-binfmts");
    let r = ns(&format!(
        r#"
$B export --format update-binfmts --dir {d}/import arm64 >/dev/null || exit 1
mkdir -p {d}/admin
echo "== ub"; {ub} --importdir {d}/import --admindir {d}/admin --import qemu-aarch64 2>&1; echo "rc=$?"
echo "== entry"; cat $R/qemu-aarch64
echo "== run"; $A/busybox-arm64 uname -m
"#,
        ub = ub.display()
    ));
    r.expect(
        "update-binfmts imports it",
        r.section("ub").contains("rc=0"),
    );
    let e = r.section("entry");
    r.expect(
        "with our pattern and flags",
        e.contains("flags: PF") && e.contains("magic 7f454c460201010000000000000000000200b700"),
    );
    r.expect("and it works", r.section("run").trim() == "aarch64");
}

#[test]
fn import_reads_binfmt_d_files() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mine.conf");
    std::fs::write(
        &conf,
        "# adopted\n\n:qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:FP\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("import")
        .arg(&conf)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("mine.conf:3: qemu-aarch64 arch=aarch64 flags=PF /usr/bin/qemu-aarch64-static (matches our table)"), "{s}");
    // Debian's own file parses too, and differs from our table (OS ABI mask and interpreter).
    if std::path::Path::new("/usr/lib/binfmt.d/qemu-aarch64.conf").exists() {
        let out = Command::new(bin())
            .args(["import", "/usr/lib/binfmt.d/qemu-aarch64.conf"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("qemu-aarch64 arch=aarch64 flags=POF")
        );
    }
    let r = ns(&format!(
        "$B import --register {}; echo \"rc=$?\"; $A/busybox-arm64 uname -m",
        conf.display()
    ));
    r.expect(
        "registered from the file",
        r.stdout.contains("registered      qemu-aarch64") && r.stdout.ends_with("rc=0\naarch64\n"),
    );
    // An interpreter anyone could replace is never registered, whatever the file says.
    let unsafe_dir = tempfile::tempdir().unwrap();
    let interp = unsafe_dir.path().join("qemu-aarch64-static");
    std::fs::copy("/usr/bin/qemu-aarch64-static", &interp).unwrap();
    std::fs::set_permissions(&interp, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let writable = dir.path().join("writable.conf");
    std::fs::write(
        &writable,
        std::fs::read_to_string(&conf)
            .unwrap()
            .replace("/usr/bin/qemu-aarch64-static", interp.to_str().unwrap()),
    )
    .unwrap();
    let r = ns(&format!(
        "$B import --register {} 2>&1; echo \"rc=$?\"; entries",
        writable.display()
    ));
    r.expect(
        "writable interpreter refused, nothing registered",
        r.stdout
            .contains("is writable by group or others (mode 777)")
            && r.stdout.ends_with("rc=2\n\n"),
    );
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "; comment\n:x:M::\\x7f::relative/interp:F\n").unwrap();
    let out = Command::new(bin())
        .arg("import")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("bad.conf:2:") && e.contains("must be an absolute path"),
        "{e}"
    );
}

#[test]
fn the_container_entrypoint_form_prints_json_status() {
    gate!(Root);
    let r = ns("$B --install arm64");
    // Standard output is the JSON status alone (issue 21: the report's lines were mixed in);
    // the report goes to stderr.
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", r.stdout));
    assert!(
        r.stderr.contains("registered      qemu-aarch64"),
        "{}",
        r.stderr
    );
    assert!(
        v["emulators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "qemu-aarch64")
    );
    assert!(
        v["supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "linux/arm64")
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/binfmtctl.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/binfmtctl apply"));
    assert!(unit.contains("ExecStop=/usr/local/bin/binfmtctl apply --remove"));
    assert!(
        !unit.contains("\nProtectKernelTunables="),
        "it would make /proc/sys read-only"
    );
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binfmtctl.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/binfmtctl", bin().to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "no warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The aarch64 pattern as the table has it, for records in the import tests.
const AARCH64_MAGIC: &str = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
const RISCV64_MAGIC: &str = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

/// Issue 8, item 1: a hostile binfmt.d file. Every entry but the last would hand the host's
/// programs, or root's credentials, to something an ordinary user controls; the import must
/// refuse each one (named by file and line), write nothing, and leave the instance as it was.
#[test]
fn import_refuses_hostile_entries_and_changes_nothing() {
    gate!(Root, X86_64Host);
    let dir = tempfile::tempdir().unwrap();
    // A symlink an ordinary user owns, pointing at the real interpreter for now.
    let link = dir.path().join("qemu-aarch64");
    std::os::unix::fs::symlink("/usr/bin/qemu-aarch64-static", &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let link = link.display();
    let lines = [
        format!(":user-link:M::{AARCH64_MAGIC}:{link}:P"),
        // i386 on x86_64: the compat arch runs natively.
        r":i386:M::\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00:\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-i386-static:F".to_owned(),
        // x86_64 ET_EXEC only, OS ABI byte masked: binfmtctl's own (PIE) header does not match.
        r":x86:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff:/usr/bin/qemu-x86_64-static:F".to_owned(),
        ":hashbang:M::#!::/usr/bin/qemu-aarch64-static:F".to_owned(),
        format!(":dyn:M::{AARCH64_MAGIC}:/usr/bin/bash:F"),
        format!(":cred:M::{RISCV64_MAGIC}:/usr/bin/qemu-riscv64-static:OCF"),
        ":pyz:E::pyz::/usr/bin/python3:".to_owned(),
        format!(":qemu-aarch64:M::{AARCH64_MAGIC}:/usr/bin/qemu-aarch64-static:FP"),
    ];
    let conf = dir.path().join("hostile.conf");
    std::fs::write(&conf, lines.join("\n") + "\n").unwrap();
    let r = ns(&format!(
        r#"printf ':keep:E::kk::/usr/bin/python3:\n' > $R/register || exit 1
snap() {{ for f in $R/*; do echo "== $f"; cat "$f"; done; }}
before=$(snap)
echo "== import"; $B import --register {conf} 2>&1; echo "rc=$?"
echo "== unchanged"; [ "$(snap)" = "$before" ] && echo yes
echo "== entries"; entries
"#,
        conf = conf.display()
    ));
    let out = r.section("import");
    r.expect(
        "exit 2, nothing registered, instance unchanged",
        out.contains("rc=2")
            && out.contains("nothing was changed; refused:")
            && r.section("unchanged").trim() == "yes"
            && r.section("entries").trim() == "keep",
    );
    let at = |line: usize, what: &str| {
        let prefix = format!("hostile.conf:{line}: ");
        r.expect(
            &format!("line {line} refused for: {what}"),
            out.lines().any(|l| l.contains(&prefix) && l.contains(what)),
        );
    };
    // In this namespace nobody is not mapped: the symlink's owner cannot be proven root.
    at(1, &format!("{link}"));
    at(1, "not mapped into this user namespace");
    at(2, "its pattern would capture native i386 programs");
    at(
        3,
        "its pattern would capture native x86_64 programs (ET_EXEC, OS ABI 0)",
    );
    at(4, "its pattern would capture native scripts (#!)");
    at(5, "is dynamically linked");
    at(6, "flag C makes setuid programs run");
    at(6, "--allow-credentials");
    at(7, "pass --allow-extension");
    r.expect(
        "the good line is not refused",
        !out.contains("hostile.conf:8:"),
    );

    // Outside any namespace the symlink's owner is visible: refused for what it is. The
    // refusal comes before anything is read from the (empty, never mounted) instance.
    let empty = tempfile::tempdir().unwrap();
    let only_link = dir.path().join("link.conf");
    std::fs::write(&only_link, format!("{}\n", lines[0])).unwrap();
    let o = Command::new(bin())
        .args(["--dry-run", "--binfmt-misc"])
        .arg(empty.path())
        .args(["import", "--register"])
        .arg(&only_link)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "link.conf:1: user-link: the interpreter {link} is reached through the symlink {link}, owned by uid 65534, not root"
        )),
        "{err}"
    );
}

/// A pattern that copies the first 64 bytes of one real native program (entry point, header
/// offsets and section count included) matches none of the guard's sample headers, yet
/// captures that program: import refuses it before any write, and `status` flags it when
/// another tool registered it (disabled here, so the namespace keeps working).
#[test]
fn import_refuses_a_pattern_copied_from_a_real_native_program() {
    gate!(Assets);
    let head = std::fs::read("/usr/bin/ls").unwrap();
    let magic: String = head[..64].iter().map(|b| format!("\\x{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("copy.conf");
    std::fs::write(
        &conf,
        format!(":ls-copy:M::{magic}::/usr/bin/qemu-aarch64-static:F\n"),
    )
    .unwrap();
    let r = ns(&format!(
        r#"echo "== import"; $B import --register {conf} --trust-unmapped-owner 2>&1; echo "rc=$?"
echo "== entries"; entries
printf ':ls-copy:M::%s::/usr/bin/qemu-aarch64-static:\n' '{magic}' > $R/register || exit 1
echo 0 > $R/ls-copy
echo "== json"; $B status --json
"#,
        conf = conf.display()
    ));
    let out = r.section("import");
    r.expect(
        "refused as capturing native programs, nothing registered",
        out.contains("rc=2")
            && out.contains("copy.conf:1: ls-copy: its pattern would capture native")
            && r.section("entries").trim().is_empty(),
    );
    let v: serde_json::Value = serde_json::from_str(&r.section("json")).expect("valid JSON");
    assert_eq!(v["entries"][0]["name"], "ls-copy", "{v}");
    assert_eq!(v["entries"][0]["captures_native"], true, "{v}");
}

/// The explicit opt-ins: C with --allow-credentials, E with --allow-extension; and a symlink
/// root owns is registered as the file it points to, never as the symlink.
#[test]
fn import_registers_c_and_e_only_when_asked_and_resolves_symlinks() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("qemu-aarch64");
    std::os::unix::fs::symlink("/usr/bin/qemu-aarch64-static", &link).unwrap();
    let conf = dir.path().join("ok.conf");
    std::fs::write(
        &conf,
        format!(
            ":qemu-riscv64:M::{RISCV64_MAGIC}:/usr/bin/qemu-riscv64-static:OCF\n:pyz:E::pyz::/usr/bin/python3:\n:qemu-aarch64:M::{AARCH64_MAGIC}:{}:PF\n",
            link.display()
        ),
    )
    .unwrap();
    let r = ns(&format!(
        r#"echo "== plain"; $B import --register {c} 2>&1; echo "rc=$?"; entries
echo "== allowed"; $B import --register --allow-credentials --allow-extension {c}; echo "rc=$?"; entries
echo "== entry"; cat $R/qemu-aarch64; cat $R/qemu-riscv64
echo "== run"; $A/busybox-arm64 uname -m
"#,
        c = conf.display()
    ));
    let plain = r.section("plain");
    r.expect(
        "refused without the flags, nothing registered",
        plain.contains("rc=2\n\n")
            && plain.contains("--allow-credentials")
            && plain.contains("--allow-extension"),
    );
    let allowed = r.section("allowed");
    r.expect(
        "registered with the flags",
        allowed.contains("rc=0\npyz qemu-aarch64 qemu-riscv64 \n")
            && allowed.contains("registered      pyz                /usr/bin/python3."),
    );
    let e = r.section("entry");
    r.expect(
        "the resolved path is registered, C kept",
        e.contains("interpreter /usr/bin/qemu-aarch64-static\n")
            && e.contains("flags: OCF")
            && !e.contains(&link.display().to_string()),
    );
    r.expect("and it runs", r.section("run").trim() == "aarch64");
}

/// `install --persist` with a config it cannot update changes nothing at all: the config is read
/// and checked before the first kernel write (exit 2, no entry registered, file untouched).
#[test]
fn persist_with_a_broken_or_unsafe_config_registers_nothing() {
    gate!(Assets);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let r = ns(&format!(
        r#"
mkdir -p {d}/broken {d}/link {d}/shared {d}/fifo
printf 'arches = ["arm64"]\nflags = "FX"\n' > {d}/broken/config.toml
echo precious > {d}/link/target; ln -s target {d}/link/config.toml
chmod 777 {d}/shared
mkfifo {d}/fifo/config.toml
for c in broken link shared fifo; do
  echo "== $c"; timeout 20 $B --config {d}/$c/config.toml install riscv64 --persist 2>&1; echo "rc=$?"; entries
done
echo "== target"; cat {d}/link/target
echo "== broken-file"; cat {d}/broken/config.toml
"#
    ));
    for (case, msg) in [
        ("broken", "config.toml:2:9: invalid flags \"FX\""),
        ("link", "config.toml: it is a symbolic link"),
        ("shared", "is writable by group or others (mode 777)"),
        ("fifo", "config.toml: it is not a regular file"),
    ] {
        let s = r.section(case);
        r.expect(&format!("{case}: message"), s.contains(msg));
        r.expect(
            &format!("{case}: exit 2 and nothing registered"),
            s.ends_with("rc=2\n\n"),
        );
    }
    r.expect(
        "the link's target is untouched",
        r.section("target") == "precious\n",
    );
    r.expect(
        "the broken file is untouched",
        r.section("broken-file") == "arches = [\"arm64\"]\nflags = \"FX\"\n",
    );
}

/// What install did is what `apply` (the boot unit) does: flags and the search path are saved.
#[test]
fn persist_saves_flags_and_qemu_path_so_apply_reproduces_install() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("qemu");
    std::fs::create_dir(&q).unwrap();
    std::fs::copy(
        "/usr/bin/qemu-riscv64-static",
        q.join("qemu-riscv64-static"),
    )
    .unwrap();
    let cfg = dir.path().join("etc/config.toml");
    let r = ns(&format!(
        r#"
C={cfg}
$B --config $C install riscv64 --flags F --qemu-path {q} --persist >/dev/null; echo "rc=$?"
echo "== installed"; cat $R/qemu-riscv64
echo "== config"; cat $C
$B uninstall all >/dev/null
echo "== applied"; $B --config $C apply >/dev/null; echo "rc=$?"; cat $R/qemu-riscv64
echo "== conflict"; $B --config $C install arm64 --persist 2>&1; echo "rc=$?"; entries
"#,
        cfg = cfg.display(),
        q = q.display()
    ));
    let installed = r.section("installed");
    r.expect(
        "install used the flags and the directory",
        installed.contains(&format!(
            "interpreter {}/qemu-riscv64-static\nflags: F\n",
            q.display()
        )),
    );
    r.expect(
        "the config has them",
        r.section("config").contains("flags = \"F\"")
            && r.section("config")
                .contains(&format!("qemu_path = [\"{}\"]", q.display())),
    );
    r.expect(
        "apply registers exactly what install did",
        r.section("applied") == format!("rc=0\n{installed}"),
    );
    let conflict = r.section("conflict");
    r.expect(
        "other settings for a new arch are refused before any write",
        conflict.contains("refusing to change")
            && conflict.contains("flags F (this install: PF)")
            && conflict.ends_with("rc=2\nqemu-riscv64 \n"),
    );
}

/// Parallel `install --persist` runs serialise on the config directory: no update is lost.
#[test]
fn parallel_persist_runs_lose_no_update() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let r = ns(&format!(
        r#"
for a in arm64 armhf riscv64 s390x ppc64el mips64el mipsel m68k; do
  $B --config {c} install $a --persist >/dev/null 2>&1 &
done
wait
echo "== config"; cat {c}
echo "== entries"; entries
ls -A {dir}
"#,
        c = cfg.display(),
        dir = dir.path().display()
    ));
    let c = r.section("config");
    for a in [
        "arm64", "armhf", "riscv64", "s390x", "ppc64el", "mips64el", "mipsel", "m68k",
    ] {
        r.expect(
            &format!("{a} is in the config"),
            c.contains(&format!("\"{a}\"")),
        );
    }
    r.expect(
        "no temporary file left",
        r.section("entries").ends_with("\nconfig.toml\n"),
    );
}

/// `export --dir` never writes through a symlink planted at a file's name.
#[test]
fn export_dir_does_not_follow_symlinks() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("qemu-aarch64.conf")).unwrap();
    let export = |force: bool| {
        let mut c = Command::new(bin());
        c.args(["export", "--format", "binfmt.d", "--dir"])
            .arg(&out)
            .arg("arm64");
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    // Not ours (a symlink): refused, exit 2, nothing written (issue 21: it was overwritten).
    let r = export(false);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not written by binfmtctl export"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        out.join("qemu-aarch64.conf")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let r = export(true);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let written = out.join("qemu-aarch64.conf");
    assert!(!written.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains(":qemu-aarch64:M:")
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        1,
        "no temporary file left"
    );
    // Ours now: written again without --force.
    let r = export(false);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // A user's own file of that name is refused, and kept.
    std::fs::remove_file(&written).unwrap();
    std::fs::write(&written, ":mine:M::abc::/bin/true:\n").unwrap();
    let r = export(false);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        ":mine:M::abc::/bin/true:\n"
    );
    // A missing directory is created, and the output says so.
    let fresh = dir.path().join("new/binfmt.d");
    let r = Command::new(bin())
        .args(["export", "--format", "binfmt.d", "--dir"])
        .arg(&fresh)
        .arg("arm64")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success() && s.starts_with(&format!("created {}\n", fresh.display())),
        "{s}"
    );
}

/// The config and binfmt.d files are regular text files of at most 1 MiB: a FIFO is not
/// waited on, /dev/zero not read, binary content refused, each with exit 2 naming the file.
#[test]
fn config_and_import_read_only_regular_text_files() {
    gate!(Assets);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let r = ns(&format!(
        r#"
mkfifo {d}/fifo
head -c 300 /dev/urandom > {d}/binary; printf 'arches = ["arm64"]\n# \377\n' > {d}/latin1
head -c 1100000 /dev/zero | tr '\0' '#' > {d}/big
t() {{ echo "== $1"; shift; timeout 20 $B "$@" 2>&1; echo "rc=$?"; entries; }}
t cfg-fifo --config {d}/fifo apply
t cfg-zero --config /dev/zero apply
t cfg-binary --config {d}/binary apply
t cfg-latin1 --config {d}/latin1 apply
t cfg-big --config {d}/big apply
t import-fifo import {d}/fifo
t import-zero import /dev/zero
t import-big import {d}/big
"#
    ));
    for (case, msg) in [
        ("cfg-fifo", "fifo is a FIFO, not a regular file"),
        (
            "cfg-zero",
            "/dev/zero is a character device, not a regular file",
        ),
        ("cfg-binary", "binary:"),
        ("cfg-latin1", "latin1:2: not UTF-8 text"),
        ("cfg-big", "big is larger than 1048576 bytes"),
        ("import-fifo", "fifo is a FIFO, not a regular file"),
        (
            "import-zero",
            "/dev/zero is a character device, not a regular file",
        ),
        ("import-big", "big is larger than 1048576 bytes"),
    ] {
        let s = r.section(case);
        r.expect(&format!("{case}: message"), s.contains(msg));
        r.expect(
            &format!("{case}: exit 2, nothing registered"),
            s.ends_with("rc=2\n\n"),
        );
    }
}
