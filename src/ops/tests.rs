//! The operations against the recording double: what each one writes, and that a refused
//! request writes nothing. Interpreters are fabricated behind `Host::files` (`Fabricated`): the
//! facts of Debian's static QEMU in /usr/bin (root's, 0755, a static ELF for this host's CPU),
//! so the tests need neither qemu-user-static nor root.

use std::path::{Path, PathBuf};

use super::apply::{apply, remove};
use super::import::{ImportOptions, register};
use super::install::{InstallOptions, install, use_stored};
use super::status::status;
use super::switch::switch;
use super::uninstall::uninstall;
use super::*;
use crate::binfmt::interop::Imported;
use crate::binfmt::kernel::{BinfmtFs, Call, RecordingBinfmt};
use crate::binfmt::registration::{Entry, Matcher};
use crate::config::Config;
use crate::qemu::interpreter::{FactSource, FileFacts, FileKind};

const AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// Interpreters that exist only as facts: `path` → what `interpreter::facts_of` would read.
#[derive(Debug, Clone, Default)]
struct Fabricated(std::collections::BTreeMap<PathBuf, FileFacts>);

impl FactSource for Fabricated {
    fn facts_of(&self, path: &Path, qemu_cpu: Option<&str>) -> FileFacts {
        let mut f = self
            .0
            .get(path)
            .cloned()
            .unwrap_or_else(|| FileFacts::missing(path));
        if qemu_cpu.is_none() {
            f.version = None;
        }
        f
    }
}

impl Fabricated {
    /// Debian's qemu-user-static as installed: `/usr/bin/qemu-<cpu>-static` for every arch.
    fn debian(req: &Requirements) -> Fabricated {
        let mut f = Fabricated::default();
        for a in &Table::builtin().arches {
            f.add(
                &Path::new("/usr/bin").join(format!("qemu-{}-static", a.qemu)),
                req,
                0o755,
            );
        }
        f
    }

    /// A static ELF for the host's CPU at `path` with `mode`, root's, in root's directories.
    fn add(&mut self, path: &Path, req: &Requirements, mode: u32) {
        use crate::qemu::interpreter::{NodeKind, PathNode};
        let dir = |p: &Path| PathNode {
            path: p.to_owned(),
            kind: NodeKind::Directory,
            uid: 0,
            mode: 0o755,
        };
        let mut chain: Vec<PathNode> = path.ancestors().skip(1).map(dir).collect();
        chain.reverse();
        chain.push(PathNode {
            path: path.to_owned(),
            kind: NodeKind::File,
            uid: 0,
            mode,
        });
        let mut header =
            crate::elf::write::elf_exec(req.host_class, req.host_endian, req.host_machine, 0, &[]);
        header.truncate(crate::binfmt::registration::BINPRM_BUF_SIZE);
        let facts = FileFacts {
            kind: FileKind::Regular,
            uid: 0,
            mode,
            chain,
            header,
            elf: Some(crate::elf::ElfFacts {
                class: req.host_class,
                endian: req.host_endian,
                machine: req.host_machine,
                e_type: 2,
                e_flags: 0,
                os_abi: 0,
                interp: None,
                build_id: None,
            }),
            version: Some("9.2.0 (Debian 1:9.2+ds-1)".into()),
            ..FileFacts::missing(path)
        };
        self.0.insert(path.to_owned(), facts);
    }
}

/// This machine, with Debian's static QEMU fabricated in /usr/bin.
fn host() -> Host {
    host_with(|_, _| {})
}

/// This machine, with Debian's static QEMU fabricated in /usr/bin and whatever `more` adds.
fn host_with(more: impl FnOnce(&mut Fabricated, &Requirements)) -> Host {
    let mut h = Host::gather(Table::builtin());
    let req = h.requirements(true).unwrap();
    let mut f = Fabricated::debian(&req);
    more(&mut f, &req);
    h.files = Files::fabricated(f);
    h
}

fn search_in(dir: &Path) -> Search {
    Search {
        qemu_path: vec![dir.to_owned()],
        qemu_bin: None,
    }
}

fn system() -> Search {
    search_in(Path::new("/usr/bin"))
}

/// The resolved path install registers for a (fabricated) system interpreter.
fn resolved(p: &str) -> String {
    host()
        .interpreter_facts(Path::new(p), None)
        .resolved
        .to_str()
        .unwrap()
        .to_owned()
}

fn entry(arch: &str, interpreter: &str, flags: Flags) -> Entry {
    Entry {
        registration: Table::builtin()
            .get(arch)
            .unwrap()
            .registration(interpreter, flags),
        enabled: true,
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn opts(flags: Flags) -> InstallOptions {
    InstallOptions {
        flags,
        keep_existing: false,
        dry_run: false,
        versions: true,
    }
}

fn verdicts(r: &Reported) -> Vec<(Verdict, String)> {
    r.report
        .outcomes
        .iter()
        .map(|o| (o.verdict, o.name.clone()))
        .collect()
}

fn writes(fs: &RecordingBinfmt) -> Vec<Call> {
    fs.calls
        .borrow()
        .iter()
        .filter(|c| !matches!(c, Call::Lock))
        .cloned()
        .collect()
}

#[test]
fn install_mounts_registers_and_a_second_run_changes_nothing() {
    let (fs, h) = (RecordingBinfmt::default(), host());
    let r = install(&fs, &h, &system(), &names(&["arm64"]), opts(Flags::DEFAULT)).unwrap();
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(
        verdicts(&r),
        [(Verdict::Registered, "qemu-aarch64".to_owned())]
    );
    assert_eq!(
        writes(&fs),
        [Call::Mount, Call::Register("qemu-aarch64".into())]
    );
    let want = entry("aarch64", &resolved(AARCH64), Flags::DEFAULT);
    assert_eq!(fs.list().unwrap()[0].entry, want);
    assert!(
        r.report
            .notes
            .iter()
            .any(|n| n.starts_with("mounted binfmt_misc at"))
    );
    assert!(
        r.report.outcomes[0].version.is_some(),
        "QEMU says its version"
    );

    fs.calls.borrow_mut().clear();
    // `-q` shows no version: none is read, and the rest is the same.
    let quiet = InstallOptions {
        versions: false,
        ..opts(Flags::DEFAULT)
    };
    let again = install(&fs, &h, &system(), &names(&["aarch64"]), quiet).unwrap();
    assert_eq!(
        verdicts(&again),
        [(Verdict::Kept, "qemu-aarch64".to_owned())]
    );
    assert_eq!(again.report.outcomes[0].version, None);
    assert!(writes(&fs).is_empty(), "{:?}", fs.calls.borrow());
    assert_eq!(fs.list().unwrap().len(), 1);
}

#[test]
fn install_replaces_an_entry_that_differs_and_keeps_it_with_keep_existing() {
    let old = entry("aarch64", &resolved(AARCH64), Flags::DEFAULT);
    let fs = RecordingBinfmt::mounted_with(std::slice::from_ref(&old));
    let h = host();
    let f_only = Flags::parse("F").unwrap().normalized();
    let kept = install(
        &fs,
        &h,
        &system(),
        &names(&["arm64"]),
        InstallOptions {
            keep_existing: true,
            ..opts(f_only)
        },
    )
    .unwrap();
    assert_eq!(
        verdicts(&kept),
        [(Verdict::KeptExisting, "qemu-aarch64".to_owned())]
    );
    assert!(writes(&fs).is_empty());

    let r = install(&fs, &h, &system(), &names(&["arm64"]), opts(f_only)).unwrap();
    assert_eq!(
        verdicts(&r),
        [(Verdict::Replaced, "qemu-aarch64".to_owned())]
    );
    assert_eq!(r.report.outcomes[0].previous.as_ref(), Some(&old));
    assert_eq!(
        writes(&fs),
        [
            Call::Remove("qemu-aarch64".into()),
            Call::Register("qemu-aarch64".into())
        ]
    );
    let now = &fs.list().unwrap()[0].entry.registration;
    assert_eq!(now.flags, f_only);
    assert_eq!(now.interpreter, resolved(AARCH64));
}

#[test]
fn a_dry_run_writes_nothing_not_even_a_mount() {
    let (fs, h) = (RecordingBinfmt::default(), host());
    let r = install(
        &fs,
        &h,
        &system(),
        &names(&["arm64", "riscv64"]),
        InstallOptions {
            dry_run: true,
            ..opts(Flags::DEFAULT)
        },
    )
    .unwrap();
    assert_eq!(
        verdicts(&r),
        [
            (Verdict::WouldRegister, "qemu-aarch64".to_owned()),
            (Verdict::WouldRegister, "qemu-riscv64".to_owned())
        ]
    );
    assert!(fs.calls.borrow().is_empty());
    assert!(r.report.notes.iter().any(|n| n.ends_with("would mount it")));
}

#[test]
fn install_refuses_the_native_arch_and_writes_nothing() {
    let fs = RecordingBinfmt::mounted_with(&[]);
    let h = host();
    let native = h.facts.host_arch(h.table).unwrap().name.clone();
    let r = install(
        &fs,
        &h,
        &system(),
        &names(&["arm64", &native]),
        opts(Flags::DEFAULT),
    )
    .unwrap();
    let Some(OpsError::Refused(why)) = &r.failure else {
        panic!("not refused: {:?}", r.failure);
    };
    assert_eq!(why.len(), 1);
    assert!(why[0].contains("runs natively on this host"), "{why:?}");
    assert!(r.report.refused());
    assert!(fs.calls.borrow().is_empty(), "{:?}", fs.calls.borrow());
    assert!(fs.list().unwrap().is_empty());
    // `all` skips it instead.
    let all = super::install::prepare(
        &h,
        &system(),
        &[(h.table.get(&native).unwrap(), Flags::DEFAULT)],
        true,
        true,
    )
    .unwrap();
    assert!(all.refused.is_empty());
    assert_eq!(all.outcomes[0].verdict, Verdict::SkippedNative);
}

#[test]
fn install_refuses_an_interpreter_others_can_write_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("qemu-aarch64-static");
    let h = host_with(|f, req| f.add(&copy, req, 0o777));
    let fs = RecordingBinfmt::mounted_with(&[]);
    let r = install(
        &fs,
        &h,
        &search_in(dir.path()),
        &names(&["arm64"]),
        opts(Flags::DEFAULT),
    )
    .unwrap();
    assert_eq!(
        verdicts(&r),
        [(Verdict::Refused, "qemu-aarch64".to_owned())]
    );
    let reason = r.report.outcomes[0].reason.as_deref().unwrap();
    assert!(reason.contains("writable"), "{reason}");
    assert!(matches!(r.failure, Some(OpsError::Refused(_))));
    assert!(fs.calls.borrow().is_empty());
    // A search directory that is not there is bad input, not "no interpreter".
    let e = install(
        &fs,
        &host(),
        &search_in(&dir.path().join("nope")),
        &names(&["arm64"]),
        opts(Flags::DEFAULT),
    )
    .unwrap_err();
    assert_eq!(crate::exit::kind_of(&e), ErrorKind::BadInput);
    assert!(e.to_string().contains("no such directory"), "{e}");
}

#[test]
fn uninstall_removes_only_our_entries() {
    let ours = entry("aarch64", AARCH64, Flags::DEFAULT);
    let mut other = entry("riscv64", "/usr/bin/qemu-riscv64-static", Flags::DEFAULT);
    other.registration.name = "someone-elses".into();
    let fs = RecordingBinfmt::mounted_with(&[ours, other]);
    let h = host();
    let r = uninstall(&fs, &h, &["all".into(), "riscv64".into()], false).unwrap();
    assert_eq!(
        verdicts(&r),
        [
            (Verdict::Removed, "qemu-aarch64".to_owned()),
            (Verdict::Absent, "qemu-riscv64".to_owned())
        ]
    );
    assert_eq!(r.report.outcomes[0].arch.as_deref(), Some("aarch64"));
    assert_eq!(writes(&fs), [Call::Remove("qemu-aarch64".into())]);
    let left: Vec<String> = fs
        .list()
        .unwrap()
        .iter()
        .map(|k| k.entry.registration.name.clone())
        .collect();
    assert_eq!(left, ["someone-elses"]);
    // Named exactly, another tool's entry goes too.
    uninstall(&fs, &h, &["someone-elses".into()], false).unwrap();
    assert!(fs.list().unwrap().is_empty());
    let e = uninstall(&fs, &h, &["zzz".into()], false).unwrap_err();
    assert_eq!(crate::exit::kind_of(&e), ErrorKind::BadInput);
}

#[test]
fn disable_and_enable_switch_the_entry_and_keep_it() {
    let fs = RecordingBinfmt::mounted_with(&[entry("aarch64", AARCH64, Flags::DEFAULT)]);
    let h = host();
    let r = switch(&fs, &h, &names(&["arm64"]), false, false).unwrap();
    assert_eq!(
        verdicts(&r),
        [(Verdict::Disabled, "qemu-aarch64".to_owned())]
    );
    assert_eq!(writes(&fs), [Call::Enable("qemu-aarch64".into(), false)]);
    assert!(!fs.list().unwrap()[0].entry.enabled);
    fs.calls.borrow_mut().clear();
    let again = switch(&fs, &h, &names(&["qemu-aarch64"]), false, false).unwrap();
    assert_eq!(again.report.outcomes[0].verdict, Verdict::Kept);
    assert_eq!(
        again.report.outcomes[0].reason.as_deref(),
        Some("already disabled")
    );
    assert!(writes(&fs).is_empty());
    let st = status(&fs, &h).unwrap();
    assert!(!st.entries[0].kernel.entry.enabled);
    assert!(!st.supported.iter().any(|p| p == "linux/arm64"));
    switch(&fs, &h, &names(&["arm64"]), true, false).unwrap();
    assert!(fs.list().unwrap()[0].entry.enabled);
    assert!(
        status(&fs, &h)
            .unwrap()
            .supported
            .iter()
            .any(|p| p == "linux/arm64")
    );
    let e = switch(&fs, &h, &names(&["riscv64"]), true, false).unwrap_err();
    assert!(
        e.to_string().contains("there is no entry qemu-riscv64"),
        "{e}"
    );
}

#[test]
fn apply_registers_what_the_config_declares_and_remove_takes_it_out() {
    let cfg = Config {
        arches: names(&["arm64", "riscv64"]),
        flags: Flags::DEFAULT,
        qemu_path: vec![PathBuf::from("/usr/bin")],
        keep_existing: false,
        qemu: None,
        qemu_mirror: None,
        qemu_keyring: None,
        nix: false,
    };
    let fs = RecordingBinfmt::mounted_with(&[]);
    let h = host();
    let search = super::apply::search_for(&cfg, &Search::default());
    assert_eq!(search.qemu_path, [PathBuf::from("/usr/bin")]);
    let (r, arches) = apply(&fs, &h, &search, &cfg, false).unwrap();
    assert!(r.failure.is_none());
    assert_eq!(arches, ["aarch64", "riscv64"]);
    assert_eq!(
        writes(&fs),
        [
            Call::Register("qemu-aarch64".into()),
            Call::Register("qemu-riscv64".into())
        ]
    );
    let rendered = fs.rendered();
    assert!(
        rendered.iter().any(|(n, text)| n == "qemu-riscv64"
            && text.contains(&resolved("/usr/bin/qemu-riscv64-static"))),
        "{rendered:?}"
    );
    fs.calls.borrow_mut().clear();
    let r = remove(&fs, &h, &cfg, false).unwrap();
    assert_eq!(r.report.outcomes.len(), 2);
    assert!(
        r.report
            .outcomes
            .iter()
            .all(|o| o.verdict == Verdict::Removed)
    );
    assert_eq!(writes(&fs).len(), 2);
    assert!(fs.list().unwrap().is_empty());
}

#[test]
fn import_refuses_a_bad_entry_before_any_write() {
    let good = Imported {
        path: PathBuf::from("/etc/binfmt.d/a.conf"),
        line: 1,
        registration: entry("aarch64", AARCH64, Flags::DEFAULT).registration,
    };
    let mut ext = Imported {
        path: PathBuf::from("/etc/binfmt.d/b.conf"),
        line: 3,
        registration: entry("riscv64", "/usr/bin/qemu-riscv64-static", Flags::DEFAULT).registration,
    };
    ext.registration.name = "riscv-by-extension".into();
    ext.registration.matcher = Matcher::Extension("rv".into());
    let fs = RecordingBinfmt::mounted_with(&[]);
    let h = host();
    let e = register(
        &fs,
        &h,
        &[good.clone(), ext.clone()],
        ImportOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("nothing was changed; refused:"), "{msg}");
    assert!(
        msg.contains("/etc/binfmt.d/b.conf:3: riscv-by-extension"),
        "{msg}"
    );
    assert!(msg.contains("--allow-extension"), "{msg}");
    assert!(!msg.contains("a.conf"), "{msg}");
    assert_eq!(crate::exit::kind_of(&e), ErrorKind::BadInput);
    assert!(fs.calls.borrow().is_empty());
    // Allowed, both are registered, each with its interpreter resolved.
    let r = register(
        &fs,
        &h,
        &[good, ext],
        ImportOptions {
            allow_extension: true,
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert!(r.failure.is_none());
    assert_eq!(
        writes(&fs),
        [
            Call::Register("qemu-aarch64".into()),
            Call::Register("riscv-by-extension".into())
        ]
    );
    assert_eq!(
        fs.list().unwrap()[1].entry.registration.interpreter,
        resolved(AARCH64)
    );
}

#[test]
fn qemu_use_replaces_our_entries_with_resolved_interpreters_and_keeps_their_flags() {
    let f_only = Flags::parse("F").unwrap().normalized();
    let fs = RecordingBinfmt::mounted_with(&[entry("aarch64", "/opt/old/qemu-aarch64", f_only)]);
    let usr_bin = || StoredBin {
        bin: PathBuf::from("/usr/bin"),
        version: "9.2+ds-1".into(),
    };
    let probed = std::cell::RefCell::new(Vec::new());
    let probe = |p: &Path, a: &crate::binfmt::arch::Arch| {
        probed.borrow_mut().push((p.to_owned(), a.name.clone()));
        Ok("aarch64".to_owned())
    };
    let r = use_stored(&fs, &host(), Some(usr_bin()), "9.2", false, &probe).unwrap();
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(
        *probed.borrow(),
        [(PathBuf::from(resolved(AARCH64)), "aarch64".to_owned())],
        "each interpreter is probed before it is registered"
    );
    assert_eq!(
        verdicts(&r),
        [(Verdict::Replaced, "qemu-aarch64".to_owned())]
    );
    let now = &fs.list().unwrap()[0].entry.registration;
    assert_eq!(now.interpreter, resolved(AARCH64));
    assert_eq!(now.flags, f_only);
    // A version without one of the arches: refused, naming it, before any write.
    let dir = tempfile::tempdir().unwrap();
    let lacking = StoredBin {
        bin: dir.path().to_owned(),
        version: "9.1+ds-1".into(),
    };
    fs.calls.borrow_mut().clear();
    let r = use_stored(&fs, &host(), Some(lacking), "9.1", false, &probe).unwrap();
    let Some(OpsError::Refused(why)) = &r.failure else {
        panic!("not refused: {:?}", r.failure);
    };
    assert!(
        why[0].starts_with("aarch64: QEMU 9.1+ds-1 has no usable interpreter for it"),
        "{why:?}"
    );
    assert!(fs.calls.borrow().is_empty());
    // No entry of ours: nothing to switch.
    let empty = RecordingBinfmt::mounted_with(&[]);
    let e = use_stored(&empty, &host(), Some(usr_bin()), "9.2", false, &probe).unwrap_err();
    assert!(e.to_string().contains("--qemu 9.2"), "{e}");
    // An interpreter that fails its probe: refused, naming it and why, nothing written.
    let fs = RecordingBinfmt::mounted_with(&[entry("aarch64", "/opt/old/qemu-aarch64", f_only)]);
    let broken = |_: &Path, _: &crate::binfmt::arch::Arch| {
        Err("its aarch64 probe died of signal 11".to_owned())
    };
    let r = use_stored(&fs, &host(), Some(usr_bin()), "9.2", false, &broken).unwrap();
    let Some(OpsError::Refused(why)) = &r.failure else {
        panic!("not refused: {:?}", r.failure);
    };
    assert!(
        why[0].starts_with("qemu-aarch64 from QEMU 9.2 (")
            && why[0].ends_with("): its aarch64 probe died of signal 11"),
        "{why:?}"
    );
    assert!(
        fs.calls
            .borrow()
            .iter()
            .all(|c| !format!("{c:?}").contains("Register")),
        "{:?}",
        fs.calls.borrow()
    );
}

#[test]
fn export_writes_what_install_would_register_and_refuses_the_same() {
    let h = host();
    let d =
        super::export::registrations(&h, &system(), &names(&["arm64"]), Flags::DEFAULT).unwrap();
    let files = super::export::files(&d, super::export::Format::BinfmtD).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "qemu-aarch64.conf");
    assert!(
        files[0].1.contains(&format!(":{}:", resolved(AARCH64))),
        "{}",
        files[0].1
    );
    let ub = super::export::files(&d, super::export::Format::UpdateBinfmts).unwrap();
    assert_eq!(ub[0].0, "qemu-aarch64");
    assert!(
        ub[0]
            .1
            .contains(&format!("interpreter {}", resolved(AARCH64))),
        "{}",
        ub[0].1
    );
    let native = h.facts.host_arch(h.table).unwrap().name.clone();
    let e = super::export::registrations(&h, &system(), &names(&[&native]), Flags::DEFAULT)
        .unwrap_err();
    assert!(
        e.to_string().starts_with("nothing was changed; refused:"),
        "{e}"
    );
}

#[test]
fn a_failed_write_rolls_back_and_reports_what_was_attempted() {
    let fs = RecordingBinfmt::mounted_with(&[]);
    fs.fail
        .borrow_mut()
        .push((Call::Register("qemu-riscv64".into()), rustix::io::Errno::IO));
    let r = install(
        &fs,
        &host(),
        &system(),
        &names(&["arm64", "riscv64"]),
        opts(Flags::DEFAULT),
    )
    .unwrap();
    let Some(OpsError::Failed { op, .. }) = &r.failure else {
        panic!("not failed: {:?}", r.failure);
    };
    assert_eq!(*op, "install");
    assert_eq!(
        verdicts(&r),
        [
            (Verdict::WouldRegister, "qemu-aarch64".to_owned()),
            (Verdict::WouldRegister, "qemu-riscv64".to_owned())
        ]
    );
    assert_eq!(
        writes(&fs),
        [
            Call::Register("qemu-aarch64".into()),
            Call::Register("qemu-riscv64".into()),
            Call::Remove("qemu-aarch64".into())
        ]
    );
    assert!(fs.list().unwrap().is_empty(), "rolled back");
    let e = anyhow::Error::from(r.failure.unwrap());
    assert_eq!(crate::exit::kind_of(&e), ErrorKind::Failed);
    assert!(e.to_string() == "install failed" && format!("{e:#}").contains("qemu-riscv64"));
}

#[test]
fn status_never_mounts_binfmt_misc() {
    // A look changes nothing (issue 21): not mounted is reported, not fixed.
    let (fs, h) = (RecordingBinfmt::default(), host());
    let st = status(&fs, &h).unwrap();
    assert!(!st.mounted);
    assert!(st.entries.is_empty());
    assert!(fs.calls.borrow().is_empty(), "{:?}", fs.calls.borrow());
    assert!(!fs.mounted.get());
}

/// An arm64 host, whatever machine runs the test: its own executables are aarch64 (the header
/// decides, not `uname -m`), CONFIG_COMPAT is on, and the arm probe said `arm` (AArch32 at EL0,
/// as `-cpu max`) or did not run (`NoLoader`, as a64fx). Debian's arm64 qemu-user-static is
/// fabricated in /usr/bin: aarch64 static ELFs.
fn arm64_host(arm_probe: crate::host::ProbeVerdict) -> Host {
    let table = Table::builtin();
    let mut facts = crate::host::HostFacts {
        exe_header: crate::inspection::probe::build(table.get("aarch64").unwrap()).unwrap(),
        machine: "aarch64".into(),
        kernel_config: Some(crate::host::tests::kernel_config("CONFIG_COMPAT=y\n")),
        compat_probes: vec![("arm".into(), arm_probe)],
        ..Default::default()
    };
    facts
        .exe_header
        .truncate(crate::binfmt::registration::BINPRM_BUF_SIZE);
    let native = facts.native(table);
    let mut h = Host {
        table,
        facts,
        native: native.into(),
        trust_unmapped_owner: false,
        files: Files::default(),
    };
    let req = h.requirements(true).unwrap();
    assert_eq!(
        req.host_machine, 183,
        "the interpreters must be aarch64 ones"
    );
    h.files = Files::fabricated(Fabricated::debian(&req));
    h
}

#[test]
fn an_arm64_host_emulates_amd64_and_i386_and_keeps_its_own_arches() {
    use crate::host::ProbeVerdict;
    // a64fx: no AArch32, so arm is emulated.
    let h = arm64_host(ProbeVerdict::NoLoader);
    let native: Vec<&str> = h.native().iter().map(|n| n.arch.as_str()).collect();
    assert_eq!(native, ["aarch64"]);
    assert_eq!(super::qemu::deb_arch(&h).unwrap(), "arm64");
    let fs = RecordingBinfmt::mounted_with(&[]);
    let r = install(
        &fs,
        &h,
        &system(),
        &names(&["amd64", "i386", "riscv64", "armhf"]),
        opts(Flags::DEFAULT),
    )
    .unwrap();
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(
        verdicts(&r),
        [
            (Verdict::Registered, "qemu-x86_64".to_owned()),
            (Verdict::Registered, "qemu-i386".to_owned()),
            (Verdict::Registered, "qemu-riscv64".to_owned()),
            (Verdict::Registered, "qemu-arm".to_owned()),
        ]
    );
    let x86 = &fs.list().unwrap();
    assert!(
        x86.iter()
            .any(|k| k.entry.registration.interpreter == resolved("/usr/bin/qemu-x86_64-static"))
    );
    // Its own arch is refused, and the guard keeps any pattern off aarch64 programs.
    let fs = RecordingBinfmt::mounted_with(&[]);
    let r = install(&fs, &h, &system(), &names(&["arm64"]), opts(Flags::DEFAULT)).unwrap();
    let Some(OpsError::Refused(why)) = &r.failure else {
        panic!("not refused: {:?}", r.failure);
    };
    assert!(why[0].contains("runs natively on this host"), "{why:?}");
    assert!(fs.calls.borrow().is_empty());
    let guard = h.native_guard();
    let aarch64 = entry("aarch64", "/usr/bin/qemu-aarch64-static", Flags::DEFAULT);
    assert!(guard.captures(&aarch64.registration).is_some());
    let arm = entry("arm", "/usr/bin/qemu-arm-static", Flags::DEFAULT);
    assert_eq!(guard.captures(&arm.registration), None);

    // -cpu max: the arm probe ran, so arm is native, skipped by `all` and guarded.
    let h = arm64_host(ProbeVerdict::Ran {
        machine: "armv8l".into(),
    });
    let native: Vec<&str> = h.native().iter().map(|n| n.arch.as_str()).collect();
    assert_eq!(native, ["aarch64", "arm"]);
    assert!(h.native_guard().captures(&arm.registration).is_some());
    let all = super::install::prepare(
        &h,
        &system(),
        &[(h.table.get("arm").unwrap(), Flags::DEFAULT)],
        true,
        true,
    )
    .unwrap();
    assert!(all.refused.is_empty());
    assert_eq!(all.outcomes[0].verdict, Verdict::SkippedNative);
}
