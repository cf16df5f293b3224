//! Hybrid builds with clang (issue 20): `run --accelerate` against the cached Debian bookworm
//! arm64 rootfs with clang-14 (`common::debian_arm64_rootfs_clang_rust`), on the real kernel
//! (a private binfmt_misc instance), with the host's clang-14 standing in for the rootfs's.

#[macro_use]
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{assets, bin, busybox_rootfs, debian_arm64_rootfs_clang_rust, host_mounts_containing};

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The rootfs's digest (`common::rootfs_manifest`), with the bytes of the files where the
/// launchers are bound over its names.
fn manifest(root: &Path) -> String {
    common::rootfs_manifest(root, &["usr/bin/", "usr/lib/llvm-14/bin/"])
}

const PROG: &str = "#include <stdio.h>\n#ifndef BINFMTCTL_ROOTFS_MARKER\n#error the rootfs's stdio.h was not used\n#endif\nint main(void){unsigned long h=5381;for(int i=0;i<100000;i++)h=h*33+(i&0xff);printf(\"%lu %zu %d\\n\",h,sizeof(long),BINFMTCTL_ROOTFS_MARKER);return 0;}\n";

const PROG_CXX: &str = "#include <cstdio>\n#include <iostream>\n#include <map>\n#ifndef BINFMTCTL_ROOTFS_MARKER\n#error the rootfs's stdio.h was not used\n#endif\nint main(){std::map<int,const char*> m{{2,\"b\"},{1,\"a\"}};for(auto& kv:m)std::cout<<kv.first<<kv.second;std::cout<<' '<<BINFMTCTL_ROOTFS_MARKER<<\"\\n\";}\n";

/// A source directory with prog.c and prog.cc, and a copy of the rootfs's stdio.h with a
/// marker define (bound read-only over the rootfs's own: the rootfs on disk stays as it is).
fn sources(rootfs: &Path) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("prog.c"), PROG).unwrap();
    std::fs::write(src.path().join("prog.cc"), PROG_CXX).unwrap();
    let mut stdio = std::fs::read_to_string(rootfs.join("usr/include/stdio.h")).unwrap();
    stdio.push_str("\n#define BINFMTCTL_ROOTFS_MARKER 42\n");
    std::fs::write(src.path().join("stdio.h"), stdio).unwrap();
    src
}

fn run_in(rootfs: &Path, src: &Path, accelerate: Option<&str>, script: &str) -> Output {
    let mut c = Command::new(bin());
    c.arg("run");
    if let Some(a) = accelerate {
        c.arg(a);
    }
    c.arg("--rootfs")
        .arg(rootfs)
        .arg("--bind")
        .arg(format!("{}:/src", src.display()))
        .arg("--bind")
        .arg(format!("{}/stdio.h:/usr/include/stdio.h:ro", src.display()))
        .args(["--workdir", "/src"])
        .args(["--", "sh", "-c", script]);
    c.output().unwrap()
}

/// An object's bytes without its .comment (the compiler's version string), by the host's
/// cross objcopy.
fn without_comment(o: &Path) -> Vec<u8> {
    let out = o.with_extension("nocomment");
    let st = Command::new("aarch64-linux-gnu-objcopy")
        .args(["--remove-section", ".comment"])
        .arg(o)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "objcopy {}", o.display());
    std::fs::read(out).unwrap()
}

/// C and C++ compiled and linked by the native clang in one command each, run emulated with
/// the rootfs's headers (the marker) and libraries; the compiler is a launcher (x86_64), the
/// rest aarch64; the objects are those the rootfs's own (emulated) clang makes; the rootfs is
/// unchanged and nothing stays mounted.
#[test]
fn clang_compiles_native_with_the_rootfs_files_and_the_emulated_clangs_objects() {
    gate!(Root, X86_64Host);
    let rootfs = debian_arm64_rootfs_clang_rust();
    let before = manifest(&rootfs);
    let src = sources(&rootfs);
    let compile = "mkdir -p $OUT && clang-14 -O2 -c prog.c -o $OUT/prog.o && clang++-14 -O2 -c prog.cc -o $OUT/progcc.o";
    let script = format!(
        r#"
m() {{ printf '%s ' "$1"; od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'; echo; }}
for p in /usr/bin/clang-14 /usr/bin/clang++-14 /usr/lib/llvm-14/bin/clang /usr/bin/uname /usr/bin/dpkg; do m $p; done
clang-14 -O2 -o prog prog.c && ./prog
clang++-14 -O2 -o progcc prog.cc && ./progcc
clang-14 -print-resource-dir
clang++-14 -### prog.cc 2>&1 | grep -o '"[^"]*-ld"' | head -1
clang-14 -save-temps -O2 -c prog.c -o /tmp/st.o && echo save-temps ok
clang-14 -flto -O2 -o /tmp/lto prog.c && /tmp/lto | sed 's/^/lto /'
OUT=hyb; {compile}
"#
    );
    let out = run_in(&rootfs, src.path(), Some("--accelerate"), &script);
    let (stdout, err) = (s(&out.stdout), s(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{err}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        &lines[..5],
        [
            "/usr/bin/clang-14 3e00",
            "/usr/bin/clang++-14 3e00",
            "/usr/lib/llvm-14/bin/clang 3e00",
            "/usr/bin/uname b700",
            "/usr/bin/dpkg b700",
        ],
        "clang's names are launchers, the rest aarch64: {stdout}"
    );
    assert!(
        lines[5].ends_with(" 8 42") && lines[5].split(' ').count() == 3,
        "C: {stdout}\n{err}"
    );
    assert_eq!(lines[6], "1a2b 42", "C++: {stdout}\n{err}");
    assert_eq!(lines[7], "/usr/lib/llvm-14/lib/clang/14.0.6", "{stdout}");
    assert_eq!(lines[8], "\"/usr/bin/aarch64-linux-gnu-ld\"", "{stdout}");
    assert_eq!(lines[9], "save-temps ok", "{stdout}\n{err}");
    // -flto: the host's LLVMgold.so in the host's ld.
    assert_eq!(lines[10], format!("lto {}", lines[5]), "{stdout}\n{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("accelerate: native clang-14"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].contains("native clang-14 1:14.0.6-12 from the host stands in for the rootfs's clang-14 1:14.0.6-12")
            && said[0].contains("target aarch64-linux-gnu"),
        "{err}"
    );
    let prog = std::fs::read(src.path().join("progcc")).unwrap();
    assert_eq!(&prog[18..20], &[183, 0], "e_machine aarch64");
    // The same compiles by the rootfs's own clang, emulated.
    let out = run_in(&rootfs, src.path(), None, &format!("OUT=emu; {compile}"));
    assert!(out.status.success(), "{}", s(&out.stderr));
    for o in ["prog.o", "progcc.o"] {
        let (h, e) = (
            src.path().join("hyb").join(o),
            src.path().join("emu").join(o),
        );
        assert_eq!(
            without_comment(&h),
            without_comment(&e),
            "{o}: native and emulated clang differ"
        );
    }
    assert_eq!(
        host_mounts_containing(rootfs.to_str().unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(manifest(&rootfs), before, "the rootfs on disk is unchanged");
}

/// A tiny rootfs (busybox) claiming gcc-12 (the host's cross version) and a clang of
/// `clang_major` (a file at Debian's path and its dpkg entry).
fn claimed_rootfs(dir: &Path, clang_major: &str) {
    let t = "aarch64-linux-gnu";
    busybox_rootfs(dir);
    // What run makes in a rootfs without it: here beforehand, so the manifests compare.
    std::fs::write(dir.join("etc/resolv.conf"), "").unwrap();
    std::fs::copy(assets().join("busybox-arm64"), dir.join("bin/busybox")).unwrap();
    let usr_bin = dir.join("usr/bin");
    std::fs::create_dir_all(&usr_bin).unwrap();
    std::fs::write(usr_bin.join(format!("{t}-gcc-12")), "").unwrap();
    std::os::unix::fs::symlink(format!("{t}-gcc-12"), usr_bin.join("gcc")).unwrap();
    std::fs::create_dir_all(dir.join(format!("usr/lib/gcc/{t}/12"))).unwrap();
    let llvm_bin = dir.join(format!("usr/lib/llvm-{clang_major}/bin"));
    std::fs::create_dir_all(&llvm_bin).unwrap();
    std::fs::write(llvm_bin.join("clang"), "").unwrap();
    std::os::unix::fs::symlink(
        format!("../lib/llvm-{clang_major}/bin/clang"),
        usr_bin.join(format!("clang-{clang_major}")),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        dir.join("var/lib/dpkg/status"),
        format!(
            "Package: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14\n\nPackage: binutils-{t}\nStatus: install ok installed\nVersion: 2.40-2\n\nPackage: clang-{clang_major}\nStatus: install ok installed\nVersion: 1:{clang_major}.0.6-3\n"
        ),
    )
    .unwrap();
}

/// The rootfs's clang-15 against the host's clang-14: refused (exit 3) naming both and the
/// package, unless forced; forced, the host's clang-14 answers for the rootfs's clang-15 name.
#[test]
fn a_clang_major_mismatch_is_refused_unless_forced() {
    gate!(Root, X86_64Host);
    if !Path::new("/usr/lib/llvm-14/bin/clang").is_file() {
        eprintln!("SKIPPED: the host has no clang-14");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("rootfs");
    claimed_rootfs(&r, "15");
    let before = manifest_small(&r);
    let run = |mode: &str, script: &str| {
        Command::new(bin())
            .args([
                "run",
                mode,
                "--rootfs",
                r.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap()
    };
    let out = run("--accelerate", "true");
    let err = s(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the host's cross clang is 14 (clang-14 1:14.0.6")
            && err.contains("the rootfs's is 15 (clang-15 1:15.0.6-3)")
            && err.contains("apt-get install clang-15")
            && err.contains("--accelerate=force"),
        "{err}"
    );
    let out = run("--accelerate=force", "clang-15 --version | head -1");
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        s(&out.stdout).contains("clang version 14.0.6"),
        "{}",
        s(&out.stdout)
    );
    assert!(
        err.contains("native clang-14 1:14.0.6")
            && err.contains("rootfs's clang-15 1:15.0.6-3")
            && err.contains("[forced: the versions differ]"),
        "{err}"
    );
    assert_eq!(manifest_small(&r), before);
}

/// A rootfs whose LLVM directory is a symlink leading, if followed on the host, to the host's
/// own clang: inside the rootfs it leads nowhere, so there is no clang to stand in for (no
/// line about clang, no cover), and the rootfs is unchanged.
#[test]
fn a_hostile_rootfs_llvm_link_does_not_reach_the_hosts_clang() {
    gate!(Root, X86_64Host);
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("rootfs");
    claimed_rootfs(&r, "15");
    std::fs::remove_dir_all(r.join("usr/lib/llvm-15")).unwrap();
    std::os::unix::fs::symlink("/../../../../../usr/lib/llvm-14", r.join("usr/lib/llvm-14"))
        .unwrap();
    std::os::unix::fs::symlink("../lib/llvm-14/bin/clang", r.join("usr/bin/clang-14")).unwrap();
    let before = manifest_small(&r);
    let out = Command::new(bin())
        .args([
            "run",
            "--accelerate",
            "--rootfs",
            r.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "test -f /usr/bin/clang-14 || echo absent",
        ])
        .output()
        .unwrap();
    let err = s(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("accelerate: native clang"), "{err}");
    assert!(s(&out.stdout).contains("absent"), "{}", s(&out.stdout));
    assert_eq!(manifest_small(&r), before);
}

/// Every path, type and symlink target of a small tree.
fn manifest_small(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let link = std::fs::read_link(&p).ok();
        out.push(format!(
            "{} {:o} {} {link:?}",
            p.display(),
            m.mode(),
            m.len()
        ));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}
