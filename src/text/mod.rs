//! How the operations' typed reports read as text: one module per family of commands, each
//! writing the human form the CLI prints (`write_text` on a report, or a `write_*` function);
//! untrusted text (file names, messages from files) is escaped for the terminal
//! (`crate::escape`). A report's JSON form is its `Serialize`; `cli::render` chooses between
//! the two and owns the terminal's streams. Nothing here decides or does anything: it reads
//! the reports `crate::ops` returns.

pub mod doctor;
pub mod emulate;
pub mod look;
pub mod nix;
pub mod progress;
pub mod qemu;
pub mod report;
pub mod status;

/// A column's width: its longest cell (`lens`: the cells' lengths), at least `min`, so that
/// long names such as qemu-microblaze-old keep a table aligned.
fn column(lens: impl Iterator<Item = usize>, min: usize) -> usize {
    lens.max().unwrap_or(0).max(min)
}
