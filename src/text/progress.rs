//! How far long work is, drawn on the terminal: the CLI's `Progress` (crate::progress), with
//! indicatif. Drawn only when stderr is a terminal and neither `--json` nor `-q` is given;
//! otherwise the operations get `Silent` and nothing extra is written anywhere.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Progress, Silent, Unit};

/// The observer for a command run with `--json` or `-q` or neither: bars on stderr, or nothing.
pub fn observer(json: bool, quiet: bool) -> Arc<dyn Progress + Send> {
    if drawn(json, quiet, std::io::stderr().is_terminal()) {
        Arc::new(Bars::default())
    } else {
        Arc::new(Silent)
    }
}

/// Whether to draw: a terminal on stderr, and neither `--json` nor `-q`.
fn drawn(json: bool, quiet: bool, stderr_is_tty: bool) -> bool {
    stderr_is_tty && !json && !quiet
}

/// One bar (or spinner) per step, on stderr, cleared when the step ends.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

/// The indicatif template of a step: with a total a bar, else a counter or a spinner.
fn template(total: Option<u64>, unit: Unit) -> &'static str {
    // The step's name comes last, cut to the terminal's width (`wide_msg`): a long path never
    // wraps the line (a wrapped bar is redrawn one line lower each time).
    match (unit, total) {
        (Unit::Bytes, Some(_)) => {
            "{spinner} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec} {eta} {wide_msg}"
        }
        (Unit::Bytes, None) => "{spinner} {bytes} {bytes_per_sec} {wide_msg}",
        (Unit::Files, Some(_)) => "{spinner} [{bar:25}] {human_pos}/{human_len} files {wide_msg}",
        (Unit::Files, None) => "{spinner} {human_pos} files {wide_msg}",
        (Unit::Items, Some(_)) => "{spinner} [{bar:25}] {pos}/{len} {wide_msg}",
        (Unit::Items | Unit::External, None) | (Unit::External, Some(_)) => "{spinner} {wide_msg}",
    }
}

fn style(total: Option<u64>, unit: Unit) -> ProgressStyle {
    ProgressStyle::with_template(template(total, unit))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

impl Progress for Bars {
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit) {
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        if let Some(old) = current.take() {
            old.finish_and_clear();
        }
        // A child process writes to the terminal meanwhile: nothing of ours on it.
        if unit == Unit::External {
            return;
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(style(total, unit));
        bar.set_message(step.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        *current = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Ok(current) = self.current.lock()
            && let Some(bar) = current.as_ref()
        {
            bar.inc(n);
        }
    }

    fn end(&self) {
        if let Ok(mut current) = self.current.lock()
            && let Some(bar) = current.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    /// A command that fails mid-step leaves no bar behind its error message.
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::{Unit, drawn, template};

    #[test]
    fn drawn_only_on_a_terminal_without_json_or_quiet() {
        assert!(drawn(false, false, true));
        assert!(!drawn(true, false, true), "--json");
        assert!(!drawn(false, true, true), "-q");
        assert!(!drawn(false, false, false), "stderr is not a terminal");
    }

    #[test]
    fn every_template_parses() {
        for unit in [Unit::Bytes, Unit::Files, Unit::Items, Unit::External] {
            for total in [None, Some(10)] {
                let t = template(total, unit);
                assert!(
                    indicatif::ProgressStyle::with_template(t).is_ok(),
                    "{unit:?} {total:?}: {t}"
                );
            }
        }
    }
}
