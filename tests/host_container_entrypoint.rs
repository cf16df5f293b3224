//! The privileged container entrypoint, for real: podman + runc, the FROM-scratch image made by
//! container/build.sh, registering on this machine's own binfmt_misc instance.
//!
//! This is the one test that must touch the host's instance, so it is gated
//! (`BINFMTCTL_TEST_CONTAINER=1`) and scripts/test.sh runs it alone, after everything else.
//! Whatever the host has registered (quickstart's qemu-aarch64 and qemu-riscv64, a foreign
//! F-only entry, Rosetta's), it picks two arches the host has no entry or handler for, registers
//! only those, only ever removes those, and restores the host's binfmt_misc mount state (a mount
//! on the host keeps the instance — and so the entries registered from the container — alive
//! after the container exits; see docs/deploy.md).

#[macro_use]
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

/// An arch the test may register: its name, its entry, a real binary of it (fetched by
/// scripts/deps.sh) and the arguments that make it print `says` (exactly, for `uname -m`; as
/// its first words, for a program without arguments).
struct Candidate {
    arch: &'static str,
    entry: &'static str,
    binary: &'static str,
    args: &'static [&'static str],
    says: &'static str,
}

const CANDIDATES: &[Candidate] = &[
    Candidate {
        arch: "arm64",
        entry: "qemu-aarch64",
        binary: "busybox-arm64",
        args: &["uname", "-m"],
        says: "aarch64",
    },
    Candidate {
        arch: "riscv64",
        entry: "qemu-riscv64",
        binary: "hello-riscv64",
        args: &[],
        says: "hello from riscv64",
    },
    Candidate {
        arch: "s390x",
        entry: "qemu-s390x",
        binary: "busybox-s390x",
        args: &["uname", "-m"],
        says: "s390x",
    },
    Candidate {
        arch: "mips64el",
        entry: "qemu-mips64el",
        binary: "busybox-mips64el",
        args: &["uname", "-m"],
        says: "mips64",
    },
    Candidate {
        arch: "ppc64el",
        entry: "qemu-ppc64le",
        binary: "busybox-ppc64el",
        args: &["uname", "-m"],
        says: "ppc64le",
    },
];

/// Does the host have nothing for `c`: no entry of its name (even disabled), and no enabled
/// entry that would take its binary (binfmtctl inspect reads the host's entries, writes nothing)?
fn host_lacks(c: &Candidate) -> bool {
    if std::path::Path::new(&format!("{BINFMT}/{}", c.entry)).exists() {
        return false;
    }
    let out = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(assets().join(c.binary))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["files"][0]["verdict"]["kind"] == "no-handler"
}

/// The number of the host's entries that match binfmtctl's table (`status --json`).
fn ours_on_the_host() -> usize {
    let st = Command::new(bin())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["matches_table"] == true)
        .count()
}

/// Restores the host: removes the entries we created, unmounts if we mounted.
struct Restore {
    we_mounted: bool,
    created: Vec<&'static str>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for e in &self.created {
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
    gate!(Container);
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
    // Two arches the host has nothing for: only their entries are created and removed. The
    // guard exists from the mount on, so a failed assertion below still unmounts.
    let mut restore = Restore {
        we_mounted,
        created: Vec::new(),
    };
    let picked: Vec<&Candidate> = CANDIDATES
        .iter()
        .filter(|c| host_lacks(c))
        .take(2)
        .collect();
    assert_eq!(
        picked.len(),
        2,
        "the host has entries or handlers for all but one of {:?}",
        CANDIDATES.iter().map(|c| c.arch).collect::<Vec<_>>()
    );
    restore.created = picked.iter().map(|c| c.entry).collect();
    let arches = picked.iter().map(|c| c.arch).collect::<Vec<_>>().join(",");
    let entries = picked.iter().map(|c| c.entry).collect::<Vec<_>>().join(",");
    let ours_before = ours_on_the_host();

    let out = podman()
        .args([
            "run",
            "--rm",
            "--privileged",
            "localhost/binfmtctl-test:latest",
            "--install",
            &arches,
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
    for c in &picked {
        assert!(
            v["emulators"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == c.entry),
            "{}: {v}",
            c.entry
        );
    }

    // The container is gone; the entries (F: interpreter held open by the kernel) still work.
    for c in &picked {
        let run = Command::new(assets().join(c.binary))
            .args(c.args)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&run.stdout);
        // uname -m says exactly the arch; hello says more after its greeting.
        let ok = if c.args.is_empty() {
            said.starts_with(c.says)
        } else {
            said.trim() == c.says
        };
        assert!(ok, "{}: {said}", c.binary);
    }
    // The host's binfmtctl sees them as its own.
    assert_eq!(ours_on_the_host(), ours_before + 2);

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
            &entries,
        ])
        .output()
        .unwrap();
    // The report goes to stderr, the JSON status alone to stdout (docs/cli.md).
    let s = String::from_utf8_lossy(&out.stdout);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{s}\n{report}");
    let v: serde_json::Value = serde_json::from_str(&s).expect("only the JSON status on stdout");
    for c in &picked {
        assert!(
            report
                .lines()
                .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == ["removed", c.entry]),
            "{report}"
        );
        assert!(!std::path::Path::new(&format!("{BINFMT}/{}", c.entry)).exists());
        assert!(
            !v["emulators"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == c.entry),
            "{v}"
        );
    }
    assert_eq!(ours_on_the_host(), ours_before);
    let _ = podman()
        .args(["rmi", "localhost/binfmtctl-test:latest"])
        .output();
}
