//! The native path: find a cross toolchain for an arch and the environment build systems read
//! (make/autotools/CMake via CC & co, Rust's cc crate via CC_<triple>, cargo via
//! CARGO_TARGET_<TRIPLE>_LINKER/RUNNER, pkg-config, QEMU_LD_PREFIX).
//!
//! Looks at PATH and the file system only; runs nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::binfmt::arch::Arch;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    Gcc,
    Clang,
}

#[derive(Debug, Clone, Serialize)]
pub struct Toolchain {
    pub compiler: Compiler,
    /// GNU triple, e.g. aarch64-linux-gnu.
    pub gnu_triple: String,
    /// Rust triple, e.g. aarch64-unknown-linux-gnu.
    pub rust_triple: Option<String>,
    pub cc: PathBuf,
    pub cxx: Option<PathBuf>,
    /// Debian's multiarch cross sysroot (/usr/<triple>), when present.
    pub sysroot: Option<PathBuf>,
}

/// The GNU triple Debian's cross toolchains use for an arch (`aarch64-linux-gnu`,
/// `arm-linux-gnueabihf`, `mips64el-linux-gnuabi64`): the first vendor-less GNU triple listed
/// in the arch table.
pub fn gnu_triple(arch: &Arch) -> Option<&str> {
    arch.triples
        .iter()
        .map(String::as_str)
        .find(|t| !t.contains("-unknown-") && t.contains("-linux-gnu"))
}

pub fn rust_triple(arch: &Arch) -> Option<&str> {
    arch.triples
        .iter()
        .map(String::as_str)
        .find(|t| t.contains("-unknown-linux-gnu"))
}

/// The Debian package that provides the cross compiler.
pub fn package_hint(arch: &Arch) -> String {
    match gnu_triple(arch) {
        Some(t) => format!("apt-get install gcc-{t} g++-{t}"),
        None => format!("no Debian cross compiler is known for {}", arch.name),
    }
}

/// The compiler is run as root (by `build`, directly or injected into a chroot): only one that
/// passes `host::program_is_safe` is taken; an unsafe one is skipped as if missing.
fn find_in(path_env: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    crate::host::find_safe_program(Some(path_env), name)
}

/// Finds `<triple>-gcc` (preferred) or `clang` with a Debian cross sysroot.
pub fn find(arch: &Arch, path_env: &std::ffi::OsStr, usr: &Path) -> Option<Toolchain> {
    let triple = gnu_triple(arch)?;
    let sysroot = Some(usr.join(triple)).filter(|p| p.is_dir());
    if let Some(cc) = find_in(path_env, &format!("{triple}-gcc")) {
        return Some(Toolchain {
            compiler: Compiler::Gcc,
            gnu_triple: triple.to_owned(),
            rust_triple: rust_triple(arch).map(str::to_owned),
            cxx: find_in(path_env, &format!("{triple}-g++")),
            cc,
            sysroot,
        });
    }
    let clang = find_in(path_env, "clang")?;
    sysroot.as_ref()?;
    Some(Toolchain {
        compiler: Compiler::Clang,
        gnu_triple: triple.to_owned(),
        rust_triple: rust_triple(arch).map(str::to_owned),
        cxx: find_in(path_env, "clang++"),
        cc: clang,
        sysroot,
    })
}

/// The environment for building with `tc`. `runner` is the emulator cargo should run test
/// binaries with (`CARGO_TARGET_*_RUNNER`).
pub fn env(tc: &Toolchain, runner: Option<&Path>) -> Vec<(String, String)> {
    let t = &tc.gnu_triple;
    let bin = |tool: &str| {
        // The gcc toolchain's binutils sit beside it; clang uses llvm-* when present.
        let dir = tc.cc.parent().unwrap_or(Path::new("/usr/bin"));
        let gnu = dir.join(format!("{t}-{tool}"));
        gnu.to_string_lossy().into_owned()
    };
    let target_flags = match tc.compiler {
        Compiler::Gcc => String::new(),
        Compiler::Clang => format!(
            " --target={t}{}",
            tc.sysroot
                .as_ref()
                .map(|s| format!(" --sysroot={}", s.display()))
                .unwrap_or_default()
        ),
    };
    let cc = format!("{}{target_flags}", tc.cc.display());
    let cxx = tc
        .cxx
        .as_ref()
        .map(|c| format!("{}{target_flags}", c.display()));
    let mut v: Vec<(String, String)> = vec![
        ("CC".into(), cc.clone()),
        ("AR".into(), bin("ar")),
        ("RANLIB".into(), bin("ranlib")),
        ("STRIP".into(), bin("strip")),
        ("PKG_CONFIG_ALLOW_CROSS".into(), "1".into()),
        (
            "PKG_CONFIG_LIBDIR".into(),
            format!("/usr/lib/{t}/pkgconfig:/usr/share/pkgconfig"),
        ),
    ];
    if let Some(cxx) = &cxx {
        v.insert(1, ("CXX".into(), cxx.clone()));
    }
    if let Some(s) = &tc.sysroot {
        v.push((
            "PKG_CONFIG_SYSROOT_DIR".into(),
            match tc.compiler {
                // Debian multiarch: .pc files already name /usr/lib/<triple>; no prefix to add.
                Compiler::Gcc => "/".into(),
                Compiler::Clang => s.display().to_string(),
            },
        ));
        v.push(("QEMU_LD_PREFIX".into(), s.display().to_string()));
    }
    if let Some(rt) = &tc.rust_triple {
        let under = rt.replace('-', "_");
        let upper = under.to_uppercase();
        v.push((format!("CC_{under}"), cc.clone()));
        if let Some(cxx) = &cxx {
            v.push((format!("CXX_{under}"), cxx.clone()));
        }
        v.push((format!("AR_{under}"), bin("ar")));
        v.push((
            format!("CARGO_TARGET_{upper}_LINKER"),
            tc.cc.display().to_string(),
        ));
        if let Some(r) = runner {
            v.push((
                format!("CARGO_TARGET_{upper}_RUNNER"),
                r.display().to_string(),
            ));
        }
    }
    v
}

/// A request `cross` cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum CrossError {
    #[error("unknown format {0:?}: use sh, fish or json")]
    Format(String),
}

impl crate::error::Classify for CrossError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// Shell-quotes for POSIX sh and fish (single quotes; a quote becomes '\'' or \').
pub fn render(vars: &[(String, String)], format: &str) -> Result<String, CrossError> {
    let q = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    Ok(match format {
        "sh" => vars
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", q(v)))
            .collect(),
        "fish" => vars
            .iter()
            .map(|(k, v)| {
                format!(
                    "set -gx {k} '{}'\n",
                    v.replace('\\', "\\\\").replace('\'', "\\'")
                )
            })
            .collect(),
        "json" => {
            let m: serde_json::Map<String, serde_json::Value> = vars
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            // A map of strings always serializes.
            serde_json::to_string_pretty(&m).unwrap_or_default() + "\n"
        }
        other => return Err(CrossError::Format(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;

    #[test]
    fn triples_from_the_table() {
        let t = Table::builtin();
        let g = |a: &str| gnu_triple(t.get(a).unwrap()).map(str::to_owned);
        assert_eq!(g("aarch64").as_deref(), Some("aarch64-linux-gnu"));
        assert_eq!(g("arm").as_deref(), Some("arm-linux-gnueabihf"));
        assert_eq!(g("mips64el").as_deref(), Some("mips64el-linux-gnuabi64"));
        assert_eq!(g("ppc64le").as_deref(), Some("powerpc64le-linux-gnu"));
        assert_eq!(g("i386").as_deref(), Some("i686-linux-gnu"));
        assert_eq!(
            rust_triple(t.get("riscv64").unwrap()),
            Some("riscv64gc-unknown-linux-gnu")
        );
        assert_eq!(
            package_hint(t.get("s390x").unwrap()),
            "apt-get install gcc-s390x-linux-gnu g++-s390x-linux-gnu"
        );
    }

    #[test]
    fn finds_gcc_in_a_fake_path_and_renders_env() {
        let t = Table::builtin();
        let a = t.get("aarch64").unwrap();
        let bin = tempfile::tempdir().unwrap();
        let usr = tempfile::tempdir().unwrap();
        assert!(find(a, bin.path().as_os_str(), usr.path()).is_none());
        plant(bin.path(), "aarch64-linux-gnu-gcc");
        std::fs::create_dir(usr.path().join("aarch64-linux-gnu")).unwrap();
        let tc = find(a, bin.path().as_os_str(), usr.path()).unwrap();
        assert_eq!(tc.compiler, Compiler::Gcc);
        let vars = env(&tc, Some(Path::new("/usr/bin/qemu-aarch64-static")));
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert!(get("CC").unwrap().ends_with("/aarch64-linux-gnu-gcc"));
        assert!(get("AR").unwrap().ends_with("/aarch64-linux-gnu-ar"));
        assert_eq!(get("CC_aarch64_unknown_linux_gnu"), get("CC"));
        assert!(
            get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER")
                .unwrap()
                .ends_with("gcc")
        );
        assert_eq!(
            get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").as_deref(),
            Some("/usr/bin/qemu-aarch64-static")
        );
        assert_eq!(get("PKG_CONFIG_ALLOW_CROSS").as_deref(), Some("1"));
        assert!(
            get("QEMU_LD_PREFIX")
                .unwrap()
                .ends_with("/aarch64-linux-gnu")
        );
        let sh = render(&[("A".into(), "it's".into())], "sh").unwrap();
        assert_eq!(sh, "export A='it'\\''s'\n");
        assert_eq!(
            render(&[("A".into(), "x".into())], "fish").unwrap(),
            "set -gx A 'x'\n"
        );
        assert!(render(&vars, "json").unwrap().contains("\"CC\""));
        assert!(render(&vars, "csh").is_err());
    }

    fn plant(dir: &Path, name: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A cross gcc planted in a world-writable directory first on PATH is never taken: the
    /// lookup skips it for the next safe one, or finds none.
    #[test]
    fn skips_a_cross_gcc_planted_in_a_world_writable_path_dir() {
        use std::os::unix::fs::PermissionsExt;
        let t = Table::builtin();
        let a = t.get("aarch64").unwrap();
        let planted = tempfile::tempdir().unwrap();
        let good = tempfile::tempdir().unwrap();
        let usr = tempfile::tempdir().unwrap();
        plant(planted.path(), "aarch64-linux-gnu-gcc");
        std::fs::set_permissions(planted.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(find(a, planted.path().as_os_str(), usr.path()).is_none());
        plant(good.path(), "aarch64-linux-gnu-gcc");
        let path = std::env::join_paths([planted.path(), good.path()]).unwrap();
        let tc = find(a, &path, usr.path()).unwrap();
        assert_eq!(tc.cc, good.path().join("aarch64-linux-gnu-gcc"));
    }
}
