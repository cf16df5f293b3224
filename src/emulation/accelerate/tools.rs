//! The native build tools of a hybrid build (Scratchbox2's "host tools"): the shells, make,
//! sed, grep, awk, coreutils, diffutils, findutils and m4 of the host stand in for the
//! rootfs's, so an autotools build stops paying QEMU's start-up in hundreds of short
//! processes. A package's programs run natively only when the rootfs has the same Debian
//! package at the same version as the host (a binNMU suffix `+bN` aside: the same source,
//! rebuilt); its files are the ones both dpkg file lists name in /bin, /usr/bin, /sbin or
//! /usr/sbin, ELF programs on both sides. What reports the machine (`uname`, `arch`, dpkg)
//! and every program the build makes (aarch64: the kernel hands them to QEMU) stay emulated.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{AccelError, Builder, HostElf, Item, Request, host_elf};
use crate::confined::Tree;

/// The packages whose programs may run natively, in the order the note names them.
pub(super) const PACKAGES: &[&str] = &[
    "dash",
    "bash",
    "make",
    "coreutils",
    "sed",
    "grep",
    "gawk",
    "mawk",
    "m4",
    "diffutils",
    "findutils",
];

/// Programs that stay emulated whatever their package, and why.
pub(super) const EMULATED: &[(&str, &str)] = &[
    ("uname", "reports the machine"),
    ("arch", "reports the machine"),
    ("dpkg", "reports the architecture"),
    ("dpkg-architecture", "reports the architecture"),
    (
        "stdbuf",
        "preloads the rootfs's libstdbuf.so into what it runs",
    ),
];

/// Packages left emulated on purpose whether or not the versions match, and why (the note
/// names them when the rootfs has them).
const KEPT_EMULATED: &[(&str, &str)] = &[(
    "perl-base",
    "perl takes $^X from /proc/self/exe, which is the host's loader for a native program",
)];

/// The directories whose programs are candidates.
const BIN_DIRS: &[&str] = &["/bin", "/usr/bin", "/sbin", "/usr/sbin"];

/// The largest dpkg file list read (coreutils' is 13 kB).
const MAX_LIST: u64 = 4 << 20;

/// Where the tools' launchers live inside.
/// (`DIR/tools`: a unit test holds the two together.)
const TOOLS_DIR: &str = "/run/binfmtctl/tools";

/// What the tools part decided: a rootfs file covered by a host program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cover {
    /// The rootfs's file (resolved inside it): `/usr/bin/dash`.
    pub target: String,
    /// The host's program that stands in for it (as its list names it).
    pub host: PathBuf,
    /// The argv[0] the program is started with.
    pub argv0: String,
}

/// The plan of the tools part, before anything is bound.
#[derive(Debug, Default)]
pub(super) struct ToolsPlan {
    /// Package and version of each package whose programs run natively.
    pub native: Vec<(String, String)>,
    /// The rootfs's files to cover, each once.
    pub covers: Vec<Cover>,
    /// What stays emulated, each with its reason (`sed (rootfs 4.9-1+deb12u1, host 4.9-1)`).
    pub emulated: Vec<String>,
}

/// The version without a binNMU suffix (`5.2.15-2+b13` → `5.2.15-2`): binNMUs of one
/// source version are the same code rebuilt, and differ between architectures.
fn source_version(v: &str) -> &str {
    match v.rsplit_once("+b") {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => v,
    }
}

/// The entries of a dpkg file list that are directly in one of `BIN_DIRS`.
fn bin_entries(list: &str) -> BTreeSet<String> {
    list.lines()
        .filter(|l| {
            l.rsplit_once('/').is_some_and(|(dir, name)| {
                BIN_DIRS.contains(&dir) && !name.is_empty() && name != "." && name != ".."
            })
        })
        .map(str::to_owned)
        .collect()
}

/// The rootfs's file list of `pkg` (`<pkg>.list`, or `<pkg>:<arch>.list` for a Multi-Arch
/// same package), read inside the rootfs and bounded.
fn rootfs_list(root: &Tree, pkg: &str, debian: &[String]) -> Result<String, String> {
    let mut names = vec![format!("{pkg}.list")];
    names.extend(debian.iter().map(|a| format!("{pkg}:{a}.list")));
    let mut last = String::from("no file list");
    for n in names {
        let rel = format!("var/lib/dpkg/info/{n}");
        match root.read_in_root(&rel, MAX_LIST) {
            Ok(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => last = format!("cannot read the rootfs's /{rel}: {e}"),
        }
    }
    Err(last)
}

/// The host's file list of `pkg` in the dpkg `info` directory.
fn host_list(info: &Path, pkg: &str) -> Result<String, String> {
    let mut last = String::from("no file list on the host");
    for n in [format!("{pkg}.list"), format!("{pkg}:amd64.list")] {
        let p = info.join(n);
        match crate::input::open_regular(&p)
            .and_then(|f| crate::input::read_bounded(&p, f, MAX_LIST))
        {
            Ok(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.is_missing() => {}
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Is the rootfs's `file` (an absolute path inside it) a regular ELF program (an
/// executable, or a PIE: it has an interpreter)?
fn rootfs_program(root: &Tree, file: &str) -> bool {
    root.open_file_in_root(file).ok().is_some_and(|f| {
        crate::elf::inspect_file(&f)
            .is_ok_and(|x| x.e_type == 2 || (x.e_type == 3 && x.interp.is_some()))
    })
}

/// The last component of a path.
fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The argv[0] a native program gets (the launcher's is fixed): its own name, but `sh` for
/// dash, the name it is nearly always called by (`/bin/sh`), which its messages and `$0`
/// show; dash behaves the same under either name.
fn argv0_of(file: &str) -> String {
    match base(file) {
        "dash" => "sh".into(),
        b => b.to_owned(),
    }
}

/// Decides which rootfs programs the host's stand in for. `rootfs_pkgs` and `host_pkgs`
/// are the two dpkg statuses (name → version), `host_info` the host's dpkg info directory.
pub(super) fn plan_tools(
    root: &Tree,
    debian: &[String],
    rootfs_pkgs: &HashMap<String, String>,
    host_pkgs: &HashMap<String, String>,
    host_info: &Path,
) -> ToolsPlan {
    let mut out = ToolsPlan::default();
    out.emulated
        .extend(EMULATED.iter().map(|(n, _)| (*n).to_owned()));
    // bash started as sh is in POSIX mode; the launcher's argv[0] is fixed, so a bash that
    // /bin/sh leads to stays emulated.
    let sh = root.resolve("/bin/sh");
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for pkg in PACKAGES {
        let (r, h) = (rootfs_pkgs.get(*pkg), host_pkgs.get(*pkg));
        let (r, h) = match (r, h) {
            (None, _) => continue,
            (Some(r), None) => {
                out.emulated
                    .push(format!("{pkg} (rootfs {r}, not on the host)"));
                continue;
            }
            (Some(r), Some(h)) if source_version(r) != source_version(h) => {
                out.emulated.push(format!("{pkg} (rootfs {r}, host {h})"));
                continue;
            }
            (Some(r), Some(h)) => (r, h),
        };
        let lists =
            rootfs_list(root, pkg, debian).and_then(|r| host_list(host_info, pkg).map(|h| (r, h)));
        let (rl, hl) = match lists {
            Ok(l) => l,
            Err(why) => {
                out.emulated.push(format!("{pkg} ({why})"));
                continue;
            }
        };
        let host_entries = bin_entries(&hl);
        let mut n = 0;
        for entry in bin_entries(&rl).intersection(&host_entries) {
            if EMULATED.iter().any(|(e, _)| *e == base(entry)) {
                continue;
            }
            let Some(file) = root.resolve(entry) else {
                continue;
            };
            if EMULATED.iter().any(|(e, _)| *e == base(&file))
                || (*pkg == "bash" && sh.as_deref() == Some(file.as_str()))
                || seen.contains(&file)
                || !rootfs_program(root, &file)
            {
                continue;
            }
            let host = PathBuf::from(entry);
            let same_name = std::fs::canonicalize(&host)
                .ok()
                .is_some_and(|c| c.file_name().and_then(|n| n.to_str()) == Some(base(&file)));
            if !same_name || host_elf(&host) != Some(HostElf::Program) {
                continue;
            }
            seen.insert(file.clone());
            out.covers.push(Cover {
                argv0: argv0_of(&file),
                target: file,
                host,
            });
            n += 1;
        }
        if n > 0 {
            let v = if r == h {
                h.clone()
            } else {
                format!("{h} (rootfs {r})")
            };
            out.native.push(((*pkg).to_owned(), v));
        }
    }
    for (pkg, why) in KEPT_EMULATED {
        if rootfs_pkgs.contains_key(*pkg) {
            out.emulated.push(format!("{pkg} ({why})"));
        }
    }
    out
}

impl ToolsPlan {
    /// The note line: what runs natively, what stays emulated.
    pub(super) fn note(&self) -> String {
        let native = if self.native.is_empty() {
            "none".to_owned()
        } else {
            let pkgs: Vec<String> = self
                .native
                .iter()
                .map(|(p, v)| format!("{p} {v}"))
                .collect();
            format!("{} ({} programs)", pkgs.join(", "), self.covers.len())
        };
        format!(
            "native build tools from the host: {native}; emulated: {}",
            self.emulated.join(", ")
        )
    }
}

impl Builder {
    /// The tools part: each rootfs program of the plan covered by a launcher of the host's.
    pub(super) fn tools(&mut self, plan: &ToolsPlan) -> Result<(), AccelError> {
        if plan.covers.is_empty() {
            return Ok(());
        }
        self.items.push(Item::Dir(TOOLS_DIR.into()));
        let mut used: BTreeSet<String> = BTreeSet::new();
        for c in &plan.covers {
            let name = base(&c.target);
            let mut launcher = format!("{TOOLS_DIR}/{name}");
            let mut i = 1;
            while used.contains(&launcher) {
                launcher = format!("{TOOLS_DIR}/{name}.{i}");
                i += 1;
            }
            used.insert(launcher.clone());
            self.launch_as(launcher.clone(), &c.argv0, &c.host)?;
            self.items.push(Item::Cover {
                target: c.target.clone(),
                launcher,
            });
        }
        Ok(())
    }

    /// A launcher at `path` for the host program `program`, started as `argv0`.
    fn launch_as(&mut self, path: String, argv0: &str, program: &Path) -> Result<(), AccelError> {
        let real = self.host_file(program, true)?;
        self.items.push(Item::Launcher {
            bytes: self.via_loader(argv0, &real, &[]),
            path,
        });
        Ok(())
    }
}

/// The plan's line and items for `plan()`: reads both dpkg file lists and adds the covers.
pub(super) fn add(
    b: &mut Builder,
    req: &Request,
    root: &Tree,
    rootfs_pkgs: &HashMap<String, String>,
    host_pkgs: &HashMap<String, String>,
) -> Result<String, AccelError> {
    let info = req
        .host_status
        .parent()
        .unwrap_or(Path::new("/var/lib/dpkg"))
        .join("info");
    let plan = plan_tools(root, &req.arch.debian, rootfs_pkgs, host_pkgs, &info);
    b.tools(&plan)?;
    Ok(plan.note())
}

#[cfg(test)]
mod tests;
