//! Fuzz harnesses: one function per parser that takes hostile input, each asserting the
//! properties that parser promises (round trips, bounds, agreement between two readers of the
//! same bytes), not only "does not panic". A failed property panics, which is what a fuzzer
//! reports as a crash.
//!
//! The same functions run under cargo-fuzz (`fuzz/`, `scripts/fuzz.sh`) and, over every file of
//! the committed corpus `fuzz/corpus/<target>/`, in the normal test suite
//! (`tests/fuzz_corpus.rs`), so the corpus is exercised even where the fuzzer is not run.
//! docs/security.md describes the targets and what each one checks.
//!
//! Pure: bytes in, no I/O, no privileges. Not part of the supported API.

use std::path::Path;

use crate::binfmt::arch::{Endian, Table};
use crate::binfmt::registration::{self, Entry, Matcher, Registration};

/// A harness: takes the fuzzer's bytes, panics when a property fails.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its corpus directory and cargo-fuzz binary.
pub const TARGETS: &[(&str, Harness)] = &[
    ("register_record", register_record),
    ("proc_entry", proc_entry),
    ("elf_inspect", elf_inspect),
    ("tar_scan", tar_scan),
    ("config", config),
    ("binfmt_d", binfmt_d),
];

/// Runs the target named `name` on `data`; panics on an unknown name.
pub fn run(name: &str, data: &[u8]) {
    let (_, f) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}"));
    f(data)
}

/// Lossy text: the parsers take `&str` (their callers read files with `read_to_string`, which
/// refuses invalid UTF-8 before any parser sees it), so invalid sequences become U+FFFD here
/// rather than discarding the input.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A header that a magic matcher must accept: the magic at its offset, zeros elsewhere.
fn header_for(m: &Matcher) -> Option<Vec<u8>> {
    let Matcher::Magic { offset, magic, .. } = m else {
        return None;
    };
    let mut h = vec![0u8; registration::BINPRM_BUF_SIZE];
    h[*offset..offset + magic.len()].copy_from_slice(magic);
    Some(h)
}

/// Properties every registration we accepted must have.
fn check_registration(reg: &Registration) {
    reg.validate()
        .unwrap_or_else(|e| panic!("accepted {reg:?} fails validation: {e}"));
    // Formatting then parsing gives the same registration, and the format is a fixed point.
    let record = reg
        .to_record()
        .unwrap_or_else(|e| panic!("valid {reg:?} cannot be formatted: {e}"));
    assert!(
        (registration::MIN_RECORD_LEN..=registration::MAX_RECORD_LEN).contains(&record.len()),
        "record of {} bytes for {reg:?}",
        record.len()
    );
    let again = Registration::parse_record(&record)
        .unwrap_or_else(|e| panic!("our own record {record:?} does not parse: {e}"));
    assert_eq!(&again, reg, "record {record:?} does not round-trip");
    assert_eq!(again.to_record().as_deref(), Ok(record.as_str()));
    // What the kernel would show for it reads back as the same registration (read-back after
    // apply relies on this).
    for enabled in [true, false] {
        let shown = registration::render_entry(&Entry {
            registration: reg.clone(),
            enabled,
        });
        let entry = registration::parse_entry(&reg.name, &shown)
            .unwrap_or_else(|e| panic!("entry text {shown:?} does not parse: {e}"));
        assert_eq!(entry.enabled, enabled);
        assert!(
            entry.registration.same_as(reg),
            "entry text {shown:?} reads back as {:?}, not {reg:?}",
            entry.registration
        );
    }
    // A pattern accepts the header it describes, and overlaps itself.
    if let Some(h) = header_for(&reg.matcher) {
        assert!(
            reg.matcher.matches_header(&h),
            "{reg:?} rejects its own magic"
        );
        assert!(reg.matcher.overlaps(&reg.matcher));
        assert!(reg.matcher.same_pattern(&reg.matcher));
    }
}

/// The register-record parser (`Registration::parse_record`): never panics; whatever it
/// accepts is valid, formats to a record that parses back to the same registration, and shows
/// as a `/proc` entry that reads back the same. Error columns lie inside the record.
pub fn register_record(data: &[u8]) {
    let record = text(data);
    match Registration::parse_record(&record) {
        Ok(reg) => check_registration(&reg),
        Err(e) => {
            let _ = e.to_string();
            assert!(
                e.column <= record.len() + 1,
                "error column {} beyond a record of {} bytes: {e}",
                e.column,
                record.len()
            );
        }
    }
}

/// The `/proc/sys/fs/binfmt_misc/<entry>` parser: the first line is the entry name (readdir
/// gives it separately), the rest the file. Whatever parses re-renders to text that parses to
/// the same entry.
pub fn proc_entry(data: &[u8]) {
    let all = text(data);
    let (name, body) = all.split_once('\n').unwrap_or(("fuzz", all.as_str()));
    match registration::parse_entry(name, body) {
        Ok(entry) => {
            let shown = registration::render_entry(&entry);
            let again = registration::parse_entry(name, &shown)
                .unwrap_or_else(|e| panic!("rendered entry {shown:?} does not parse: {e}"));
            assert_eq!(again, entry, "rendered entry {shown:?} does not round-trip");
            assert_eq!(registration::render_entry(&again), shown);
            // Entries the kernel would also accept as records must round-trip as records.
            if entry.registration.validate().is_ok() {
                check_registration(&entry.registration);
            }
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(e.line >= 1);
        }
    }
}

/// ELF inspection (`inspect`, `scan`, `interpreter`'s version lookup) on arbitrary bytes. What
/// `elf::inspect` reports agrees with the raw header and with `scan::classify`; `NeedMore` asks
/// for more than it had and no more than its bound; the report builder and the section lookup
/// never panic.
pub fn elf_inspect(data: &[u8]) {
    let table = Table::builtin();
    let classified = crate::inspection::scan::classify(table, "/fuzz".into(), data);
    match crate::elf::inspect(data) {
        Ok(f) => {
            assert!(data.len() >= 52, "inspected {} bytes as ELF", data.len());
            assert_eq!(&data[..4], b"\x7fELF");
            assert_eq!(f.class, if data[4] == 1 { 32 } else { 64 });
            assert_eq!(f.endian == Endian::Big, data[5] == 2);
            let rd16 = |o: usize| {
                let b = [data[o], data[o + 1]];
                if f.endian == Endian::Big {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                }
            };
            assert_eq!((f.e_type, f.machine), (rd16(16), rd16(18)));
            assert_eq!(f.os_abi, data[7]);
            let c = classified.expect("scan does not see an ELF file that inspect parses");
            assert_eq!(
                (c.class, c.endian, c.machine),
                (f.class, f.endian, f.machine)
            );
            let arch = crate::inspection::inspect::arch_of(table, data, &f);
            assert_eq!(arch.map(|a| a.name.clone()), c.arch);
            if let Some(a) = arch {
                assert_eq!(
                    (a.class, a.endian, a.machine),
                    (f.class, f.endian, f.machine)
                );
            }
            let no = |_: &str| false;
            let m = crate::inspection::inspect::Machine {
                table,
                native: &[],
                entries: &[],
                binfmt_enabled: true,
                interp_exists: &no,
            };
            let r = crate::inspection::inspect::report(&m, "/fuzz.bin", data, &f);
            serde_json::to_string(&r).expect("report serialises");
        }
        Err(crate::elf::ElfError::NeedMore(n)) => {
            assert!(
                n > data.len() && n <= 1 << 20,
                "NeedMore({n}) for {}",
                data.len()
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Some((start, end)) = crate::elf::section_range_in(data, ".rodata") {
        assert!(start <= end);
    }
}

/// Archive scanning (`scan` of a tarball, and the reader rootfs tarballs go through): plain,
/// gzip or zstd from bytes. Every ELF member is reported under an absolute, normalised path
/// (no `..`, no `.`, no empty component), and counted among the files.
pub fn tar_scan(data: &[u8]) {
    let table = Table::builtin();
    let Ok(Some(stream)) = crate::tar_stream::archive_stream(std::io::Cursor::new(data.to_vec()))
    else {
        return;
    };
    let Ok(scan) = crate::inspection::scan::scan_stream(table, stream) else {
        return;
    };
    assert!(scan.elf.len() <= scan.files, "more ELF members than files");
    for f in &scan.elf {
        if f.path == "(unprintable name)" {
            continue;
        }
        assert!(f.path.starts_with('/'), "member shown as {:?}", f.path);
        if f.path != "/" {
            assert!(
                f.path[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
                "member shown as {:?}",
                f.path
            );
        }
    }
}

/// The config parser (`config::parse`): whatever it accepts names known arches (or "all")
/// once each, at least one, with absolute search directories; errors point inside the file.
pub fn config(data: &[u8]) {
    let table = Table::builtin();
    let text = text(data);
    match crate::config::parse(Path::new("/etc/binfmtctl/config.toml"), &text, table) {
        Ok(c) => {
            assert!(!c.arches.is_empty());
            for (i, a) in c.arches.iter().enumerate() {
                assert!(a == "all" || table.get(a).is_some(), "unknown arch {a:?}");
                assert!(!c.arches[..i].contains(a), "arch {a:?} twice");
            }
            assert!(c.qemu_path.iter().all(|p| p.is_absolute()));
            assert_eq!(c.flags, c.flags.normalized());
        }
        Err(crate::config::ConfigError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
            assert!(
                line <= text.lines().count() + 1,
                "line {line} beyond the file"
            );
        }
        Err(e) => panic!("parse of text returned an I/O error: {e}"),
    }
}

/// The binfmt.d importer (`interop::parse_binfmt_d`): every registration it returns is valid,
/// comes from a line of the file, and survives export (`to_binfmt_d`) and import again; errors
/// name a line of the file.
pub fn binfmt_d(data: &[u8]) {
    let text = text(data);
    let path = Path::new("/etc/binfmt.d/fuzz.conf");
    let lines = text.lines().count();
    match crate::binfmt::interop::parse_binfmt_d(path, &text) {
        Ok(imported) => {
            for i in &imported {
                assert!(i.line >= 1 && i.line <= lines);
                check_registration(&i.registration);
                let out = crate::binfmt::interop::to_binfmt_d(&i.registration, "fuzz")
                    .unwrap_or_else(|e| panic!("export of {:?} fails: {e}", i.registration));
                let back = crate::binfmt::interop::parse_binfmt_d(path, &out)
                    .unwrap_or_else(|e| panic!("our own binfmt.d file {out:?} fails: {e}"));
                assert_eq!(back.len(), 1);
                assert_eq!(back[0].registration, i.registration);
                crate::binfmt::interop::to_update_binfmts(&i.registration, "fuzz")
                    .unwrap_or_else(|e| panic!("update-binfmts export fails: {e}"));
            }
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(e.line >= 1 && e.line <= lines, "error on line {}", e.line);
            assert!(e.column >= 1);
        }
    }
}
