#![no_main]
//! cargo-fuzz target: `binfmtctl::fuzzing::elf_inspect` (the properties are documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| binfmtctl::fuzzing::elf_inspect(data));
