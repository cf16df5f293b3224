//! clang in a hybrid build: the host's clang of the rootfs's major version, driven as
//! `--target=<triple>` inside the chroot, stands in for the rootfs's (Debian's `clang-N`).
//!
//! - clang behaves by the name it was started as (`clang`, `clang++`, `clang-cpp` are one
//!   file), so each rootfs name that leads to the rootfs's clang binary is covered by itself
//!   (`Item::CoverName`: `/usr/bin/clang++-14`, `/usr/lib/llvm-14/bin/clang++`, `cc` where the
//!   alternatives lead to clang, ...) with its own launcher, whose `--argv0` has that name:
//!   the driver mode is the one the rootfs's clang would have.
//! - clang finds itself through `/proc/self/exe`, which is the host's loader the launcher
//!   runs, and runs itself again from there for each `-cc1`/`-cc1as` job it does not keep
//!   in-process (any command of more than one job, such as `clang a.c -o a`). So the
//!   launchers pass `-no-canonical-prefixes`, which makes clang's path its `--argv0`:
//!   `clang-N/bin/<name>` in the injection, a launcher of the host's clang without arguments
//!   of its own (`-cc1` must come first). Beside it, `clang-N/include` and `clang-N/lib` lead
//!   to the rootfs's `/usr/lib/llvm-N/include` and `lib` (but for the host's LTO plugin, which
//!   the host's ld loads); `-resource-dir` names the rootfs's (stddef.h, the intrinsics
//!   headers), the path the rootfs's clang has.
//! - The host's `/usr/lib/llvm-N/lib` is bound at `llvm-N/lib`, where the host's
//!   `libclang-cpp.so.N` symlink in the loader's library directory leads.
//! - Headers, crt files, libgcc and libstdc++ are the rootfs's: the chroot is all clang sees
//!   (no `--sysroot`, as the rootfs's own clang: its GCC installation is found under `/usr`,
//!   the rootfs's `/usr/lib/gcc/<triple>/<N>`). The link runs
//!   `<triple>-ld`, the rootfs's binutils, which the GNU toolchain's part covers with the
//!   host's cross ld.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    AccelError, Builder, DIR, Item, Request, dpkg_installed, host_dpkg_status, rootfs_dpkg_status,
};
use crate::confined::Tree;

/// Where Debian installs each LLVM version (`llvm-14/bin/clang`), on the host and in the rootfs.
pub(super) const HOST_LLVM_BASE: &str = "/usr/lib";

/// The rootfs's clang of one major version, and the host's that stands in for it.
#[derive(Debug)]
pub(super) struct Clang {
    major: String,
    host_major: String,
    /// The host's clang binary (`/usr/lib/llvm-14/bin/clang`).
    host_clang: PathBuf,
    host_version: String,
    rootfs_version: String,
    /// The rootfs's clang binary, inside it (`/usr/lib/llvm-14/bin/clang`).
    rootfs_clang: String,
}

/// What becomes of one clang of the rootfs.
#[derive(Debug)]
pub(super) enum Match {
    /// The host's clang stands in.
    Native(Clang),
    /// The host has no clang at all: the rootfs's stays emulated (as a missing g++ does);
    /// the package that provides it.
    Emulated { file: String, package: String },
}

/// The numbers N of the `llvm-N` names, sorted by value.
fn majors(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<(u32, String)> = names
        .into_iter()
        .filter_map(|n| {
            let m = n.strip_prefix("llvm-")?;
            // Only the canonical spelling (`14`, never `+14` or `014`): one name a number.
            let n: u32 = m.parse().ok()?;
            (n.to_string() == m).then(|| (n, m.to_owned()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, m)| m).collect()
}

/// The rootfs's clangs (Debian's `/usr/lib/llvm-N/bin/clang`, by major) matched with the
/// host's under `host_llvm`: the same major, else (with `force`) the host's newest; a host
/// with clangs of other majors only is refused (exit 3) with the package to install.
pub(super) fn match_clangs(
    req: &Request,
    root: &Tree,
    host_llvm: &Path,
) -> Result<Vec<Match>, AccelError> {
    let rootfs_majors: Vec<String> = majors(
        root.read_dir_in_root("usr/lib")
            .map(|v| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>())
            .unwrap_or_default(),
    )
    .into_iter()
    .filter(|m| root.is_file_in_root(&format!("usr/lib/llvm-{m}/bin/clang")))
    .collect();
    if rootfs_majors.is_empty() {
        return Ok(Vec::new());
    }
    let host_majors: Vec<String> = majors(
        fs::read_dir(host_llvm)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    )
    .into_iter()
    .filter(|m| host_llvm.join(format!("llvm-{m}/bin/clang")).is_file())
    .collect();
    let rootfs_pkgs = rootfs_dpkg_status(root)?
        .map(|s| dpkg_installed(&s))
        .unwrap_or_default();
    let host_pkgs = dpkg_installed(&host_dpkg_status(req.host_status));
    let version = |pkgs: &std::collections::HashMap<String, String>, m: &str| {
        pkgs.get(&format!("clang-{m}"))
            .cloned()
            .unwrap_or_else(|| m.to_owned())
    };
    let mut out = Vec::new();
    for major in rootfs_majors {
        let rootfs_clang = root
            .resolve(&format!("usr/lib/llvm-{major}/bin/clang"))
            .unwrap_or_else(|| format!("/usr/lib/llvm-{major}/bin/clang"));
        let host_major = if host_majors.contains(&major) {
            major.clone()
        } else if let Some(newest) = host_majors.last() {
            if !req.force {
                return Err(AccelError::Mismatch {
                    what: "clang",
                    host: format!("{newest} (clang-{newest} {})", version(&host_pkgs, newest)),
                    rootfs: format!("{major} (clang-{major} {})", version(&rootfs_pkgs, &major)),
                    package: format!("clang-{major}"),
                });
            }
            newest.clone()
        } else {
            out.push(Match::Emulated {
                file: rootfs_clang,
                package: format!("clang-{major}"),
            });
            continue;
        };
        out.push(Match::Native(Clang {
            host_clang: host_llvm.join(format!("llvm-{host_major}/bin/clang")),
            host_version: version(&host_pkgs, &host_major),
            rootfs_version: version(&rootfs_pkgs, &major),
            major,
            host_major,
            rootfs_clang,
        }));
    }
    Ok(out)
}

/// The rootfs's names that may lead to its clang of `major`: Debian's versioned and
/// unversioned names, the LLVM directory's, and `cc`/`c++` (covered only where the
/// alternatives lead to clang).
fn candidate_names(major: &str, t: &str) -> Vec<String> {
    let mut v = Vec::new();
    for n in ["clang", "clang++", "clang-cpp"] {
        v.push(format!("usr/bin/{n}-{major}"));
        v.push(format!("usr/bin/{n}"));
        v.push(format!("usr/bin/{t}-{n}"));
        v.push(format!("usr/lib/llvm-{major}/bin/{n}"));
    }
    v.push(format!("usr/lib/llvm-{major}/bin/clang-{major}"));
    v.extend(["usr/bin/cc".to_owned(), "usr/bin/c++".to_owned()]);
    v
}

/// Of `candidate_names`, those that lead to the rootfs's clang binary, each as the name
/// itself (its directory resolved inside the rootfs, the name not followed), sorted.
fn clang_names(root: &Tree, c: &Clang, t: &str) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for rel in candidate_names(&c.major, t) {
        if root.resolve(&rel).as_deref() != Some(c.rootfs_clang.as_str()) {
            continue;
        }
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", &rel));
        let Some(dir) = root.resolve(dir) else {
            continue;
        };
        out.insert(format!("{}/{name}", dir.trim_end_matches('/')));
    }
    out.into_iter().collect()
}

impl Builder {
    /// The part of one native clang: its directory `clang-N` (an argument-free launcher per
    /// name in `bin`, the rootfs's `lib` and `include`), the host's LLVM libraries, and a
    /// launcher covering each rootfs name of clang; returns the line that says so.
    pub(super) fn clang(
        &mut self,
        root: &Tree,
        t: &str,
        c: &Clang,
        force: bool,
    ) -> Result<String, AccelError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AccelError::Io { path, source }
        };
        let host_clang = fs::canonicalize(&c.host_clang).map_err(io(&c.host_clang))?;
        let real = self.host_file(&host_clang, true)?;
        let (major, host_major) = (&c.major, &c.host_major);
        let top = format!("{DIR}/clang-{major}");
        self.items.push(Item::Dir(format!("{top}/bin")));
        self.items.push(Item::Symlink {
            path: format!("{top}/include"),
            target: format!("/usr/lib/llvm-{major}/include"),
        });
        // The host's LLVM libraries, where the host's libclang-cpp.so.N symlink leads.
        if let Some(lib) = host_clang
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("lib"))
        {
            let lib = fs::canonicalize(&lib).map_err(io(&lib))?;
            self.lib_dir(root, major, host_major, &lib);
            self.items.push(Item::Bind {
                source: lib,
                path: format!("{DIR}/llvm-{host_major}/lib"),
                dir: true,
            });
        }
        let resource_dir = resource_dir(root, major);
        let target = format!("--target={t}");
        let mut extra = vec![target.as_str(), "-no-canonical-prefixes"];
        if let Some(rd) = &resource_dir {
            extra.extend(["-resource-dir", rd.as_str()]);
        }
        for name in clang_names(root, c, t) {
            // clang's own name (its mode, and what it runs again for -cc1 and -cc1as, by
            // -no-canonical-prefixes): a launcher without arguments of its own.
            let base = name.rsplit('/').next().unwrap_or(&name);
            let own = format!("{top}/bin/{base}");
            if !self
                .items
                .iter()
                .any(|i| matches!(i, Item::Launcher { path, .. } if *path == own))
            {
                self.items.push(Item::Launcher {
                    bytes: self.via_loader(&own, &real, &[]),
                    path: own.clone(),
                });
            }
            // The rootfs's name: the same, with the target and the rootfs's resource dir.
            let path = format!("{top}/names{name}");
            if let Some((dir, _)) = path.rsplit_once('/') {
                self.items.push(Item::Dir(dir.to_owned()));
            }
            self.items.push(Item::Launcher {
                bytes: self.via_loader(&own, &real, &extra),
                path: path.clone(),
            });
            self.items.push(Item::CoverName {
                target: name,
                launcher: path,
            });
        }
        Ok(format!(
            "native clang-{host_major} {} from the host stands in for the rootfs's clang-{major} {} (target {t}, the rootfs's headers, crt files, libgcc and libstdc++{}; links with the rootfs's {t}-ld, native where binutils are){}",
            c.host_version,
            c.rootfs_version,
            resource_dir
                .map(|rd| format!(", resource dir {rd}"))
                .unwrap_or_default(),
            if force && host_major != major {
                " [forced: the versions differ]"
            } else {
                ""
            }
        ))
    }
}

impl Builder {
    /// clang's `lib` beside its `bin` (`clang-N/lib`): the rootfs's `/usr/lib/llvm-N/lib`,
    /// entry by entry, but for the LTO plugin `LLVMgold.so`, which the host's (native) ld
    /// loads: the host's, of the host's clang (`-flto` links natively).
    fn lib_dir(&mut self, root: &Tree, major: &str, host_major: &str, host_lib: &Path) {
        let top = format!("{DIR}/clang-{major}/lib");
        let rootfs_lib = format!("/usr/lib/llvm-{major}/lib");
        self.items.push(Item::Dir(top.clone()));
        let names = root
            .read_dir_in_root(&rootfs_lib)
            .map(|v| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>())
            .unwrap_or_default();
        let plugin = "LLVMgold.so";
        let host_plugin = super::host_elf(&host_lib.join(plugin)) == Some(super::HostElf::Library);
        for n in names.iter().filter(|n| !(host_plugin && *n == plugin)) {
            self.items.push(Item::Symlink {
                path: format!("{top}/{n}"),
                target: format!("{rootfs_lib}/{n}"),
            });
        }
        if host_plugin {
            self.items.push(Item::Symlink {
                path: format!("{top}/{plugin}"),
                target: format!("{DIR}/llvm-{host_major}/lib/{plugin}"),
            });
        }
    }
}

/// Plans clang's part: one line of notes per native clang, and the rootfs's clangs left
/// emulated with the package to install.
pub(super) fn plan(
    b: &mut Builder,
    req: &Request,
    root: &Tree,
    t: &str,
    notes: &mut Vec<String>,
    left: &mut Vec<(String, String)>,
) -> Result<(), AccelError> {
    for m in match_clangs(req, root, Path::new(HOST_LLVM_BASE))? {
        match m {
            Match::Native(c) => notes.push(b.clang(root, t, &c, req.force)?),
            Match::Emulated { file, package } => left.push((file, package)),
        }
    }
    Ok(())
}

/// The rootfs's clang resource directory (`/usr/lib/llvm-14/lib/clang/14.0.6`), if it has
/// one (the newest version there with an include directory).
fn resource_dir(root: &Tree, major: &str) -> Option<String> {
    let dir = format!("usr/lib/llvm-{major}/lib/clang");
    let mut v: Vec<String> = root
        .read_dir_in_root(&dir)
        .ok()?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| {
            !n.starts_with('.')
                && root
                    .file_type_in_root(&format!("{dir}/{n}/include"))
                    .is_some()
        })
        .collect();
    v.sort();
    let last = v.pop()?;
    root.resolve(&format!("{dir}/{last}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// A rootfs with Debian's clang of `major` (its binary and dpkg entry) and a host LLVM
    /// directory with clangs of `host_majors`; the host's dpkg status names them.
    fn fixture(major: &str, host_majors: &[&str]) -> (tempfile::TempDir, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join(format!("usr/lib/llvm-{major}/bin"));
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("clang"), "arm64").unwrap();
        fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        fs::write(
            root.path().join("var/lib/dpkg/status"),
            format!(
                "Package: clang-{major}\nStatus: install ok installed\nVersion: 1:{major}.0.6-12\n"
            ),
        )
        .unwrap();
        let host = tempfile::tempdir().unwrap();
        let mut status = String::new();
        for m in host_majors {
            let b = host.path().join(format!("llvm-{m}/bin"));
            fs::create_dir_all(&b).unwrap();
            fs::write(b.join("clang"), "x86_64").unwrap();
            status.push_str(&format!(
                "Package: clang-{m}\nStatus: install ok installed\nVersion: 1:{m}.0.1-1\n\n"
            ));
        }
        fs::write(host.path().join("status"), status).unwrap();
        (root, host)
    }

    fn matched(major: &str, host_majors: &[&str], force: bool) -> Result<Vec<Match>, AccelError> {
        let (root, host) = fixture(major, host_majors);
        let t = crate::binfmt::arch::Table::builtin();
        let req = Request {
            arch: t.get("aarch64").unwrap(),
            root: root.path(),
            force,
            path_env: OsStr::new(""),
            host_status: &host.path().join("status"),
        };
        match_clangs(&req, &Tree::open(root.path()).unwrap(), host.path())
    }

    #[test]
    fn the_same_major_is_used_and_its_versions_named() {
        let m = matched("14", &["13", "14"], false).unwrap();
        let [Match::Native(c)] = &m[..] else {
            panic!("{m:?}")
        };
        assert_eq!((c.major.as_str(), c.host_major.as_str()), ("14", "14"));
        assert_eq!(c.rootfs_version, "1:14.0.6-12");
        assert_eq!(c.host_version, "1:14.0.1-1");
        assert_eq!(c.rootfs_clang, "/usr/lib/llvm-14/bin/clang");
        assert!(c.host_clang.ends_with("llvm-14/bin/clang"));
    }

    #[test]
    fn another_major_is_refused_with_both_versions_and_the_package_unless_forced() {
        let e = matched("15", &["9", "14"], false).unwrap_err();
        assert_eq!(
            crate::error::Classify::kind(&e),
            crate::error::ErrorKind::Environment
        );
        let msg = e.to_string();
        assert!(
            msg.contains("the host's cross clang is 14 (clang-14 1:14.0.1-1), the rootfs's is 15 (clang-15 1:15.0.6-12)")
                && msg.contains("apt-get install clang-15 on the host, or pass --accelerate=force"),
            "{msg}"
        );
        // Forced: the host's newest (by number, not by name: 14 over 9).
        let m = matched("15", &["9", "14"], true).unwrap();
        let [Match::Native(c)] = &m[..] else {
            panic!("{m:?}")
        };
        assert_eq!((c.major.as_str(), c.host_major.as_str()), ("15", "14"));
    }

    #[test]
    fn no_clang_on_the_host_leaves_the_rootfs_clang_emulated_naming_the_package() {
        let m = matched("14", &[], false).unwrap();
        let [Match::Emulated { file, package }] = &m[..] else {
            panic!("{m:?}")
        };
        assert_eq!(file, "/usr/lib/llvm-14/bin/clang");
        assert_eq!(package, "clang-14");
    }

    #[test]
    fn a_rootfs_without_clang_has_no_clang_part() {
        let (root, host) = fixture("14", &["14"]);
        fs::remove_file(root.path().join("usr/lib/llvm-14/bin/clang")).unwrap();
        let t = crate::binfmt::arch::Table::builtin();
        let req = Request {
            arch: t.get("aarch64").unwrap(),
            root: root.path(),
            force: false,
            path_env: OsStr::new(""),
            host_status: &host.path().join("status"),
        };
        let m = match_clangs(&req, &Tree::open(root.path()).unwrap(), host.path()).unwrap();
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(
            majors(["llvm-9".into(), "llvm-14".into(), "llvm".into(), "x".into()]),
            ["9", "14"]
        );
    }

    #[test]
    fn names_are_the_ones_leading_to_the_rootfs_clang_each_as_itself() {
        let (root, _host) = fixture("14", &["14"]);
        let r = root.path();
        let bin = r.join("usr/bin");
        fs::create_dir_all(&bin).unwrap();
        let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, name).unwrap();
        let b = |n: &str| bin.join(n).display().to_string();
        link("../lib/llvm-14/bin/clang", &b("clang-14"));
        link("../lib/llvm-14/bin/clang++", &b("clang++-14"));
        link(
            "clang",
            r.join("usr/lib/llvm-14/bin/clang++").to_str().unwrap(),
        );
        link("/etc/alternatives/cc", &b("cc"));
        fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        link(
            "/usr/bin/clang-14",
            r.join("etc/alternatives/cc").to_str().unwrap(),
        );
        link("/usr/bin/g++", &b("c++"));
        fs::write(bin.join("g++"), "gcc").unwrap();
        let c = Clang {
            major: "14".into(),
            host_major: "14".into(),
            host_clang: "/usr/lib/llvm-14/bin/clang".into(),
            host_version: String::new(),
            rootfs_version: String::new(),
            rootfs_clang: "/usr/lib/llvm-14/bin/clang".into(),
        };
        assert_eq!(
            clang_names(&Tree::open(r).unwrap(), &c, "aarch64-linux-gnu"),
            [
                "/usr/bin/cc",
                "/usr/bin/clang++-14",
                "/usr/bin/clang-14",
                "/usr/lib/llvm-14/bin/clang",
                "/usr/lib/llvm-14/bin/clang++",
            ]
        );
    }

    /// Planned against the host's real clang-14 (skipped, saying so, where it has none): each
    /// name is covered by itself with a launcher carrying the target, -no-canonical-prefixes
    /// and the rootfs's resource dir, whose argv0 is an argument-free launcher of the same
    /// name; the LTO plugin is the host's, everything else of clang's lib the rootfs's.
    #[test]
    fn the_plan_covers_each_name_with_its_launcher_and_the_rootfs_files() {
        let host = Path::new("/usr/lib/llvm-14/bin/clang");
        if !host.is_file() || std::env::consts::ARCH != "x86_64" {
            eprintln!("skipped: the host has no clang-14");
            return;
        }
        let (root, _h) = fixture("14", &["14"]);
        let r = root.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("../lib/llvm-14/bin/clang", r.join("usr/bin/clang-14")).unwrap();
        for d in ["clang/14.0.6/include", "cmake"] {
            fs::create_dir_all(r.join("usr/lib/llvm-14/lib").join(d)).unwrap();
        }
        fs::write(r.join("usr/lib/llvm-14/lib/LLVMgold.so"), "arm64").unwrap();
        let tree = Tree::open(r).unwrap();
        let c = Clang {
            major: "14".into(),
            host_major: "14".into(),
            host_clang: host.into(),
            host_version: "1:14.0.6-12".into(),
            rootfs_version: "1:14.0.6-12".into(),
            rootfs_clang: "/usr/lib/llvm-14/bin/clang".into(),
        };
        let mut b = Builder::new(host).unwrap();
        let line = b.clang(&tree, "aarch64-linux-gnu", &c, false).unwrap();
        assert!(
            line.contains("resource dir /usr/lib/llvm-14/lib/clang/14.0.6"),
            "{line}"
        );
        let launcher_of = |path: &str| {
            b.items.iter().find_map(|i| match i {
                Item::Launcher { path: p, bytes } if p == path => Some(bytes.clone()),
                _ => None,
            })
        };
        let covers: Vec<(&str, &str)> = b
            .items
            .iter()
            .filter_map(|i| match i {
                Item::CoverName { target, launcher } => Some((target.as_str(), launcher.as_str())),
                _ => None,
            })
            .collect();
        let top = format!("{DIR}/clang-14");
        assert_eq!(
            covers,
            [
                (
                    "/usr/bin/clang-14",
                    format!("{top}/names/usr/bin/clang-14").as_str()
                ),
                (
                    "/usr/lib/llvm-14/bin/clang",
                    format!("{top}/names/usr/lib/llvm-14/bin/clang").as_str()
                ),
            ]
        );
        let has = |b: &[u8], s: &str| memchr::memmem::find(b, s.as_bytes()).is_some();
        let named = launcher_of(&format!("{top}/names/usr/bin/clang-14")).unwrap();
        assert!(has(&named, &format!("--argv0\0{top}/bin/clang-14\0")));
        assert!(has(
            &named,
            "\0--target=aarch64-linux-gnu\0-no-canonical-prefixes\0-resource-dir\0/usr/lib/llvm-14/lib/clang/14.0.6\0"
        ));
        let own = launcher_of(&format!("{top}/bin/clang-14")).unwrap();
        assert!(!has(&own, "--target") && has(&own, "/host/bin/clang\0"));
        let symlinks = crate::emulation::accelerate::symlinks_of(&b.items);
        let lib = |n: &str| symlinks.get(format!("{top}/lib/{n}").as_str()).copied();
        assert_eq!(lib("clang"), Some("/usr/lib/llvm-14/lib/clang"));
        assert_eq!(lib("cmake"), Some("/usr/lib/llvm-14/lib/cmake"));
        if Path::new("/usr/lib/llvm-14/lib/LLVMgold.so").is_file() {
            assert_eq!(
                lib("LLVMgold.so"),
                Some(format!("{DIR}/llvm-14/lib/LLVMgold.so").as_str())
            );
        }
        // The host's headers are never bound: only its programs and its LLVM lib directory.
        for i in &b.items {
            if let Item::Bind { source, .. } = i {
                assert!(!source.starts_with("/usr/include"), "{source:?}");
                assert!(!source.starts_with("/usr/aarch64-linux-gnu"), "{source:?}");
            }
        }
    }
}
