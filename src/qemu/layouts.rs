//! Where distributions put QEMU's user-mode interpreters, and under which names, as data:
//! `LAYOUTS` is the table docs/distros.md shows (a unit test keeps both the same), and
//! interpreter discovery follows it. The default search path is the table's directories in
//! order of first appearance; within a directory the names its rows give, in row order; and
//! the hint a refusal gives ("install …") is the table's static package for the distribution
//! `/etc/os-release` names.
//!
//! A name is never trusted to tell static from dynamic (`/usr/bin/qemu-aarch64` is static on
//! Debian 13, Ubuntu 25.10 and Alpine, dynamic on Debian 12, Fedora and Arch): every candidate
//! is checked (`interpreter::check`), and with flag F a dynamic one is refused.

use std::path::{Path, PathBuf};

use crate::binfmt::arch::Arch;

/// How the file in a directory is named, for one arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    /// `qemu-<cpu>-static`
    QemuStatic,
    /// `qemu-<cpu>`
    Qemu,
    /// The Nix system, `<cpu>-linux` (`aarch64-linux`): NixOS's `/run/binfmt/<system>`.
    NixSystem,
}

impl FileName {
    /// The file names for `arch` (several for a Nix system, none when it has no Nix name).
    pub fn names(self, arch: &Arch) -> Vec<String> {
        match self {
            FileName::QemuStatic => vec![format!("qemu-{}-static", arch.qemu)],
            FileName::Qemu => vec![format!("qemu-{}", arch.qemu)],
            FileName::NixSystem => arch.nix.clone(),
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            FileName::QemuStatic => "qemu-<cpu>-static",
            FileName::Qemu => "qemu-<cpu>",
            FileName::NixSystem => "<nix-system>",
        }
    }
}

/// Whether the files a row names are statically linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linking {
    Static,
    /// Dynamic: found, checked, and refused with flag F.
    Dynamic,
    /// Depends on how it was built or configured (a local build, NixOS's option).
    Depends,
}

/// Which `/etc/os-release` a row is about: `ID` (or one of `ID_LIKE`'s words) and a range of
/// `VERSION_ID` (major.minor, compared as numbers; a release without `VERSION_ID`, such as
/// Debian testing and unstable, counts as newer than every bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Os {
    pub id: &'static str,
    /// Lowest `VERSION_ID` the row holds for, inclusive.
    pub from: Option<(u32, u32)>,
    /// Highest `VERSION_ID` the row holds for, inclusive.
    pub to: Option<(u32, u32)>,
}

/// One way a distribution ships interpreters.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The distribution and release, as people say it.
    pub system: &'static str,
    pub os: Option<Os>,
    /// The package to install (`<cpu>`: QEMU's name of the arch).
    pub package: &'static str,
    pub dir: &'static str,
    pub name: FileName,
    pub linking: Linking,
    pub note: &'static str,
}

const fn os(id: &'static str, from: Option<(u32, u32)>, to: Option<(u32, u32)>) -> Option<Os> {
    Some(Os { id, from, to })
}

/// The table, in search order: `/usr/bin` rows first (`qemu-<cpu>-static` before
/// `qemu-<cpu>`), then local installs, then NixOS.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        system: "Debian 12 (bookworm) and older",
        os: os("debian", None, Some((12, 99))),
        package: "qemu-user-static",
        dir: "/usr/bin",
        name: FileName::QemuStatic,
        linking: Linking::Static,
        note: "its `qemu-user` has dynamic `/usr/bin/qemu-<cpu>`",
    },
    Layout {
        system: "Debian 13 (trixie) and later, testing, unstable",
        os: os("debian", Some((13, 0)), None),
        package: "qemu-user",
        dir: "/usr/bin",
        name: FileName::Qemu,
        linking: Linking::Static,
        note: "static since QEMU 9.1 (Debian 1:9.0.2+ds-7); trixie's transitional `qemu-user-static` only adds `qemu-<cpu>-static` symlinks to these, forky has no `qemu-user-static`",
    },
    Layout {
        system: "Ubuntu 24.04 (noble) and older",
        os: os("ubuntu", None, Some((24, 4))),
        package: "qemu-user-static",
        dir: "/usr/bin",
        name: FileName::QemuStatic,
        linking: Linking::Static,
        note: "its `qemu-user` has dynamic `/usr/bin/qemu-<cpu>`",
    },
    Layout {
        system: "Ubuntu 25.10 (questing) and later",
        os: os("ubuntu", Some((25, 10)), None),
        package: "qemu-user",
        dir: "/usr/bin",
        name: FileName::Qemu,
        linking: Linking::Static,
        note: "as Debian 13; `qemu-user-static` is a virtual package there (25.04: either, checked)",
    },
    Layout {
        system: "Fedora",
        os: os("fedora", None, None),
        package: "qemu-user-static",
        dir: "/usr/bin",
        name: FileName::QemuStatic,
        linking: Linking::Static,
        note: "or one group's `qemu-user-static-<group>` (`-aarch64`, `-arm`, `-riscv`, `-x86`, …); its `qemu-user` has dynamic `/usr/bin/qemu-<cpu>`",
    },
    Layout {
        system: "Arch Linux",
        os: os("arch", None, None),
        package: "qemu-user-static",
        dir: "/usr/bin",
        name: FileName::QemuStatic,
        linking: Linking::Static,
        note: "its `qemu-user` has dynamic `/usr/bin/qemu-<cpu>`; `qemu-user-static-binfmt` registers them",
    },
    Layout {
        system: "Alpine Linux",
        os: os("alpine", None, None),
        package: "qemu-<cpu>",
        dir: "/usr/bin",
        name: FileName::Qemu,
        linking: Linking::Static,
        note: "linux-user is built `--static` (musl); one package per arch",
    },
    Layout {
        system: "Debian 12, Fedora, Arch: the dynamic build",
        os: None,
        package: "qemu-user",
        dir: "/usr/bin",
        name: FileName::Qemu,
        linking: Linking::Dynamic,
        note: "the same path as the static rows above: only the check tells them apart",
    },
    Layout {
        system: "a local build (`make install`)",
        os: None,
        package: "-",
        dir: "/usr/local/bin",
        name: FileName::QemuStatic,
        linking: Linking::Depends,
        note: "static when configured with `--static`",
    },
    Layout {
        system: "a local build (`make install`)",
        os: None,
        package: "-",
        dir: "/usr/local/bin",
        name: FileName::Qemu,
        linking: Linking::Depends,
        note: "static when configured with `--static`",
    },
    Layout {
        system: "a local install under libexec",
        os: None,
        package: "-",
        dir: "/usr/libexec/qemu",
        name: FileName::QemuStatic,
        linking: Linking::Depends,
        note: "",
    },
    Layout {
        system: "a local install under libexec",
        os: None,
        package: "-",
        dir: "/usr/libexec/qemu",
        name: FileName::Qemu,
        linking: Linking::Depends,
        note: "",
    },
    Layout {
        system: "NixOS",
        os: os("nixos", None, None),
        package: "boot.binfmt.preferStaticEmulators",
        dir: "/run/binfmt",
        name: FileName::NixSystem,
        linking: Linking::Depends,
        note: "a NixOS option, with the arch in `boot.binfmt.emulatedSystems`; no FHS path: `/run/binfmt/<system>` links into /nix/store (the resolved store path is what gets registered); without the option it is a dynamic `qemu-<cpu>-binfmt-P` wrapper, refused with F",
    },
];

/// The default search path: the table's directories, in order of first appearance.
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for l in LAYOUTS {
        if !dirs.iter().any(|d| d == Path::new(l.dir)) {
            dirs.push(PathBuf::from(l.dir));
        }
    }
    dirs
}

/// The file names to look for in `dir` for `arch`, in order: those the table's rows for `dir`
/// give; for a directory the table does not know (`--qemu-path`, a stored version),
/// `qemu-<cpu>-static` then `qemu-<cpu>`.
pub fn names_in(dir: &Path, arch: &Arch) -> Vec<String> {
    names_of(&kinds_in(dir), arch)
}

/// How files are named in `dir`, for `names_of` (`names_in` for many arches).
pub fn kinds_in(dir: &Path) -> Vec<FileName> {
    let rows: Vec<&Layout> = LAYOUTS.iter().filter(|l| Path::new(l.dir) == dir).collect();
    if rows.is_empty() {
        vec![FileName::QemuStatic, FileName::Qemu]
    } else {
        rows.iter().map(|l| l.name).collect()
    }
}

/// The file names of `arch` for these `kinds` (`kinds_in`), in order, each once.
pub fn names_of(kinds: &[FileName], arch: &Arch) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for &k in kinds {
        for n in k.names(arch) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// What `/etc/os-release` says of the distribution (the fields we use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses os-release text (`KEY=value`, values optionally quoted; other lines ignored).
    pub fn parse(text: &str) -> OsRelease {
        let mut o = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once('=') else {
                continue;
            };
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v)
                .to_owned();
            match k.trim() {
                "ID" => o.id = v.to_ascii_lowercase(),
                "ID_LIKE" => {
                    o.id_like = v.split_whitespace().map(str::to_ascii_lowercase).collect()
                }
                "VERSION_ID" => o.version_id = Some(v),
                "PRETTY_NAME" => o.pretty_name = Some(v),
                _ => {}
            }
        }
        o
    }

    /// `VERSION_ID` as (major, minor); `None` when absent or not numeric.
    fn version(&self) -> Option<(u32, u32)> {
        let v = self.version_id.as_deref()?;
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
        Some((major, minor))
    }

    fn matches(&self, os: &Os) -> bool {
        if self.id != os.id {
            return false;
        }
        match self.version() {
            // testing, unstable, rolling releases: the newest rows.
            None => os.to.is_none(),
            Some(v) => os.from.is_none_or(|f| v >= f) && os.to.is_none_or(|t| v <= t),
        }
    }
}

/// The table's rows with (possibly) static interpreters for this distribution: by `ID`, else by the first
/// `ID_LIKE` word that has rows (a derivative of Debian without a row of its own gets Debian's
/// rows for the newest release, since its version numbers are its own).
pub fn for_os(o: &OsRelease) -> Vec<&'static Layout> {
    let static_rows = |o: &OsRelease| -> Vec<&'static Layout> {
        LAYOUTS
            .iter()
            .filter(|l| l.linking != Linking::Dynamic && l.os.is_some_and(|x| o.matches(&x)))
            .collect()
    };
    let own = static_rows(o);
    if !own.is_empty() {
        return own;
    }
    for like in &o.id_like {
        let base = OsRelease {
            id: like.clone(),
            id_like: Vec::new(),
            version_id: None,
            pretty_name: None,
        };
        let rows = static_rows(&base);
        if !rows.is_empty() {
            return rows;
        }
    }
    Vec::new()
}

/// What a refusal tells the user to install for `arch`, on this distribution (`None`:
/// os-release was unreadable).
pub fn install_hint(o: Option<&OsRelease>, arch: &Arch) -> String {
    let rows = o.map(for_os).unwrap_or_default();
    match (o, rows.as_slice()) {
        (Some(o), [first, ..]) => {
            let name = o.pretty_name.clone().unwrap_or_else(|| o.id.clone());
            let package = first.package.replace("<cpu>", &arch.qemu);
            let verb = if first.name == FileName::NixSystem {
                "set"
            } else {
                "install"
            };
            format!(
                "{verb} {package} (static interpreters on {name}, see docs/distros.md) or pass --qemu-path DIR"
            )
        }
        _ => "install your distribution's static QEMU user-mode package (docs/distros.md lists them: qemu-user on Debian 13 and later, qemu-user-static on Debian 12, Fedora and Arch) or pass --qemu-path DIR".into(),
    }
}

/// The table as docs/distros.md shows it.
pub fn markdown() -> String {
    let mut s =
        String::from("| system | package | path | static |  notes |\n|---|---|---|---|---|\n");
    for l in LAYOUTS {
        let linking = match l.linking {
            Linking::Static => "yes",
            Linking::Dynamic => "no",
            Linking::Depends => "depends",
        };
        s.push_str(&format!(
            "| {} | {} | `{}/{}` | {} | {} |\n",
            l.system,
            if l.package == "-" {
                "-".to_owned()
            } else {
                format!("`{}`", l.package)
            },
            l.dir,
            l.name.pattern(),
            linking,
            l.note
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;

    #[test]
    fn default_search_follows_the_table() {
        assert_eq!(
            default_dirs(),
            [
                "/usr/bin",
                "/usr/local/bin",
                "/usr/libexec/qemu",
                "/run/binfmt"
            ]
            .map(PathBuf::from)
            .to_vec()
        );
        let t = Table::builtin();
        let a = t.get("aarch64").unwrap();
        assert_eq!(
            names_in(Path::new("/usr/bin"), a),
            ["qemu-aarch64-static", "qemu-aarch64"]
        );
        assert_eq!(names_in(Path::new("/run/binfmt"), a), ["aarch64-linux"]);
        assert_eq!(
            names_in(Path::new("/opt/q"), a),
            ["qemu-aarch64-static", "qemu-aarch64"],
            "a directory the table does not know: both names"
        );
    }

    #[test]
    fn os_release_picks_the_rows() {
        let pick = |text: &str| -> Vec<&'static str> {
            for_os(&OsRelease::parse(text))
                .iter()
                .map(|l| l.package)
                .collect()
        };
        assert_eq!(pick("ID=debian\nVERSION_ID=\"12\"\n"), ["qemu-user-static"]);
        assert_eq!(pick("ID=debian\nVERSION_ID=\"13\"\n"), ["qemu-user"]);
        // forky/sid carry no VERSION_ID.
        assert_eq!(
            pick("PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nID=debian\n"),
            ["qemu-user"]
        );
        assert_eq!(
            pick("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n"),
            ["qemu-user-static"]
        );
        assert_eq!(
            pick("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"25.10\"\n"),
            ["qemu-user"]
        );
        assert_eq!(pick("ID=fedora\nVERSION_ID=42\n"), ["qemu-user-static"]);
        assert_eq!(pick("ID=arch\n"), ["qemu-user-static"]);
        assert_eq!(pick("ID=alpine\nVERSION_ID=3.22.1\n"), ["qemu-<cpu>"]);
        assert_eq!(
            pick("ID=nixos\nVERSION_ID=\"25.05\"\n"),
            ["boot.binfmt.preferStaticEmulators"]
        );
        // A derivative without rows of its own: its ID_LIKE's newest rows.
        assert_eq!(
            pick("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"22.1\"\n"),
            ["qemu-user"]
        );
        assert!(pick("ID=gentoo\n").is_empty());
    }

    #[test]
    fn hints_name_the_package_of_this_system() {
        let t = Table::builtin();
        let a = t.get("riscv64").unwrap();
        let hint = |text: &str| install_hint(Some(&OsRelease::parse(text)), a);
        let h =
            hint("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nVERSION_ID=\"13\"\n");
        assert!(
            h.starts_with("install qemu-user (static interpreters on Debian GNU/Linux 13 (trixie)"),
            "{h}"
        );
        assert!(hint("ID=alpine\n").starts_with("install qemu-riscv64 "));
        assert!(hint("ID=nixos\n").starts_with("set boot.binfmt.preferStaticEmulators "));
        let h = install_hint(None, a);
        assert!(
            h.contains("qemu-user on Debian 13") && h.contains("--qemu-path"),
            "{h}"
        );
    }

    /// A fabricated system: interpreter files (static or dynamic, resolved through symlinks)
    /// and its os-release, behind the `FactSource` seam discovery reads through.
    struct Tree {
        files: Vec<(PathBuf, FileFacts)>,
        os_release: &'static str,
    }

    use crate::binfmt::arch::Endian;
    use crate::elf::ElfFacts;
    use crate::qemu::interpreter::{
        FactSource, FileFacts, FileKind, NodeKind, PathNode, Requirements, discover_with,
    };

    impl FactSource for Tree {
        fn facts_of(&self, path: &Path, _: Option<&str>) -> FileFacts {
            self.files
                .iter()
                .find(|(p, _)| p == path)
                .map_or_else(|| FileFacts::missing(path), |(_, f)| f.clone())
        }
        fn os_release(&self) -> Option<String> {
            Some(self.os_release.to_owned())
        }
    }

    const LD: &str = "/lib64/ld-linux-x86-64.so.2";

    /// An x86-64 ELF at `path` (reached through `link` when given), root's, in root's
    /// directories; dynamic when `interp` is given.
    fn file(path: &str, link: Option<&str>, interp: Option<&str>) -> (PathBuf, FileFacts) {
        let real = Path::new(path);
        let mut chain: Vec<PathNode> = real
            .ancestors()
            .skip(1)
            .map(|p| PathNode {
                path: p.to_owned(),
                kind: NodeKind::Directory,
                uid: 0,
                mode: if p == Path::new("/nix/store") {
                    0o1775
                } else {
                    0o755
                },
            })
            .collect();
        chain.reverse();
        if let Some(l) = link {
            chain.push(PathNode {
                path: l.into(),
                kind: NodeKind::Symlink,
                uid: 0,
                mode: 0o777,
            });
        }
        chain.push(PathNode {
            path: real.to_owned(),
            kind: NodeKind::File,
            uid: 0,
            mode: 0o755,
        });
        let seen = PathBuf::from(link.unwrap_or(path));
        let facts = FileFacts {
            resolved: real.to_owned(),
            kind: FileKind::Regular,
            uid: 0,
            mode: 0o755,
            chain,
            elf: Some(ElfFacts {
                class: 64,
                endian: Endian::Little,
                machine: 62,
                e_type: 3,
                e_flags: 0,
                os_abi: 0,
                interp: interp.map(str::to_owned),
                build_id: None,
            }),
            ..FileFacts::missing(&seen)
        };
        (seen, facts)
    }

    fn req() -> Requirements {
        Requirements {
            host_class: 64,
            host_endian: Endian::Little,
            host_machine: 62,
            owners: Default::default(),
            need_static: true,
            version: true,
        }
    }

    /// Each distribution's tree, searched along the default path: the interpreter chosen (the
    /// resolved path, what gets registered), or the refusal with this system's hint.
    #[test]
    fn discovery_on_each_distribution() {
        let t = Table::builtin();
        let a = t.get("aarch64").unwrap();
        let nix_static =
            "/nix/store/0a1b-qemu-user-static-x86_64-unknown-linux-musl-10.1.0/bin/qemu-aarch64";
        let nix_wrapper = "/nix/store/9z8y-qemu-aarch64-binfmt-P/bin/qemu-aarch64-binfmt-P";
        let cases: Vec<(&str, Tree, Result<&str, &str>)> = vec![
            (
                "Debian 12: qemu-user-static, and qemu-user's dynamic one beside it",
                Tree {
                    files: vec![
                        file("/usr/bin/qemu-aarch64-static", None, None),
                        file("/usr/bin/qemu-aarch64", None, Some(LD)),
                    ],
                    os_release: "ID=debian\nVERSION_ID=\"12\"\n",
                },
                Ok("/usr/bin/qemu-aarch64-static"),
            ),
            (
                "Debian 12 with only qemu-user: refused, told to install qemu-user-static",
                Tree {
                    files: vec![file("/usr/bin/qemu-aarch64", None, Some(LD))],
                    os_release: "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                },
                Err(
                    "install qemu-user-static (static interpreters on Debian GNU/Linux 12 (bookworm)",
                ),
            ),
            (
                "Debian forky: qemu-user's static /usr/bin/qemu-aarch64",
                Tree {
                    files: vec![file("/usr/bin/qemu-aarch64", None, None)],
                    os_release: "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux forky/sid\"\n",
                },
                Ok("/usr/bin/qemu-aarch64"),
            ),
            (
                "Debian 13 with the transitional qemu-user-static: its symlink resolves to qemu-user's file",
                Tree {
                    files: vec![
                        file(
                            "/usr/bin/qemu-aarch64",
                            Some("/usr/bin/qemu-aarch64-static"),
                            None,
                        ),
                        file("/usr/bin/qemu-aarch64", None, None),
                    ],
                    os_release: "ID=debian\nVERSION_ID=\"13\"\n",
                },
                Ok("/usr/bin/qemu-aarch64"),
            ),
            (
                "Ubuntu 25.10: as Debian 13",
                Tree {
                    files: vec![file("/usr/bin/qemu-aarch64", None, None)],
                    os_release: "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"25.10\"\n",
                },
                Ok("/usr/bin/qemu-aarch64"),
            ),
            (
                "Fedora: qemu-user-static-aarch64 beside qemu-user's dynamic build",
                Tree {
                    files: vec![
                        file("/usr/bin/qemu-aarch64", None, Some(LD)),
                        file("/usr/bin/qemu-aarch64-static", None, None),
                    ],
                    os_release: "ID=fedora\nVERSION_ID=42\n",
                },
                Ok("/usr/bin/qemu-aarch64-static"),
            ),
            (
                "Fedora with only qemu-user: refused, told to install qemu-user-static",
                Tree {
                    files: vec![file("/usr/bin/qemu-aarch64", None, Some(LD))],
                    os_release: "ID=fedora\nVERSION_ID=42\nPRETTY_NAME=\"Fedora Linux 42\"\n",
                },
                Err("is dynamically linked (needs /lib64/ld-linux-x86-64.so.2)"),
            ),
            (
                "Arch: qemu-user-static",
                Tree {
                    files: vec![file("/usr/bin/qemu-aarch64-static", None, None)],
                    os_release: "ID=arch\n",
                },
                Ok("/usr/bin/qemu-aarch64-static"),
            ),
            (
                "Alpine: qemu-aarch64, static",
                Tree {
                    files: vec![file("/usr/bin/qemu-aarch64", None, None)],
                    os_release: "ID=alpine\nVERSION_ID=3.22.1\n",
                },
                Ok("/usr/bin/qemu-aarch64"),
            ),
            (
                "Alpine without it: told the package of this arch",
                Tree {
                    files: vec![],
                    os_release: "ID=alpine\nVERSION_ID=3.22.1\n",
                },
                Err("/run/binfmt/aarch64-linux): install qemu-aarch64 (static"),
            ),
            (
                "NixOS with preferStaticEmulators: /run/binfmt's link into the store, resolved",
                Tree {
                    files: vec![file(nix_static, Some("/run/binfmt/aarch64-linux"), None)],
                    os_release: "ID=nixos\nVERSION_ID=\"25.05\"\n",
                },
                Ok(nix_static),
            ),
            (
                "NixOS without it: the dynamic binfmt-P wrapper is refused, with the option to set",
                Tree {
                    files: vec![file(
                        nix_wrapper,
                        Some("/run/binfmt/aarch64-linux"),
                        Some("/nix/store/abcd-glibc-2.40/lib/ld-linux-x86-64.so.2"),
                    )],
                    os_release: "ID=nixos\nVERSION_ID=\"25.05\"\n",
                },
                Err("; set boot.binfmt.preferStaticEmulators (static interpreters on nixos"),
            ),
        ];
        let dirs = default_dirs();
        for (name, tree, want) in cases {
            let d = discover_with(&tree, a, &dirs, &req());
            match want {
                Ok(path) => {
                    let c = d
                        .chosen()
                        .unwrap_or_else(|| panic!("{name}: {}", d.refusal()));
                    assert_eq!(c.facts.resolved, Path::new(path), "{name}");
                }
                Err(text) => {
                    assert!(d.chosen().is_none(), "{name}");
                    let r = d.refusal();
                    assert!(r.contains(text), "{name}: {r}");
                }
            }
        }
    }

    /// docs/distros.md holds the table as the program has it.
    #[test]
    fn docs_show_this_table() {
        let doc =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/distros.md"))
                .unwrap();
        assert!(
            doc.contains(&markdown()),
            "docs/distros.md does not hold the table of src/qemu/layouts.rs; it is:\n{}",
            markdown()
        );
    }
}
