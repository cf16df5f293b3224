//! The privileged container entrypoint, for real: podman + runc, the FROM-scratch image made by
//! container/build.sh, registering on this machine's own binfmt_misc instance.
//!
//! This is the one test that must touch the host's instance. Cargo runs test binaries one after
//! another, so no other test runs meanwhile; it refuses to run if the host already has either
//! entry it would create, only ever removes the entries it created, and restores the host's
//! binfmt_misc mount state (a mount on the host keeps the instance — and so the entries
//! registered from the container — alive after the container exits; see docs/deploy.md).

mod common;

use std::process::Command;

use common::{assets, bin};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

fn mounted() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(BINFMT))
}

/// Restores the host: removes our entries, unmounts if we mounted.
struct Restore {
    we_mounted: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for e in ["qemu-aarch64", "qemu-riscv64"] {
            let p = format!("{BINFMT}/{e}");
            if std::path::Path::new(&p).exists() {
                let _ = std::fs::write(&p, "-1");
            }
        }
        if self.we_mounted {
            let _ = Command::new("umount").arg(BINFMT).status();
        }
    }
}

#[test]
fn privileged_container_installs_on_the_host_and_uninstalls() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root (podman rootful)"
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let image = Command::new(format!("{root}/container/build.sh"))
        .arg("localhost/binfmtctl-test:latest")
        .output()
        .unwrap();
    assert!(
        image.status.success(),
        "container/build.sh: {}",
        String::from_utf8_lossy(&image.stderr)
    );

    // The host keeps binfmt_misc mounted, as systemd does at boot.
    let we_mounted = !mounted();
    if we_mounted {
        assert!(
            Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
                .status()
                .unwrap()
                .success()
        );
    }
    let _restore = Restore { we_mounted };
    for e in ["qemu-aarch64", "qemu-riscv64"] {
        assert!(
            !std::path::Path::new(&format!("{BINFMT}/{e}")).exists(),
            "the host already has {e}; this test would change it, so it refuses to run"
        );
    }

    let out = podman()
        .args([
            "run",
            "--rm",
            "--privileged",
            "localhost/binfmtctl-test:latest",
            "--install",
            "arm64,riscv64",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = &stdout[stdout.find('{').expect("JSON status")..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(
        v["emulators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "qemu-aarch64")
    );

    // The container is gone; the entries (F: interpreter held open by the kernel) still work.
    let run = Command::new(assets().join("busybox-arm64"))
        .args(["uname", "-m"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "aarch64");
    let run = Command::new(assets().join("hello-riscv64"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&run.stdout).starts_with("hello from riscv64"));
    // The host's binfmtctl sees them as its own.
    let st = Command::new(bin())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let ours = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["matches_table"] == true)
        .count();
    assert_eq!(ours, 2);

    // A failing entrypoint exits non-zero.
    let bad = podman()
        .args([
            "run",
            "--rm",
            "--privileged",
            "localhost/binfmtctl-test:latest",
            "--install",
            "arm46",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    let out = podman()
        .args([
            "run",
            "--rm",
            "--privileged",
            "localhost/binfmtctl-test:latest",
            "--uninstall",
            "qemu-aarch64,qemu-riscv64",
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && s.contains("removed         qemu-aarch64"),
        "{s}"
    );
    assert!(!std::path::Path::new(&format!("{BINFMT}/qemu-aarch64")).exists());
    let _ = podman()
        .args(["rmi", "localhost/binfmtctl-test:latest"])
        .output();
}
