//! Termination signals while binfmt_misc is being changed: from the first write on, SIGINT,
//! SIGTERM and SIGHUP only record themselves; `plan::apply` checks between steps and rolls
//! back like a failed write (docs/security.md, "Signals").

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The termination signal that arrived during `apply` (0: none).
static PENDING_SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// From now on, SIGINT, SIGTERM and SIGHUP only record themselves in `PENDING_SIGNAL`: `apply`
/// checks it between steps and, when set, rolls back what it did, like a failed write.
pub fn catch_termination_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for s in [SIGINT, SIGTERM, SIGHUP] {
            // The value stored is the signal number; it is never 0.
            if let Err(e) = signal_hook::flag::register_usize(s, &PENDING_SIGNAL, s as usize) {
                tracing::warn!(signal = s, error = %e, "cannot catch the signal");
            }
        }
    });
}

/// The termination signal received while applying, if any.
pub fn pending_signal() -> Option<i32> {
    match PENDING_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// "SIGTERM" for 15.
pub fn signal_name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal)
        .map_or_else(|| format!("signal {signal}"), str::to_owned)
}
