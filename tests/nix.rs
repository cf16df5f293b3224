//! Nix end to end, offline, with Debian's Nix 2.8: derivations for aarch64-linux and
//! riscv64-linux whose builders are real static foreign binaries, built by Nix inside its
//! sandbox through the handlers binfmtctl registers; a remote builder over SSH on 127.0.0.1.
//!
//! Each test runs in a new user + mount namespace mapped 0→0 (Nix's sandbox calls
//! setgroups(2), which a `--map-root-user` namespace forbids), with a private binfmt_misc
//! instance (Nix's sandbox is a nested namespace and sees it), a chroot store
//! (`--store local?root=DIR`) and `NIX_CONF_DIR` in a temporary directory: the host's /nix,
//! /etc/nix and binfmt_misc are untouched, and every process ends with the test.

#[macro_use]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Run, assets, bin};

/// Same checks as `common::ns`: a fresh instance, or stop before writing to it.
const PRELUDE: &str = "set -u\nmount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 99\nR=/proc/sys/fs/binfmt_misc\n[ \"$(ls $R | tr '\\n' ' ')\" = 'register status ' ] || exit 98\nentries() { ls $R | grep -v -x -e register -e status | sort | tr '\\n' ' '; echo; }\n";

fn nix_installed() -> PathBuf {
    let nix = PathBuf::from("/usr/bin/nix");
    assert!(
        nix.exists(),
        "Nix is not installed: run scripts/deps.sh (as root) first"
    );
    nix
}

fn nix_assets() -> PathBuf {
    let a = assets();
    assert!(
        a.join("nix-builder-riscv64").exists(),
        "{}/nix-builder-riscv64 missing: run scripts/deps.sh (as root) first",
        a.display()
    );
    a
}

/// Runs `script` with sh in a new user + mount namespace whose uid/gid maps are the identity
/// (written from here, as root; setgroups stays allowed), after the private-binfmt prelude.
fn idns(env: &[(&str, &Path)], script: &str) -> Run {
    let me = std::fs::read_link("/proc/self/ns/user").unwrap();
    let body = format!("{PRELUDE}{script}");
    let mut c = Command::new("unshare");
    c.args(["--user", "--mount", "--propagation", "private", "sh", "-c"])
        .arg("while [ -z \"$(cat /proc/self/gid_map)\" ]; do sleep 0.01; done; exec sh -c \"$0\"")
        .arg(body)
        .env("B", bin())
        .env("A", nix_assets())
        .env_remove("NIX_CONF_DIR")
        .env_remove("BINFMTCTL_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
        // Nix keeps caches under $HOME/.cache: in the test's directory, not root's home.
        if *k == "T" {
            let home = v.join("home");
            std::fs::create_dir_all(&home).unwrap();
            c.env("HOME", &home)
                .env("XDG_CACHE_HOME", home.join(".cache"))
                // Nix's global state (such as the build-user lock directory `userpool`) would
                // go to /nix/var/nix; the stores themselves are chroot stores under $T.
                .env("NIX_STATE_DIR", v.join("nix-state"));
        }
    }
    let had_nix = Path::new("/nix").exists();
    let mut child = c.spawn().expect("unshare(1) from util-linux runs");
    let pid = child.id();
    let ns = format!("/proc/{pid}/ns/user");
    for _ in 0..2000 {
        if std::fs::read_link(&ns).is_ok_and(|l| l != me) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), "0 0 4294967295").expect("write uid_map");
    std::fs::write(format!("/proc/{pid}/gid_map"), "0 0 4294967295").expect("write gid_map");
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        se.read_to_string(&mut s).unwrap();
        s
    });
    so.read_to_string(&mut stdout).unwrap();
    stderr.push_str(&t.join().unwrap());
    let status = child.wait().unwrap();
    let r = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    assert!(
        had_nix || !Path::new("/nix").exists(),
        "the test created /nix on the host"
    );
    assert_ne!(r.code, 98, "the binfmt_misc instance is not a fresh one");
    assert_ne!(
        r.code, 99,
        "no private binfmt_misc (Linux >= 6.7): {}",
        r.stderr
    );
    r
}

/// A source directory with derivations for both systems; `tag` makes each phase's derivation
/// new, so no output from an earlier phase is reused.
fn sources(dir: &Path) {
    let a = nix_assets();
    std::fs::create_dir_all(dir.join("bb")).unwrap();
    // busybox picks its applet from argv[0]'s basename: the store path must end in "busybox".
    std::fs::copy(a.join("busybox-arm64"), dir.join("bb/busybox")).unwrap();
    std::fs::copy(
        a.join("nix-builder-riscv64"),
        dir.join("nix-builder-riscv64"),
    )
    .unwrap();
    std::fs::write(
        dir.join("default.nix"),
        r#"{ tag }: {
  aarch64 = derivation {
    name = "uname-aarch64-${tag}";
    system = "aarch64-linux";
    builder = "${./bb}/busybox";
    args = [ "sh" "-c" "uname -m > $out" ];
  };
  riscv64 = derivation {
    name = "uname-riscv64-${tag}";
    system = "riscv64-linux";
    builder = ./nix-builder-riscv64;
  };
}
"#,
    )
    .unwrap();
}

const USER_CONF: &str =
    "# the user's own settings\nsubstituters =\nbuild-users-group =\nsandbox = true\n";

/// Shell functions: `build TAG ATTR` prints the output's content (the builder's uname -m).
const BUILD_FN: &str = "S=\"local?root=$T/store\"\nbuild() { o=$(nix-build --store \"$S\" \"$T/src\" --argstr tag \"$1\" -A \"$2\" --no-out-link) && cat \"$T/store$o\"; }\n";

#[test]
fn install_nix_makes_nix_build_foreign_systems_and_uninstall_takes_it_back() {
    gate!(Root);
    nix_installed();
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("etc-nix");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("nix.conf"), USER_CONF).unwrap();
    sources(&t.path().join("src"));
    let r = idns(
        &[("T", t.path()), ("NIX_CONF_DIR", &conf)],
        &format!(
            "{BUILD_FN}
echo '== before-a'; build before aarch64 2>&1; echo \"rc=$?\"
echo '== before-r'; build before riscv64 2>&1; echo \"rc=$?\"
echo '== install'; $B install arm64,riscv64 --nix 2>&1; echo \"rc=$?\"
echo '== include'; cat $NIX_CONF_DIR/binfmtctl.conf
echo '== conf'; cat $NIX_CONF_DIR/nix.conf
echo '== after-a'; build after aarch64 2>&1
echo '== after-r'; build after riscv64 2>&1
echo '== status'; $B nix status --json
echo '== nof'; $B install arm64 --flags P --nix >/dev/null 2>&1; echo \"rc=$?\"; grep sandbox $NIX_CONF_DIR/binfmtctl.conf; build nof aarch64 2>&1
echo '== f-again'; $B install arm64 --nix >/dev/null 2>&1; grep -c sandbox $NIX_CONF_DIR/binfmtctl.conf
echo '== uninstall'; $B uninstall arm64,riscv64 2>&1; echo \"rc=$?\"
echo '== gone-a'; build gone aarch64 2>&1; echo \"rc=$?\"
echo '== gone-r'; build gone riscv64 2>&1; echo \"rc=$?\"
echo '== files'; ls -A $NIX_CONF_DIR; echo \"entries: $(entries)\"
"
        ),
    );
    r.expect("script ran", r.code == 0);
    let refused = "is required to build";
    for (s, sys) in [("before-a", "aarch64-linux"), ("before-r", "riscv64-linux")] {
        let b = r.section(s);
        r.expect(
            &format!("{s}: Nix refuses {sys} before install"),
            b.contains(&format!("a '{sys}' with features {{}} {refused}")) && b.contains("rc=1"),
        );
    }
    let inst = r.section("install");
    r.expect("install --nix ok", inst.contains("rc=0"));
    r.expect(
        "install reports the Nix change",
        inst.contains("note: Nix's extra platforms from binfmtctl: aarch64-linux riscv64-linux"),
    );
    r.expect(
        "include file sets extra-extra-platforms",
        r.section("include")
            .contains("\nextra-extra-platforms = aarch64-linux riscv64-linux\n"),
    );
    let c = r.section("conf");
    r.expect(
        "user's lines kept, include appended",
        c.starts_with(USER_CONF) && c.ends_with("!include binfmtctl.conf\n"),
    );
    r.expect(
        "aarch64 builder ran under emulation",
        r.section("after-a").trim_end().ends_with("aarch64"),
    );
    r.expect(
        "riscv64 builder ran under emulation",
        r.section("after-r").trim_end().ends_with("riscv64"),
    );
    let st: serde_json::Value = serde_json::from_str(&r.section("status")).unwrap();
    for (sys, arch) in [("aarch64-linux", "aarch64"), ("riscv64-linux", "riscv64")] {
        let row = st["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == sys)
            .unwrap_or_else(|| panic!("{sys} in nix status: {st}"));
        assert_eq!(row["accepted"], true, "{row}");
        assert_eq!(row["from_binfmtctl"], true, "{row}");
        assert_eq!(row["handler"]["state"], "works", "{row}");
        assert_eq!(row["handler"]["arch"], arch, "{row}");
    }
    assert_eq!(st["included"], true);
    assert!(st["warnings"].as_array().unwrap().is_empty(), "{st}");
    let nof = r.section("nof");
    r.expect(
        "without F the interpreter goes into the sandbox, and the build works",
        nof.contains("rc=0")
            && nof.contains("extra-sandbox-paths = /usr/bin/qemu-aarch64-static")
            && nof.trim_end().ends_with("aarch64"),
    );
    r.expect(
        "with F again the sandbox path goes",
        r.section("f-again").trim() == "0",
    );
    r.expect("uninstall ok", r.section("uninstall").contains("rc=0"));
    for (s, sys) in [("gone-a", "aarch64-linux"), ("gone-r", "riscv64-linux")] {
        let b = r.section(s);
        r.expect(
            &format!("{s}: Nix refuses {sys} again"),
            b.contains(&format!("a '{sys}' with features {{}} {refused}")) && b.contains("rc=1"),
        );
    }
    r.expect(
        "only the user's nix.conf is left, and no entry",
        r.section("files").trim() == "nix.conf\nentries:",
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("nix.conf")).unwrap(),
        USER_CONF,
        "nix.conf is byte for byte what the user wrote"
    );
}

#[test]
fn bad_input_changes_nothing() {
    gate!(Root);
    nix_installed();
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("etc-nix");
    std::fs::create_dir(&conf).unwrap();
    std::fs::create_dir(t.path().join("empty")).unwrap();
    let r = idns(
        &[("T", t.path()), ("NIX_CONF_DIR", &conf)],
        "C=$NIX_CONF_DIR
snap() { echo \"files: $(ls -A $C | tr '\\n' ' ')\"; echo \"entries: $(entries)\"; }
echo '== nonix'; env PATH=$T/empty $B install arm64 --nix 2>&1; echo \"rc=$?\"; snap
echo '== nonix-status'; env PATH=$T/empty $B nix status 2>&1; echo \"rc=$?\"
printf 'substituters =\\nsandbox true\\n' > $C/nix.conf
echo '== syntax'; $B install arm64 --nix 2>&1; echo \"rc=$?\"; snap
echo '== syntax-status'; $B nix status 2>&1; echo \"rc=$?\"
printf 'substituters =\\nsandbox = maybe\\n' > $C/nix.conf
echo '== value'; $B install arm64 --nix 2>&1; echo \"rc=$?\"; snap
printf 'substituters =\\ninclude missing.conf\\n' > $C/nix.conf
echo '== include'; $B install arm64 --nix 2>&1; echo \"rc=$?\"; snap
printf 'substituters =\\n' > $C/nix.conf
mount --bind $C $C && mount -o remount,bind,ro $C || exit 97
echo '== readonly'; $B install arm64 --nix 2>&1; echo \"rc=$?\"; snap
umount $C
printf 'cores = 2\\n' > $C/binfmtctl.conf
echo '== notours'; $B install arm64 --nix 2>&1; echo \"rc=$?\"; snap
",
    );
    r.expect("script ran", r.code == 0);
    let untouched = |s: &str, want_files: &str| {
        let b = r.section(s);
        r.expect(
            &format!("{s}: no entry registered"),
            b.trim_end().ends_with("entries:"),
        );
        r.expect(
            &format!("{s}: Nix's configuration unchanged"),
            b.contains(want_files),
        );
    };
    let b = r.section("nonix");
    r.expect(
        "no Nix: exit 3 with the fix",
        b.contains("Nix is not installed (no `nix` program in PATH): install it (Debian: apt-get install nix-bin)")
            && b.contains("rc=3"),
    );
    untouched("nonix", "\nfiles: \n");
    r.expect(
        "nix status without Nix: exit 3",
        r.section("nonix-status").contains("rc=3"),
    );
    let b = r.section("syntax");
    r.expect(
        "syntax Nix rejects: exit 2, file and line named",
        b.contains(
            "etc-nix/nix.conf:2: illegal configuration line \"sandbox true\": write `name = value`",
        ) && b.contains("rc=2"),
    );
    untouched("syntax", "\nfiles: nix.conf \n");
    r.expect(
        "nix status on it: exit 2",
        r.section("syntax-status").contains("rc=2"),
    );
    let b = r.section("value");
    r.expect(
        "a value Nix rejects: Nix's own message, exit 2",
        b.contains("Nix rejects its configuration")
            && b.contains("option 'sandbox' has invalid value 'maybe'")
            && b.contains("rc=2"),
    );
    untouched("value", "\nfiles: nix.conf \n");
    let b = r.section("include");
    r.expect(
        "a missing `include`: exit 2",
        b.contains("missing.conf: file included from") && b.contains("rc=2"),
    );
    untouched("include", "\nfiles: nix.conf \n");
    let b = r.section("readonly");
    r.expect(
        "read-only configuration directory: exit 3",
        b.contains("cannot write") && b.contains("Read-only file system") && b.contains("rc=3"),
    );
    untouched("readonly", "\nfiles: nix.conf \n");
    let b = r.section("notours");
    r.expect(
        "a binfmtctl.conf someone else wrote is left alone: exit 2",
        b.contains("binfmtctl.conf was not written by binfmtctl") && b.contains("rc=2"),
    );
    untouched("notours", "\nfiles: binfmtctl.conf nix.conf \n");
    assert_eq!(
        std::fs::read_to_string(conf.join("binfmtctl.conf")).unwrap(),
        "cores = 2\n"
    );
}

/// `nix status` warns both ways (a claimed platform without a handler, a working handler Nix
/// does not use); `--dry-run` writes nothing; `apply` with `[nix] enabled = true` adds, and
/// `apply --remove` takes out; a running nix-daemon that reads this configuration is named.
#[test]
fn status_warnings_apply_and_a_running_daemon() {
    gate!(Root);
    nix_installed();
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("etc-nix");
    std::fs::create_dir(&conf).unwrap();
    let r = idns(
        &[("T", t.path()), ("NIX_CONF_DIR", &conf)],
        r#"C=$NIX_CONF_DIR
printf 'substituters =\nbuild-users-group =\nextra-platforms = riscv64-linux\n' > $C/nix.conf
$B install arm64 >/dev/null 2>&1 || exit 90
echo "== status"; $B nix status 2>&1; echo "rc=$?"
echo "== dry"; $B install riscv64 --nix --dry-run 2>&1; echo "rc=$?"; echo "files: $(ls -A $C | tr '\n' ' ')"
printf 'arches = ["arm64", "riscv64"]\n[nix]\nenabled = true\n' > $T/config.toml
# A real nix-daemon reading this configuration (serving one client on a FIFO that never talks).
mkfifo $T/fifo
nix-daemon --stdio --store "local?root=$T/daemon-store" < $T/fifo &
D=$!
exec 3>$T/fifo
while [ "$(cat /proc/$D/comm)" != nix-daemon ]; do sleep 0.01; done
echo "== apply"; $B --config $T/config.toml apply 2>&1; echo "rc=$?"
echo "== daemon"; echo "$D"
echo "== include"; cat $C/binfmtctl.conf
echo "== status2"; $B nix status --json
echo "== plain-status"; $B install s390x >/dev/null 2>&1; echo -1 > $R/qemu-riscv64; $B status 2>&1
echo "== remove"; $B --config $T/config.toml apply --remove 2>&1; echo "rc=$?"
echo "files: $(ls -A $C | tr '\n' ' ')"; echo "entries: $(entries)"
exec 3>&-
kill $D 2>/dev/null; wait $D || true
"#,
    );
    r.expect("script ran", r.code == 0);
    let s = r.section("status");
    r.expect(
        "a working handler Nix does not use",
        s.contains("WARNING: qemu-aarch64 works but Nix does not build aarch64-linux: `binfmtctl install aarch64 --nix`"),
    );
    r.expect(
        "a platform Nix claims without a handler",
        s.contains("WARNING: Nix accepts riscv64-linux builds but no working handler runs riscv64 programs")
            && s.contains("rc=0"),
    );
    let d = r.section("dry");
    r.expect(
        "dry run says what it would add, writes nothing",
        d.contains("note: would add riscv64-linux to Nix's extra platforms")
            && d.contains("rc=0")
            && d.contains("files: nix.conf \n"),
    );
    let a = r.section("apply");
    let pid = r.section("daemon").trim().to_owned();
    r.expect(
        "apply with [nix] writes Nix's side and names the daemon to restart",
        a.contains("rc=0")
            && a.contains(
                "note: Nix's extra platforms from binfmtctl: aarch64-linux riscv64-linux",
            )
            && a.contains(&format!(
                "warning: nix-daemon (pid {pid}) reads its settings only at start: restart it"
            )),
    );
    r.expect(
        "both arches recorded",
        r.section("include")
            .contains("extra-extra-platforms = aarch64-linux riscv64-linux"),
    );
    let st: serde_json::Value = serde_json::from_str(&r.section("status2")).unwrap();
    assert!(st["warnings"].as_array().unwrap().is_empty(), "{st}");
    r.expect(
        "binfmtctl status: a handler Nix is not told about, once binfmtctl manages Nix's side",
        r.section("plain-status")
            .contains("WARNING: qemu-s390x is registered but Nix is not told (no s390x-linux in "),
    );
    r.expect(
        "binfmtctl status: Nix told about an arch whose handler is gone",
        r.section("plain-status").contains("WARNING: Nix builds riscv64-linux (")
            && r.section("plain-status").contains(
                "but qemu-riscv64 is not registered and enabled: `binfmtctl install riscv64 --nix`, or `binfmtctl uninstall riscv64`",
            ),
    );
    let rm = r.section("remove");
    r.expect(
        "apply --remove takes out what it added",
        rm.contains("rc=0") && rm.contains("files: nix.conf \nentries: qemu-s390x \n"),
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("nix.conf")).unwrap(),
        "substituters =\nbuild-users-group =\nextra-platforms = riscv64-linux\n"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "nix-daemon {pid} still runs"
    );
}

/// A free TCP port on 127.0.0.1 (the kernel picks it; sshd binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Base64 of a public key line, as the machines file carries it (coreutils' encoder, to check
/// ours against).
fn base64_of(text: &str) -> String {
    use std::io::Write;
    let mut c = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(text.trim().as_bytes())
        .unwrap();
    String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
}

/// The builder side: sshd's config, keys and a Nix configuration, all under $T; sshd runs in
/// the test's namespaces only (its privilege separation directory on a tmpfs /run there).
const SSHD_SETUP: &str = r#"
mkdir -p $T/builder-conf $T/client-conf
printf 'substituters =\nbuild-users-group =\nsandbox = true\n' > $T/builder-conf/nix.conf
ssh-keygen -q -t ed25519 -N '' -C builder -f $T/hostkey || exit 90
ssh-keygen -q -t ed25519 -N '' -C client -f $T/clientkey || exit 90
cp $T/clientkey.pub $T/authorized_keys
printf '%s\n' "ListenAddress 127.0.0.1:$PORT" "HostKey $T/hostkey" "PidFile $T/sshd.pid" \
  "AuthorizedKeysFile $T/authorized_keys" "StrictModes no" "UsePAM no" \
  "PasswordAuthentication no" "KbdInteractiveAuthentication no" \
  "PermitRootLogin prohibit-password" \
  "SetEnv NIX_CONF_DIR=$T/builder-conf XDG_CACHE_HOME=$T/home/.cache NIX_STATE_DIR=$T/nix-state" > $T/sshd_config
# Only the host key from the machines line is trusted: Nix hands it to ssh as the known hosts.
printf '%s\n' "Host builder1" "  HostName 127.0.0.1" "  Port $PORT" "  HostKeyAlias builder1" \
  "  User root" "  IdentitiesOnly yes" "  BatchMode yes" "  StrictHostKeyChecking yes" > $T/ssh_config
mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd || exit 91
/usr/sbin/sshd -D -e -f $T/sshd_config 2>$T/sshd.log &
SSHD=$!
trap 'kill $SSHD 2>/dev/null' EXIT
# Listening before anyone connects: its host key is served.
i=0; until ssh-keyscan -p $PORT 127.0.0.1 2>/dev/null | grep -q ed25519; do
  i=$((i+1)); [ $i -gt 600 ] && break; kill -0 $SSHD 2>/dev/null || break; sleep 0.05
done
echo "== sshd"; echo "$SSHD"
"#;

/// One machine is both: an OpenSSH server on 127.0.0.1 (its own config, host key and client
/// key, started and killed here) in front of a builder Nix whose handlers binfmtctl installed;
/// a client Nix with its own store and configuration uses the line `binfmtctl nix machines`
/// printed, with `--max-jobs 0` so the aarch64-linux build can only happen on the builder.
#[test]
fn remote_builder_over_ssh_builds_under_emulation() {
    gate!(Root, X86_64Host);
    nix_installed();
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "openssh-server is not installed: run scripts/deps.sh (as root) first"
    );
    let t = tempfile::tempdir().unwrap();
    sources(&t.path().join("src"));
    let port = free_port().to_string();
    let script = format!(
        "{SSHD_SETUP}{}",
        r#"
echo "== install"; NIX_CONF_DIR=$T/builder-conf $B install arm64,riscv64 --nix 2>&1; echo "rc=$?"
echo "== machines"
NIX_CONF_DIR=$T/builder-conf $B nix machines --host "ssh-ng://builder1?remote-store=local%3Froot%3D$T/builder-store" \
  --host-key $T/hostkey.pub --ssh-key $T/clientkey --max-jobs 2 > $T/machines; echo "rc=$?"
cat $T/machines
printf 'substituters =\nbuild-users-group =\nbuilders = @%s/machines\n' $T > $T/client-conf/nix.conf
echo "== client-platforms"
NIX_CONF_DIR=$T/client-conf nix --extra-experimental-features nix-command show-config | grep '^extra-platforms'
echo "== build"
o=$(NIX_SSHOPTS="-F $T/ssh_config" NIX_CONF_DIR=$T/client-conf nix-build --store "local?root=$T/client-store" \
  --max-jobs 0 $T/src --argstr tag remote -A aarch64 --no-out-link 2>$T/build.log); echo "rc=$?"
cat $T/build.log
echo "== client-out"; cat "$T/client-store$o"
echo "== builder-out"; cat "$T/builder-store$o"
kill $SSHD; wait $SSHD
echo "== sshd-log"; cat $T/sshd.log
"#
    );
    let r = idns(&[("T", t.path()), ("PORT", Path::new(&port))], &script);
    // sshd was this namespace's process; the script killed and reaped it.
    let pid = r.section("sshd").trim().to_owned();
    assert!(
        !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists(),
        "sshd {pid:?} still runs"
    );
    r.expect("script ran", r.code == 0);
    r.expect(
        "install --nix on the builder",
        r.section("install").contains("rc=0"),
    );
    let m = r.section("machines");
    let lines: Vec<&str> = m.lines().filter(|l| l.starts_with("ssh-ng://")).collect();
    r.expect("machines ran", m.starts_with("rc=0") && lines.len() == 2);
    let host_key = base64_of(&std::fs::read_to_string(t.path().join("hostkey.pub")).unwrap());
    let uri = format!(
        "ssh-ng://builder1?remote-store=local%3Froot%3D{}/builder-store",
        t.path().display()
    );
    let key = format!("{}/clientkey", t.path().display());
    let native: Vec<&str> = lines[0].split(' ').collect();
    let emulated: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(native[0], uri);
    assert!(native[1].split(',').any(|s| s == "x86_64-linux"), "{m}");
    assert!(!native[1].contains("aarch64"), "{m}");
    assert_eq!(
        emulated,
        [
            uri.as_str(),
            "aarch64-linux,riscv64-linux",
            key.as_str(),
            "2",
            "1",
            "big-parallel",
            "-",
            host_key.as_str()
        ],
        "the emulated systems' line: no kvm, nixos-test or benchmark"
    );
    r.expect(
        "the client itself does not build aarch64-linux",
        !r.section("client-platforms").contains("aarch64-linux"),
    );
    let b = r.section("build");
    r.expect(
        "the build went to the builder over SSH",
        b.starts_with("rc=0") && b.contains("' on 'ssh-ng://builder1?remote-store="),
    );
    r.expect(
        "the builder ran it under emulation, and the client got the output",
        r.section("client-out").trim() == "aarch64" && r.section("builder-out").trim() == "aarch64",
    );
    r.expect(
        "the client logged in with its key",
        r.section("sshd-log")
            .contains("Accepted publickey for root from 127.0.0.1"),
    );
}
