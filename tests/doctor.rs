//! `binfmtctl doctor` on the real kernel: each finding produced by a real setup in a private
//! binfmt_misc instance (user namespace) with Debian's static QEMU and real foreign programs,
//! and absent on a healthy one. The pure rules are unit-tested in `inspection::doctor`.

#[macro_use]
mod common;

use common::{busybox_rootfs, ns};

/// Debian's qemu-user-static ships binfmt.d files with binfmtctl's entry names, which
/// systemd-binfmt applies at boot: doctor must say so whenever such a file is on this host.
fn host_boot_clobbers() -> bool {
    std::fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf")
        .is_ok_and(|t| !t.contains("/usr/bin/qemu-aarch64-static"))
}

#[test]
fn an_f_only_entry_breaks_busybox_and_doctor_says_why() {
    gate!(Root);
    // The flags tonistiigi/binfmt registers by default (F, no P).
    let r = ns(r#"
printf ':aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' > $R/register || exit 3
echo "== broken"
$A/busybox-arm64 sh -c 'echo hello | grep -c hell' 2>&1; echo "exit $?"
echo "== doctor-f"
$B doctor $A/busybox-arm64; echo "exit $?"
d=$($B --json doctor $A/busybox-arm64); echo "json exit $?"
echo "$d" | grep -c '"code": "no-preserve-argv0"'
echo "== fixed"
$B install arm64 > /dev/null || exit 4
$A/busybox-arm64 sh -c 'echo hello | grep -c hell'; echo "exit $?"
$B doctor $A/busybox-arm64; echo "exit $?"
echo "== healthy"
$B uninstall aarch64 >/dev/null 2>&1 || echo -1 > $R/aarch64
entries
$B doctor $A/busybox-arm64; echo "exit $?"
"#);
    r.expect("ran", r.code == 0);
    let broken = r.section("broken");
    assert!(
        broken.contains("applet not found") && broken.contains("exit 127"),
        "{broken}"
    );
    let d = r.section("doctor-f");
    assert!(
        d.contains("no-preserve-argv0") && d.contains("binfmtctl install aarch64 (flags PF)"),
        "{d}"
    );
    // Once for the entry (machine), once for the file.
    assert!(
        d.ends_with("exit 0\njson exit 0\n2\n"),
        "warnings do not fail: {d}"
    );
    let fixed = r.section("fixed");
    assert!(fixed.starts_with("1\nexit 0\n"), "{fixed}");
    // Ours is newer, so it wins; the F-only entry is dead weight.
    assert!(
        fixed.contains("shadowed-entry")
            && fixed.contains("aarch64 (/usr/bin/qemu-aarch64-static) is never used"),
        "{fixed}"
    );
    let healthy = r.section("healthy");
    assert!(healthy.starts_with("qemu-aarch64 \n"), "{healthy}");
    for code in [
        "no-preserve-argv0",
        "shadowed-entry",
        "no-handler",
        "interpreter-",
        "error ",
    ] {
        assert!(
            !healthy.contains(code),
            "{code} on a healthy setup:\n{healthy}"
        );
    }
    assert_eq!(
        healthy.contains("boot-clobber"),
        host_boot_clobbers(),
        "{healthy}"
    );
    assert!(
        healthy.contains("runs-emulated") && healthy.ends_with("exit 0\n"),
        "{healthy}"
    );
}

#[test]
fn disabled_missing_and_foreign_without_handler() {
    gate!(Root);
    let r = ns(r#"
$B install arm64 > /dev/null || exit 3
echo 0 > $R/qemu-aarch64
echo "== disabled"
$B doctor $A/busybox-arm64 $A/busybox-mips64el; echo "exit $?"
echo "== dynamic"
echo 1 > $R/qemu-aarch64
$B doctor $A/hello-arm64-dynamic; echo "exit $?"
"#);
    r.expect("ran", r.code == 0);
    let d = r.section("disabled");
    assert!(
        d.contains("handler-disabled") && d.contains("binfmtctl enable 'qemu-aarch64'"),
        "{d}"
    );
    assert!(
        d.contains("no-handler") && d.contains("binfmtctl install linux/mips64le"),
        "{d}"
    );
    assert!(d.ends_with("exit 1\n"), "{d}");
    let d = r.section("dynamic");
    assert!(
        d.contains("loader-missing")
            && d.contains("/lib/ld-linux-aarch64.so.1")
            && d.ends_with("exit 1\n"),
        "{d}"
    );
}

#[test]
fn an_entry_without_f_cannot_run_inside_a_chroot() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    busybox_rootfs(&root);
    let r = ns(&format!(
        r#"
$B install --flags P arm64 > /dev/null || exit 3
echo "== chroot"
chroot {root} /bin/busybox true 2>&1; echo "exit $?"
echo "== doctor"
$B doctor --rootfs {root}; echo "exit $?"
d=$($B --json doctor --rootfs {root})
echo "$d" | grep -c '"code": "interpreter-not-visible"'
"#,
        root = root.display()
    ));
    r.expect("ran", r.code == 0);
    let c = r.section("chroot");
    assert!(
        c.contains("No such file or directory") && !c.ends_with("exit 0\n"),
        "{c}"
    );
    let d = r.section("doctor");
    assert!(
        d.contains("interpreter-not-visible") && d.contains("does not exist inside the rootfs"),
        "{d}"
    );
    assert!(d.contains("exit 1\n1\n"), "{d}");
}

#[test]
fn a_dynamic_interpreter_registered_by_hand() {
    gate!(Root);
    // Any dynamically linked host program will do as the interpreter: its libraries are what
    // breaks it in a chroot.
    let r = ns(r#"
printf ':dyn:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/env:F' > $R/register || exit 3
$B doctor; echo "exit $?"
"#);
    r.expect("ran", r.code == 0);
    assert!(
        r.stdout.contains("interpreter-dynamic (entry dyn)") && r.stdout.ends_with("exit 1\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn isa_levels_of_real_programs() {
    gate!(Root, X86_64Host);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("v.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void){__asm__ volatile(\"vpxor %%ymm0,%%ymm0,%%ymm0\":::\"xmm0\");puts(\"avx2 ok\");return 0;}\n",
    )
    .unwrap();
    let build = |march: &str, out: &str| {
        let ok = std::process::Command::new("gcc")
            .args([
                "-static",
                "-O2",
                &format!("-march={march}"),
                "-mneeded",
                "-o",
                out,
            ])
            .arg(&src)
            .status()
            .unwrap()
            .success();
        assert!(ok, "gcc -march={march}");
    };
    let v3 = dir.path().join("v3");
    let v4 = dir.path().join("v4");
    build("x86-64-v3", v3.to_str().unwrap());
    build("x86-64-v4", v4.to_str().unwrap());
    let rv = dir.path().join("rvv");
    std::fs::write(dir.path().join("t.c"), "int main(void){return 0;}\n").unwrap();
    let ok = std::process::Command::new("riscv64-linux-gnu-gcc")
        .args(["-static", "-O2", "-march=rv64gcv", "-o"])
        .arg(&rv)
        .arg(dir.path().join("t.c"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "riscv64-linux-gnu-gcc -march=rv64gcv");
    let flags = binfmtctl::inspection::isa::host_cpu_flags();
    assert!(!flags.is_empty(), "/proc/cpuinfo names the CPU's flags");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let host = binfmtctl::inspection::isa::x86_64_level_of(&flags);
    let r = ns(&format!(
        r#"
$B install riscv64 > /dev/null || exit 3
echo "== v4"
$B doctor {v4}; echo "exit $?"
echo "== v3"
$B doctor {v3}; echo "exit $?"
echo "== rvv"
$B doctor {rv}; echo "exit $?"
echo "== qemu-cpu"
QEMU_CPU=qemu64 qemu-x86_64-static {v3} 2>/dev/null; echo "exit $?"
QEMU_CPU=max qemu-x86_64-static {v3}; echo "exit $?"
"#,
        v4 = v4.display(),
        v3 = v3.display(),
        rv = rv.display()
    ));
    r.expect("ran", r.code == 0);
    let v4s = r.section("v4");
    assert_eq!(
        v4s.contains("isa-level"),
        host < 4,
        "this CPU is x86-64-v{host}: {v4s}"
    );
    if host < 4 {
        assert!(
            v4s.contains(&format!("this CPU offers x86-64-v{host}")) && v4s.ends_with("exit 1\n"),
            "{v4s}"
        );
    }
    let v3s = r.section("v3");
    assert_eq!(v3s.contains("isa-level"), host < 3, "{v3s}");
    let rvs = r.section("rvv");
    assert!(
        rvs.contains("isa-level")
            && rvs.contains("v, zve32f")
            && rvs.contains("QEMU_CPU=rv64,v=true"),
        "{rvs}"
    );
    assert!(rvs.ends_with("exit 0\n"), "a warning: {rvs}");
    // The fix doctor names works: a v3 program fails on QEMU's qemu64 model and runs on max.
    assert_eq!(r.section("qemu-cpu"), "exit 132\navx2 ok\nexit 0\n");
}

#[test]
fn doctor_changes_nothing_and_never_mounts() {
    gate!(Root);
    // An empty directory where binfmt_misc would be: doctor says so and mounts nothing.
    let dir = tempfile::tempdir().unwrap();
    let r = ns(&format!(
        r#"
before=$(grep -c . /proc/self/mountinfo)
$B doctor --binfmt-misc {d}; echo "exit $?"
[ "$(grep -c . /proc/self/mountinfo)" = "$before" ] && echo "mounts unchanged"
ls -A {d} | wc -l
"#,
        d = dir.path().display()
    ));
    assert!(
        r.stdout.contains(&format!(
            "binfmt-misc-unmounted: binfmt_misc is not mounted at {}",
            dir.path().display()
        )) && r.stdout.ends_with("exit 1\nmounts unchanged\n0\n"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn run_cpu_sets_qemu_cpu_and_checks_the_model() {
    gate!(Root);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let root = dir.path().join("rootfs");
    busybox_rootfs(&root);
    let run = |cpu: &str, cmd: &[&str]| {
        let bin = common::bin();
        let mut args = vec![
            bin.to_str().unwrap(),
            "run",
            "--rootless",
            "--trust-unmapped-owner",
            "--rootfs",
            root.to_str().unwrap(),
            "--cpu",
            cpu,
            "--",
        ];
        args.extend_from_slice(cmd);
        common::as_nobody(&args)
    };
    let r = run("cortex-a53", &["sh", "-c", "echo $QEMU_CPU; uname -m"]);
    r.expect(
        "QEMU_CPU inside",
        r.code == 0 && r.stdout == "cortex-a53\naarch64\n",
    );
    let r = run("pentium", &["true"]);
    r.expect(
        "an unknown model names the known ones",
        r.code == 2 && r.stderr.contains("--cpu pentium:") && r.stderr.contains("cortex-a53"),
    );
}

#[test]
fn nix_claims_a_platform_no_handler_runs() {
    gate!(Root);
    if std::process::Command::new("nix")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no nix installed (scripts/deps.sh installs nix-bin)");
        assert!(
            std::env::var_os("BINFMTCTL_TEST_ROOT").is_none(),
            "nix-bin is missing"
        );
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("nix.conf"),
        "build-users-group =\nextra-platforms = aarch64-linux riscv64-linux\n",
    )
    .unwrap();
    let r = common::ns_with(
        &[("NIX_CONF_DIR", conf.path().to_str().unwrap())],
        r#"
$B install arm64 > /dev/null || exit 3
$B doctor; echo "exit $?"
"#,
        true,
    );
    r.expect("ran", r.code == 0);
    assert!(
        r.stdout
            .contains("nix-mismatch: Nix claims it can build for riscv64-linux")
            && !r.stdout.contains("build for aarch64-linux")
            && r.stdout.contains("binfmtctl install riscv64-linux --nix"),
        "{}",
        r.stdout
    );
}
