//! Every `--json` output of the real binary, produced in a private binfmt_misc instance with
//! real interpreters and binaries, validated against the schemas in
//! docs/schemas/binfmtctl.schema.json — the same file docs/json.md documents.

mod common;

use common::ns;
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
    let rootfs = tempfile::tempdir().unwrap();
    common::busybox_rootfs(rootfs.path());
    let r = ns(&(format!("\nROOT={}", rootfs.path().display())
        + r#"
T=$(mktemp -d)
printf 'arches = ["riscv64"]\n' > $T/config.toml
echo "== install"; $B install arm64,armhf --json
echo "== install-dry"; $B install arm64 --dry-run --json
echo "== run"; $B run --json --rootfs $ROOT -- sh -c 'echo to-the-terminal >&2; exit 3'; echo "== run-rc $?"
echo "== entrypoint"; $B --install riscv64 --json --flags F --keep-existing
echo "== status"; $B status --json
echo "== interpreters"; $B interpreters --json
echo "== inspect"; $B inspect $A/busybox-arm64 $A/hello-arm64-dynamic $A/busybox-i386 --json
echo "== inspect-fail"; $B inspect $A/busybox-arm64 /nonexistent --json
echo "== scan"; $B scan $A --json --files
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
    let run = check("run", &["error"]);
    check("entrypoint", &["report", "status"]);
    let status = check("status", &["status"]);
    check("interpreters", &["interpreters"]);
    check("inspect", &["inspect"]);
    let fail = check("inspect-fail", &["error"]);
    check("scan", &["scan"]);
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
    // The sandboxed command's own status passes through, and says so.
    assert_eq!(run[0]["error"]["kind"], "command-exited", "{}", run[0]);
    assert_eq!(run[0]["error"]["exit_code"], 3);
    assert!(r.stdout.contains("== run-rc 3"), "{}", r.stdout);
    assert_eq!(fail[0]["error"]["kind"], "failed");
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
