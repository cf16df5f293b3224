#![no_main]
//! cargo-fuzz target: `binfmtctl::fuzzing::tar_scan` (the properties are documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| binfmtctl::fuzzing::tar_scan(data));
