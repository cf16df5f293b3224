//! Looking at binaries and at what the kernel does with them: ELF headers, `inspect`,
//! `scan`, the per-arch probe programs and the emulation self-test.

pub mod doctor;
pub mod inspect;
pub mod isa;
pub mod probe;
pub mod probe_code;
pub mod scan;
pub mod selftest;
