//! Rust in a hybrid build: the host's Debian `rustc`, `rustdoc` and `cargo` of the rootfs's
//! version stand in for the rootfs's.
//!
//! - Code for the rootfs's target is compiled with the rootfs's own std (its
//!   `/usr/lib/rustlib/<target>`), build scripts and proc-macros for the host with the host's
//!   (Debian's `libstd-rust-dev`). Both are reached through a sysroot under `/run/binfmtctl/rust`
//!   passed to `rustc` and `rustdoc` as `--sysroot` (run through the launcher, their
//!   `current_exe()` is the host's loader, so their own guess would be wrong).
//! - `cargo` gets the rootfs's target as `build.target` (its host triple comes from the native
//!   `rustc -vV`: without it the programs would be x86_64), so its output lands in
//!   `target/<target>/<profile>`; `env.PKG_CONFIG_ALLOW_CROSS` lets `pkg-config` (the rootfs's,
//!   emulated, with the rootfs's `.pc` files) answer for the target.
//! - Build scripts are x86_64 programs cargo runs in the chroot, which has no x86_64 loader at
//!   `/lib64`: they are linked by the host's gcc (a launcher tree under
//!   `/run/binfmtctl/rust/host`, with a sysroot of the host's library directory bound there)
//!   with the injected loader as their ELF interpreter and the injected library directories as
//!   their run path. Code for the target is linked by the rootfs's `cc` (the GNU part's
//!   native cross gcc), as the rootfs's own rustc would.
//!
//! The versions must be the same Debian versions on both sides (rustc's metadata names its
//! exact version: another rustc cannot read the rootfs's std); otherwise the plan is refused
//! with the packages to install, or with `--accelerate=force` Rust stays emulated.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{AccelError, Builder, DIR, HostElf, Item, Request, find_in, host_elf};
use crate::confined::Tree;

/// The host's Debian Rust: its programs (package `rustc`, `cargo`) and std
/// (`libstd-rust-dev`). Never a rustup toolchain (its proxies are in ~/.cargo/bin).
const HOST_RUSTC: &str = "/usr/bin/rustc";
const HOST_RUSTDOC: &str = "/usr/bin/rustdoc";
const HOST_CARGO: &str = "/usr/bin/cargo";
const HOST_TRIPLE: &str = "x86_64-unknown-linux-gnu";
const HOST_RUSTLIB: &str = "/usr/lib/rustlib/x86_64-unknown-linux-gnu";
/// The host's GNU toolchain for build scripts and proc-macros.
const HOST_GNU: &str = "x86_64-linux-gnu";
const HOST_LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

/// The versions both sides agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Versions {
    /// Debian's version of `rustc` (and of `libstd-rust-dev`), the same on both sides.
    pub(super) rustc: String,
    /// Debian's version of `cargo` when the rootfs has it.
    pub(super) cargo: Option<String>,
}

/// What to do about Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// The rootfs has no rustc: nothing to stand in for.
    Absent,
    Native(Versions),
    /// `--accelerate=force` with a host that cannot serve: Rust stays emulated (why).
    Emulated(String),
}

/// Decides from the two dpkg status files (name → version) whether the host's Debian Rust can
/// stand in for the rootfs's: the same Debian versions of `rustc`, `libstd-rust-dev` and (when
/// the rootfs has it) `cargo`. `rootfs_rustc_file`: the rootfs has `/usr/bin/rustc`.
pub(super) fn decide(
    rootfs: &HashMap<String, String>,
    rootfs_rustc_file: bool,
    rootfs_cargo_file: bool,
    host: &HashMap<String, String>,
    force: bool,
) -> Result<Decision, AccelError> {
    let Some(rv) = rootfs.get("rustc") else {
        if !rootfs_rustc_file {
            return Ok(Decision::Absent);
        }
        let e = AccelError::VersionUnknown {
            what: "the rootfs's rustc (/usr/bin/rustc)".into(),
            package: "rustc".into(),
            status: "the rootfs's /var/lib/dpkg/status".into(),
        };
        return if force {
            Ok(Decision::Emulated(e.to_string()))
        } else {
            Err(e)
        };
    };
    let cargo = rootfs.get("cargo").cloned();
    if cargo.is_none() && rootfs_cargo_file {
        // A cargo of its own would take the native rustc's host for its target.
        let e = AccelError::VersionUnknown {
            what: "the rootfs's cargo (/usr/bin/cargo)".into(),
            package: "cargo".into(),
            status: "the rootfs's /var/lib/dpkg/status".into(),
        };
        return if force {
            Ok(Decision::Emulated(e.to_string()))
        } else {
            Err(e)
        };
    }
    let mut wanted = vec![("rustc", rv.clone()), ("libstd-rust-dev", rv.clone())];
    if let Some(cv) = &cargo {
        wanted.push(("cargo", cv.clone()));
    }
    // The rootfs's version goes into a command line the user may paste: only when it is a
    // Debian version (else the package names alone).
    let packages = wanted
        .iter()
        .map(|(p, v)| {
            if is_debian_version(v) {
                format!("{p}={v}")
            } else {
                (*p).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    for (pkg, want) in &wanted {
        let e = match host.get(*pkg) {
            None => AccelError::RustMissing {
                what: format!("Debian {pkg}"),
                packages: packages.clone(),
            },
            Some(h) if h != want => AccelError::RustMismatch {
                what: (*pkg).to_owned(),
                host: h.clone(),
                rootfs: want.clone(),
                packages: packages.clone(),
            },
            Some(_) => continue,
        };
        return if force {
            Ok(Decision::Emulated(e.to_string()))
        } else {
            Err(e)
        };
    }
    Ok(Decision::Native(Versions {
        rustc: rv.clone(),
        cargo,
    }))
}

/// The rootfs's Rust target: the one directory of its `/usr/lib/rustlib` with a `lib` (`etc`
/// is not one), named as a Rust target is (it goes into cargo's `--config`).
fn rootfs_target(root: &Tree) -> Result<String, AccelError> {
    let bad = |reason: String| AccelError::RustRootfs { reason };
    let entries = root
        .read_dir_in_root("usr/lib/rustlib")
        .map_err(|e| bad(format!("cannot read /usr/lib/rustlib: {e}")))?;
    let mut targets: Vec<String> = entries
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| n != "etc")
        .filter(|n| {
            root.file_type_in_root(&format!("usr/lib/rustlib/{n}/lib"))
                .is_some_and(|t| t.is_dir())
        })
        .collect();
    targets.sort();
    match targets.as_slice() {
        [t] if is_target_triple(t) => Ok(t.clone()),
        [t] => Err(bad(format!(
            "/usr/lib/rustlib/{t:?} is not a Rust target's name"
        ))),
        [] => Err(bad(
            "/usr/lib/rustlib has no target's std (install libstd-rust-dev in the rootfs)".into(),
        )),
        many => Err(bad(format!(
            "/usr/lib/rustlib holds the std of several targets ({}), cannot tell the rootfs's",
            many.iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The host's Debian program `path` of package `pkg`: a regular x86_64 program at that very
/// path (not a symlink to a rustup proxy) that dpkg lists as the package's.
fn host_debian_program(
    path: &str,
    pkg: &str,
    status: &Path,
    packages: &str,
) -> Result<PathBuf, AccelError> {
    let missing = || AccelError::RustMissing {
        what: format!("{path} of Debian's {pkg}"),
        packages: packages.to_owned(),
    };
    let p = Path::new(path);
    let real = fs::canonicalize(p).map_err(|_| missing())?;
    if real != p || host_elf(p) != Some(HostElf::Program) {
        return Err(missing());
    }
    let list = status
        .parent()
        .map(|d| d.join("info").join(format!("{pkg}.list")))
        .and_then(|l| crate::input::open_regular(&l).ok().map(|f| (l, f)))
        .and_then(|(l, f)| crate::input::read_bounded(&l, f, 16 << 20).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if !list.lines().any(|l| l == path) {
        return Err(missing());
    }
    Ok(real)
}

/// The rootfs's program `usr/bin/<name>`: where the name resolves inside the rootfs, when
/// that is a regular file still named for the program (`rustc`, `rustc-1.63`): a link that
/// leads to another file (`/etc/passwd`) is not covered.
fn rootfs_program(root: &Tree, name: &str) -> Option<String> {
    root.resolve(&format!("usr/bin/{name}")).filter(|f| {
        root.is_file_in_root(f)
            && f.rsplit('/')
                .next()
                .is_some_and(|b| b == name || b.starts_with(&format!("{name}-")))
    })
}

impl Builder {
    /// Rust's part; `None` when the rootfs has no rustc. Returns the line that says what
    /// stands in (or why Rust stays emulated).
    pub(super) fn rust(
        &mut self,
        req: &Request,
        root: &Tree,
        rootfs_pkgs: &HashMap<String, String>,
        host_pkgs: &HashMap<String, String>,
    ) -> Result<Option<String>, AccelError> {
        let there = |name: &str| {
            root.resolve(&format!("usr/bin/{name}"))
                .is_some_and(|f| root.is_file_in_root(&f))
        };
        let (has_rustc, has_cargo) = (there("rustc"), there("cargo"));
        let rustc_file = rootfs_program(root, "rustc");
        let v = match decide(rootfs_pkgs, has_rustc, has_cargo, host_pkgs, req.force)? {
            Decision::Absent => return Ok(None),
            Decision::Emulated(why) => return Ok(Some(format!("Rust stays emulated: {why}"))),
            Decision::Native(v) => v,
        };
        let Some(rustc_file) = rustc_file else {
            return Ok(Some(
                "Rust stays emulated: the rootfs's dpkg lists rustc, but /usr/bin/rustc is not its program".into(),
            ));
        };
        let target = rootfs_target(root)?;
        let mut packages = format!("rustc={0} libstd-rust-dev={0}", v.rustc);
        if let Some(c) = &v.cargo {
            packages.push_str(&format!(" cargo={c}"));
        }
        let rustc = host_debian_program(HOST_RUSTC, "rustc", req.host_status, &packages)?;
        if !Path::new(HOST_RUSTLIB).join("lib").is_dir() {
            return Err(AccelError::RustMissing {
                what: format!("{HOST_RUSTLIB} of Debian's libstd-rust-dev"),
                packages,
            });
        }
        let linker = self.host_linker(req)?;
        let sysroot = format!("{DIR}/rust");
        self.items.extend([
            Item::Dir(format!("{sysroot}/bin")),
            Item::Dir(format!("{sysroot}/lib/rustlib")),
            Item::Bind {
                source: HOST_RUSTLIB.into(),
                path: format!("{sysroot}/lib/rustlib/{HOST_TRIPLE}"),
                dir: true,
            },
            Item::Symlink {
                path: format!("{sysroot}/lib/rustlib/{target}"),
                target: format!("/usr/lib/rustlib/{target}"),
            },
        ]);
        // rustc as the user runs it compiles for the rootfs's target by default, as the
        // rootfs's own does; cargo gets one without that default (`rustc-host`): it passes
        // --target for the target's code and nothing for build scripts and proc-macros.
        let rustc_args = ["--sysroot", sysroot.as_str(), "--target", target.as_str()];
        self.launch(format!("{sysroot}/bin/rustc"), &rustc, &rustc_args)?;
        self.items.push(Item::Cover {
            target: rustc_file,
            launcher: format!("{sysroot}/bin/rustc"),
        });
        let host_args = ["--sysroot", sysroot.as_str()];
        self.launch(format!("{sysroot}/bin/rustc-host"), &rustc, &host_args)?;
        let rustdoc = host_debian_program(HOST_RUSTDOC, "rustc", req.host_status, &packages)?;
        self.launch(format!("{sysroot}/bin/rustdoc"), &rustdoc, &host_args)?;
        if let Some(f) = rootfs_program(root, "rustdoc") {
            self.items.push(Item::Cover {
                target: f,
                launcher: format!("{sysroot}/bin/rustdoc"),
            });
        }
        let Some(cv) = &v.cargo else {
            return Ok(Some(format!(
                "native rustc {0} from the host stands in for the rootfs's rustc {0}: code for {target} with the rootfs's std",
                v.rustc
            )));
        };
        // A cargo left emulated would take the native rustc's host (x86_64) for its target.
        let Some(cargo_file) = rootfs_program(root, "cargo") else {
            return Err(AccelError::RustRootfs {
                reason: "its dpkg lists cargo, but /usr/bin/cargo is not that program".into(),
            });
        };
        let cargo = host_debian_program(HOST_CARGO, "cargo", req.host_status, &packages)?;
        let config = [
            format!("build.target=\"{target}\""),
            format!("build.rustc=\"{sysroot}/bin/rustc-host\""),
            format!("build.rustdoc=\"{sysroot}/bin/rustdoc\""),
            format!("target.{HOST_TRIPLE}.linker=\"{linker}\""),
            "env.PKG_CONFIG_ALLOW_CROSS=\"1\"".to_owned(),
        ];
        let config: Vec<String> = config
            .into_iter()
            .flat_map(|c| ["--config".to_owned(), c])
            .collect();
        let config: Vec<&str> = config.iter().map(String::as_str).collect();
        self.launch(format!("{sysroot}/bin/cargo"), &cargo, &config)?;
        self.items.push(Item::Cover {
            target: cargo_file,
            launcher: format!("{sysroot}/bin/cargo"),
        });
        Ok(Some(format!(
            "native rustc {0} and cargo {cv} from the host stand in for the rootfs's rustc {0} and cargo {cv}: code for {target} with the rootfs's std, build scripts and proc-macros for {HOST_TRIPLE} with the host's; cargo builds with --target {target}, so its output lands in target/{target}/<profile>, not target/<profile>",
            v.rustc
        )))
    }

    /// The linker of build scripts and proc-macros: the host's gcc in a tree of its own
    /// (`rust/host`: the driver a launcher, its compiler directory and the host's library
    /// directory bound, the latter as its sysroot, so libc.so's absolute paths resolve there),
    /// its programs (collect2, ld, lto-wrapper) launchers found first through `-B`, and the
    /// programs it links given the injected loader and library directories. Returns the
    /// driver's path inside.
    fn host_linker(&mut self, req: &Request) -> Result<String, AccelError> {
        let missing = |what: String| AccelError::RustMissing {
            what,
            packages: "gcc libc6-dev".into(),
        };
        let gcc = find_in(req.path_env, &format!("{HOST_GNU}-gcc"))
            .and_then(|p| fs::canonicalize(p).ok())
            .ok_or_else(|| {
                missing(format!(
                    "{HOST_GNU}-gcc (the host's gcc, to link build scripts and proc-macros)"
                ))
            })?;
        let major = gcc
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(&format!("{HOST_GNU}-gcc-")))
            .map(str::to_owned)
            .ok_or_else(|| missing(format!("{} is not {HOST_GNU}-gcc-N", gcc.display())))?;
        let gcc_dir = PathBuf::from(format!("/usr/lib/gcc/{HOST_GNU}/{major}"));
        let ld = gcc
            .parent()
            .unwrap_or(Path::new("/usr/bin"))
            .join(format!("{HOST_GNU}-ld"));
        for f in [
            gcc_dir.join("collect2"),
            ld.clone(),
            Path::new(HOST_LIBDIR).join("crt1.o"),
        ] {
            if !f.is_file() {
                return Err(missing(format!(
                    "{} (the host's gcc and libc6-dev)",
                    f.display()
                )));
            }
        }
        let h = format!("{DIR}/rust/host");
        let xbin = format!("{DIR}/rust/xbin");
        self.items.extend([
            Item::Dir(format!("{h}/usr/bin")),
            Item::Dir(xbin.clone()),
            Item::Bind {
                source: gcc_dir.clone(),
                path: format!("{h}/usr/lib/gcc/{HOST_GNU}/{major}"),
                dir: true,
            },
            Item::Bind {
                source: HOST_LIBDIR.into(),
                path: format!("{h}{HOST_LIBDIR}"),
                dir: true,
            },
            Item::Symlink {
                path: format!("{h}/lib"),
                target: "usr/lib".into(),
            },
            Item::Symlink {
                path: format!("{h}/lib64"),
                target: format!("usr/lib/{HOST_GNU}"),
            },
        ]);
        self.launch(format!("{xbin}/collect2"), &gcc_dir.join("collect2"), &[])?;
        if gcc_dir.join("lto-wrapper").is_file() {
            self.launch(
                format!("{xbin}/lto-wrapper"),
                &gcc_dir.join("lto-wrapper"),
                &[],
            )?;
        }
        self.launch(format!("{xbin}/ld"), &ld, &[])?;
        let driver = format!("{h}/usr/bin/{HOST_GNU}-gcc-{major}");
        let extra = [
            format!("-B{xbin}/"),
            format!("--sysroot={h}"),
            format!("-Wl,--dynamic-linker={}", self.loader_in),
            format!("-Wl,-rpath,{}", self.library_path),
        ];
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.launch(driver.clone(), &gcc, &extra)?;
        Ok(driver)
    }
}

/// A Rust target's name as Debian's std ships it: `arch-vendor-os[-env]`, lowercase letters,
/// digits, `_` and `.` between dashes; never a custom target file (`.json`), never an option
/// (`-…`), never the host's own (its std is the host's, bound beside).
fn is_target_triple(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    (2..=4).contains(&parts.len().saturating_sub(1))
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        })
        && !t.ends_with(".json")
        && t != HOST_TRIPLE
}

/// A Debian version (`[epoch:]upstream[-revision]`: alphanumerics and `.+~-:`), safe to quote in
/// an `apt-get install pkg=version` line.
fn is_debian_version(v: &str) -> bool {
    !v.is_empty()
        && v.as_bytes()[0].is_ascii_digit()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b))
}

#[cfg(test)]
mod tests {

    #[test]
    fn target_names_and_versions_from_the_rootfs_are_checked() {
        for ok in [
            "aarch64-unknown-linux-gnu",
            "arm-unknown-linux-gnueabihf",
            "riscv64gc-unknown-linux-gnu",
        ] {
            assert!(is_target_triple(ok), "{ok}");
        }
        for bad in [
            "x86_64-unknown-linux-gnu",
            "-Zsomething-a-b",
            "my-target-file.json",
            "a\"b-c-d",
            "aarch64",
            "A-b-c",
        ] {
            assert!(!is_target_triple(bad), "{bad}");
        }
        assert!(is_debian_version("1.63.0+dfsg1-2") && is_debian_version("1:14.0.6-12"));
        for bad in ["1.63 && curl x|sh", "", "-1", "1.0\u{1b}[31m"] {
            assert!(!is_debian_version(bad), "{bad:?}");
        }
    }
    use super::*;
    use crate::emulation::accelerate::dpkg_installed;

    fn pkgs(list: &[(&str, &str)]) -> HashMap<String, String> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    const R: &str = "1.63.0+dfsg1-2";
    const C: &str = "0.66.0+ds1-1";

    /// Same Debian versions on both sides: native, with cargo when the rootfs has it.
    #[test]
    fn the_same_versions_go_native() {
        let rootfs = pkgs(&[("rustc", R), ("libstd-rust-dev", R), ("cargo", C)]);
        let host = pkgs(&[("rustc", R), ("libstd-rust-dev", R), ("cargo", C)]);
        assert_eq!(
            decide(&rootfs, true, true, &host, false).unwrap(),
            Decision::Native(Versions {
                rustc: R.into(),
                cargo: Some(C.into())
            })
        );
        let no_cargo = pkgs(&[("rustc", R), ("libstd-rust-dev", R)]);
        assert_eq!(
            decide(&no_cargo, true, false, &host, false).unwrap(),
            Decision::Native(Versions {
                rustc: R.into(),
                cargo: None
            })
        );
        // No rustc in the rootfs: nothing to do, whatever the host has.
        assert_eq!(
            decide(&pkgs(&[]), false, false, &pkgs(&[]), false).unwrap(),
            Decision::Absent
        );
    }

    /// A mismatch, a missing package on the host (a rustup toolchain only is one: it is no
    /// Debian package) are refusals (exit 3) naming the exact packages; with force Rust
    /// stays emulated, saying why.
    #[test]
    fn mismatches_and_missing_host_packages_are_refused_with_the_packages() {
        let rootfs = pkgs(&[("rustc", R), ("libstd-rust-dev", R), ("cargo", C)]);
        let want = format!("apt-get install rustc={R} libstd-rust-dev={R} cargo={C}");
        let newer = pkgs(&[
            ("rustc", "1.70.0+dfsg1-1"),
            ("libstd-rust-dev", "1.70.0+dfsg1-1"),
            ("cargo", C),
        ]);
        let e = decide(&rootfs, true, true, &newer, false).unwrap_err();
        assert!(matches!(&e, AccelError::RustMismatch { what, .. } if what == "rustc"));
        assert_eq!(
            crate::error::Classify::kind(&e),
            crate::error::ErrorKind::Environment
        );
        let msg = e.to_string();
        assert!(msg.contains("1.70.0+dfsg1-1") && msg.contains(R), "{msg}");
        assert!(msg.contains(&want), "{msg}");
        // rustup's toolchain only: no Debian package at all.
        let e = decide(&rootfs, true, true, &pkgs(&[]), false).unwrap_err();
        assert!(matches!(&e, AccelError::RustMissing { .. }));
        assert_eq!(
            crate::error::Classify::kind(&e),
            crate::error::ErrorKind::Environment
        );
        assert!(e.to_string().contains(&want), "{e}");
        assert!(e.to_string().contains("rustup"), "{e}");
        // rustc but no std, or no cargo.
        let no_std = pkgs(&[("rustc", R), ("cargo", C)]);
        let e = decide(&rootfs, true, true, &no_std, false).unwrap_err();
        assert!(e.to_string().contains("Debian libstd-rust-dev"), "{e}");
        let no_cargo = pkgs(&[("rustc", R), ("libstd-rust-dev", R)]);
        let e = decide(&rootfs, true, true, &no_cargo, false).unwrap_err();
        assert!(e.to_string().contains("Debian cargo"), "{e}");
        let old_cargo = pkgs(&[("rustc", R), ("libstd-rust-dev", R), ("cargo", "0.47.0-3")]);
        let e = decide(&rootfs, true, true, &old_cargo, false).unwrap_err();
        assert!(matches!(&e, AccelError::RustMismatch { what, .. } if what == "cargo"));
        // Forced: emulated, never a half-native Rust.
        match decide(&rootfs, true, true, &newer, true).unwrap() {
            Decision::Emulated(why) => assert!(why.contains("1.70.0+dfsg1-1"), "{why}"),
            d => panic!("{d:?}"),
        }
        // A rustc file dpkg does not know: its version is unknown.
        let e = decide(&pkgs(&[]), true, false, &newer, false).unwrap_err();
        assert!(e.to_string().contains("the rootfs's rustc"), "{e}");
    }

    /// The rootfs's target is its one rustlib directory with a lib/.
    #[test]
    fn the_rootfs_target_is_its_one_rustlib_dir() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("usr/lib/rustlib/etc")).unwrap();
        let tree = Tree::open(r).unwrap();
        assert!(
            rootfs_target(&tree)
                .unwrap_err()
                .to_string()
                .contains("libstd-rust-dev")
        );
        fs::create_dir_all(r.join("usr/lib/rustlib/aarch64-unknown-linux-gnu/lib")).unwrap();
        assert_eq!(rootfs_target(&tree).unwrap(), "aarch64-unknown-linux-gnu");
        fs::create_dir_all(r.join("usr/lib/rustlib/x\"y/lib")).unwrap();
        let e = rootfs_target(&tree).unwrap_err();
        assert!(e.to_string().contains("several targets"), "{e}");
        fs::remove_dir_all(r.join("usr/lib/rustlib/aarch64-unknown-linux-gnu")).unwrap();
        let e = rootfs_target(&tree).unwrap_err();
        assert!(e.to_string().contains("not a Rust target"), "{e}");
    }

    /// A cargo in the rootfs that dpkg does not list has no known version: refused, or with
    /// force Rust stays emulated (a cargo of its own beside the native rustc would build x86_64).
    #[test]
    fn a_rootfs_cargo_dpkg_does_not_list_is_refused() {
        let rootfs = pkgs(&[("rustc", R), ("libstd-rust-dev", R)]);
        let host = pkgs(&[("rustc", R), ("libstd-rust-dev", R), ("cargo", C)]);
        let e = decide(&rootfs, true, true, &host, false).unwrap_err();
        assert!(
            e.to_string()
                .contains("the rootfs's cargo (/usr/bin/cargo)"),
            "{e}"
        );
        assert!(matches!(
            decide(&rootfs, true, true, &host, true).unwrap(),
            Decision::Emulated(_)
        ));
    }

    /// Planned against the host's real Debian Rust (skipped, saying so, without it) for a
    /// fabricated rootfs: the rootfs's rustc, rustdoc and cargo are covered; rustc gets the
    /// sysroot and the rootfs's target, cargo's rustc only the sysroot; cargo gets the target,
    /// the host linker and PKG_CONFIG_ALLOW_CROSS; the sysroot holds the host's std (bound) and
    /// the rootfs's (a link inside the chroot); the build scripts' linker has the injected
    /// loader as their interpreter.
    #[test]
    fn plan_covers_the_rootfs_rust_with_the_hosts() {
        let host = dpkg_installed(&fs::read_to_string("/var/lib/dpkg/status").unwrap_or_default());
        let Some(v) = host.get("rustc").cloned() else {
            eprintln!("skipped: the host has no Debian rustc");
            return;
        };
        if host.get("libstd-rust-dev") != Some(&v) || !host.contains_key("cargo") {
            eprintln!("skipped: the host lacks libstd-rust-dev {v} or cargo");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let t = "aarch64-unknown-linux-gnu";
        for f in ["usr/bin/rustc", "usr/bin/rustdoc", "usr/bin/cargo"] {
            fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            fs::write(r.join(f), "arm64 program").unwrap();
        }
        fs::create_dir_all(r.join(format!("usr/lib/rustlib/{t}/lib"))).unwrap();
        let rootfs = pkgs(&[
            ("rustc", &v),
            ("libstd-rust-dev", &v),
            ("cargo", &host["cargo"]),
        ]);
        let table = crate::binfmt::arch::Table::builtin();
        let req = Request {
            arch: table.resolve("arm64").unwrap(),
            root: r,
            force: false,
            path_env: std::ffi::OsStr::new("/usr/bin"),
            host_status: Path::new("/var/lib/dpkg/status"),
        };
        let tree = Tree::open(r).unwrap();
        let mut b = Builder::new(Path::new(HOST_RUSTC)).unwrap();
        let note = b.rust(&req, &tree, &rootfs, &host).unwrap().unwrap();
        assert!(note.contains(&format!("target/{t}/<profile>")), "{note}");
        let covers = crate::emulation::accelerate::covers_of(&b.items);
        for p in ["rustc", "rustdoc", "cargo"] {
            assert_eq!(
                covers.get(format!("/usr/bin/{p}").as_str()).copied(),
                Some(format!("{DIR}/rust/bin/{p}").as_str())
            );
        }
        let launcher = |path: &str| {
            b.items
                .iter()
                .find_map(|i| match i {
                    Item::Launcher { path: p, bytes } if p == path => Some(bytes.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let has = |bytes: &[u8], s: &str| {
            memchr::memmem::find(bytes, format!("{s}\0").as_bytes()).is_some()
        };
        let rustc = launcher(&format!("{DIR}/rust/bin/rustc"));
        assert!(has(&rustc, &format!("{DIR}/rust")) && has(&rustc, "--target") && has(&rustc, t));
        let host_rustc = launcher(&format!("{DIR}/rust/bin/rustc-host"));
        assert!(has(&host_rustc, "--sysroot") && !has(&host_rustc, "--target"));
        let cargo = launcher(&format!("{DIR}/rust/bin/cargo"));
        assert!(has(&cargo, &format!("build.target=\"{t}\"")));
        assert!(has(
            &cargo,
            &format!("build.rustc=\"{DIR}/rust/bin/rustc-host\"")
        ));
        assert!(has(&cargo, "env.PKG_CONFIG_ALLOW_CROSS=\"1\""));
        let linker = b
            .items
            .iter()
            .find_map(|i| match i {
                Item::Launcher { path, bytes }
                    if path
                        .starts_with(&format!("{DIR}/rust/host/usr/bin/x86_64-linux-gnu-gcc-")) =>
                {
                    Some(bytes.clone())
                }
                _ => None,
            })
            .unwrap();
        assert!(has(
            &linker,
            &format!("-Wl,--dynamic-linker={}", b.loader_in)
        ));
        assert!(b.items.iter().any(|i| matches!(i, Item::Bind { source, path, dir: true }
            if source == Path::new(HOST_RUSTLIB) && path == &format!("{DIR}/rust/lib/rustlib/{HOST_TRIPLE}"))));
        assert!(b.items.iter().any(|i| matches!(i, Item::Symlink { path, target }
            if path == &format!("{DIR}/rust/lib/rustlib/{t}") && target == &format!("/usr/lib/rustlib/{t}"))));
    }
}
