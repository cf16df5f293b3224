//! `doctor`: gathers the facts (the kernel's entries as they are, each interpreter checked as
//! install would, boot configuration that will replace entries, the QEMU store, the files or
//! the rootfs asked about) and hands them to the pure `inspection::doctor`, which says what
//! will and will not run, and why. Changes nothing: binfmt_misc is read where it is mounted
//! and never mounted; files are opened as regular files only, a rootfs through
//! `confined::Tree`.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Host, arch_of};
use crate::binfmt::kernel::BinfmtFs;
use crate::binfmt::registration::BINPRM_BUF_SIZE;
use crate::confined::Tree;
use crate::inspection::doctor::{self, Binfmt, BootConfig, Cpus, EntryFacts, FileFacts, Finding};
use crate::progress::{Progress, Unit};
use crate::qemu::interpreter;

/// What to look at besides the machine.
#[derive(Debug, Clone, Default)]
pub struct DoctorRequest {
    pub files: Vec<PathBuf>,
    pub rootfs: Option<PathBuf>,
    /// Where the configuration of the boot-time tools is read (`/` on a real machine; a
    /// fabricated tree in tests): `etc/binfmt.d`, `run/binfmt.d`, `usr/lib/binfmt.d`,
    /// `usr/local/lib/binfmt.d`, `var/lib/binfmts`, `proc/filesystems`.
    pub system_root: PathBuf,
    /// The QEMU store whose versions `qemu-old` compares with.
    pub store: PathBuf,
    /// Platforms Nix claims, when Nix is configured (`ops::nix`).
    pub nix_platforms: Option<Vec<String>>,
}

impl DoctorRequest {
    /// `doctor FILE... --rootfs DIR` on this machine: its root, the store `store` (else the
    /// default one) and the platforms Nix claims.
    pub fn on_this_machine(
        files: Vec<PathBuf>,
        rootfs: Option<PathBuf>,
        store: Option<PathBuf>,
    ) -> DoctorRequest {
        DoctorRequest {
            files,
            rootfs,
            system_root: PathBuf::from("/"),
            store: store.unwrap_or_else(|| crate::qemu::store::DEFAULT_ROOT.into()),
            nix_platforms: nix_platforms(),
        }
    }
}

/// The platforms Nix claims (its `system` and `extra-platforms`), when a Nix is installed and
/// its configuration can be read (`NIX_CONF_DIR`, else /etc/nix); otherwise nothing to compare.
fn nix_platforms() -> Option<Vec<String>> {
    use super::nix::NixTool;
    let nix = super::nix::SystemNix;
    nix.program().ok()?;
    let view = nix.show_config(&crate::nix::Paths::from_env().dir).ok()?;
    let mut p = vec![view.system];
    p.extend(view.extra_platforms);
    Some(p)
}

/// A finding that occurs for many files of a rootfs, said once with a count.
#[derive(Debug, Clone, Serialize)]
pub struct Grouped {
    #[serde(flatten)]
    pub finding: Finding,
    pub count: usize,
    /// Up to `EXAMPLES` of the files it was found for.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RootfsReport {
    pub path: String,
    /// Regular files looked at, and how many of them are ELF programs or libraries.
    pub files: usize,
    pub elf: usize,
    pub findings: Vec<Grouped>,
}

/// Everything doctor says (the `--json` document, docs/schemas/doctor.json).
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub machine: Vec<Finding>,
    pub files: Vec<FileReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootfsReport>,
    /// False when something asked about will not run (exit status 1).
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub findings: Vec<Finding>,
}

/// Examples kept per grouped finding.
const EXAMPLES: usize = 5;
/// The most read of a binfmt.d or binfmt-support file.
const CONFIG_LIMIT: u64 = 1 << 20;

/// Looks at the machine, then at each file and the rootfs (`progress` is told of the rootfs's
/// files walked, then of its ELF files read).
pub fn doctor(
    fs: &dyn BinfmtFs,
    host: &Host,
    req: &DoctorRequest,
    progress: &dyn Progress,
) -> Result<DoctorReport> {
    let facts = gather(fs, host, req)?;
    let m = facts.machine(host);
    let owned = crate::inspection::isa::host_cpu_flags();
    let flags: Vec<&str> = owned.iter().map(String::as_str).collect();
    let cpus = Cpus { host_flags: &flags };
    let machine = doctor::machine(&m);
    let mut files = Vec::new();
    for path in &req.files {
        let shown = path.display().to_string();
        let findings = match read_file(path) {
            Ok(one) => doctor::file(&m, &cpus, &one.facts(&shown, None)),
            Err(e) => vec![unreadable(&shown, &e)],
        };
        files.push(FileReport {
            path: shown,
            findings,
        });
    }
    let rootfs = match &req.rootfs {
        Some(r) => Some(rootfs(&m, &cpus, r, progress)?),
        None => None,
    };
    let ok = !doctor::any_error(&machine)
        && files.iter().all(|f| !doctor::any_error(&f.findings))
        && rootfs.as_ref().is_none_or(|r| {
            r.findings
                .iter()
                .all(|g| g.finding.severity != doctor::Severity::Error)
        });
    Ok(DoctorReport {
        machine,
        files,
        rootfs,
        ok,
    })
}

fn unreadable(path: &str, e: &str) -> Finding {
    Finding {
        code: "unreadable",
        severity: doctor::Severity::Error,
        subject: path.to_owned(),
        message: e.to_owned(),
        evidence: BTreeMap::new(),
        fix: None,
    }
}

struct Gathered {
    binfmt: Binfmt,
    entries: Vec<EntryFacts>,
    boot: Vec<BootConfig>,
    known_bad: Vec<doctor::KnownBad>,
    stored: Vec<String>,
    nix: Option<Vec<String>>,
}

impl Gathered {
    fn machine<'a>(&'a self, host: &'a Host) -> doctor::Machine<'a> {
        doctor::Machine {
            table: host.table,
            native: host.native(),
            binfmt: self.binfmt.clone(),
            entries: &self.entries,
            boot: &self.boot,
            known_bad: &self.known_bad,
            stored: &self.stored,
            nix_platforms: self.nix.as_deref(),
        }
    }
}

fn gather(fs: &dyn BinfmtFs, host: &Host, req: &DoctorRequest) -> Result<Gathered> {
    let sys = |rel: &str| req.system_root.join(rel);
    let filesystems = std::fs::read_to_string(sys("proc/filesystems")).unwrap_or_default();
    let known = filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("binfmt_misc"));
    let (binfmt, kernel_entries) = if fs.is_mounted() {
        let entries = fs.list().context("reading binfmt_misc's entries")?;
        let enabled = fs
            .global_enabled()
            .context("reading binfmt_misc's status")?;
        (Binfmt::Mounted { enabled }, entries)
    } else if !known && !filesystems.is_empty() {
        (Binfmt::Missing, Vec::new())
    } else {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        (
            Binfmt::Unmounted {
                root: fs.root().display().to_string(),
                in_userns: host.facts.in_user_namespace,
                private_instances: crate::emulation::sandbox::kernel_has_private_binfmt(&release),
            },
            Vec::new(),
        )
    };
    let guard = host.native_guard();
    let entries = kernel_entries
        .into_iter()
        .map(|k| {
            let r = &k.entry.registration;
            // Someone else's entry: by its name or exact pattern, else by what its magic
            // matches as a header.
            let arch = arch_of(host.table, r).or_else(|| match &r.matcher {
                crate::binfmt::registration::Matcher::Magic {
                    offset,
                    magic,
                    mask,
                } => {
                    let mut h = vec![0u8; BINPRM_BUF_SIZE];
                    for (i, m) in magic.iter().enumerate() {
                        let k = mask
                            .as_ref()
                            .and_then(|k| k.get(i))
                            .copied()
                            .unwrap_or(0xff);
                        if let Some(b) = h.get_mut(offset + i) {
                            *b = m & k;
                        }
                    }
                    host.table.arch_of_header(&h)
                }
                _ => None,
            });
            let facts =
                interpreter::facts_of(Path::new(&r.interpreter), arch.map(|a| a.qemu.as_str()));
            let problems = if r.flags.fix_binary {
                host.requirements(true)
                    .map(|req| interpreter::check(&facts, &req))
                    .unwrap_or_default()
            } else {
                let mut p = interpreter::security_problems(&facts, host.owners());
                if facts.kind == interpreter::FileKind::Missing
                    && !p.contains(&interpreter::Problem::Missing)
                {
                    p.insert(0, interpreter::Problem::Missing);
                }
                p
            };
            EntryFacts {
                arch: arch.map(|a| a.name.clone()),
                problems,
                version: facts.version.clone(),
                captures: guard.captures(r).map(str::to_owned),
                kernel: k,
            }
        })
        .collect();
    let mut stored: Vec<String> = crate::qemu::store::Store::new(&req.store)
        .list()
        .into_iter()
        .map(|s| s.manifest.version)
        .collect();
    stored.sort_by(|a, b| crate::qemu::version::compare_versions(b, a));
    Ok(Gathered {
        binfmt,
        entries,
        boot: boot_configs(&req.system_root),
        known_bad: doctor::known_bad(),
        stored,
        nix: req.nix_platforms.clone(),
    })
}

/// The binfmt.d files systemd-binfmt applies at boot (the same name in an earlier directory
/// masks a later one) and binfmt-support's formats (`update-binfmts`, applied by its service).
fn boot_configs(root: &Path) -> Vec<BootConfig> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for dir in [
        "etc/binfmt.d",
        "run/binfmt.d",
        "usr/local/lib/binfmt.d",
        "usr/lib/binfmt.d",
    ] {
        let Ok(files) = crate::binfmt::interop::conf_files(&root.join(dir)) else {
            continue;
        };
        for f in files {
            let Some(name) = f.file_name().map(|n| n.to_os_string()) else {
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            let Ok(text) = crate::input::read_text(&f, CONFIG_LIMIT) else {
                continue;
            };
            // A line we cannot parse is systemd-binfmt's problem to report; the others count.
            for line in text.lines() {
                let Ok(imported) = crate::binfmt::interop::parse_binfmt_d(&f, line) else {
                    continue;
                };
                for i in imported {
                    out.push(BootConfig {
                        file: f.display().to_string(),
                        name: i.registration.name,
                        interpreter: i.registration.interpreter,
                        by: "systemd-binfmt",
                        package: None,
                    });
                }
            }
        }
    }
    // update-binfmts's admin files: package, type, offset, magic, mask, interpreter, ...
    if let Ok(rd) = std::fs::read_dir(root.join("var/lib/binfmts")) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let Ok(text) = crate::input::read_text(&f, CONFIG_LIMIT) else {
                continue;
            };
            if let (Some(name), Some(interp)) =
                (f.file_name().and_then(|n| n.to_str()), text.lines().nth(5))
            {
                out.push(BootConfig {
                    file: f.display().to_string(),
                    name: name.to_owned(),
                    interpreter: interp.to_owned(),
                    by: "binfmt-support",
                    package: text.lines().next().map(str::to_owned),
                });
            }
        }
    }
    out
}

/// What was read of one file.
struct Read1 {
    header: Vec<u8>,
    elf: Option<crate::elf::ElfFacts>,
    isa: crate::inspection::isa::IsaNeeds,
    setuid: bool,
    loader_present: Option<bool>,
}

impl Read1 {
    fn facts<'a>(
        &'a self,
        path: &'a str,
        in_rootfs: Option<&'a dyn Fn(&str) -> bool>,
    ) -> FileFacts<'a> {
        FileFacts {
            path,
            header: &self.header,
            elf: self.elf.as_ref(),
            isa: &self.isa,
            setuid: self.setuid,
            loader_present: self.loader_present,
            in_rootfs,
        }
    }
}

fn read_open(file: &std::fs::File, loader_exists: &dyn Fn(&str) -> bool) -> Result<Read1, String> {
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let mut header = vec![0u8; BINPRM_BUF_SIZE];
    let n = file
        .read_at(&mut header, 0)
        .map_err(|e| format!("cannot read: {e}"))?;
    header.truncate(n);
    let elf = crate::elf::inspect_file(file).ok();
    let isa = if elf.is_some() {
        crate::inspection::isa::needs(file)
    } else {
        Default::default()
    };
    let loader_present = elf
        .as_ref()
        .and_then(|e| e.interp.as_deref())
        .map(loader_exists);
    Ok(Read1 {
        header,
        elf,
        isa,
        setuid: meta.mode() & 0o6000 != 0,
        loader_present,
    })
}

fn read_file(path: &Path) -> Result<Read1, String> {
    let file = crate::input::open_regular(path).map_err(|e| e.to_string())?;
    read_open(&file, &crate::inspection::inspect::path_exists)
}

/// Every ELF file of a rootfs directory, each judged as if run inside it (its loader and,
/// for entries without F, the interpreter looked up in the rootfs), the findings grouped.
fn rootfs(
    m: &doctor::Machine,
    cpus: &Cpus,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<RootfsReport> {
    let meta = std::fs::metadata(dir).with_context(|| format!("--rootfs {}", dir.display()))?;
    if !meta.is_dir() {
        return Err(super::OpsError::RootfsNotDir(dir.to_owned()).into());
    }
    let tree = Tree::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let scan = crate::inspection::scan::scan_dir(m.table, dir, threads, progress);
    progress.begin(
        "reading ELF files",
        Some(scan.elf.len() as u64),
        Unit::Files,
    );
    let exists = |p: &str| tree.resolve(p).is_some();
    let mut groups: Vec<Grouped> = Vec::new();
    let mut index: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    for f in &scan.elf {
        let findings = match tree.open_file_in_root(&f.path) {
            Ok(file) => match read_open(&file, &exists) {
                Ok(one) => doctor::file(m, cpus, &one.facts(&f.path, Some(&exists))),
                Err(e) => vec![unreadable(&f.path, &e)],
            },
            Err(e) => vec![unreadable(&f.path, &e.to_string())],
        };
        progress.advance(1);
        for x in findings {
            let key = (x.code, x.message.clone());
            match index.get(&key) {
                Some(&i) => {
                    let g = &mut groups[i];
                    g.count += 1;
                    if g.examples.len() < EXAMPLES {
                        g.examples.push(f.path.clone());
                    }
                }
                None => {
                    index.insert(key, groups.len());
                    let path = f.path.clone();
                    let mut finding = x;
                    finding.subject = dir.display().to_string();
                    groups.push(Grouped {
                        finding,
                        count: 1,
                        examples: vec![path],
                    });
                }
            }
        }
    }
    progress.end();
    groups.sort_by(|a, b| {
        (a.finding.severity, std::cmp::Reverse(a.count))
            .cmp(&(b.finding.severity, std::cmp::Reverse(b.count)))
    });
    Ok(RootfsReport {
        path: dir.display().to_string(),
        files: scan.files,
        elf: scan.elf.len(),
        findings: groups,
    })
}

#[cfg(test)]
mod tests {
    use super::{DoctorRequest, doctor};
    use crate::binfmt::arch::Table;
    use crate::binfmt::kernel::RecordingBinfmt;
    use crate::progress::{Recorder, Step, Unit};

    /// `doctor --rootfs` tells its observer the files walked, the headers read, then each ELF
    /// file read, in that order.
    #[test]
    fn a_rootfs_reports_the_files_walked_then_the_elf_files_read() {
        let t = Table::builtin();
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        for (name, arch) in [("a", "aarch64"), ("b", "aarch64"), ("r", "riscv64")] {
            let elf = crate::inspection::probe::build(t.get(arch).unwrap()).unwrap();
            std::fs::write(root.join("usr/bin").join(name), elf).unwrap();
        }
        std::fs::write(root.join("usr/bin/script"), "#!/bin/sh\n").unwrap();
        let req = DoctorRequest {
            rootfs: Some(root.clone()),
            system_root: d.path().join("system"),
            store: d.path().join("store"),
            ..DoctorRequest::default()
        };
        let host = super::Host::gather(t);
        let rec = Recorder::new();
        let r = doctor(&RecordingBinfmt::mounted_with(&[]), &host, &req, &rec).unwrap();
        assert_eq!(r.rootfs.as_ref().map(|r| (r.files, r.elf)), Some((4, 3)));
        let step = |name: String, total, done, ended| Step {
            name,
            total,
            unit: Unit::Files,
            done,
            ended,
        };
        assert_eq!(
            rec.steps(),
            [
                step(format!("walking {}", root.display()), None, 4, false),
                step("reading headers".into(), Some(4), 4, true),
                step("reading ELF files".into(), Some(3), 3, true),
            ]
        );
    }
}
