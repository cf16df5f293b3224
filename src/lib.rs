//! binfmtctl: register QEMU user-mode emulators with the kernel's binfmt_misc, safely.
//!
//! The flow is parse → plan → apply → verify (docs/design.md, "The flow"). Every module owns one
//! job (docs/design.md, "Modules"); only `binfmt::kernel` touches binfmt_misc.

pub mod atomic;
pub mod binfmt;
pub mod cli;
pub mod config;
pub mod confined;
pub mod elf;
pub mod emulation;
pub mod error;
pub mod escape;
pub mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod host;
pub mod input;
pub mod inspection;
pub mod lock;
pub mod nix;
pub mod ops;
pub mod progress;
pub mod qemu;
pub mod tar_stream;
#[cfg(test)]
mod test_gate;
pub mod text;
