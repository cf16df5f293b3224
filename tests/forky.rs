//! Current Debian: inside a Debian forky (testing) amd64 root file system, where the static
//! interpreters are `qemu-user`'s `/usr/bin/qemu-<cpu>` (no `-static` name, no
//! `qemu-user-static` package at all), binfmtctl finds and registers them, and a dynamic
//! candidate is still refused with forky's own package named (docs/distros.md).
//!
//! The rootfs is native (amd64, no emulation): made once with mmdebstrap into the test cache
//! (/var/cache/binfmtctl-tests, or $BINFMTCTL_TEST_CACHE). The mirror's forky `InRelease` is
//! past its `Valid-Until` (a dated snapshot), so apt there runs with
//! `Acquire::Check-Valid-Until "false"`, as the host's apt does. binfmtctl runs chrooted into it
//! within a user namespace that has its own binfmt_misc instance (the host's is untouched).

#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::ns;

/// Debian forky amd64 minbase with qemu-user, made once (one creator at a time, across test
/// binaries; complete or remade).
fn forky_rootfs() -> PathBuf {
    let base = PathBuf::from(
        std::env::var("BINFMTCTL_TEST_CACHE")
            .unwrap_or_else(|_| "/var/cache/binfmtctl-tests".into()),
    );
    let name = "forky-amd64-qemu-user";
    let dir = base.join(name);
    let done = base.join(format!("{name}.complete"));
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join("lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("mmdebstrap")
            .args([
                "--mode=root",
                "--variant=minbase",
                "--arch=amd64",
                "--include=qemu-user",
                "--aptopt=Acquire::Check-Valid-Until \"false\"",
                "forky",
            ])
            .arg(&dir)
            .output()
            .expect("mmdebstrap (scripts/deps.sh installs it) runs");
        assert!(
            out.status.success(),
            "mmdebstrap forky failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&done, "").unwrap();
    }
    dir
}

#[test]
fn forky_qemu_user_interpreters_are_found_registered_and_run() {
    gate!(Root, X86_64Host);
    let root = forky_rootfs();
    let r = ns(&format!(
        r#"
F={root}
# The namespace's /proc (with its private binfmt_misc) inside the chroot; a scratch tmpfs on
# /mnt for binfmtctl, the foreign programs and a dynamic decoy: the cached tree stays as it is.
mount --rbind /proc "$F/proc" || exit 97
mount -t tmpfs tmpfs "$F/mnt" || exit 97
cp "$B" "$F/mnt/binfmtctl"; cp "$A/busybox-arm64" "$A/hello-riscv64" "$F/mnt/"
mkdir "$F/mnt/decoy"; cp "$F/usr/bin/true" "$F/mnt/decoy/qemu-aarch64"
inside() {{ chroot "$F" "$@"; }}
echo "== os"; inside sh -c '. /etc/os-release; echo "$VERSION_CODENAME"'; inside dpkg-query -W -f '${{Package}} ${{Version}}\n' qemu-user; [ -e "$F/usr/bin/qemu-aarch64-static" ] || echo "no qemu-aarch64-static"
echo "== interpreters"; inside /mnt/binfmtctl interpreters arm64,riscv64; echo "rc=$?"
echo "== decoy"; inside /mnt/binfmtctl install arm64 --qemu-path /mnt/decoy 2>&1; echo "rc=$?"; entries
echo "== install"; inside /mnt/binfmtctl install arm64,riscv64; echo "rc=$?"
echo "== entries"; entries; grep -h interpreter $R/qemu-aarch64 $R/qemu-riscv64
echo "== arm64"; inside /mnt/busybox-arm64 uname -m
echo "== riscv64"; inside /mnt/hello-riscv64
echo "== status"; inside /mnt/binfmtctl status
echo "== test"; inside /mnt/binfmtctl test arm64,riscv64; echo "rc=$?"
"#,
        root = root.display()
    ));
    r.expect("the chroot was set up", r.code != 97);
    let os = r.section("os");
    r.expect(
        "a forky tree with qemu-user 11.x and no -static names",
        os.starts_with("forky\nqemu-user 1:11.") && os.ends_with("\nno qemu-aarch64-static\n"),
    );
    let i = r.section("interpreters");
    r.expect(
        "interpreters finds qemu-user's /usr/bin/qemu-<cpu>, accepted, QEMU 11",
        i.contains("rc=0")
            && i.lines().any(|l| {
                l.starts_with("aarch64 ")
                    && l.contains(" ok ")
                    && l.contains("/usr/bin/qemu-aarch64 [system]")
                    && l.contains(" 11.")
            })
            && i.lines().any(|l| {
                l.starts_with("riscv64 ")
                    && l.contains(" ok ")
                    && l.contains("/usr/bin/qemu-riscv64 [system]")
            }),
    );
    let decoy = r.section("decoy");
    r.expect(
        "a dynamic qemu-aarch64 is refused (exit 2, nothing registered), naming forky's package",
        decoy.contains("is dynamically linked")
            && decoy
                .contains("install qemu-user (static interpreters on Debian GNU/Linux forky/sid")
            && decoy.trim_end().ends_with("rc=2"),
    );
    let inst = r.section("install");
    r.expect(
        "install registers /usr/bin/qemu-aarch64 and /usr/bin/qemu-riscv64 from that system",
        inst.contains("rc=0")
            && inst.contains(
                "registered      qemu-aarch64       /usr/bin/qemu-aarch64 flags=PF (QEMU 11.",
            )
            && inst.contains(
                "registered      qemu-riscv64       /usr/bin/qemu-riscv64 flags=PF (QEMU 11.",
            ),
    );
    let e = r.section("entries");
    r.expect(
        "the kernel holds both with the forky interpreters (and nothing from the refused decoy)",
        e.starts_with("qemu-aarch64 qemu-riscv64 \n")
            && e.contains("interpreter /usr/bin/qemu-aarch64\n")
            && e.contains("interpreter /usr/bin/qemu-riscv64\n"),
    );
    r.expect(
        "Debian's arm64 busybox says aarch64",
        r.section("arm64").trim() == "aarch64",
    );
    r.expect(
        "the riscv64 program runs",
        r.section("riscv64").contains("hello from riscv64"),
    );
    let st = r.section("status");
    r.expect(
        "status shows both as the system's",
        st.contains("/usr/bin/qemu-aarch64 [system]")
            && st.contains("/usr/bin/qemu-riscv64 [system]"),
    );
    let t = r.section("test");
    r.expect(
        "test passes for both",
        t.contains("rc=0") && t.contains("summary: 2 pass, 0 fail"),
    );
}
