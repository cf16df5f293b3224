//! From an error to the exit code (docs/exit-codes.md), the one path: the kind of an error
//! chain (`kind_of`: the outermost error that says its kind; every error type of the crate
//! implements `error::Classify` in its own module and is listed in `classify`), the
//! sandboxed command's own status (`ChildExit`) and an interrupted change (128 + the signal);
//! and the two forms a failure is shown in: the one-line message (`render_error`) and, with
//! `--json`, the error object (docs/json.md, "Errors"), clap's usage errors included.
//!
//! It sits above the modules whose errors it lists and below `cli`, so the operations and
//! their tests classify errors without reaching up into the command layer.
//!
//! Pure: no I/O, no privileges.

use serde_json::json;

use crate::binfmt::plan;
use crate::error::{ChildExit, Classify, ErrorKind};

/// The kind of one error, if its type is one of ours. The list names every error type that
/// implements `Classify`; `tests::every_domain_error_is_listed` keeps it complete.
pub fn classify(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    macro_rules! try_types {
        ($($t:ty),* $(,)?) => {
            $(if let Some(x) = e.downcast_ref::<$t>() {
                return Some(Classify::kind(x));
            })*
        };
    }
    try_types!(
        crate::error::BadInput,
        crate::error::Unsupported,
        crate::error::Reported,
        crate::binfmt::arch::UnknownArch,
        crate::binfmt::arch::TableError,
        crate::binfmt::registration::FlagsError,
        crate::binfmt::registration::RecordError,
        crate::binfmt::registration::EntryParseError,
        crate::binfmt::kernel::KernelError,
        crate::binfmt::plan::ApplyError,
        crate::binfmt::plan::ApplyFailure,
        crate::config::ConfigError,
        crate::input::InputError,
        crate::binfmt::interop::ImportError,
        crate::binfmt::interop::ExportError,
        crate::qemu::interpreter::Problem,
        crate::elf::ElfError,
        crate::emulation::rootfs::RootfsError,
        crate::inspection::scan::ScanError,
        crate::emulation::cross::CrossError,
        crate::emulation::accelerate::AccelError,
        crate::nix::NixError,
        crate::nix::ShowConfigError,
        crate::ops::nix::NixOpsError,
        crate::qemu::QemuError,
        crate::qemu::debian_mirror::ArchiveError,
        crate::qemu::apt::AptError,
        crate::qemu::store::StoreError,
        crate::qemu::openpgp::VerifyError,
        crate::qemu::deb::DebError,
        crate::ops::OpsError,
        crate::ops::look::LookError,
        crate::ops::emulate::EmulateError,
        crate::ops::build::BuildError,
        crate::emulation::sandbox::SandboxError,
        crate::host::OverrideError,
    );
    None
}

/// The kind of an error chain: the outermost error that classifies itself (the most specific
/// statement about what went wrong: an `ApplyError` that wraps a `KernelError` is a failed
/// operation, whatever the errno); `Failed` when none does.
pub fn kind_of(err: &anyhow::Error) -> ErrorKind {
    err.chain().find_map(classify).unwrap_or(ErrorKind::Failed)
}

/// The exit code for an error: the sandboxed command's own status, else the kind of the
/// outermost error in the chain that says its kind (`kind_of`).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(ChildExit(code)) = err.chain().find_map(|c| c.downcast_ref::<ChildExit>()) {
        return u8::try_from(*code).unwrap_or(ErrorKind::Failed.exit_code());
    }
    // Interrupted by a signal (after rollback): 128 + its number, as a shell reports it.
    if let Some(signal) = err
        .chain()
        .find_map(|c| match c.downcast_ref::<plan::ApplyError>() {
            Some(a) => match *a.failure {
                plan::ApplyFailure::Interrupted { signal } => Some(signal),
                _ => None,
            },
            None => None,
        })
    {
        return u8::try_from(crate::error::signal_exit_code(signal))
            .unwrap_or(ErrorKind::Failed.exit_code());
    }
    kind_of(err).exit_code()
}

/// The exit status of a helper stage (`__sandbox`, `__probe-chroot`, ...) as `exit(2)` passes it
/// on: its low 8 bits.
pub fn status_code(status: i32) -> u8 {
    (status & 0xff) as u8
}

/// Formats an error chain as one message with the fix at the end: each cause once (an error
/// that already quotes its source, such as a failed apply with its rollback, is not followed
/// by that source again).
pub fn render_error(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg += ": ";
        }
        msg += &text;
    }
    msg
}

/// With `--json`: the error object (docs/json.md, "Errors"), as the one JSON document on
/// stdout. `printed` is what the command wrote to stdout before it failed (a report of what
/// was refused or rolled back): each JSON document in it goes into `output`.
pub fn error_json(err: &anyhow::Error, printed: &[u8]) -> serde_json::Value {
    let (kind, code) = match err.chain().find_map(|c| c.downcast_ref::<ChildExit>()) {
        Some(_) => ("command-exited".to_owned(), exit_code(err)),
        None => {
            let k = kind_of(err);
            (
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                k.exit_code(),
            )
        }
    };
    let output: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(printed)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect();
    json!({
        "error": {
            "kind": kind,
            "exit_code": code,
            "message": render_error(err),
            "causes": err.chain().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "output": output,
    })
}

/// The whole statement of a usage error clap rendered: its first paragraph (up to `Usage:`
/// or a tip), on one line, without the `error: ` prefix; the argument lines are kept
/// ("the following required arguments were not provided: <ARCHES>...").
pub fn usage_message(rendered: &str) -> String {
    let mut parts = Vec::new();
    for l in rendered.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with("Usage:") {
            break;
        }
        parts.push(l.strip_prefix("error: ").unwrap_or(l));
    }
    parts.join(" ")
}

/// With `--json`: the error object for a usage error clap found (`message`: clap's own
/// statement of it, `usage_message`); bad usage exits 2.
pub fn usage_error_json(message: &str) -> serde_json::Value {
    json!({
        "error": {
            "kind": ErrorKind::BadInput,
            "exit_code": ErrorKind::BadInput.exit_code(),
            "message": message,
            "causes": [message],
        },
        "output": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::arch::Table;
    use crate::binfmt::registration::Flags;
    use crate::error::{BadInput, Unsupported};
    use anyhow::anyhow;

    /// The JSON message of a usage error names what is missing (issue 21: it stopped at the
    /// colon), from clap's own rendering of a real parse error.
    #[test]
    fn usage_message_keeps_the_argument_lines() {
        let rendered = "error: the following required arguments were not provided:\n  <ARCHES>...\n\nUsage: binfmtctl install --json <ARCHES>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_message(rendered),
            "the following required arguments were not provided: <ARCHES>..."
        );
        assert_eq!(
            usage_message(
                "error: unexpected argument '--frob' found\n\n  tip: to pass '--frob' as a value, use '-- --frob'\n\nUsage: x\n"
            ),
            "unexpected argument '--frob' found"
        );
    }

    #[test]
    fn context_keeps_the_kind_and_the_chain() {
        let e = anyhow::Error::new(
            crate::binfmt::arch::Table::builtin()
                .resolve("nope")
                .unwrap_err(),
        )
        .context("installing");
        assert_eq!(kind_of(&e), ErrorKind::BadInput);
        assert!(format!("{e:#}").starts_with("installing: unknown architecture \"nope\""));
        assert_eq!(kind_of(&anyhow::anyhow!("plain")), ErrorKind::Failed);
    }

    /// Every `thiserror` type in `src/` implements `Classify` and is listed in `classify`.
    #[test]
    fn every_domain_error_is_listed() {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let this = include_str!("exit.rs");
        let mut missing = Vec::new();
        let mut files = vec![std::path::PathBuf::from(src)];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    files.push(e.unwrap().path());
                }
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let mut lines = text.lines().peekable();
            while let Some(l) = lines.next() {
                if !l.contains("thiserror::Error") || l.trim_start().starts_with("//") {
                    continue;
                }
                // The type's name: the first `pub struct X` / `pub enum X` after the derive.
                let name = lines.by_ref().find_map(|l| {
                    let l = l.trim_start();
                    let rest = l
                        .strip_prefix("pub struct ")
                        .or_else(|| l.strip_prefix("pub enum "))?;
                    Some(
                        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()?
                            .to_owned(),
                    )
                });
                let Some(name) = name else { continue };
                if name == "ChildExit" {
                    continue; // not an error kind: the sandboxed command's own status
                }
                if !this.contains(&format!("::{name},"))
                    || !text.contains(&format!("Classify for {name}"))
                {
                    missing.push(format!("{}: {name}", p.display()));
                }
            }
        }
        assert!(missing.is_empty(), "errors without a kind: {missing:?}");
    }

    #[test]
    fn exit_codes_by_cause() {
        assert_eq!(exit_code(&anyhow::Error::new(BadInput("x".into()))), 2);
        assert_eq!(exit_code(&anyhow::Error::new(Unsupported("x".into()))), 3);
        let k = crate::binfmt::kernel::KernelError::Mount {
            root: "/x".into(),
            errno: rustix::io::Errno::PERM,
        };
        assert_eq!(
            exit_code(&anyhow::Error::new(k).context("while installing")),
            3
        );
        let k = crate::binfmt::kernel::KernelError::Register {
            name: "q".into(),
            errno: rustix::io::Errno::INVAL,
        };
        assert_eq!(exit_code(&anyhow::Error::new(k)), 1);
        assert_eq!(exit_code(&anyhow!("other")), 1);
        assert_eq!(
            exit_code(&anyhow::Error::new(ChildExit(7)).context("run")),
            7
        );
        // Domain errors say their own kind, under any context, and keep their chain.
        let cfg = crate::config::ConfigError::Missing {
            path: "/etc/x.toml".into(),
        };
        let e = anyhow::Error::new(cfg).context("apply");
        assert_eq!(exit_code(&e), 2);
        assert!(render_error(&e).contains("/etc/x.toml does not exist"));
        let e = anyhow::Error::new(crate::emulation::cross::CrossError::Format("zsh".into()));
        assert_eq!(exit_code(&e), 2);
        let reg = Table::builtin()
            .get("aarch64")
            .unwrap()
            .registration("relative/qemu", Flags::DEFAULT);
        let e =
            anyhow::Error::new(crate::binfmt::interop::to_binfmt_d(&reg, "aarch64").unwrap_err());
        assert_eq!(exit_code(&e), 2);
        assert_eq!(
            e.chain().count(),
            2,
            "the record error stays the source: {e:#}"
        );
    }

    #[test]
    fn each_cause_is_said_once() {
        let k = crate::binfmt::kernel::KernelError::Register {
            name: "qemu-riscv64".into(),
            errno: rustix::io::Errno::IO,
        };
        let e = anyhow::Error::new(crate::binfmt::plan::ApplyError {
            failure: Box::new(crate::binfmt::plan::ApplyFailure::Kernel(k)),
            rolled_back: vec!["qemu-aarch64".into()],
            rollback_errors: vec![],
        })
        .context("install failed");
        let m = render_error(&e);
        assert_eq!(
            m.matches("registering qemu-riscv64 failed").count(),
            1,
            "{m}"
        );
        assert!(
            m.starts_with("install failed: registering qemu-riscv64 failed"),
            "{m}"
        );
        assert!(m.contains("rolled back: qemu-aarch64"), "{m}");
        assert_eq!(exit_code(&e), 1);
    }

    #[test]
    fn error_object() {
        let e = anyhow::Error::new(
            crate::binfmt::arch::Table::builtin()
                .resolve("zzz")
                .unwrap_err(),
        )
        .context("install");
        let v = error_json(&e, b"{\"results\": []}\n");
        assert_eq!(v["error"]["kind"], "bad-input");
        assert_eq!(v["error"]["exit_code"], 2);
        assert_eq!(v["error"]["causes"].as_array().unwrap().len(), 2);
        assert_eq!(v["output"][0]["results"], json!([]));
        let v = error_json(&anyhow::Error::new(ChildExit(5)), b"");
        assert_eq!(v["error"]["kind"], "command-exited");
        assert_eq!(v["error"]["exit_code"], 5);
        assert_eq!(v["output"], json!([]));
    }

    /// Each cause once: errors that print their source are not followed by it again.
    #[test]
    fn error_chain_is_rendered_without_repeats() {
        let io = std::io::Error::other("invalid gzip header");
        let e = anyhow::Error::new(crate::inspection::scan::ScanError::Archive {
            path: "x.tar.gz".into(),
            source: io,
        })
        .context("scan failed");
        assert_eq!(
            render_error(&e),
            "scan failed: reading the archive x.tar.gz failed: invalid gzip header"
        );
        let e = anyhow!("inner").context("outer");
        assert_eq!(render_error(&e), "outer: inner");
    }
}
