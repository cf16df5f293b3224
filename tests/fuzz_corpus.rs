//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same harness
//! functions cargo-fuzz runs (`binfmtctl::fuzzing`), so every input the fuzzers kept, and
//! every crash they found, is checked by `cargo test` even where the fuzzer itself is not run.

use std::path::Path;

use binfmtctl::fuzzing::{TARGETS, run};

#[test]
fn every_corpus_file_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (target, _) in TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 3,
            "{}: a target needs a seed corpus (real examples)",
            dir.display()
        );
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let outcome = std::panic::catch_unwind(|| run(target, &data));
            assert!(outcome.is_ok(), "{} fails its harness", f.display());
        }
        total += files.len();
    }
    eprintln!("replayed {total} corpus files");
}

#[test]
fn the_corpus_stays_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut bytes = 0u64;
    for (target, _) in TARGETS {
        for e in std::fs::read_dir(root.join(target)).unwrap() {
            bytes += e.unwrap().metadata().unwrap().len();
        }
    }
    assert!(
        bytes < 1 << 20,
        "fuzz/corpus is {bytes} bytes; keep it under 1 MiB (cargo fuzz cmin)"
    );
}

mod mutated {
    //! A small stable-toolchain fuzzer: proptest mutates the committed seeds (byte edits,
    //! insertions, truncation) and runs the harnesses on the result, a bounded number of cases
    //! per target, so `cargo test` explores beyond the corpus on every run.

    use super::*;
    use proptest::prelude::*;

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        v.sort();
        v
    }

    /// Picks a seed and applies the edits: (position, byte, kind) with kind 0 = overwrite,
    /// 1 = insert, 2 = delete; then maybe truncates.
    fn mutate(
        seeds: &[Vec<u8>],
        pick: usize,
        edits: &[(usize, u8, u8)],
        cut: Option<usize>,
    ) -> Vec<u8> {
        let mut d = seeds[pick % seeds.len()].clone();
        for &(pos, byte, kind) in edits {
            let at = if d.is_empty() { 0 } else { pos % (d.len() + 1) };
            match kind % 3 {
                0 if at < d.len() => d[at] = byte,
                1 | 0 => d.insert(at, byte),
                _ if at < d.len() => {
                    d.remove(at);
                }
                _ => {}
            }
        }
        if let Some(c) = cut {
            d.truncate(c % (d.len() + 1));
        }
        d
    }

    /// Bytes that matter to these parsers, so mutations hit delimiters, escapes and flags.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b":\\xPOCFME\n#;|0f=[]\"./".to_vec()),
        ]
    }

    fn run_mutated(target: &'static str) {
        let seeds = seeds(target);
        let strategy = (
            any::<usize>(),
            prop::collection::vec((any::<usize>(), byte(), any::<u8>()), 1..8),
            prop::option::weighted(0.2, any::<usize>()),
        );
        let config = ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest::test_runner::TestRunner::new(config)
            .run(&strategy, |(pick, edits, cut)| {
                let data = mutate(&seeds, pick, &edits, cut);
                run(target, &data);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }

    #[test]
    fn register_record() {
        run_mutated("register_record");
    }
    #[test]
    fn proc_entry() {
        run_mutated("proc_entry");
    }
    #[test]
    fn elf_inspect() {
        run_mutated("elf_inspect");
    }
    #[test]
    fn tar_scan() {
        run_mutated("tar_scan");
    }
    #[test]
    fn config() {
        run_mutated("config");
    }
    #[test]
    fn binfmt_d() {
        run_mutated("binfmt_d");
    }
}
