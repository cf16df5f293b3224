//! The multi-arch image, for real: container/build-multiarch.sh builds the FROM-scratch image for
//! linux/amd64 and linux/arm64 as one manifest list (an OCI image index) with podman, writes it
//! as an OCI archive, and each arch's image is loaded back from that archive and looked into.
//!
//! Gated like the privileged container test (`BINFMTCTL_TEST_CONTAINER=1`, root, podman + runc;
//! scripts/test.sh runs it in the same late step, after the arm64 VM test has built the aarch64
//! binfmtctl in its cached system). It touches no binfmt_misc instance: the host has no
//! qemu-aarch64 entry, so instead of `podman run --platform linux/arm64` it runs the arm64
//! image's binfmtctl with the host's qemu-aarch64-static directly.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

use common::bin;

const IMAGE: &str = "localhost/binfmtctl-test:multiarch";

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

/// Runs `c`, asserts it succeeded, returns its trimmed stdout.
fn run(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `binfmtctl inspect FILE` (reads the ELF header, runs nothing).
fn inspect(file: &Path) -> String {
    run(Command::new(bin()).arg("inspect").arg(file))
}

fn assert_static_elf_of(file: &Path, machine: &str) {
    let out = inspect(file);
    assert!(
        out.contains(&format!(" = {machine} (")),
        "{}: not a {machine} ELF:\n{out}",
        file.display()
    );
    assert!(
        out.contains("; static;"),
        "{}: not static:\n{out}",
        file.display()
    );
}

/// Removes the manifest list and the per-platform images the build added to it from podman's
/// storage, also when an assertion failed (the loaded-back images live in the test's own
/// storage, in its temporary directory). Only images whose digest the list names are removed:
/// nobody else's.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let listed: Vec<String> = podman()
            .args(["manifest", "inspect", IMAGE])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| {
                v["manifests"].as_array().map(|m| {
                    m.iter()
                        .filter_map(|e| e["digest"].as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default();
        let _ = podman().args(["manifest", "rm", IMAGE]).output();
        let images = podman()
            .args([
                "images",
                "--no-trunc",
                "--digests",
                "--format",
                "{{.ID}} {{.Digest}}",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for line in images.lines() {
            if let Some((id, digest)) = line.split_once(' ')
                && listed.iter().any(|d| d == digest)
            {
                let _ = podman().args(["rmi", "--force", id]).output();
            }
        }
    }
}

/// podman on a storage of its own under `dir` (vfs: nothing mounted outlives the test).
fn podman_in(dir: &Path) -> Command {
    let mut c = podman();
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    c
}

/// A file of the OCI archive.
fn archived(archive: &Path, name: &str) -> serde_json::Value {
    let o = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .unwrap();
    assert!(o.status.success(), "{name} in {}", archive.display());
    serde_json::from_slice(&o.stdout).unwrap()
}

fn platforms(list: &serde_json::Value) -> Vec<String> {
    let mut p: Vec<String> = list["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not a manifest list: {list}"))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    p.sort();
    p
}

#[test]
fn multiarch_image_index_holds_amd64_and_arm64() {
    gate!(Container);
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root (podman rootful)"
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("binfmtctl-multiarch.oci.tar");
    let _cleanup = Cleanup;
    let built = run(Command::new(format!("{root}/container/build-multiarch.sh"))
        .arg(IMAGE)
        .arg(&archive));
    assert_eq!(built, IMAGE);

    // The manifest list names both platforms, and nothing else.
    let list: serde_json::Value =
        serde_json::from_str(&run(podman().args(["manifest", "inspect", IMAGE]))).unwrap();
    assert_eq!(platforms(&list), ["linux/amd64", "linux/arm64"], "{list}");

    // The archive is an OCI layout whose index.json names one OCI image index, of both.
    assert!(archive.is_file(), "no OCI archive at {}", archive.display());
    let top = archived(&archive, "index.json");
    let entry = &top["manifests"][0];
    assert_eq!(
        entry["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{top}"
    );
    let digest = entry["digest"].as_str().unwrap();
    let index = archived(&archive, &format!("blobs/{}", digest.replacen(':', "/", 1)));
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"], "{index}");

    // Each platform's image, loaded back from the OCI archive.
    let mut versions = vec![];
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        // A storage per image: podman 4.3 refused to load the second into the storage
        // holding the first ("image with ID … already exists, but uses a different top layer").
        let store = tmp.path().join(arch);
        let id = run(podman_in(&store).args([
            "pull",
            "--quiet",
            "--platform",
            &format!("linux/{arch}"),
            &format!("oci-archive:{}", archive.display()),
        ]));
        let os_arch = run(podman_in(&store).args([
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            &id,
        ]));
        assert_eq!(os_arch, format!("linux/{arch}"));
        let ctr = run(podman_in(&store).args(["create", &id]));
        let mnt = std::path::PathBuf::from(run(podman_in(&store).args(["mount", &ctr])));
        let usr_bin = mnt.join("usr/bin");

        let binfmtctl = usr_bin.join("binfmtctl");
        assert_static_elf_of(&binfmtctl, machine);
        let qemu: Vec<String> = std::fs::read_dir(&usr_bin)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("qemu-"))
            .collect();
        for want in ["x86_64", "i386", "riscv64", "arm"] {
            assert!(
                qemu.contains(&format!("qemu-{want}-static")),
                "linux/{arch}: no qemu-{want}-static in {qemu:?}"
            );
        }
        for q in &qemu {
            assert_static_elf_of(&usr_bin.join(q), machine);
        }

        let version = if arch == "arm64" {
            // Native on arm64, so not in its image.
            assert!(
                !qemu.contains(&"qemu-aarch64-static".to_string()),
                "{qemu:?}"
            );
            // The host has no binfmt_misc entry for aarch64 (and the test makes none), so the
            // image's binfmtctl runs under the host's qemu-aarch64-static, explicitly.
            run(Command::new("/usr/bin/qemu-aarch64-static")
                .arg(&binfmtctl)
                .arg("--version"))
        } else {
            run(Command::new(&binfmtctl).arg("--version"))
        };
        assert!(version.starts_with("binfmtctl "), "{version}");
        versions.push(version);
        run(podman_in(&store).args(["umount", &ctr]));
        run(podman_in(&store).args(["rm", &ctr]));
        run(podman_in(&store).args(["rmi", "--all"]));
    }
    assert_eq!(versions[0], versions[1], "the two images' binfmtctl differ");
    assert_eq!(versions[0], run(Command::new(bin()).arg("--version")));
}
