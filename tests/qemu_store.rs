//! The QEMU store end to end: a Debian-style archive built and signed by the test (its own
//! OpenPGP key, InRelease, Packages, and .debs holding the system's real static QEMU),
//! served from 127.0.0.1, then tampered with piece by piece; the store's atomicity under
//! kill -9, concurrency, a full or read-only disk; and `install --qemu` / `qemu use` /
//! `qemu gc` against a private binfmt_misc instance. `real_archive_*` fetch bookworm's and
//! trixie's QEMU from the Debian mirror in apt's sources (cached across runs).

#[path = "common/archive.rs"]
mod archive;
#[macro_use]
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use archive::{ARM_ONLY, FULL, Serve, Suite, TestArchive, make_deb, new_key, sha};
use common::{Run, bin, ns_with};

/// The store holds exactly these version directories and nothing half-made.
#[track_caller]
fn assert_store(store: &Path, versions: &[&str], r: &Run) {
    let mut names: Vec<String> = std::fs::read_dir(store)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    r.expect(
        &format!("the store holds exactly {versions:?}, found {names:?}"),
        names == versions,
    );
}

// ---------------------------------------------------------------- tests

#[test]
fn fetch_verifies_the_chain_and_stores_a_manifest() {
    gate!(Root);
    let a = TestArchive::new();
    let r = a.run(&["qemu", "fetch", "91.0"]);
    r.expect("fetch succeeds", r.code == 0);
    r.expect(
        "reports the version, suite and both interpreters",
        r.stdout
            .contains("stored QEMU 91.0+ds-1 (qemu-user 1:91.0+ds-1 from testb)")
            && r.stdout.contains("2 interpreters (aarch64 riscv64)"),
    );
    assert_store(&a.store(), &["91.0+ds-1"], &r);
    let bin = a.store().join("91.0+ds-1/bin");
    let mut files: Vec<String> = std::fs::read_dir(&bin)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["qemu-aarch64", "qemu-riscv64"],
        "qemu-img is not an interpreter"
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(bin.join("qemu-aarch64")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o755, 0));
    assert_eq!(
        std::fs::read(bin.join("qemu-aarch64")).unwrap(),
        std::fs::read("/usr/bin/qemu-aarch64-static").unwrap()
    );
    let l = a.run(&["qemu", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    let ver = &v["versions"][0];
    assert_eq!(ver["version"], "91.0+ds-1");
    assert_eq!(ver["suite"], "testb");
    assert_eq!(ver["package"], "qemu-user");
    assert_eq!(ver["verified"], true);
    assert_eq!(
        ver["deb_sha256"].as_str().unwrap(),
        sha(&make_deb_cached_sha(&a, "1:91.0+ds-1"))
    );
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.store().join("91.0+ds-1/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m["files"][0]["sha256"].as_str().unwrap(),
        sha(&std::fs::read("/usr/bin/qemu-aarch64-static").unwrap())
    );
    // Fetching again changes nothing; a suite name works too.
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "second fetch is a no-op",
        r.code == 0 && r.stdout.contains("already-stored"),
    );
    // verify: clean, then a tampered interpreter is caught.
    let r = a.run(&["qemu", "verify"]);
    r.expect(
        "verify passes",
        r.code == 0 && r.stdout.contains("ok       91.0+ds-1"),
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(bin.join("qemu-riscv64"))
        .unwrap();
    f.write_all(b"x").unwrap();
    std::fs::write(bin.join("qemu-extra"), b"x").unwrap();
    std::fs::create_dir(a.store().join("92.0")).unwrap();
    let r = a.run(&["qemu", "verify"]);
    r.expect(
        "verify reports a version directory without manifest",
        r.code == 1 && r.stdout.contains("92.0/manifest.json: bad manifest"),
    );
    let r = a.run(&["qemu", "verify"]);
    r.expect(
        "verify reports the tampered and the added file, exit 1",
        r.code == 1
            && r.stdout.contains("qemu-riscv64: sha256")
            && r.stdout.contains("qemu-extra: not in the manifest"),
    );
}

fn make_deb_cached_sha(a: &TestArchive, version: &str) -> Vec<u8> {
    a.server
        .files
        .lock()
        .unwrap()
        .get(&format!("/debian/{}", a.deb_path(version)))
        .unwrap()
        .0
        .clone()
}

/// A mirror in the middle of a sync: the plain `Packages` is already the next one (the fresh
/// InRelease does not vouch for it), while the by-hash copy is the vouched-for file. With
/// `Acquire-By-Hash: yes` the fetch takes the by-hash copy and succeeds; without it the same
/// mirror state is refused at step 2.
#[test]
fn a_mirror_mid_sync_is_read_by_hash() {
    gate!(Root);
    let a = TestArchive::new();
    let b = Suite {
        name: "testb",
        version: "1:91.0+ds-1",
        deb: make_deb_cached_sha(&a, "1:91.0+ds-1"),
    };
    let next_sync = |a: &TestArchive| {
        let mut m = a.server.files.lock().unwrap();
        let p = m
            .get_mut("/debian/dists/testb/main/binary-amd64/Packages")
            .unwrap();
        p.0.extend_from_slice(b"Package: hello\nVersion: 2\n\n");
    };
    a.publish(&b, None);
    next_sync(&a);
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "without by-hash the newer plain index is refused",
        r.code == 1 && r.stderr.contains("step 2 (Packages index)"),
    );
    assert_store(&a.store(), &[], &r);
    a.publish_with(&b, None, true);
    next_sync(&a);
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect("by hash the vouched-for index is used", r.code == 0);
    assert_store(&a.store(), &["91.0+ds-1"], &r);
}

/// The test archive with both of its versions (90.1, 91.0) fetched into its store.
fn archive_with_both_versions() -> TestArchive {
    let a = TestArchive::new();
    for v in ["90.1", "91.0"] {
        let r = a.run(&["qemu", "fetch", v]);
        r.expect("fetch", r.code == 0);
    }
    a
}

#[test]
fn every_tampered_piece_is_refused_and_nothing_is_stored() {
    gate!(Root);
    let a = TestArchive::new();
    let original: HashMap<String, (Vec<u8>, Serve)> = a.server.files.lock().unwrap().clone();
    let restore = || *a.server.files.lock().unwrap() = original.clone();
    let edit = |path: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut m = a.server.files.lock().unwrap();
        f(&mut m.get_mut(&format!("/debian/{path}")).unwrap().0);
    };
    // 1. Signed by a key the keyring does not hold.
    let other = new_key("someone else");
    let b = Suite {
        name: "testb",
        version: "1:91.0+ds-1",
        deb: make_deb_cached_sha(&a, "1:91.0+ds-1"),
    };
    a.publish(&b, Some(&other));
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "foreign signature refused at step 1",
        r.code == 1
            && r.stderr.contains("step 1 (InRelease signature)")
            && r.stderr.contains("bad signature"),
    );
    assert_store(&a.store(), &[], &r);
    restore();
    // 2. The signed text altered (a hash swapped in the SHA256 list).
    edit("dists/testb/InRelease", &|b| {
        let s = String::from_utf8(b.clone())
            .unwrap()
            .replacen("Origin: Test", "Origin: Evil", 1);
        *b = s.into_bytes();
    });
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "altered InRelease refused at step 1",
        r.code == 1 && r.stderr.contains("bad signature"),
    );
    assert_store(&a.store(), &[], &r);
    restore();
    // 3. Not signed at all.
    edit("dists/testb/InRelease", &|b| {
        *b = b"Origin: Test\nSuite: testb\n".to_vec()
    });
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "unsigned InRelease refused",
        r.code == 1 && r.stderr.contains("not a cleartext-signed"),
    );
    restore();
    // 4. Another suite's validly signed InRelease replayed.
    let testa = original["/debian/dists/testa/InRelease"].0.clone();
    edit("dists/testb/InRelease", &|b| *b = testa.clone());
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "replayed InRelease refused",
        r.code == 1 && r.stderr.contains("another suite"),
    );
    restore();
    // 5. Packages altered (a version bumped).
    edit("dists/testb/main/binary-amd64/Packages", &|b| {
        let s = String::from_utf8(b.clone())
            .unwrap()
            .replace("91.0", "99.0");
        *b = s.into_bytes();
    });
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "tampered Packages refused at step 2",
        r.code == 1 && r.stderr.contains("step 2 (Packages index)"),
    );
    assert_store(&a.store(), &[], &r);
    restore();
    // 6. .deb altered (one byte, same length).
    let deb = a.deb_path("1:91.0+ds-1");
    edit(&deb, &|b| {
        let n = b.len() - 10;
        b[n] ^= 0xff;
    });
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "tampered .deb refused at step 3",
        r.code == 1 && r.stderr.contains("step 3 (.deb)"),
    );
    assert_store(&a.store(), &[], &r);
    restore();
    // 7. Truncated download.
    a.server.set(&deb, Serve::Truncate);
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "truncated .deb refused",
        r.code != 0 && (r.stderr.contains("truncated") || r.stderr.contains("closed early")),
    );
    assert_store(&a.store(), &[], &r);
    restore();
    // And the untouched archive still works afterwards.
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect("good fetch after all that", r.code == 0);
    assert_store(&a.store(), &["91.0+ds-1"], &r);
}

#[test]
fn stalls_no_network_and_bad_requests_get_clear_errors() {
    gate!(Root);
    let a = TestArchive::new();
    a.server.set("dists/testb/InRelease", Serve::Stall);
    let t = Instant::now();
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "a stalled server times out with exit 3",
        r.code == 3 && r.stderr.contains("timed out") && t.elapsed() < Duration::from_secs(30),
    );
    assert_store(&a.store(), &[], &r);
    a.server.set("dists/testb/InRelease", Serve::Normal);
    // Nothing listens on port 1 of the loopback.
    let o = Command::new(bin())
        .args([
            "qemu",
            "fetch",
            "testb",
            "--mirror",
            "http://127.0.0.1:1/debian",
            "--keyring",
        ])
        .arg(&a.keyring)
        .arg("--qemu-store")
        .arg(a.store())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cannot reach http://127.0.0.1:1/debian/dists/testb/InRelease"),
        "{err}"
    );
    let r = a.run(&["qemu", "fetch", "nosuchsuite"]);
    r.expect(
        "unknown suite: exit 2",
        r.code == 2 && r.stderr.contains("unknown suite \"nosuchsuite\""),
    );
    let r = a.run(&["qemu", "fetch", "42.7"]);
    r.expect(
        "unknown version: exit 2, naming what is offered",
        r.code == 2
            && r.stderr.contains("no suite offers QEMU 42.7")
            && r.stderr.contains("testb 91.0"),
    );
    let o = Command::new(bin())
        .args([
            "qemu",
            "fetch",
            "91.0",
            "--mirror",
            "ftp://x/debian",
            "--qemu-store",
        ])
        .arg(a.store())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad mirror URL \"ftp://x/debian\""), "{err}");
    let r = a.run(&["install", "arm64", "--qemu", "91.0", "--dry-run"]);
    r.expect(
        "install --qemu of a version not in the store: exit 2 and the fix",
        r.code == 2 && r.stderr.contains("binfmtctl qemu fetch 91.0"),
    );
    assert_store(&a.store(), &[], &r);
    // `versions` lists both suites.
    let r = a.run(&["qemu", "versions"]);
    r.expect(
        "versions shows each suite",
        r.code == 0 && r.stdout.contains("testa") && r.stdout.contains("91.0"),
    );
}

/// A mirror that trickles `InRelease` a byte every 200 ms never trips the per-read timeout;
/// the request's total deadline (10 x `--timeout`) ends it, naming the step and the URL (it
/// ran until the server gave up). An `InRelease` larger than apt's 10 MiB cap is refused as
/// such, not read whole.
#[test]
fn a_trickling_mirror_meets_the_deadline_and_the_step_is_named() {
    let a = TestArchive::without_qemu();
    a.server.set("dists/testb/InRelease", Serve::Trickle);
    let mut args = a.net_args(&a.store());
    let t = args.iter().position(|x| x == "--timeout").unwrap();
    args[t + 1] = "1".into();
    let started = Instant::now();
    let o = Command::new(bin())
        .args(["qemu", "fetch", "testb"])
        .args(&args)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    let r = Run::of(o);
    let took = started.elapsed();
    let url = format!("{}/dists/testb/InRelease", a.server.url());
    r.expect(
        "exit 3 after the 10 s deadline, naming the step and the URL",
        r.code == 3
            && r.stderr.contains(&format!(
                "step 1 (InRelease): {url} did not finish within its deadline of 10 s"
            ))
            && took >= Duration::from_secs(9)
            && took < Duration::from_secs(25),
    );
    assert_store(&a.store(), &[], &r);
    // An InRelease of 11 MiB: refused at the cap, naming it.
    a.server
        .put("dists/testb/InRelease", vec![b'x'; 11 << 20], Serve::Normal);
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "an oversized InRelease is refused at 10 MiB",
        r.code == 1
            && r.stderr.contains(&format!(
                "step 1 (InRelease): {url} is larger than 10485760 bytes"
            )),
    );
    assert_store(&a.store(), &[], &r);
}

/// An unsafe `--cache` is exit 2 before the first request reaches the mirror (it was checked
/// only once `InRelease` had been downloaded), for `fetch` by suite and by version and for
/// `versions`.
#[test]
fn an_unsafe_cache_is_refused_before_anything_is_fetched() {
    use std::os::unix::fs::PermissionsExt;
    let a = TestArchive::without_qemu();
    let shared = a.tmp.path().join("shared-cache");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = shared.display().to_string();
    for args in [
        &["qemu", "fetch", "testb", "--cache", &c][..],
        &["qemu", "fetch", "91.0", "--cache", &c][..],
        &["qemu", "versions", "--cache", &c][..],
    ] {
        let r = a.run(args);
        r.expect(
            "exit 2 naming the cache",
            r.code == 2
                && r.stderr.contains(&format!(
                    "the cache directory {c} is unsafe: it is writable by group or others"
                )),
        );
        let seen = a.server.requests.lock().unwrap().clone();
        r.expect(
            &format!("no request reached the mirror, saw {seen:?}"),
            seen.is_empty(),
        );
        assert_store(&a.store(), &[], &r);
    }
}

#[test]
fn full_or_read_only_store_changes_nothing() {
    gate!(Root);
    let a = TestArchive::new();
    // A 1 MiB tmpfs (the interpreters are several MiB), and a read-only one, each in a
    // private mount namespace that dies with the script.
    let args = a
        .net_args(Path::new("/x"))
        .join(" ")
        .replace("--qemu-store /x", "");
    let script = format!(
        r#"
d=$(mktemp -d); mount -t tmpfs -o size=1m none $d || exit 97
mkdir $d/s
echo "== full"; $B qemu fetch testb {args} --qemu-store $d/s 2>&1; echo "rc=$?"; ls -A $d/s
mount -t tmpfs -o ro none $d || exit 97
echo "== ro"; $B qemu fetch testb {args} --qemu-store $d/s 2>&1; echo "rc=$?"; ls -A $d
umount $d; umount $d; rmdir $d
"#
    );
    let r = ns_with(&[("NO_PROXY", "127.0.0.1")], &script, false);
    let full = r.section("full");
    r.expect(
        "disk full: exit 3, named, nothing left but the lock",
        full.contains("rc=3")
            && full.contains("disk is full")
            && full.trim_end().ends_with(".lock"),
    );
    let ro = r.section("ro");
    r.expect(
        "read-only store: exit 3, named",
        ro.contains("rc=3") && ro.contains("read-only"),
    );
}

#[test]
fn kill_9_during_fetch_leaves_no_usable_version() {
    gate!(Root);
    let a = TestArchive::new();
    let deb = a.deb_path("1:91.0+ds-1");
    a.server.set(&deb, Serve::Stall);
    let mut child = Command::new(bin())
        .args(["qemu", "fetch", "testb"])
        .args(
            a.net_args(&a.store())
                .iter()
                .map(|s| if s == "2" { "30".into() } else { s.clone() }),
        )
        .env("NO_PROXY", "127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the staging directory exists (the download has started), then kill -9.
    let end = Instant::now() + Duration::from_secs(30);
    let staged = || {
        std::fs::read_dir(a.store()).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        })
    };
    while !staged() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(staged(), "the fetch never started staging");
    child.kill().unwrap();
    child.wait().unwrap();
    let r = a.run(&["qemu", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    r.expect(
        "no version is listed",
        v["versions"].as_array().unwrap().is_empty(),
    );
    let r = a.run(&["install", "arm64", "--qemu", "91.0", "--dry-run"]);
    r.expect("install cannot use the half version", r.code == 2);
    // The next fetch cleans up and succeeds.
    a.server.set(&deb, Serve::Normal);
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect("fetch after the kill succeeds", r.code == 0);
    assert_store(&a.store(), &["91.0+ds-1"], &r);
}

#[test]
fn two_fetches_of_one_version_at_once_store_it_once() {
    gate!(Root);
    let a = TestArchive::new();
    let spawn = || {
        Command::new(bin())
            .args(["qemu", "fetch", "91.0"])
            .args(a.net_args(&a.store()))
            .env("NO_PROXY", "127.0.0.1")
            .output()
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(spawn);
        let y = s.spawn(spawn);
        (x.join().unwrap().unwrap(), y.join().unwrap().unwrap())
    });
    let out = format!(
        "{}{}{}{}",
        String::from_utf8_lossy(&x.stdout),
        String::from_utf8_lossy(&x.stderr),
        String::from_utf8_lossy(&y.stdout),
        String::from_utf8_lossy(&y.stderr)
    );
    assert!(x.status.success() && y.status.success(), "{out}");
    assert!(
        out.contains("stored QEMU 91.0") && out.contains("already-stored QEMU 91.0"),
        "one stores, the other finds it: {out}"
    );
    let r = a.run(&["qemu", "verify"]);
    r.expect("the version is whole", r.code == 0);
    assert_store(&a.store(), &["91.0+ds-1"], &r);
}

/// binfmtctl with a private temporary directory (where a dry run unpacks), and what is left
/// in it afterwards.
fn run_with_tmpdir(a: &TestArchive, args: &[&str]) -> (Run, Vec<String>) {
    let tmp = a.tmp.path().join("tmpdir");
    std::fs::create_dir_all(&tmp).unwrap();
    let o = Command::new(bin())
        .args(args)
        .env("NO_PROXY", "127.0.0.1")
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let left = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    (Run::of(o), left)
}

#[test]
fn fetch_dry_run_checks_the_chain_and_stores_nothing() {
    gate!(Root);
    let a = TestArchive::new();
    let store = a.store();
    let net = a.net_args(&store);
    let net: Vec<&str> = net.iter().map(String::as_str).collect();
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = vec!["qemu", "fetch"];
        v.extend_from_slice(extra);
        v.extend_from_slice(&net);
        v
    };
    let (r, left) = run_with_tmpdir(&a, &args(&["91.0", "--dry-run"]));
    r.expect(
        "a dry run reports what it would store",
        r.code == 0
            && r.stdout
                .contains("would-store QEMU 91.0+ds-1 (qemu-user 1:91.0+ds-1 from testb)")
            && r.stdout.contains("2 interpreters (aarch64 riscv64)")
            && r.stdout.contains("dry run: nothing was stored"),
    );
    r.expect("the scratch directory is removed", left.is_empty());
    assert_store(&store, &[], &r);
    let (r, _) = run_with_tmpdir(&a, &args(&["91.0", "--dry-run", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["action"], "would-store", "{v}");
    assert_eq!(v["manifest"]["verified"], true, "{v}");
    assert_eq!(
        v["manifest"]["files"][0]["sha256"].as_str().unwrap(),
        sha(&std::fs::read("/usr/bin/qemu-aarch64-static").unwrap())
    );
    assert_eq!(v["dir"], store.join("91.0+ds-1").display().to_string());
    assert_store(&store, &[], &r);
    // The chain is checked on a dry run too: a .deb that is not what Packages says fails.
    let deb = a.deb_path("1:91.0+ds-1");
    a.server.set(&deb, Serve::Truncate);
    let (r, left) = run_with_tmpdir(&a, &args(&["91.0", "--dry-run"]));
    r.expect("a truncated .deb fails the dry run", r.code != 0);
    r.expect("and leaves no scratch directory", left.is_empty());
    assert_store(&store, &[], &r);
    a.server.set(&deb, Serve::Normal);
    // --from-deb honours --dry-run.
    let local = a.tmp.path().join("qemu-user-static_7.2_amd64.deb");
    std::fs::write(&local, make_deb(ARM_ONLY)).unwrap();
    let s = store.display().to_string();
    let (r, left) = run_with_tmpdir(
        &a,
        &[
            "qemu",
            "fetch",
            "--from-deb",
            local.to_str().unwrap(),
            "--dry-run",
            "--qemu-store",
            &s,
        ],
    );
    r.expect(
        "a local .deb on a dry run: checked, not stored",
        r.code == 0
            && r.stdout.contains("would-store QEMU")
            && r.stdout.contains("origin: unverified")
            && left.is_empty(),
    );
    assert_store(&store, &[], &r);
    // Once stored, a dry run says so.
    a.run(&["qemu", "fetch", "91.0"])
        .expect("fetch", a.store().join("91.0+ds-1").is_dir());
    let (r, _) = run_with_tmpdir(&a, &args(&["testb", "--dry-run"]));
    r.expect(
        "already stored",
        r.code == 0 && r.stdout.contains("already-stored QEMU 91.0+ds-1"),
    );
}

/// The config's qemu_mirror and qemu_keyring stand in for --mirror and --keyring; the flags win.
#[test]
fn fetch_takes_the_mirror_and_keyring_from_the_config() {
    gate!(Root);
    let a = TestArchive::new();
    let cfg = a.tmp.path().join("config.toml");
    let store = a.store().display().to_string();
    let fetch = |extra: &[&str]| {
        let mut v = vec![
            "qemu",
            "fetch",
            "91.0",
            "--config",
            cfg.to_str().unwrap(),
            "--suite",
            "testb",
            "--timeout",
            "2",
            "--qemu-store",
            &store,
        ];
        v.extend_from_slice(extra);
        let o = Command::new(bin())
            .args(&v)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap();
        Run::of(o)
    };
    std::fs::write(
        &cfg,
        format!(
            "arches = [\"arm64\"]\nqemu_mirror = \"{}\"\nqemu_keyring = \"{}\"\n",
            a.server.url(),
            a.keyring.display()
        ),
    )
    .unwrap();
    let r = fetch(&["--dry-run"]);
    r.expect(
        "the config's mirror and keyring are used",
        r.code == 0 && r.stdout.contains("would-store QEMU 91.0+ds-1"),
    );
    // A config mirror that serves nothing, overridden by --mirror.
    std::fs::write(
        &cfg,
        format!(
            "arches = [\"arm64\"]\nqemu_mirror = \"http://127.0.0.1:9/debian\"\nqemu_keyring = \"{}\"\n",
            a.keyring.display()
        ),
    )
    .unwrap();
    let r = fetch(&[]);
    r.expect("the config's unreachable mirror: exit 3", r.code == 3);
    let url = a.server.url();
    let r = fetch(&["--mirror", &url]);
    r.expect("--mirror wins over the config", r.code == 0);
    assert_store(&a.store(), &["91.0+ds-1"], &r);
    // A bad key names file, line and column.
    std::fs::write(&cfg, "arches = [\"arm64\"]\nqemu_mirror = \"ftp://x\"\n").unwrap();
    let r = fetch(&[]);
    r.expect(
        "a bad qemu_mirror: exit 2 with its position",
        r.code == 2
            && r.stderr
                .contains("config.toml:2:15: qemu_mirror \"ftp://x\""),
    );
}

/// `--cache DIR` keeps verified indexes and .debs, written by root: a directory others may
/// write (or one they own) is refused before anything is fetched, since they could plant
/// symlinks there for root to write through; in a safe one, a symlink planted at a cache
/// name is replaced, never written through, and the fetch reuses what it cached.
#[test]
fn fetch_cache_refuses_a_directory_others_can_write_and_never_writes_through_links() {
    gate!(Root);
    use std::os::unix::fs::PermissionsExt;
    let a = TestArchive::new();
    let shared = a.tmp.path().join("shared-cache");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = shared.display().to_string();
    let r = a.run(&["qemu", "fetch", "testb", "--cache", &c]);
    r.expect(
        "a world-writable cache is refused, exit 2, nothing stored or cached",
        r.code == 2
            && r.stderr.contains(&format!(
                "the cache directory {c} is unsafe: it is writable by group or others (mode 777)"
            ))
            && std::fs::read_dir(&shared).unwrap().next().is_none(),
    );
    assert_store(&a.store(), &[], &r);
    // A safe cache: a link planted at the .deb's cache name is replaced by the file.
    let cache = a.tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let victim = a.tmp.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let deb_sha = sha(&make_deb_cached_sha(&a, "1:91.0+ds-1"));
    let name = cache.join(format!("deb-{deb_sha}"));
    std::os::unix::fs::symlink(&victim, &name).unwrap();
    let c = cache.display().to_string();
    let r = a.run(&["qemu", "fetch", "testb", "--cache", &c]);
    r.expect("fetched with a safe cache", r.code == 0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    let m = std::fs::symlink_metadata(&name).unwrap();
    assert!(m.file_type().is_file(), "{m:?}");
    assert_eq!(sha(&std::fs::read(&name).unwrap()), deb_sha);
}

#[test]
fn from_deb_is_recorded_as_unverified() {
    gate!(Root);
    let a = TestArchive::new();
    let deb = a.tmp.path().join("qemu-user-static_7.2_amd64.deb");
    // A FIFO (no writer: reading would block) and an endless device are refused at once,
    // before the store is touched.
    let fifo = a.tmp.path().join("fifo.deb");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (given, kind) in [
        (fifo.to_str().unwrap(), "is a FIFO"),
        ("/dev/zero", "is a character device"),
    ] {
        let r = a.run(&["qemu", "fetch", "--from-deb", given]);
        r.expect(
            "refused: exit 2",
            r.code == 2 && r.stderr.contains(kind) && r.stderr.contains("not a regular file"),
        );
        assert!(!a.store().exists(), "nothing stored for {given}");
    }
    std::fs::write(&deb, make_deb(ARM_ONLY)).unwrap();
    let r = a.run(&["qemu", "fetch", "--from-deb", deb.to_str().unwrap()]);
    r.expect(
        "stored",
        r.code == 0 && r.stdout.contains("origin: unverified"),
    );
    let l = a.run(&["qemu", "list"]);
    l.expect("list marks it", l.stdout.contains("local (unverified)"));
    std::fs::write(&deb, b"!<arch>\nnot really").unwrap();
    let r = a.run(&["qemu", "fetch", "--from-deb", deb.to_str().unwrap()]);
    r.expect(
        "a broken .deb: exit 2",
        r.code == 2 && r.stderr.contains("not a Debian package"),
    );
}

/// Stores the system's QEMU from a local .deb (unverified); returns (directory name, full
/// Debian version).
fn store_local_deb(a: &TestArchive, name: &str, files: &[(&str, &str)]) -> (String, String) {
    let deb = a.tmp.path().join(name);
    std::fs::write(&deb, make_deb(files)).unwrap();
    let r = a.run(&["qemu", "fetch", "--from-deb", deb.to_str().unwrap()]);
    r.expect("the local .deb is stored", r.code == 0);
    let l = a.run(&["qemu", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    let v = &v["versions"][0];
    (
        v["version"].as_str().unwrap().to_owned(),
        v["debian_version"].as_str().unwrap().to_owned(),
    )
}

/// `install --qemu VERSION --dry-run` in a private binfmt_misc instance: (exit, stderr).
fn install_dry_run(a: &TestArchive, version: &str) -> (String, String) {
    let s = a.store().display().to_string();
    let r = ns_with(
        &[],
        &format!(
            "$B install arm64 --qemu {version} --qemu-store {s} --dry-run >/dev/null; echo \"rc=$?\"\n"
        ),
        true,
    );
    (r.stdout.trim().to_owned(), r.stderr)
}

/// A verified copy always wins: a signed fetch of a version stored from a local .deb replaces
/// it (it said `already-stored` and kept the unverified one); a local .deb never replaces or
/// shadows a verified copy, and a second, different local .deb of a stored version is refused
/// (it was silently dropped). `install --qemu` warns on stderr when it registers an
/// unverified version.
#[test]
fn a_verified_copy_always_wins_over_a_local_deb_of_the_same_version() {
    gate!(Root);
    let a = TestArchive::new();
    let (dir, full) = store_local_deb(&a, "qemu-user-static_local_amd64.deb", ARM_ONLY);
    let (rc, err) = install_dry_run(&a, &dir);
    assert_eq!(rc, "rc=0", "{err}");
    assert!(
        err.contains(&format!(
            "binfmtctl: warning: QEMU {dir} in the store is unverified"
        )),
        "{err}"
    );
    // Another build of the same version, also local: refused, both hashes named.
    let other = a.tmp.path().join("qemu-user_other_amd64.deb");
    std::fs::write(&other, make_deb(FULL)).unwrap();
    let r = a.run(&["qemu", "fetch", "--from-deb", other.to_str().unwrap()]);
    r.expect(
        "a second local build of a stored version: exit 2 and the way out",
        r.code == 2
            && r.stderr
                .contains("is another build of that version, so nothing was stored")
            && r.stderr.contains(&format!("binfmtctl qemu gc {dir}")),
    );
    // The archive offers that very version: the signed fetch replaces the unverified copy.
    let version: &'static str = Box::leak(full.clone().into_boxed_str());
    let signed_deb = make_deb(FULL);
    let signed_sha = sha(&signed_deb);
    a.publish(
        &Suite {
            name: "testb",
            version,
            deb: signed_deb,
        },
        None,
    );
    let r = a.run(&["qemu", "fetch", "testb"]);
    r.expect(
        "the verified copy replaces the unverified one",
        r.code == 0
            && r.stdout.contains("stored QEMU")
            && r.stderr.contains("replaced by the verified one"),
    );
    assert_store(&a.store(), &[&dir], &r);
    let l = a.run(&["qemu", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    assert_eq!(v["versions"][0]["verified"], true, "{v}");
    assert_eq!(v["versions"][0]["deb_sha256"], signed_sha.as_str(), "{v}");
    assert_eq!(
        v["versions"][0]["arches"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    // A local .deb cannot displace it.
    let first = a.tmp.path().join("qemu-user-static_local_amd64.deb");
    let r = a.run(&["qemu", "fetch", "--from-deb", first.to_str().unwrap()]);
    r.expect(
        "a local .deb of a version stored verified: exit 2, the verified copy kept",
        r.code == 2 && r.stderr.contains("a verified copy always wins"),
    );
    let l = a.run(&["qemu", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    assert_eq!(v["versions"][0]["verified"], true, "{v}");
    let (rc, err) = install_dry_run(&a, &dir);
    assert_eq!(rc, "rc=0", "{err}");
    assert!(!err.contains("unverified"), "{err}");
}

/// A manifest is checked when read: a non-ASCII `deb_sha256` made `qemu list` panic (exit
/// 101) and `qemu verify` call the version ok. Now list leaves it out with a warning, verify
/// fails naming the file and the field, and install says why it cannot use the version.
#[test]
fn a_malformed_manifest_is_a_verify_failure_and_a_clear_error_elsewhere() {
    gate!(Root);
    let a = TestArchive::new();
    let (dir, _) = store_local_deb(&a, "qemu-user-static_local_amd64.deb", ARM_ONLY);
    let path = a.store().join(&dir).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["deb_sha256"] = "é".repeat(32).into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let field = format!(
        "{}: bad manifest (field deb_sha256: \"{}\" is not 64 lowercase hex digits)",
        path.display(),
        "é".repeat(32)
    );
    let r = a.run(&["qemu", "list"]);
    r.expect(
        "list does not panic; it warns about the version it leaves out",
        r.code == 0 && r.stderr.contains(&field) && !r.stdout.contains(&dir),
    );
    let r = a.run(&["qemu", "verify"]);
    r.expect(
        "verify fails, naming the manifest and the field",
        r.code == 1 && r.stdout.contains(&field),
    );
    let (rc, err) = install_dry_run(&a, &dir);
    assert!(rc == "rc=1" && err.contains(&field), "{rc} {err}");
}

#[test]
fn install_use_and_gc_through_a_private_binfmt_misc() {
    gate!(Root);
    let a = archive_with_both_versions();
    let s = a.store().display().to_string();
    let script = format!(
        r#"
S={s}
echo "== install"; $B install arm64,riscv64 --qemu 91.0 --qemu-store $S; echo "rc=$?"
echo "== run"; $A/busybox-arm64 uname -m; $A/hello-riscv64; echo "rc=$?"
echo "== status"; $B status --qemu-store $S
echo "== interpreters"; $B interpreters arm64 --qemu-store $S
echo "== interpreters-json"; $B interpreters arm64 --json --qemu-store $S
echo "== list"; $B qemu list --qemu-store $S
echo "== use-missing"; $B qemu use 90.1 --qemu-store $S 2>&1; echo "rc=$?"; grep interpreter $R/qemu-aarch64 $R/qemu-riscv64
echo "== gc-used"; $B qemu gc 91.0 --qemu-store $S 2>&1; echo "rc=$?"
echo "== gc"; $B qemu gc --qemu-store $S 2>&1; echo "rc=$?"; ls $S
echo "== system"; $B qemu use system --qemu-store $S 2>&1; echo "rc=$?"; grep interpreter $R/qemu-aarch64 $R/qemu-riscv64
"#
    );
    let r = ns_with(&[], &script, true);
    let install = r.section("install");
    r.expect(
        "install --qemu registers the store's interpreters",
        install.contains("rc=0") && install.contains(&format!("{s}/91.0+ds-1/bin/qemu-aarch64")),
    );
    r.expect(
        "they run real foreign binaries",
        r.section("run").contains("aarch64\nhello from riscv64"),
    );
    r.expect(
        "status names the store version",
        r.section("status").contains("[store 91.0+ds-1]"),
    );
    // What is registered, labelled (issue 21: interpreters showed only the system's).
    let i = r.section("interpreters");
    r.expect(
        "interpreters shows the registered store interpreter, labelled, and what install would take",
        i.contains(&format!("{s}/91.0+ds-1/bin/qemu-aarch64 [store 91.0+ds-1]"))
            && i.contains("registered as qemu-aarch64")
            && i.contains("install would take /usr/bin/qemu-aarch64-static [system]"),
    );
    let j: serde_json::Value = serde_json::from_str(&r.section("interpreters-json")).unwrap();
    r.expect(
        "interpreters --json has the registered entry's source",
        j["interpreters"][0]["registered"]["source"] == "store 91.0+ds-1"
            && j["interpreters"][0]["source"] == "system",
    );
    r.expect(
        "list shows which entries use it",
        r.section("list").contains("qemu-aarch64,qemu-riscv64")
            || r.section("list").contains("qemu-riscv64,qemu-aarch64"),
    );
    let um = r.section("use-missing");
    r.expect(
        "use of a version lacking riscv64 is refused before any write, naming the arch",
        um.contains("rc=2")
            && um.contains("riscv64: QEMU 90.1+ds-1 has no usable interpreter")
            && um.matches("91.0+ds-1/bin").count() == 2,
    );
    let gu = r.section("gc-used");
    r.expect(
        "gc of a version in use is refused",
        gu.contains("rc=2") && gu.contains("used by qemu-"),
    );
    let gc = r.section("gc");
    r.expect(
        "gc removes only the unused version",
        gc.contains("removed       90.1+ds-1")
            && gc.contains("kept          91.0+ds-1")
            && gc.trim_end().ends_with("91.0+ds-1"),
    );
    let sys = r.section("system");
    r.expect(
        "qemu use system goes back to the system's QEMU, every entry",
        sys.contains("rc=0")
            && sys.contains("interpreter /usr/bin/qemu-aarch64-static")
            && sys.contains("interpreter /usr/bin/qemu-riscv64-static"),
    );
}

/// `install --qemu VERSION --persist` writes the version into the config, so `apply` (the boot
/// unit) registers the store's interpreter again, not the system's.
#[test]
fn install_qemu_persist_records_the_version_for_apply() {
    gate!(Root);
    let a = archive_with_both_versions();
    let s = a.store().display().to_string();
    let c = a.tmp.path().join("etc/config.toml").display().to_string();
    let script = format!(
        r#"
S={s}; C={c}
echo "== install"; $B install arm64 --qemu 91.0 --persist --config $C --qemu-store $S; echo "rc=$?"
echo "== config"; cat $C
echo "== uninstall"; $B uninstall arm64 >/dev/null; echo "rc=$?"; ls $R
echo "== apply"; $B apply --config $C --qemu-store $S; echo "rc=$?"; grep interpreter $R/qemu-aarch64
"#
    );
    let r = ns_with(&[], &script, true);
    r.expect("install --persist", r.section("install").contains("rc=0"));
    r.expect(
        "a store other than the default: warned that the boot unit looks in the default one",
        r.stderr
            .contains("--persist records qemu = VERSION but not --qemu-store")
            && r.stderr.contains("looks in /var/lib/binfmtctl/qemu"),
    );
    r.expect(
        "the config names the stored version",
        r.section("config").contains("qemu = \"91.0+ds-1\""),
    );
    r.expect(
        "uninstalled",
        r.section("uninstall").contains("rc=0") && !r.section("uninstall").contains("qemu-aarch64"),
    );
    let apply = r.section("apply");
    r.expect(
        "apply registers the store's interpreter again",
        apply.contains("rc=0")
            && apply.contains(&format!("interpreter {s}/91.0+ds-1/bin/qemu-aarch64")),
    );
}

#[test]
fn use_switches_all_entries_while_a_long_emulated_process_keeps_running() {
    gate!(Root);
    let a = archive_with_both_versions();
    let s = a.store().display().to_string();
    let script = format!(
        r#"
S={s}
$B install arm64 --qemu 91.0 --qemu-store $S >/dev/null || exit 5
# A process that runs until it is told (a fifo held open here, so nothing blocks), seen
# running under 91.0 before anything is switched: no timing assumed.
F=$(mktemp -u) && mkfifo $F && exec 3<>$F || exit 6
$A/busybox-arm64 head -c1 $F >/dev/null & P=$!
i=0; until readlink /proc/$P/exe | grep -q /91.0; do i=$((i+1)); [ $i -gt 3000 ] && break; sleep 0.02; done
echo "== use"; $B qemu use 90.1 --qemu-store $S; echo "rc=$?"; grep interpreter $R/qemu-aarch64
echo "== alive"; kill -0 $P && echo alive; readlink /proc/$P/exe
echo "== new"; $A/busybox-arm64 uname -m
echo "== back"; $B qemu use 91.0 --qemu-store $S; echo "rc=$?"; grep interpreter $R/qemu-aarch64
echo "== wait"; echo x >&3; wait $P; echo "rc=$?"; rm -f $F
printf 'arches = ["arm64"]\nqemu = "90.1"\n' > $S/../config.toml
echo "== apply"; $B apply --config $S/../config.toml --qemu-store $S >/dev/null; echo "rc=$?"; grep interpreter $R/qemu-aarch64
echo "== relative"; cd $S/.. && $B install arm64 --qemu 91.0 --qemu-store ./$(basename $S) 2>&1; echo "rc=$?"; grep interpreter $R/qemu-aarch64
"#
    );
    let r = ns_with(&[], &script, true);
    r.expect(
        "a relative --qemu-store is made absolute",
        r.section("relative").contains("rc=0")
            && r.section("relative")
                .contains(&format!("interpreter {s}/91.0+ds-1/bin/qemu-aarch64")),
    );
    r.expect(
        "apply honours the config's qemu version",
        r.section("apply").contains("rc=0")
            && r.section("apply")
                .contains(&format!("interpreter {s}/90.1+ds-1/bin/qemu-aarch64")),
    );
    let u = r.section("use");
    r.expect(
        "use replaces the entry with the other version",
        u.contains("rc=0")
            && u.contains("replaced")
            && u.contains(&format!("interpreter {s}/90.1+ds-1/bin/qemu-aarch64")),
    );
    let alive = r.section("alive");
    r.expect(
        "the running process keeps its old interpreter",
        alive.contains("alive") && alive.contains("91.0+ds-1/bin/qemu-aarch64"),
    );
    r.expect("new processes run", r.section("new").trim() == "aarch64");
    r.expect(
        "and back again",
        r.section("back")
            .contains(&format!("interpreter {s}/91.0+ds-1/bin/qemu-aarch64")),
    );
    r.expect(
        "the long process exits 0",
        r.section("wait").contains("rc=0"),
    );
}

/// install --qemu, qemu use and apply (config `qemu = …`) take the store's lock shared before
/// they resolve the version: while a writer (gc, fetch) holds it they wait and change nothing,
/// then register once it is released. The script waits for binfmtctl's own "waiting" note,
/// so no timing is assumed.
#[test]
fn users_of_a_stored_version_wait_for_a_writer_of_the_store() {
    gate!(Root);
    let a = archive_with_both_versions();
    let s = a.store().display().to_string();
    let script = format!(
        r#"
S={s}
T=$(mktemp -d)
printf 'arches = ["arm64"]\nqemu = "91.0"\n' > $T/config.toml
held() {{
    exec 9<$S/.lock; flock -x 9
    rm -f $T/err
    "$@" >$T/out 2>$T/err 9<&- & P=$!
    while kill -0 $P 2>/dev/null && ! grep -q waiting $T/err 2>/dev/null; do sleep 0.05; done
    cat $T/err; grep interpreter $R/qemu-aarch64 || echo "no entry"
    flock -u 9; exec 9<&-
    wait $P; echo "rc=$?"; grep interpreter $R/qemu-aarch64
}}
echo "== install"; held $B install arm64 --qemu 90.1 --qemu-store $S
echo "== use"; held $B qemu use 91.0 --qemu-store $S
echo "== apply"; $B qemu use 90.1 --qemu-store $S >/dev/null; held $B apply --config $T/config.toml --qemu-store $S
rm -r $T
"#
    );
    let r = ns_with(&[], &script, true);
    for (section, before, after) in [
        ("install", "no entry", "90.1+ds-1"),
        ("use", "90.1+ds-1", "91.0+ds-1"),
        ("apply", "90.1+ds-1", "91.0+ds-1"),
    ] {
        let out = r.section(section);
        let (held, released) = out.split_once("rc=").unwrap_or((&out, ""));
        r.expect(
            &format!("{section} waits for the writer and changes nothing meanwhile"),
            held.contains("waiting for another binfmtctl writing the store")
                && held.contains(before)
                && !held.contains(after),
        );
        r.expect(
            &format!("{section} registers once the writer is done"),
            released.starts_with('0')
                && released.contains(&format!("interpreter {s}/{after}/bin/qemu-aarch64")),
        );
    }
}

// ---------------------------------------------------------------- Debian's real archive

/// Verified indexes and .debs are kept here between runs (keyed by sha256, re-checked on use).
const REAL_CACHE: &str = "/var/cache/binfmtctl-tests/qemu-store";

#[test]
fn real_archive_bookworm_and_trixie_install_test_all_and_switch_under_a_running_process() {
    gate!(Root);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir_all(REAL_CACHE).unwrap();
    let fetch = |spec: &str| {
        let o = Command::new(bin())
            .args([
                "qemu",
                "fetch",
                spec,
                "--cache",
                REAL_CACHE,
                "--timeout",
                "60",
            ])
            .arg("--qemu-store")
            .arg(&store)
            .output()
            .unwrap();
        Run::of(o)
    };
    // bookworm ships the interpreters in qemu-user-static; trixie in qemu-user.
    let r = fetch("bookworm");
    let r10 = fetch("trixie");
    r.expect(
        "bookworm's 7.2 from qemu-user-static, signature-checked",
        r.code == 0
            && r.stdout.contains("stored QEMU 7.2")
            && r.stdout.contains("(qemu-user-static 1:7.2")
            && r.stdout.contains("InRelease of bookworm signed by"),
    );
    let r = r10;
    r.expect(
        "trixie's 10.0 from qemu-user",
        r.code == 0
            && r.stdout.contains("stored QEMU 10.0")
            && r.stdout.contains("(qemu-user 1:10.0"),
    );
    let s = store.display().to_string();
    let script = format!(
        r#"
S={s}
echo "== install"; $B install all --qemu 10.0 --qemu-store $S | tail -1; echo "rc=$?"
echo "== test"; $B test all 2>&1 | tail -1
F=$(mktemp -u) && mkfifo $F && exec 3<>$F || exit 6
$A/busybox-arm64 head -c1 $F >/dev/null & P=$!
i=0; until readlink /proc/$P/exe | grep -q /10.0; do i=$((i+1)); [ $i -gt 3000 ] && break; sleep 0.02; done
echo "== use72"; $B qemu use 7.2 --qemu-store $S | tail -1; echo "rc=$?"; grep interpreter $R/qemu-aarch64 $R/qemu-riscv64
echo "== running"; kill -0 $P && echo alive; readlink /proc/$P/exe
echo "== test72"; $B test arm64,riscv64 2>&1 | tail -1
echo "== use10"; $B qemu use 10.0 --qemu-store $S | tail -1; echo "rc=$?"; grep interpreter $R/qemu-aarch64
echo "== wait"; echo x >&3; wait $P; echo "rc=$?"; rm -f $F
echo "== verify"; $B qemu verify --qemu-store $S | grep -c '^ok'
"#
    );
    let r = ns_with(&[], &script, true);
    r.expect(
        "install all --qemu 10.0",
        r.section("install").contains("rc=0") && r.section("install").contains("registered"),
    );
    r.expect(
        "test all passes for every probe arch",
        r.section("test").contains(" 0 fail"),
    );
    let u = r.section("use72");
    r.expect(
        "qemu use 7.2 switches every entry",
        u.contains("rc=0") && u.matches("/7.2+dfsg").count() == 2,
    );
    let run = r.section("running");
    r.expect(
        "the running arm64 process keeps 10.0",
        run.contains("alive") && run.contains("/10.0."),
    );
    r.expect(
        "7.2 passes the probes",
        r.section("test72").contains(" 0 fail"),
    );
    r.expect(
        "and back to 10.0",
        r.section("use10").contains("rc=0") && r.section("use10").contains("/10.0."),
    );
    r.expect(
        "the long process exits 0",
        r.section("wait").contains("rc=0"),
    );
    r.expect("both versions verify", r.section("verify").trim() == "2");
}

/// `qemu fetch` tells its observer each step of the trust chain in order, with the bytes of
/// each download (as many as the server sent, out of the size the signed index gives), then
/// the unpacking and the checks of each interpreter: through the library, with a recording
/// observer, against the test archive (a dry run: nothing stored).
#[test]
fn fetch_reports_each_trust_step_and_the_bytes_in_order() {
    use binfmtctl::ops::qemu::{ArchiveOptions, FetchFrom, fetch};
    use binfmtctl::progress::{Recorder, Unit};
    gate!(Root);
    let a = TestArchive::new();
    let served = |path: &str| -> u64 {
        a.server.files.lock().unwrap()[&format!("/debian/{path}")]
            .0
            .len() as u64
    };
    let release = served("dists/testb/InRelease");
    let packages = served("dists/testb/main/binary-amd64/Packages");
    let deb_path = a.deb_path("1:91.0+ds-1");
    let deb = served(&deb_path);
    let o = ArchiveOptions {
        mirror: Some(a.server.url()),
        keyring: Some(a.keyring.clone()),
        suites: vec!["testa".into(), "testb".into()],
        timeout: 5,
        cache: None,
        allow_expired: false,
    };
    let host = binfmtctl::ops::Host::gather(binfmtctl::binfmt::arch::Table::builtin());
    let store = binfmtctl::qemu::store::Store::new(a.store());
    let rec = std::sync::Arc::new(Recorder::new());
    let r = fetch(
        &host,
        &store,
        FetchFrom::Archive("testb", &o),
        true,
        rec.clone(),
    )
    .unwrap();
    assert_eq!(r.manifest.files.len(), 2, "aarch64 and riscv64");
    let steps = rec.steps();
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    let deb_name = deb_path.rsplit('/').next().unwrap();
    assert_eq!(
        names,
        [
            "testb: InRelease",
            "testb: checking the InRelease signature",
            "testb: main/binary-amd64/Packages",
            "testb: checking the Packages hash",
            deb_name,
            "checking the .deb hash",
            "unpacking data.tar.xz",
            "checking the interpreters",
        ],
        "{steps:#?}"
    );
    let by = |name: &str| steps.iter().find(|s| s.name == name).unwrap();
    let s = by("testb: InRelease");
    assert_eq!((s.unit, s.total, s.done), (Unit::Bytes, None, release));
    let s = by("testb: main/binary-amd64/Packages");
    assert_eq!(
        (s.unit, s.total, s.done),
        (Unit::Bytes, Some(packages), packages),
        "the signed size is the total"
    );
    let s = by(deb_name);
    assert_eq!((s.unit, s.total, s.done), (Unit::Bytes, Some(deb), deb));
    let s = by("unpacking data.tar.xz");
    assert!(
        s.unit == Unit::Bytes && s.done > 0 && Some(s.done) <= s.total && s.total < Some(deb),
        "{s:?}"
    );
    let s = by("checking the interpreters");
    assert_eq!((s.unit, s.total, s.done), (Unit::Items, Some(2), 2));
    for check in [
        "testb: checking the InRelease signature",
        "testb: checking the Packages hash",
        "checking the .deb hash",
    ] {
        let s = by(check);
        assert_eq!((s.unit, s.done), (Unit::Items, 0), "{s:?}");
    }
    assert!(steps.last().unwrap().ended, "the last step ends");
    assert!(
        !a.store().join("91.0+ds-1").exists(),
        "a dry run stores nothing"
    );
    // The CLI draws those steps on a terminal (a pty from script(1)), and not with --json;
    // with stderr a pipe it writes nothing to it.
    let line = |extra: &str| {
        let mut v = vec![
            common::bin().display().to_string(),
            "qemu".into(),
            "fetch".into(),
            "testb".into(),
            "--dry-run".into(),
            extra.into(),
        ];
        v.extend(a.net_args(&a.store()));
        v.join(" ")
    };
    let on_pty = |extra: &str| {
        let o = Command::new("script")
            .args([
                "-qec",
                &format!("stty rows 50 cols 500; {} >/dev/null", line(extra)),
                "/dev/null",
            ])
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let drawn = on_pty("");
    assert!(
        drawn.contains("testb: InRelease") && drawn.contains(deb_name),
        "{drawn:?}"
    );
    let drawn = on_pty("--json");
    assert!(!drawn.contains("InRelease"), "{drawn:?}");
    let r = a.run(&["qemu", "fetch", "testb", "--dry-run"]);
    r.expect(
        "stderr is a pipe: nothing drawn",
        r.code == 0 && r.stderr.is_empty(),
    );
}

/// Debian testing (forky) from this machine's dated snapshot mirror: its InRelease is past its
/// Valid-Until. With the mirror named on the command line that is refused, nothing stored;
/// `--allow-expired` takes it (`versions`); from apt's sources, apt's own
/// `Acquire::Check-Valid-Until "false"` (scripts/deps.sh's snapshot setup, as on this machine)
/// is honoured with a warning naming the date and the file. The signature chain is checked as
/// ever. Then `install all --qemu 11.1` and `test all` in a private binfmt_misc instance.
#[test]
fn real_archive_forky_past_valid_until_stores_qemu_11_1_as_apt_allows() {
    gate!(Root);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir_all(REAL_CACHE).unwrap();
    let fetch = |extra: &[&str]| {
        let o = Command::new(bin())
            .args(["qemu", "fetch", "forky", "--timeout", "60"])
            .args(extra)
            .arg("--qemu-store")
            .arg(&store)
            .output()
            .unwrap();
        Run::of(o)
    };
    let mirror = ["--mirror", "http://deb.debian.org/debian"];
    let r = fetch(&mirror);
    // This machine's mirror is a dated snapshot (scripts/deps.sh, docs/qemu.md "Snapshot
    // mirrors"); the test is about that case and says so when the mirror is live instead.
    assert!(
        !(r.code == 0 && r.stdout.contains("stored QEMU 11.")),
        "forky's InRelease is valid on this mirror: this test needs the dated snapshot mirror of CI"
    );
    r.expect(
        "a named mirror's expired InRelease is refused, naming the date and --allow-expired",
        r.code != 0
            && r.stderr.contains("step 1 (InRelease)")
            && r.stderr.contains("expired on ")
            && r.stderr.contains("--allow-expired")
            && !store.exists(),
    );
    // --allow-expired takes it (shown on `versions`, which reads InRelease and Packages only;
    // a fetch records the same in the manifest, below with apt's reason).
    let v = Command::new(bin())
        .args([
            "qemu",
            "versions",
            "--suite",
            "forky",
            "--allow-expired",
            "--json",
        ])
        .args(mirror)
        .arg("--qemu-store")
        .arg(&store)
        .output()
        .unwrap();
    let r = Run::of(v);
    r.expect(
        "--allow-expired takes it, warns naming the date, and the offer says so",
        r.code == 0
            && r.stderr
                .contains("warning: the InRelease of forky expired on ")
            && r.stderr.contains("used because --allow-expired allows it")
            && r.stdout.contains("\"allowed_by\": \"--allow-expired\"")
            && r.stdout.contains("\"upstream\": \"11.1")
            && !store.exists(),
    );
    let r = fetch(&["--cache", REAL_CACHE]);
    r.expect(
        "from apt's sources, apt's Check-Valid-Until false allows it: QEMU 11.1 stored, signature checked",
        r.code == 0
            && r.stdout.contains("stored QEMU 11.1")
            && r.stdout.contains("(qemu-user 1:11.1")
            && r.stdout.contains("InRelease of forky signed by")
            && r.stdout.contains("expired: the InRelease was past its Valid-Until (")
            && r.stderr.contains("used because apt's Acquire::Check-Valid-Until \"false\" at /etc/apt/"),
    );
    let list = Command::new(bin())
        .args(["qemu", "list", "--qemu-store"])
        .arg(&store)
        .output()
        .unwrap();
    let l = Run::of(list);
    l.expect(
        "qemu list shows the version as expired, with when and why",
        l.stdout.contains("forky (expired)")
            && l.stdout
                .contains("verified by an InRelease past its Valid-Until"),
    );
    let s = store.display().to_string();
    let r = ns_with(
        &[],
        &format!(
            r#"
S={s}
echo "== install"; $B install all --qemu 11.1 --qemu-store $S | tail -1; echo "rc=$?"
echo "== entry"; grep interpreter $R/qemu-aarch64
echo "== test"; $B test all 2>&1 | tail -1
echo "== arm64"; $A/busybox-arm64 uname -m
"#
        ),
        true,
    );
    r.expect(
        "install all --qemu 11.1 registers from the store",
        r.section("install").contains("rc=0")
            && r.section("install").contains("registered")
            && r.section("entry").contains("/11.1.2"),
    );
    r.expect(
        "test all passes with QEMU 11.1",
        r.section("test").contains(" 0 fail"),
    );
    r.expect("arm64 runs", r.section("arm64").trim() == "aarch64");
}
