//! Hybrid Rust (issue 20): `run --accelerate` with the real Debian bookworm arm64 rootfs that
//! has Debian's rustc, cargo and libstd-rust-dev 1.63 (made once by `binfmtctl rootfs create`
//! and cached), and the host's Debian rustc, cargo and libstd-rust-dev of the same version.
//! The crates the projects use come from crates.io once, vendored on the host (`cargo vendor`)
//! under the test cache; the chroot has no network: the projects replace crates.io with the
//! vendored directory.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assets, bin, busybox_rootfs, debian_arm64_rootfs_clang_rust};

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Versions that build with Rust 1.63.
const VENDORED: &str = "cc = \"=1.0.79\"\npkg-config = \"=0.3.26\"\n";

/// cc and pkg-config from crates.io, vendored once under the test cache (one maker at a time;
/// complete or made again). `cargo vendor` is the cargo that runs the tests: Debian's 0.66
/// reads crates.io's index through GitHub only.
fn vendored() -> PathBuf {
    let base = PathBuf::from(
        std::env::var("BINFMTCTL_TEST_CACHE")
            .unwrap_or_else(|_| "/var/cache/binfmtctl-tests".into()),
    );
    let dir = base.join("rust-vendor-cc-1.0.79-pkg-config-0.3.26");
    let done = base.join("rust-vendor-cc-1.0.79-pkg-config-0.3.26.complete");
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join("lock-rust-vendor")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let p = tempfile::tempdir().unwrap();
        std::fs::create_dir(p.path().join("src")).unwrap();
        std::fs::write(p.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(
            p.path().join("Cargo.toml"),
            format!(
                "[package]\nname = \"vendorset\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[build-dependencies]\n{VENDORED}"
            ),
        )
        .unwrap();
        let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .arg("vendor")
            .arg(&dir)
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo vendor: {}", s(&out.stderr));
        std::fs::write(&done, "").unwrap();
    }
    dir
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, body) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// The crates' source: vendored crates.io at /vendor in the chroot.
const VENDOR_CONFIG: &str =
    "[source.crates-io]\nreplace-with = \"vendored\"\n[source.vendored]\ndirectory = \"/vendor\"\n";

/// (a) C through the `cc` crate (compiled for the target by the injected cross gcc) and a
/// rootfs library found by `pkg-config` (the rootfs's libcrypt.pc) and linked; its build
/// script says what ran it (the arch, the rustc cargo gave it).
fn c_project(dir: &Path) {
    write(
        dir,
        &[
            (".cargo/config.toml", VENDOR_CONFIG),
            (
                "Cargo.toml",
                &format!(
                    "[package]\nname = \"cdep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[build-dependencies]\n{VENDORED}"
                ),
            ),
            ("csrc/mul.c", "long mul3(long x) { return 3 * x + 1; }\n"),
            (
                "build.rs",
                r#"fn main() {
    cc::Build::new().file("csrc/mul.c").compile("mul");
    let crypt = pkg_config::Config::new().probe("libcrypt").unwrap();
    println!("cargo:rustc-env=CRYPT_VERSION={}", crypt.version);
    println!("cargo:rustc-env=BUILD_ARCH={}", std::env::consts::ARCH);
    let rustc = std::env::var("RUSTC").unwrap();
    let vv = std::process::Command::new(&rustc).arg("-vV").output().unwrap();
    let vv = String::from_utf8(vv.stdout).unwrap();
    let host = vv.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_owned();
    println!("cargo:rustc-env=RUSTC_HOST={host}");
}
"#,
            ),
            (
                "src/main.rs",
                r#"use std::os::raw::{c_char, c_long};
extern "C" {
    fn mul3(x: c_long) -> c_long;
    fn crypt(key: *const c_char, salt: *const c_char) -> *const c_char;
}
fn computed() -> i64 {
    unsafe { mul3(14) as i64 }
}
fn hashed() -> String {
    let h = unsafe { crypt(b"binfmtctl\0".as_ptr().cast(), b"ab\0".as_ptr().cast()) };
    unsafe { std::ffi::CStr::from_ptr(h) }.to_string_lossy().into_owned()
}
fn main() {
    println!(
        "cdep {} {} build-script={} rustc-host={} libcrypt={} {}",
        computed(),
        std::env::consts::ARCH,
        env!("BUILD_ARCH"),
        env!("RUSTC_HOST"),
        env!("CRYPT_VERSION"),
        hashed()
    );
}
#[cfg(test)]
mod tests {
    #[test]
    fn c_code_runs() {
        assert_eq!(super::computed(), 43);
    }
    #[test]
    fn the_rootfs_libcrypt_runs() {
        let h = super::hashed();
        assert!(h.starts_with("ab") && h.len() == 13, "{h}");
    }
}
"#,
            ),
        ],
    );
}

/// (b) A local proc-macro (loaded by the native rustc) and a build script that generates code.
fn macro_project(dir: &Path) {
    write(
        dir,
        &[
            (".cargo/config.toml", VENDOR_CONFIG),
            (
                "Cargo.toml",
                "[package]\nname = \"pmacro\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nsquare = { path = \"square\" }\n",
            ),
            (
                "square/Cargo.toml",
                "[package]\nname = \"square\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nproc-macro = true\n",
            ),
            (
                "square/src/lib.rs",
                r#"use proc_macro::TokenStream;
/// `square!(n)` is n*n, computed at compile time.
#[proc_macro]
pub fn square(input: TokenStream) -> TokenStream {
    let n: u64 = input.to_string().trim().parse().unwrap();
    format!("{}u64", n * n).parse().unwrap()
}
"#,
            ),
            (
                "build.rs",
                r#"fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let code = format!("pub const MADE_BY: &str = \"{}\";\n", std::env::consts::ARCH);
    std::fs::write(std::path::Path::new(&out).join("gen.rs"), code).unwrap();
}
"#,
            ),
            (
                "src/main.rs",
                r#"include!(concat!(env!("OUT_DIR"), "/gen.rs"));
fn value() -> u64 {
    square::square!(12) + 1
}
fn main() {
    println!("pmacro {} {} generated-by={}", value(), std::env::consts::ARCH, MADE_BY);
}
#[cfg(test)]
mod tests {
    #[test]
    fn the_macro_expanded() {
        assert_eq!(super::value(), 145);
        assert_eq!(std::env::consts::ARCH, "aarch64");
    }
}
"#,
            ),
        ],
    );
}

/// The rootfs's digest (`common::rootfs_manifest`), with the bytes of the files under usr/bin
/// (where the launchers are bound over the rootfs's programs).
fn manifest(root: &Path) -> String {
    common::rootfs_manifest(root, &["usr/bin/"])
}

/// The ELF machine of a file on the host.
fn e_machine(p: &Path) -> u16 {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(&b[..4], b"\x7fELF", "{}", p.display());
    u16::from_le_bytes([b[18], b[19]])
}

/// `cargo build --release` and `cargo test --release` under `run --accelerate`: the rootfs's
/// rustc, cargo and rustdoc are the host's (x86_64 launchers cover them), the build scripts
/// and proc-macros are x86_64 and run natively, the programs are aarch64 (in
/// target/aarch64-unknown-linux-gnu/release, never an x86_64 one in target/release), run in
/// the rootfs and print what they computed with the C code, the rootfs's libcrypt and the
/// proc-macro; the tests run (emulated) and pass; the rootfs is unchanged.
#[test]
fn cargo_build_and_test_run_natively_and_give_aarch64_programs() {
    gate!(Root, X86_64Host);
    let rootfs = debian_arm64_rootfs_clang_rust();
    let vendor = vendored();
    let before = manifest(&rootfs);
    let src = tempfile::tempdir().unwrap();
    c_project(&src.path().join("cdep"));
    macro_project(&src.path().join("pmacro"));
    // Cargo's own home in the run's /tmp (a tmpfs): its lock file is not the rootfs's.
    let script = r#"set -e
export CARGO_HOME=/tmp/cargo-home
T=target/aarch64-unknown-linux-gnu/release
echo "== launchers"
for p in rustc cargo rustdoc; do od -An -tx1 -j18 -N2 /usr/bin/$p; done
echo "== note"
cargo --version
cd /src/cdep
cargo build --release --offline
echo "== cdep"
./$T/cdep
cargo test --release --offline 2>&1 | grep '^test '
cd /src/pmacro
cargo build --release --offline
echo "== pmacro"
./$T/pmacro
cargo test --release --offline 2>&1 | grep '^test '
echo "== direct"
printf 'fn main(){println!("direct {}", std::env::consts::ARCH)}\n' > /tmp/d.rs
rustc -O -o /tmp/d /tmp/d.rs
/tmp/d
"#;
    let out: Output = Command::new(bin())
        .args(["run", "--accelerate", "--rootfs"])
        .arg(&rootfs)
        .arg("--bind")
        .arg(format!("{}:/src", src.path().display()))
        .arg("--bind")
        .arg(format!("{}:/vendor:ro", vendor.display()))
        .args(["--workdir", "/src", "--", "sh", "-c", script])
        .output()
        .unwrap();
    let run = common::Run::of(out);
    run.expect("the accelerated cargo builds", run.code == 0);
    let err = &run.stderr;
    assert!(
        err.contains("accelerate: native rustc 1.63.0+dfsg1-2 and cargo 0.66.0+ds1-1 from the host stand in for the rootfs's rustc 1.63.0+dfsg1-2 and cargo 0.66.0+ds1-1")
            && err.contains("its output lands in target/aarch64-unknown-linux-gnu/<profile>"),
        "{err}"
    );
    // x86_64 launchers (0x3e) over the rootfs's arm64 programs.
    assert_eq!(
        run.section("launchers").matches(" 3e 00").count(),
        3,
        "{}",
        run.stdout
    );
    let cdep = run.section("cdep");
    assert!(
        cdep.starts_with(
            "cdep 43 aarch64 build-script=x86_64 rustc-host=x86_64-unknown-linux-gnu libcrypt=4.4.33 ab"
        ),
        "{}",
        run.stdout
    );
    assert!(cdep.contains("test tests::c_code_runs ... ok"), "{cdep}");
    assert!(
        cdep.contains("test tests::the_rootfs_libcrypt_runs ... ok"),
        "{cdep}"
    );
    let pm = run.section("pmacro");
    assert!(
        pm.starts_with("pmacro 145 aarch64 generated-by=x86_64\n"),
        "{}",
        run.stdout
    );
    assert!(pm.contains("test tests::the_macro_expanded ... ok"), "{pm}");
    assert_eq!(run.section("direct"), "direct aarch64\n", "{}", run.stdout);
    // On disk: aarch64 programs where the run said, x86_64 build scripts, no target/release
    // program.
    for (p, name) in [("cdep", "cdep"), ("pmacro", "pmacro")] {
        let dir = src.path().join(p).join("target");
        assert_eq!(
            e_machine(&dir.join("aarch64-unknown-linux-gnu/release").join(name)),
            0xb7
        );
        assert!(!dir.join("release").join(name).exists());
        let build = std::fs::read_dir(dir.join("release/build"))
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path().join("build-script-build");
                p.exists().then_some(p)
            })
            .next()
            .unwrap();
        assert_eq!(e_machine(&build), 62);
    }
    assert_eq!(manifest(&rootfs), before, "the rootfs changed");
}

/// A claimed arm64 rootfs (busybox and dpkg records, no real compilers) with Debian's Rust
/// `rust` (and gcc 12 / binutils 2.40, which the host's cross toolchain serves).
fn claimed_rust_rootfs(dir: &Path, rust: &str, cargo: &str) {
    busybox_rootfs(dir);
    std::fs::copy(assets().join("busybox-arm64"), dir.join("bin/busybox")).unwrap();
    let t = "aarch64-linux-gnu";
    write(
        dir,
        &[
            (&format!("usr/bin/{t}-gcc-12"), ""),
            ("usr/bin/rustc", "arm64 rustc"),
            ("usr/bin/cargo", "arm64 cargo"),
            (
                "usr/lib/rustlib/aarch64-unknown-linux-gnu/lib/libstd.rlib",
                "",
            ),
        ],
    );
    std::os::unix::fs::symlink(format!("{t}-gcc-12"), dir.join("usr/bin/gcc")).unwrap();
    std::fs::create_dir_all(dir.join(format!("usr/lib/gcc/{t}/12"))).unwrap();
    let pkg =
        |n: &str, v: &str| format!("Package: {n}\nStatus: install ok installed\nVersion: {v}\n\n");
    write(
        dir,
        &[(
            "var/lib/dpkg/status",
            &(pkg("gcc-12", "12.2.0-14")
                + &pkg(&format!("binutils-{t}"), "2.40-2")
                + &pkg("rustc", rust)
                + &pkg("libstd-rust-dev", rust)
                + &pkg("cargo", cargo)),
        )],
    );
}

/// The rootfs's Rust of another version than the host's Debian one: refused (exit 3), naming
/// the exact packages to install; forced, Rust stays emulated and the run says so (the
/// rootfs's rustc and cargo are not covered).
#[test]
fn another_rust_version_is_refused_with_the_packages_to_install() {
    gate!(Root, X86_64Host, Assets);
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("newer");
    claimed_rust_rootfs(&r, "1.70.0+dfsg1-1", "0.71.0+ds1-1");
    let rs = r.to_str().unwrap();
    let out = Command::new(bin())
        .args(["run", "--accelerate", "--rootfs", rs, "--", "true"])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("version mismatch: the host's rustc is 1.63.0+dfsg1-2, the rootfs's is 1.70.0+dfsg1-1")
            && err.contains("apt-get install rustc=1.70.0+dfsg1-1 libstd-rust-dev=1.70.0+dfsg1-1 cargo=0.71.0+ds1-1 on the host")
            && err.contains("--accelerate=force"),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["run", "--accelerate=force", "--rootfs", rs, "--"])
        .args([
            "sh",
            "-c",
            "od -An -tx1 -j18 -N2 /usr/bin/gcc; cat /usr/bin/rustc /usr/bin/cargo",
        ])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("accelerate: Rust stays emulated: version mismatch"),
        "{err}"
    );
    // gcc is the host's launcher, rustc and cargo the rootfs's own files.
    assert_eq!(s(&out.stdout), " 3e 00\narm64 rustcarm64 cargo", "{err}");
    // The same version, but cargo's differs: refused too.
    let r2 = dir.path().join("cargo");
    claimed_rust_rootfs(&r2, "1.63.0+dfsg1-2", "0.67.0+ds1-1");
    let out = Command::new(bin())
        .args([
            "run",
            "--accelerate",
            "--rootfs",
            r2.to_str().unwrap(),
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the host's cargo is 0.66.0+ds1-1, the rootfs's is 0.67.0+ds1-1"),
        "{err}"
    );
}

/// The new rootfs paths are read inside the rootfs: a /usr/lib/rustlib that leads (if
/// followed on the host) to the host's rustlib is a loop inside the rootfs, refused as bad
/// input; a /usr/bin/rustc that leads to /etc/passwd is not covered (Rust stays emulated).
#[test]
fn hostile_rust_paths_of_the_rootfs_stay_in_it() {
    gate!(Root, X86_64Host, Assets);
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("rootfs");
    claimed_rust_rootfs(&r, "1.63.0+dfsg1-2", "0.66.0+ds1-1");
    std::fs::remove_dir_all(r.join("usr/lib/rustlib")).unwrap();
    std::os::unix::fs::symlink(
        "/../../../../../../usr/lib/rustlib",
        r.join("usr/lib/rustlib"),
    )
    .unwrap();
    let rs = r.to_str().unwrap();
    let out = Command::new(bin())
        .args(["run", "--accelerate", "--rootfs", rs, "--", "true"])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the rootfs's Rust: cannot read /usr/lib/rustlib"),
        "{err}"
    );
    std::fs::remove_file(r.join("usr/lib/rustlib")).unwrap();
    write(
        &r,
        &[("usr/lib/rustlib/aarch64-unknown-linux-gnu/lib/x", "")],
    );
    std::fs::remove_file(r.join("usr/bin/rustc")).unwrap();
    std::os::unix::fs::symlink("/../../../../etc/passwd", r.join("usr/bin/rustc")).unwrap();
    let out = Command::new(bin())
        .args(["run", "--accelerate", "--rootfs", rs, "--"])
        .args(["sh", "-c", "head -c 5 /etc/passwd"])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Rust stays emulated"), "{err}");
    assert_eq!(s(&out.stdout), "root:", "{err}");
}

/// The native rustc is the rootfs's compiler: the same `rustc -O -C metadata=…` gives the same
/// bytes under `--accelerate` (the host's rustc with the rootfs's std, linked by the native
/// cross gcc) as emulated (the rootfs's rustc and gcc under QEMU). (Cargo builds differ in
/// their symbols' hashes: docs/hybrid.md.)
#[test]
fn rustc_gives_the_emulated_compilers_bytes() {
    gate!(Root, X86_64Host);
    let rootfs = debian_arm64_rootfs_clang_rust();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("m.rs"),
        "fn main() { let v: Vec<u64> = (1..=20).map(|i| i * i).collect(); println!(\"{} {}\", v.iter().sum::<u64>(), std::env::consts::ARCH); }\n",
    )
    .unwrap();
    let compile = |accelerate: bool, out: &str| {
        let mut c = Command::new(bin());
        c.arg("run");
        if accelerate {
            c.arg("--accelerate");
        }
        let o = c
            .arg("--rootfs")
            .arg(&rootfs)
            .arg("--bind")
            .arg(format!("{}:/src", src.path().display()))
            .args(["--workdir", "/src", "--", "sh", "-c"])
            .arg(format!(
                "rustc -O -C metadata=fixed --crate-name m m.rs -o {out} && ./{out} && od -An -tx1 -j18 -N2 /usr/bin/rustc"
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", s(&o.stderr));
        s(&o.stdout)
    };
    assert_eq!(compile(true, "m-native"), "2870 aarch64\n 3e 00\n");
    assert_eq!(compile(false, "m-emulated"), "2870 aarch64\n b7 00\n");
    let native = std::fs::read(src.path().join("m-native")).unwrap();
    assert_eq!(e_machine(&src.path().join("m-native")), 0xb7);
    assert!(
        native == std::fs::read(src.path().join("m-emulated")).unwrap(),
        "the native and emulated rustc made different programs"
    );
}
