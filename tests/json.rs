//! Every `--json` output of the real binary, produced in a private binfmt_misc instance with
//! real interpreters and binaries, validated against the schemas in
//! docs/schemas/binfmtctl.schema.json — the same file docs/json.md documents.

#[path = "common/archive.rs"]
mod archive;
#[macro_use]
mod common;

use archive::{ARM_ONLY, TestArchive, make_deb};
use common::{ns, ns_with};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schemas/binfmtctl.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the schema is JSON")
}

/// Validates `doc` against `$defs/<def>` of the schema; returns the errors.
fn errors(schema: &Value, def: &str, doc: &Value) -> Vec<String> {
    assert!(
        schema["$defs"].get(def).is_some(),
        "no $defs/{def} in the schema"
    );
    let mut s = schema.clone();
    s["$ref"] = Value::String(format!("#/$defs/{def}"));
    let v = jsonschema::draft202012::new(&s).expect("the schema compiles");
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The JSON documents of one `== marker` section (a section may hold several).
fn docs(section: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(section)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{section}"))
}

#[test]
fn every_json_output_matches_the_documented_schema() {
    gate!(Root, X86_64Host);
    let rootfs = tempfile::tempdir().unwrap();
    common::busybox_rootfs(rootfs.path());
    let r = ns(&(format!("\nROOT={}", rootfs.path().display())
        + r#"
T=$(mktemp -d)
printf 'arches = ["riscv64"]\n' > $T/config.toml
echo "== install"; $B install arm64,armhf --json
echo "== install-dry"; $B install arm64 --dry-run --json
echo "== entrypoint"; $B --install riscv64 --json --flags F --keep-existing
echo "== status"; $B status --json
echo "== interpreters"; $B interpreters --json
echo "== interpreters-missing"; $B interpreters --json --qemu-path $T arm64
echo "== inspect"; $B inspect $A/busybox-arm64 $A/hello-arm64-dynamic $A/busybox-i386 --json
echo "== inspect-fail"; $B inspect $A/busybox-arm64 /nonexistent --json
echo "== scan"; $B scan $A --json --files
echo "== doctor"; $B doctor --json $A/busybox-arm64 $A/busybox-mips64el --rootfs $ROOT; echo "== doctor-rc $?"
echo "== test"; $B test --json
echo "== arches"; $B arches --json
echo "== export"; $B export --format json arm64,s390x
$B export --format binfmt.d --dir $T/d arm64 >/dev/null
echo "== import"; $B import $T/d --json
echo "== cross"; $B cross env --arch arm64 --format json
echo "== disable"; $B disable arm64,qemu-arm --json
echo "== enable"; $B enable arm --json
echo "== apply"; $B apply --config $T/config.toml --json
echo "== uninstall"; $B uninstall riscv64 --json
echo "== refused"; $B install x86_64 --json; echo "== refused-rc $?"
echo "== unknown"; $B install arm46 --json; echo "== unknown-rc $?"
echo "== usage"; $B install arm64 --bogus --json 2>/dev/null; echo "== usage-rc $?"
echo "== env"; $B status --json --binfmt-misc /nonexistent/x; echo "== env-rc $?"
echo "== end"
rm -rf $T
"#));
    let schema = schema();
    let mut failures = Vec::new();
    let mut check = |section: &str, defs: &[&str]| {
        let found = docs(&r.section(section));
        assert_eq!(
            found.len(),
            defs.len(),
            "section {section}: {} documents, expected {}\n{}",
            found.len(),
            defs.len(),
            r.stderr
        );
        for (doc, def) in found.iter().zip(defs) {
            for e in errors(&schema, def, doc) {
                failures.push(format!("{section} ({def}): {e}"));
            }
        }
        found
    };
    check("install", &["report"]);
    check("install-dry", &["report"]);
    check("entrypoint", &["report", "status"]);
    let status = check("status", &["status"]);
    check("interpreters", &["interpreters"]);
    // docs-drift issue, item 2: a missing interpreter has no `source` (it was `null`).
    let missing = check("interpreters-missing", &["interpreters"]);
    assert_eq!(
        missing[0]["interpreters"][0]["status"], "missing",
        "{}",
        missing[0]
    );
    assert!(missing[0]["interpreters"][0].get("source").is_none());
    check("inspect", &["inspect"]);
    let fail = check("inspect-fail", &["error"]);
    check("scan", &["scan"]);
    let doctor = check("doctor", &["doctor"]);
    let test = check("test", &["test"]);
    check("arches", &["arches"]);
    check("export", &["export"]);
    check("import", &["import"]);
    check("cross", &["cross_env"]);
    let disabled = check("disable", &["report"]);
    check("enable", &["report"]);
    check("apply", &["report"]);
    check("uninstall", &["report"]);
    let refused = check("refused", &["error"]);
    let unknown = check("unknown", &["error"]);
    let usage = check("usage", &["error"]);
    let env = check("env", &["status"]);
    // What came before a failure is in `output`, and valid too.
    for (section, doc, def) in [
        ("inspect-fail", &fail[0], "inspect"),
        ("refused", &refused[0], "report"),
    ] {
        let out = doc["output"].as_array().unwrap();
        assert_eq!(out.len(), 1, "{section}: {doc}");
        for e in errors(&schema, def, &out[0]) {
            failures.push(format!("{section} output ({def}): {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The check is strict: an undocumented field or a wrong type is caught.
    let mut extra = status[0].clone();
    extra["entries"][0]["undocumented"] = Value::Bool(true);
    assert!(!errors(&schema, "status", &extra).is_empty());
    let mut wrong = refused[0].clone();
    wrong["error"]["exit_code"] = Value::String("2".into());
    assert!(!errors(&schema, "error", &wrong).is_empty());

    // The outputs say what happened, not only that they have the right shape.
    assert_eq!(refused[0]["error"]["kind"], "bad-input");
    assert_eq!(refused[0]["error"]["exit_code"], 2);
    assert_eq!(r.section("refused-rc").trim(), "", "marker only");
    assert!(r.stdout.contains("== refused-rc 2"), "{}", r.stdout);
    assert!(r.stdout.contains("== unknown-rc 2"), "{}", r.stdout);
    assert!(r.stdout.contains("== usage-rc 2"), "{}", r.stdout);
    assert!(
        unknown[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown architecture \"arm46\""),
        "{}",
        unknown[0]
    );
    assert_eq!(usage[0]["error"]["kind"], "bad-input");
    // `run --json` is refused (json_is_honoured_or_refused_never_ignored).
    assert_eq!(fail[0]["error"]["kind"], "bad-input");
    // A binfmt_misc root that does not exist: status says so rather than failing.
    assert_eq!(env[0]["binfmt_misc"]["mounted"], false);
    let emulators = status[0]["emulators"].as_array().unwrap();
    assert!(
        emulators.iter().any(|e| e == "qemu-riscv64"),
        "{emulators:?}"
    );
    assert_eq!(
        disabled[0]["summary"]["disabled"], 2,
        "arm64 and qemu-arm: {}",
        disabled[0]
    );
    assert_eq!(test[0]["summary"]["fail"], 0, "{}", test[0]);
    // mips64el has no handler: doctor's document says so, and the status is 1.
    assert_eq!(doctor[0]["ok"], false, "{}", doctor[0]);
    assert!(r.stdout.contains("== doctor-rc 1"), "{}", r.stdout);
    assert_eq!(doctor[0]["files"][1]["findings"][0]["code"], "no-handler");
    assert!(
        doctor[0]["rootfs"]["elf"].as_u64() >= Some(1),
        "{}",
        doctor[0]
    );
}

/// Checks each document against its `$defs` entry; returns the failures.
fn validate(schema: &Value, docs: &[(&str, &Value, &str)]) -> Vec<String> {
    docs.iter()
        .flat_map(|(what, doc, def)| {
            errors(schema, def, doc)
                .into_iter()
                .map(move |e| format!("{what} ({def}): {e}"))
        })
        .collect()
}

/// One JSON document from a run's stdout, or the test fails with the transcript.
#[track_caller]
fn one_doc(r: &common::Run, what: &str) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not one JSON document ({e})\n--- exit {}\n--- stdout\n{}\n--- stderr\n{}",
            r.code, r.stdout, r.stderr
        )
    })
}

/// The QEMU store's outputs, from the test archive (tests/common/archive.rs: signed by the
/// test's own key, served on 127.0.0.1, holding the system's real static QEMU) and a private
/// binfmt_misc instance for the commands that look at or change entries.
#[test]
fn qemu_store_json_outputs_match_the_documented_schema() {
    gate!(Root);
    let a = TestArchive::new();
    let schema = schema();
    // `nosuch` is not in the archive: its row carries the error, the others the offer.
    let versions = a.run(&["qemu", "versions", "--json", "--suite", "nosuch"]);
    versions.expect("versions", versions.code == 0);
    let dry = a.run(&["qemu", "fetch", "91.0", "--dry-run", "--json"]);
    dry.expect("fetch --dry-run", dry.code == 0);
    let fetched = a.run(&["qemu", "fetch", "91.0", "--json"]);
    fetched.expect("fetch 91.0", fetched.code == 0);
    let again = a.run(&["qemu", "fetch", "testb", "--json"]);
    again.expect("fetch testb again", again.code == 0);
    let older = a.run(&["qemu", "fetch", "90.1", "--json"]);
    older.expect("fetch 90.1", older.code == 0);
    let deb = a.tmp.path().join("qemu-user-static_7.2_amd64.deb");
    std::fs::write(&deb, make_deb(ARM_ONLY)).unwrap();
    let local_store = a.tmp.path().join("local-store");
    let local = a.run_store(
        &local_store,
        &[
            "qemu",
            "fetch",
            "--from-deb",
            deb.to_str().unwrap(),
            "--json",
        ],
    );
    local.expect("fetch --from-deb", local.code == 0);

    let s = a.store().display().to_string();
    let empty = a.tmp.path().join("empty-store").display().to_string();
    let r = ns_with(
        &[],
        &format!(
            r#"
S={s}
echo "== gc-empty"; $B qemu gc --json --qemu-store {empty}; echo "== gc-empty-rc $?"
$B install arm64 --qemu 90.1 --qemu-store $S >/dev/null || exit 90
echo "== use"; $B qemu use 91.0 --json --qemu-store $S
echo "== list"; $B qemu list --json --qemu-store $S
echo "== verify"; $B qemu verify --json --qemu-store $S
echo "== gc-dry"; $B qemu gc --dry-run --json --qemu-store $S
echo "== gc"; $B qemu gc --json --qemu-store $S
printf x >> $S/91.0+ds-1/bin/qemu-riscv64
mkdir $S/92.0
echo "== verify-bad"; $B qemu verify --json --qemu-store $S; echo "== verify-bad-rc $?"
"#
        ),
        true,
    );
    r.expect("the script ran", r.code == 0);
    let section = |m: &str| -> Value {
        let d = docs(&r.section(m));
        assert_eq!(d.len(), 1, "section {m}: {d:?}\n{}", r.stderr);
        d.into_iter().next().unwrap()
    };
    let dry = one_doc(&dry, "fetch --dry-run");
    let (versions, fetched, again, older, local) = (
        one_doc(&versions, "versions"),
        one_doc(&fetched, "fetch"),
        one_doc(&again, "fetch again"),
        one_doc(&older, "fetch 90.1"),
        one_doc(&local, "fetch --from-deb"),
    );
    let (gc_empty, used, list, verify, gc_dry, gc, verify_bad) = (
        section("gc-empty"),
        section("use"),
        section("list"),
        section("verify"),
        section("gc-dry"),
        section("gc"),
        section("verify-bad"),
    );
    let failures = validate(
        &schema,
        &[
            ("versions", &versions, "qemu_versions"),
            ("fetch --dry-run", &dry, "qemu_fetch"),
            ("fetch", &fetched, "qemu_fetch"),
            ("fetch again", &again, "qemu_fetch"),
            ("fetch 90.1", &older, "qemu_fetch"),
            ("fetch --from-deb", &local, "qemu_fetch"),
            ("gc of an empty store", &gc_empty, "qemu_gc"),
            ("use", &used, "report"),
            ("list", &list, "qemu_list"),
            ("verify", &verify, "qemu_verify"),
            ("gc --dry-run", &gc_dry, "qemu_gc"),
            ("gc", &gc, "qemu_gc"),
            ("verify of a tampered store", &verify_bad, "error"),
            ("verify output", &verify_bad["output"][0], "qemu_verify"),
        ],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // And they say what happened.
    let suites: Vec<&Value> = versions["archive"].as_array().unwrap().iter().collect();
    assert_eq!(suites.len(), 3, "{versions}");
    assert_eq!(suites[0]["suite"], "nosuch");
    assert!(suites[0]["error"].is_string(), "{versions}");
    assert_eq!(suites[2]["upstream"], "91.0", "{versions}");
    assert_eq!(
        versions["store"],
        serde_json::json!([]),
        "fetched nothing yet"
    );
    assert_eq!(dry["action"], "would-store", "{dry}");
    assert_eq!(fetched["action"], "stored");
    assert_eq!(fetched["manifest"]["version"], "91.0+ds-1");
    assert_eq!(fetched["manifest"]["verified"], true);
    let cpus: Vec<&str> = fetched["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cpu"].as_str().unwrap())
        .collect();
    assert_eq!(cpus, ["aarch64", "riscv64"], "qemu-img is no interpreter");
    assert_eq!(again["action"], "already-stored");
    assert_eq!(local["manifest"]["verified"], false);
    assert_eq!(local["manifest"]["suite"], "local");
    assert_eq!(gc_empty["gc"], serde_json::json!([]));
    assert!(r.stdout.contains("== gc-empty-rc 0"), "{}", r.stdout);
    assert_eq!(used["summary"]["replaced"], 1, "{used}");
    let listed: Vec<(&str, &Value)> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), &v["used_by"]))
        .collect();
    assert_eq!(
        listed,
        [
            ("90.1+ds-1", &serde_json::json!([])),
            ("91.0+ds-1", &serde_json::json!(["qemu-aarch64"]))
        ],
        "{list}"
    );
    assert!(
        verify["versions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["ok"] == true),
        "{verify}"
    );
    let rows = |d: &Value| -> Vec<(String, String)> {
        d["gc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["version"].to_string(), r["action"].to_string()))
            .collect()
    };
    let want = |first: &str| {
        vec![
            ("\"90.1+ds-1\"".to_owned(), format!("\"{first}\"")),
            ("\"91.0+ds-1\"".to_owned(), "\"kept\"".to_owned()),
        ]
    };
    assert_eq!(rows(&gc_dry), want("would-remove"), "{gc_dry}");
    assert_eq!(rows(&gc), want("removed"), "{gc}");
    assert_eq!(gc["gc"][1]["used_by"], serde_json::json!(["qemu-aarch64"]));
    assert!(r.stdout.contains("== verify-bad-rc 1"), "{}", r.stdout);
    let bad = verify_bad["output"][0]["versions"].as_array().unwrap();
    assert!(
        bad.iter().any(|v| v["ok"] == false
            && v["problems"].to_string().contains("qemu-riscv64: sha256")),
        "{verify_bad}"
    );
    assert!(
        bad.iter()
            .any(|v| v["dir"].as_str().is_some_and(|d| d.ends_with("/92.0"))),
        "{verify_bad}"
    );
}

/// `nix status` and `nix machines` with Debian's Nix reading a configuration in a temporary
/// directory, against handlers in a private binfmt_misc instance.
#[test]
fn nix_json_outputs_match_the_documented_schema() {
    gate!(Root);
    assert!(
        std::path::Path::new("/usr/bin/nix").exists(),
        "Nix is not installed: run scripts/deps.sh (as root) first"
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().display().to_string();
    let conf = t.path().join("etc-nix");
    std::fs::create_dir(&conf).unwrap();
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(
        t.path().join("host.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJsonTestKeyOnly root@builder1\n",
    )
    .unwrap();
    let (conf_s, home_s) = (conf.display().to_string(), home.display().to_string());
    let state = t.path().join("nix-state").display().to_string();
    let r = ns_with(
        &[
            ("NIX_CONF_DIR", &conf_s),
            ("HOME", &home_s),
            ("XDG_CACHE_HOME", &format!("{home_s}/.cache")),
            ("NIX_STATE_DIR", &state),
        ],
        &format!(
            r#"
printf 'substituters =\nbuild-users-group =\nextra-platforms = riscv64-linux\n' > $NIX_CONF_DIR/nix.conf
$B install arm64 --nix >/dev/null 2>&1 || exit 90
$B install s390x >/dev/null 2>&1 || exit 91
echo "== status"; $B nix status --json
echo "== machines"; $B nix machines --host ssh-ng://builder1 --max-jobs 2 --host-key {dir}/host.pub --json
echo "== plain-status"; $B status --json
"#
        ),
        true,
    );
    r.expect("the script ran", r.code == 0);
    let status = docs(&r.section("status"));
    let machines = docs(&r.section("machines"));
    let plain = docs(&r.section("plain-status"));
    assert_eq!(
        (status.len(), machines.len(), plain.len()),
        (1, 1, 1),
        "{}",
        r.stderr
    );
    let (status, machines, plain) = (&status[0], &machines[0], &plain[0]);
    let failures = validate(
        &schema(),
        &[
            ("nix status", status, "nix_status"),
            ("nix machines", machines, "nix_machines"),
            ("status with Nix kept in step", plain, "status"),
        ],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What they say: aarch64 works and binfmtctl told Nix; riscv64 is claimed without a
    // handler; s390x works but Nix is not told.
    let row = |system: &str| -> &Value {
        status["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["system"] == system)
            .unwrap_or_else(|| panic!("no {system} row: {status}"))
    };
    let aarch64 = row("aarch64-linux");
    assert_eq!(
        (
            &aarch64["accepted"],
            &aarch64["from_binfmtctl"],
            &aarch64["handler"]["state"]
        ),
        (
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::from("works")
        ),
        "{status}"
    );
    assert_eq!(aarch64["handler"]["entry"], "qemu-aarch64");
    assert_eq!(row("riscv64-linux")["handler"]["state"], "no-handler");
    assert!(row("riscv64-linux")["problem"].is_string(), "{status}");
    let s390x = row("s390x-linux");
    assert_eq!(
        (&s390x["accepted"], &s390x["source"]),
        (&Value::Bool(false), &Value::from("handler")),
        "{status}"
    );
    assert_eq!(status["included"], true);
    assert_eq!(
        status["binfmtctl"]["arches"]["aarch64"]["systems"],
        serde_json::json!(["aarch64-linux"]),
        "{status}"
    );
    assert_eq!(status["warnings"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(
        machines["emulated"],
        serde_json::json!(["aarch64-linux"]),
        "{machines}"
    );
    let skipped: Vec<&Value> = machines["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["system"])
        .collect();
    assert_eq!(skipped, [&Value::from("s390x-linux")], "{machines}");
    let lines = machines["lines"].as_array().unwrap();
    assert_eq!(lines.len(), machines["machines"].as_array().unwrap().len());
    assert!(
        lines
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("ssh-ng://builder1 ")),
        "{machines}"
    );
    assert_eq!(machines["machines"][0]["max_jobs"], 2);
    assert_eq!(machines["machines"][0]["ssh_key"], Value::Null);
    assert!(
        machines["machines"][0]["host_key"].is_string(),
        "{machines}"
    );
    // binfmtctl's own status: s390x is registered, but binfmtctl.conf does not tell Nix.
    let hints = plain["nix_warnings"].as_array().unwrap();
    assert!(
        hints.len() == 1 && hints[0].as_str().unwrap().contains("qemu-s390x"),
        "{plain}"
    );
}

/// docs/json.md documents every schema, and names the file the test reads.
#[test]
fn json_doc_covers_every_schema() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md"))
        .expect("docs/json.md exists");
    assert!(doc.contains("schemas/binfmtctl.schema.json"));
    let schema = schema();
    for def in schema["$defs"].as_object().unwrap().keys() {
        assert!(
            doc.contains(&format!("`{def}`")),
            "docs/json.md does not document $defs/{def}"
        );
    }
}

/// `--json` is honoured where docs/cli.md says every command takes it, or refused (exit 2,
/// an error object naming what to do) where it cannot apply (issue 21, item 10).
#[test]
fn json_is_honoured_or_refused_never_ignored() {
    gate!(Root);
    let r = ns(r#"
echo "== cross"; $B cross env --arch arm64 --json; echo "== rc $?"
echo "== cross-fish"; $B cross env --arch arm64 --format fish --json 2>/dev/null; echo "== rc $?"
echo "== export"; $B export --format binfmt.d --json arm64 2>/dev/null; echo "== rc $?"
echo "== export-json"; $B export --format json --json arm64; echo "== rc $?"
echo "== run"; $B run --json --rootfs /nonexistent -- true 2>/dev/null; echo "== rc $?"
echo "== build"; $B build --json --arch arm64 -- true 2>/dev/null; echo "== rc $?"
"#);
    let s = schema();
    let cross = docs(&r.section("cross"));
    r.expect(
        "cross env --json is --format json",
        errors(&s, "cross_env", &cross[0]).is_empty(),
    );
    r.expect(
        "cross env --json: exit 0",
        r.stdout.contains("== rc 0\n== cross-fish"),
    );
    for (case, next, says) in [
        (
            "cross-fish",
            "export",
            "`cross env --json` is --format json",
        ),
        ("export", "export-json", "use --format json"),
        ("run", "build", "leave --json out"),
        ("build", "", "leave --json out"),
    ] {
        let section = r.section(case);
        let doc = docs(&section)[0].clone();
        r.expect(
            &format!("{case}: refused with an error object that says what to do"),
            errors(&s, "error", &doc).is_empty()
                && doc["error"]["exit_code"] == 2
                && doc["error"]["message"].as_str().unwrap().contains(says),
        );
        let rc = if next.is_empty() {
            r.stdout.trim_end().ends_with("== rc 2")
        } else {
            r.stdout.contains(&format!("== rc 2\n== {next}"))
        };
        r.expect(&format!("{case}: exit 2"), rc);
    }
    r.expect(
        "export --format json --json still works",
        r.stdout.contains("== rc 0\n== run"),
    );
}
