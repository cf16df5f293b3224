#![no_main]
//! cargo-fuzz target: `binfmtctl::fuzzing::proc_entry` (the properties are documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| binfmtctl::fuzzing::proc_entry(data));
