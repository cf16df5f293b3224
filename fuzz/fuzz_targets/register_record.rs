#![no_main]
//! cargo-fuzz target: `binfmtctl::fuzzing::register_record` (the properties are documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| binfmtctl::fuzzing::register_record(data));
