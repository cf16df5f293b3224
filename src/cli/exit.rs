//! The kind of an error chain, and so the exit code (docs/exit-codes.md): the one place that
//! knows every error type of the crate (each implements `error::Classify` in its own module).
//! It sits in the command layer, above all of them, so the modules beneath never import each
//! other through their errors.

use crate::error::{Classify, ErrorKind};

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
        crate::cli::BadInput,
        crate::cli::Unsupported,
        crate::cli::doctor::Reported,
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
        crate::inspection::elf::ElfError,
        crate::emulation::rootfs::RootfsError,
        crate::inspection::scan::ScanError,
        crate::emulation::cross::CrossError,
        crate::emulation::accelerate::AccelError,
        crate::nix::NixError,
        crate::nix::ShowConfigError,
        crate::ops::nix::NixOpsError,
        crate::qemu::QemuError,
        crate::qemu::archive::ArchiveError,
        crate::qemu::store::StoreError,
        crate::qemu::verify::VerifyError,
        crate::qemu::deb::DebError,
        crate::ops::OpsError,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
