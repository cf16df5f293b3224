//! One way from an error to an exit code: every domain error says which of three kinds it is
//! (the request was wrong, the machine cannot do it, or the operation failed) by implementing
//! `Classify`; `crate::exit::kind_of` walks an error chain for the first error that says so.
//! The command layer adds context but never re-classifies, so the whole source chain reaches
//! the message. This module sits beneath every other and imports none of them.
//!
//! Pure: no I/O, no privileges. The exit codes are documented in docs/exit-codes.md.

use serde::Serialize;

/// What kind of failure an error is; each kind has its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Bad usage or bad input (unknown arch, bad flags, refused interpreter, unreadable or
    /// malformed file named by the user): nothing was changed. Exit 2.
    BadInput,
    /// The environment cannot do it (binfmt_misc not mountable, not permitted, kernel too
    /// old): nothing was changed. Exit 3.
    Environment,
    /// The operation failed; what this run changed was rolled back. Exit 1.
    Failed,
}

impl ErrorKind {
    /// The kind of an error that says whether it is bad usage or the environment's: usage
    /// first, else the environment, else a failure (the QEMU store's and mirror's errors).
    pub const fn of(usage: bool, environment: bool) -> ErrorKind {
        if usage {
            ErrorKind::BadInput
        } else if environment {
            ErrorKind::Environment
        } else {
            ErrorKind::Failed
        }
    }

    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::Environment => 3,
        }
    }
}

/// The exit status a shell reports for a process killed by `signal`: 128 + its number.
pub const fn signal_exit_code(signal: i32) -> i32 {
    128 + signal
}

/// A child's exit status as a shell reports it: its exit code, or 128 + the signal that
/// killed it (`None`: neither, e.g. stopped).
pub fn exit_status_code(status: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(signal_exit_code))
}

/// Implemented by every module's error type.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

/// The command run in the sandbox exited with this status: binfmtctl exits with it too.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct ChildExit(pub i32);

/// The command's report already says what failed (`doctor`: something asked about will not
/// run): exit 1, and nothing is added to the report, not even with `--json`.
#[derive(Debug, thiserror::Error)]
#[error("the report lists what will not run")]
pub struct Reported;

impl Classify for Reported {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Failed
    }
}

/// A request the user got wrong, found by the command layer itself (domain errors say their
/// own kind): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl Classify for BadInput {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// The machine cannot do it: exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

impl Classify for Unsupported {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(ErrorKind::Failed.exit_code(), 1);
        assert_eq!(ErrorKind::BadInput.exit_code(), 2);
        assert_eq!(ErrorKind::Environment.exit_code(), 3);
    }
}
