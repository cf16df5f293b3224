//! The GNU toolchain of a hybrid build: the host's cross gcc and binutils of the rootfs's versions.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    AccelError, Builder, DIR, HostElf, Item, Request, dpkg_installed, find_in, host_dpkg_status,
    host_elf, major_minor, rootfs_dpkg_status,
};
use crate::confined::Tree;

const BINUTILS: &[&str] = &[
    "as",
    "ld",
    "ld.bfd",
    "ld.gold",
    "ar",
    "ranlib",
    "nm",
    "objcopy",
    "objdump",
    "strip",
    "readelf",
    "size",
    "strings",
    "addr2line",
    "c++filt",
];
/// Compiler drivers (`gcc` → `aarch64-linux-gnu-gcc-12`).
const DRIVERS: &[&str] = &["gcc", "g++", "cpp"];
/// GCC's wrappers that load its LTO plugin (`gcc-ar` → `aarch64-linux-gnu-gcc-ar-12`): native
/// too, or the host's ar would be handed the rootfs's (aarch64) plugin.
const GCC_TOOLS: &[&str] = &["gcc-ar", "gcc-nm", "gcc-ranlib"];

/// The two toolchains `plan` matched: the rootfs's gcc and binutils, and the host's cross
/// ones that stand in for them.
pub(super) struct Toolchains {
    /// The GNU triple (`aarch64-linux-gnu`).
    t: String,
    /// The rootfs's gcc major version, and the host's cross gcc's.
    major: String,
    host_major: String,
    /// The host's cross gcc driver, its directory, and its compiler directory
    /// (`/usr/lib/gcc-cross/<triple>/<N>`).
    pub(super) host_driver: PathBuf,
    host_bin: PathBuf,
    gcc_cross: PathBuf,
    host_gcc_version: String,
    rootfs_gcc_version: String,
    host_bu: Option<String>,
    rootfs_bu: Option<String>,
}

/// The rootfs's gcc major version: the one /usr/bin/gcc leads to (`<triple>-gcc-N`), else
/// the newest of /usr/lib/gcc/<triple> with a cc1.
fn rootfs_gcc_major(root: &Tree, t: &str) -> Result<String, AccelError> {
    root.resolve("usr/bin/gcc")
        .and_then(|p| {
            let name = p.rsplit('/').next()?.to_owned();
            let n = name.strip_prefix(&format!("{t}-gcc-"))?.to_owned();
            Some(n)
        })
        .or_else(|| {
            let dir = format!("usr/lib/gcc/{t}");
            let mut v: Vec<String> = root
                .read_dir_in_root(&dir)
                .ok()?
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| root.is_file_in_root(&format!("{dir}/{name}/cc1")))
                .collect();
            v.sort();
            v.pop()
        })
        .ok_or_else(|| AccelError::NoRootfsGcc {
            triple: t.to_owned(),
        })
}

/// binutils' `major.minor` on both sides must be equal and known (`--accelerate=force` skips
/// this check).
fn check_binutils(
    bu_pkg: &str,
    host_bu: &Option<String>,
    rootfs_bu: &Option<String>,
    host_status_shown: &str,
) -> Result<(), AccelError> {
    match (host_bu, rootfs_bu) {
        (Some(h), Some(r)) if major_minor(h) != major_minor(r) => {
            return Err(AccelError::Mismatch {
                what: "binutils",
                host: format!("{} ({bu_pkg} {h})", major_minor(h)),
                rootfs: format!("{} ({bu_pkg} {r})", major_minor(r)),
                package: format!("{bu_pkg} (version {})", major_minor(r)),
            });
        }
        (None, _) => {
            return Err(AccelError::VersionUnknown {
                what: "the host's cross binutils".into(),
                package: bu_pkg.to_owned(),
                status: host_status_shown.to_owned(),
            });
        }
        (_, None) => {
            return Err(AccelError::VersionUnknown {
                what: "the rootfs's binutils".into(),
                package: bu_pkg.to_owned(),
                status: "the rootfs's /var/lib/dpkg/status".into(),
            });
        }
        _ => {}
    }
    Ok(())
}

/// Finds the rootfs's gcc and the host's cross gcc and binutils of the same versions (or,
/// with `force`, the host's default ones), refusing with the package to install.
pub(super) fn match_toolchains(
    req: &Request,
    root: &Tree,
    t: String,
) -> Result<Toolchains, AccelError> {
    let major = rootfs_gcc_major(root, &t)?;
    let rootfs_pkgs = rootfs_dpkg_status(root)?
        .map(|s| dpkg_installed(&s))
        .unwrap_or_default();
    let host_pkgs = dpkg_installed(&host_dpkg_status(req.host_status));
    let host_status_shown = req.host_status.display().to_string();

    // The host's cross gcc: the rootfs's major first, else the default one.
    let gcc_pkg = |m: &str| format!("gcc-{m}-{t}");
    let no_toolchain = |package: String| AccelError::NoToolchain {
        triple: t.clone(),
        major: major.clone(),
        package,
    };
    let trusted = crate::host::trusted_uid();
    let exact = find_in(req.path_env, &format!("{t}-gcc-{major}"));
    let (host_driver, host_major) = match exact {
        Some(p) => (p, major.clone()),
        None => {
            let default = find_in(req.path_env, &format!("{t}-gcc"))
                .ok_or_else(|| no_toolchain(gcc_pkg(&major)))?;
            let real = fs::canonicalize(&default).map_err(|source| AccelError::Io {
                path: default.clone(),
                source,
            })?;
            if !crate::host::program_is_safe(&real, &trusted) {
                return Err(AccelError::UnsafeProgram { path: real });
            }
            let m = real
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&format!("{t}-gcc-")))
                .map(str::to_owned)
                .ok_or_else(|| no_toolchain(gcc_pkg(&major)))?;
            (real, m)
        }
    };
    let host_bin = host_driver
        .parent()
        .unwrap_or(Path::new("/usr/bin"))
        .to_owned();
    let gcc_cross = Path::new("/usr/lib/gcc-cross").join(&t).join(&host_major);
    if !gcc_cross.join("cc1").is_file() {
        return Err(no_toolchain(gcc_pkg(&major)));
    }
    let host_gcc_version = host_pkgs
        .get(&gcc_pkg(&host_major))
        .cloned()
        .unwrap_or_else(|| host_major.clone());
    let rootfs_gcc_version = rootfs_pkgs
        .get(&format!("gcc-{major}"))
        .cloned()
        .unwrap_or_else(|| major.clone());
    if host_major != major && !req.force {
        return Err(AccelError::Mismatch {
            what: "gcc",
            host: format!("{host_major} ({} {host_gcc_version})", gcc_pkg(&host_major)),
            rootfs: format!("{major} (gcc-{major} {rootfs_gcc_version})"),
            package: gcc_pkg(&major),
        });
    }
    // binutils: Debian names them binutils-<triple> on the host and in the rootfs alike.
    let bu_pkg = format!("binutils-{t}");
    let host_bu = host_pkgs.get(&bu_pkg).cloned();
    let rootfs_bu = rootfs_pkgs
        .get(&bu_pkg)
        .or_else(|| rootfs_pkgs.get("binutils"))
        .cloned();
    if !req.force {
        check_binutils(&bu_pkg, &host_bu, &rootfs_bu, &host_status_shown)?;
    }
    if !host_bin.join(format!("{t}-as")).is_file() {
        return Err(no_toolchain(bu_pkg));
    }
    Ok(Toolchains {
        t,
        major,
        host_major,
        host_driver,
        host_bin,
        gcc_cross,
        host_gcc_version,
        rootfs_gcc_version,
        host_bu,
        rootfs_bu,
    })
}

impl Builder {
    /// The GNU toolchain's part: the tree shaped like the cross toolchain's install, the
    /// rootfs's names covered; returns the line that says so.
    pub(super) fn gcc(
        &mut self,
        req: &Request,
        root: &Tree,
        tc: &Toolchains,
        left: &mut Vec<(String, String)>,
    ) -> Result<String, AccelError> {
        let (t, host_major) = (&tc.t, &tc.host_major);
        self.items.extend([
            Item::Dir(format!("{DIR}/usr/{t}/bin")),
            Item::Dir(format!("{DIR}/usr/lib/gcc-cross/{t}/{host_major}")),
        ]);
        self.compiler_dir(root, tc)?;
        self.binutils_dir(t)?;
        self.cxx_headers(root, tc);
        left.extend(self.cover_rootfs_names(root, tc)?);
        let major = &tc.major;
        let bu = tc.host_bu.as_deref().unwrap_or("unknown");
        let forced = req.force
            && (host_major != major
                || tc.host_bu.as_deref().map(major_minor)
                    != tc.rootfs_bu.as_deref().map(major_minor));
        Ok(format!(
            "native {t}-gcc-{host_major} {} and binutils-{t} {bu} from the host stand in for the rootfs's gcc-{major} {} (binutils {}){}",
            tc.host_gcc_version,
            tc.rootfs_gcc_version,
            tc.rootfs_bu.as_deref().unwrap_or("unknown"),
            if forced {
                " [forced: the versions differ]"
            } else {
                ""
            }
        ))
    }

    /// The compiler's own directory: its native programs as launchers, its native plugins
    /// (liblto_plugin.so) from the host, and for everything else (crt*.o, libgcc, its headers,
    /// libstdc++.so & co.) the rootfs's gcc's own files; the host's copies of target files
    /// are left out.
    fn compiler_dir(&mut self, root: &Tree, tc: &Toolchains) -> Result<(), AccelError> {
        let (t, major, host_major) = (&tc.t, &tc.major, &tc.host_major);
        let rootfs_gcc_dir = format!("/usr/lib/gcc/{t}/{major}");
        let cross_dir = format!("{DIR}/usr/lib/gcc-cross/{t}/{host_major}");
        let mut seen = std::collections::BTreeSet::new();
        let mut entries: Vec<_> = fs::read_dir(&tc.gcc_cross)
            .map_err(|source| AccelError::Io {
                path: tc.gcc_cross.clone(),
                source,
            })?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = format!("{cross_dir}/{name}");
            match host_elf(&e.path()) {
                Some(HostElf::Program) => {
                    self.launch(path, &e.path(), &[])?;
                    seen.insert(name);
                }
                Some(HostElf::Library) => {
                    let real = self.host_file(&e.path(), false)?;
                    self.items.push(Item::Symlink { path, target: real });
                    seen.insert(name);
                }
                None => {}
            }
        }
        let Some(d) = root.resolve(&rootfs_gcc_dir) else {
            return Ok(());
        };
        let Ok(rd) = root.read_dir_in_root(&d) else {
            return Ok(());
        };
        let names: Vec<String> = rd
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| {
                // The rootfs's own (emulated) compiler programs are not wanted here.
                let program = root
                    .open_file_in_root(&format!("{d}/{name}"))
                    .ok()
                    .is_some_and(|f| {
                        crate::elf::inspect_file(&f)
                            .is_ok_and(|x| x.e_type == 2 || (x.e_type == 3 && x.interp.is_some()))
                    });
                !program
            })
            .filter(|n| !seen.contains(n))
            .collect();
        for name in names {
            self.items.push(Item::Symlink {
                path: format!("{cross_dir}/{name}"),
                target: format!("{rootfs_gcc_dir}/{name}"),
            });
        }
        Ok(())
    }

    /// The cross binutils' own directory (what the driver runs as `as`, `ld`); never the
    /// cross toolchain's include/ or lib/ (the host's copy of the target libc).
    fn binutils_dir(&mut self, t: &str) -> Result<(), AccelError> {
        let tool_bin = Path::new("/usr").join(t).join("bin");
        if !tool_bin.is_dir() {
            return Ok(());
        }
        let mut entries: Vec<_> = fs::read_dir(&tool_bin)
            .map_err(|source| AccelError::Io {
                path: tool_bin.clone(),
                source,
            })?
            .flatten()
            .filter(|e| host_elf(&e.path()) == Some(HostElf::Program))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            self.launch(format!("{DIR}/usr/{t}/bin/{name}"), &e.path(), &[])?;
        }
        Ok(())
    }

    /// libstdc++'s headers: a cross g++ looks for them beside the toolchain
    /// (`<tooldir>/include/c++/<N>` and its `<triple>` subdirectory), the rootfs has them in
    /// /usr/include/c++/<N> and /usr/include/<triple>/c++/<N>. A directory of symlinks to the
    /// rootfs's makes the one look like the other; nothing else is put in that include/.
    fn cxx_headers(&mut self, root: &Tree, tc: &Toolchains) {
        let (t, major) = (&tc.t, &tc.major);
        let cxx = format!("/usr/include/c++/{major}");
        let Ok(rd) = root.read_dir_in_root(&cxx) else {
            return;
        };
        let dir = format!("{DIR}/usr/{t}/include/c++/{}", tc.host_major);
        self.items.push(Item::Dir(dir.clone()));
        for n in rd.into_iter().map(|(name, _)| name).filter(|n| n != t) {
            self.items.push(Item::Symlink {
                path: format!("{dir}/{n}"),
                target: format!("{cxx}/{n}"),
            });
        }
        self.items.push(Item::Symlink {
            path: format!("{dir}/{t}"),
            target: format!("/usr/include/{t}/c++/{major}"),
        });
    }

    /// The rootfs's names (`cc`, `gcc`, `as`, `<triple>-g++-<N>`, ...), each resolved to its
    /// file and covered by a launcher of the host program that stands in; returns the files
    /// left emulated (the host lacks their counterpart) with the package that provides it.
    fn cover_rootfs_names(
        &mut self,
        root: &Tree,
        tc: &Toolchains,
    ) -> Result<Vec<(String, String)>, AccelError> {
        let (t, major, host_major) = (&tc.t, &tc.major, &tc.host_major);
        let mut names: Vec<String> = vec!["cc".into(), "c++".into()];
        for d in DRIVERS.iter().chain(GCC_TOOLS) {
            names.extend([
                (*d).to_owned(),
                format!("{d}-{major}"),
                format!("{t}-{d}"),
                format!("{t}-{d}-{major}"),
            ]);
        }
        for b in BINUTILS {
            names.extend([(*b).to_owned(), format!("{t}-{b}")]);
        }
        let mut covered = std::collections::BTreeMap::new();
        let mut left: Vec<(String, String)> = Vec::new();
        for n in &names {
            let Some(file) = root.resolve(&format!("usr/bin/{n}")) else {
                continue;
            };
            if covered.contains_key(&file) || !root.is_file_in_root(&file) {
                continue;
            }
            let Some(tool) = file
                .rsplit('/')
                .next()
                .and_then(|b| b.strip_prefix(&format!("{t}-")))
            else {
                continue;
            };
            // The driver gets --sysroot=/; the package that provides the host's counterpart.
            let (host_name, is_driver, pkg) = match tool.strip_suffix(&format!("-{major}")) {
                Some(d) if DRIVERS.contains(&d) => (
                    format!("{t}-{d}-{host_major}"),
                    true,
                    format!("{}-{host_major}-{t}", if d == "cpp" { "cpp" } else { d }),
                ),
                Some(d) if GCC_TOOLS.contains(&d) => (
                    format!("{t}-{d}-{host_major}"),
                    false,
                    format!("gcc-{host_major}-{t}"),
                ),
                _ if BINUTILS.contains(&tool) => {
                    (format!("{t}-{tool}"), false, format!("binutils-{t}"))
                }
                _ => continue,
            };
            let host_path = tc.host_bin.join(&host_name);
            if !host_path.is_file() {
                if !left.iter().any(|(f, _)| f == &file) {
                    left.push((file.clone(), pkg));
                }
                continue;
            }
            covered.insert(file, (host_name, host_path, is_driver));
        }
        let mut bound = std::collections::BTreeSet::new();
        for (file, (host_name, host_path, is_driver)) in &covered {
            let launcher_path = format!("{DIR}/usr/bin/{host_name}");
            if bound.insert(host_name.clone()) {
                // The rootfs is the sysroot. A cross gcc leaves /usr/local/include out of its
                // search list, where the rootfs's native gcc has it (before the multiarch and
                // /usr/include): put it back as a system directory.
                let extra: &[&str] = if *is_driver {
                    &["--sysroot=/", "-isystem", "/usr/local/include"]
                } else {
                    &[]
                };
                self.launch(launcher_path.clone(), host_path, extra)?;
            }
            self.items.push(Item::Cover {
                target: file.clone(),
                launcher: launcher_path,
            });
        }
        Ok(left)
    }
}
