//! integration-vm/arm64.sh: the static aarch64 binfmtctl on a real arm64 kernel (Debian 12's
//! 6.1) booted under qemu-system-aarch64 (TCG), once with a CPU that runs AArch32 at EL0
//! (`max`) and once with one that does not (`a64fx`); each VM-TEST line the guests report is
//! checked here.

#[macro_use]
mod common;

use std::process::Command;

#[test]
fn binfmtctl_on_an_arm64_kernel_with_and_without_aarch32() {
    gate!(Vm);
    if Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("qemu-system-aarch64 is missing: scripts/deps.sh installs qemu-system-arm");
    }
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/integration-vm/arm64.sh"
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
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("VM-DONE")).count(),
        2,
        "both guests must finish:\n{stdout}\n{stderr}"
    );
    let failed: Vec<_> = tests.iter().filter(|t| !t.1).collect();
    assert!(failed.is_empty(), "failed in the VM: {failed:#?}\n{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let common = [
        "module-loads",
        "version",
        "natives-read-only-tmp",
        "status-json-natives",
        "install",
        "amd64-runs",
        "i386-runs",
        "riscv64-runs",
        "arm64-refused-native",
        "armhf-runs",
        "natives-after-install",
        "test-all",
        "inspect",
        "uninstall-all",
        "amd64-gone",
    ];
    let wanted = common
        .iter()
        .flat_map(|t| [format!("max-{t}"), format!("a64fx-{t}")])
        .chain(
            [
                "max-armhf-native-skipped",
                "max-armhf-not-registered",
                "a64fx-armhf-registered",
            ]
            .map(String::from),
        );
    for want in wanted {
        assert!(
            tests.iter().any(|t| t.0 == want),
            "{want} did not run: {tests:?}"
        );
    }
}
