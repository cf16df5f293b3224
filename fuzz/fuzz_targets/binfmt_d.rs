#![no_main]
//! cargo-fuzz target: `binfmtctl::fuzzing::binfmt_d` (the properties are documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| binfmtctl::fuzzing::binfmt_d(data));
