#![no_main]
//! cargo-fuzz target: `binfmtctl::fuzzing::config` (the properties are documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| binfmtctl::fuzzing::config(data));
