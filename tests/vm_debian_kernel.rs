//! integration-vm/: binfmtctl on a real, older kernel (Debian 12's 6.1) booted under
//! qemu-system-x86_64, each VM-TEST line reported by the guest checked here.

#[macro_use]
mod common;

use std::process::Command;
use std::sync::Mutex;

/// The scenarios share the kernel cache and both want the CPUs: one at a time.
static VM: Mutex<()> = Mutex::new(());

fn run_vm(script: &str) -> Vec<(String, bool, String)> {
    let _one_at_a_time = VM.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("qemu-system-x86_64 is missing: scripts/deps.sh installs qemu-system-x86");
    }
    let out = Command::new(format!(
        "{}/integration-vm/{script}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let tests: Vec<(String, bool, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("VM-TEST "))
        .map(|l| {
            let mut p = l.splitn(3, ' ');
            let name = p.next().unwrap_or_default().to_owned();
            let ok = p.next() == Some("pass");
            (name, ok, p.next().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(
        stdout.contains("VM-DONE"),
        "the guest did not finish:\n{stdout}\n{stderr}"
    );
    let failed: Vec<_> = tests.iter().filter(|t| !t.1).collect();
    assert!(failed.is_empty(), "failed in the VM: {failed:#?}\n{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    tests
}

#[test]
fn binfmtctl_on_debian_6_1_kernel() {
    gate!(Vm);
    let tests = run_vm("run.sh");
    for want in [
        "module-loads",
        "install",
        "arm64-runs",
        "riscv64-runs",
        "second-install-noop",
        "test-probes",
        "inspect",
        "native-refused",
        "run-root-mode",
        "rootless-refused-on-6.1",
        "uninstall-all",
        "arm64-gone",
    ] {
        assert!(
            tests.iter().any(|t| t.0 == want),
            "{want} did not run: {tests:?}"
        );
    }
}

#[test]
fn binfmtctl_service_at_boot_under_systemd() {
    gate!(Vm);
    // The kernel cache comes from run.sh.
    let _ = run_vm("run.sh");
    let tests = run_vm("systemd.sh");
    for want in [
        "unit-active",
        "systemd-binfmt-ran-first",
        "registered-at-boot",
        "replaced-the-duplicate",
        "arm64-runs",
        "nix-kept-in-step",
        "stop-removes-only-ours",
        "stop-takes-nix-out",
    ] {
        assert!(
            tests.iter().any(|t| t.0 == want),
            "{want} did not run: {tests:?}"
        );
    }
}
