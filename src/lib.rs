//! binfmtctl: register QEMU user-mode emulators with the kernel's binfmt_misc, safely.
//!
//! The flow is parse → plan → apply → verify (DESIGN.md §1). Every module owns one job; only
//! `kernel` touches binfmt_misc.

pub mod arch;
pub mod cli;
pub mod config;
pub mod cross;
pub mod elf;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod input;
pub mod inspect;
pub mod interop;
pub mod interpreter;
pub mod kernel;
pub mod nix;
pub mod plan;
pub mod probe;
pub mod probe_code;
pub mod qemu;
pub mod registration;
pub mod rootfs;
pub mod sandbox;
pub mod scan;
pub mod selftest;
