//! How far long work is: the observer the lower layers report to.
//!
//! `qemu`, `emulation` and `inspection` know nothing of terminals: a long step calls
//! `begin` (its name, and its size when known), `advance` as it goes and `end` when done, on
//! whatever `Progress` it was given. `ops` passes the observer down; only the CLI draws, and
//! only on a terminal (`cli::progress`: indicatif, when stderr is a tty and neither `--json`
//! nor `-q` is given). Everywhere else the observer is `Silent`.
//!
//! Steps do not nest: a `begin` ends the step before it.

use std::sync::Mutex;

/// What a step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes read, downloaded or unpacked (shown with a rate).
    Bytes,
    /// Files walked or read.
    Files,
    /// Items of another kind (interpreters probed, ...).
    Items,
    /// A step whose output is the terminal's own: a child process (the bootstrap tool) writes
    /// to it until the step ends, so nothing may be drawn meanwhile.
    External,
}

/// The observer of long work. `Sync`: the scan's reader threads report too.
pub trait Progress: Sync {
    /// A step begins (and the one before it, if any, ends): `total` units when known.
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit);
    /// `n` more units of the current step are done.
    fn advance(&self, n: u64);
    /// The current step is done.
    fn end(&self);
}

/// Reports nothing: the observer of every caller that does not draw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: Option<u64>, _: Unit) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// One report, as `Recorder` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Begin {
        step: String,
        total: Option<u64>,
        unit: Unit,
    },
    Advance(u64),
    End,
}

/// Keeps every report in order (for tests, and for anyone who wants the steps afterwards).
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Every report so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Each step in the order begun, with the units advanced in it and whether it ended.
    pub fn steps(&self) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::new();
        for e in self.events() {
            match e {
                Event::Begin { step, total, unit } => out.push(Step {
                    name: step,
                    total,
                    unit,
                    done: 0,
                    ended: false,
                }),
                Event::Advance(n) => {
                    if let Some(s) = out.last_mut() {
                        s.done += n;
                    }
                }
                Event::End => {
                    if let Some(s) = out.last_mut() {
                        s.ended = true;
                    }
                }
            }
        }
        out
    }

    fn push(&self, e: Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
    }
}

/// A step as `Recorder::steps` sums it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub total: Option<u64>,
    pub unit: Unit,
    /// The units advanced while it was the current step.
    pub done: u64,
    pub ended: bool,
}

impl Progress for Recorder {
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit) {
        self.push(Event::Begin {
            step: step.to_owned(),
            total,
            unit,
        });
    }
    fn advance(&self, n: u64) {
        self.push(Event::Advance(n));
    }
    fn end(&self) {
        self.push(Event::End);
    }
}

/// A reader that reports the bytes read through it as `advance`.
pub struct Counting<'p, R> {
    pub inner: R,
    pub progress: &'p dyn Progress,
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.progress.advance(n as u64);
        }
        Ok(n)
    }
}

/// A reader that counts the bytes read through it into a shared tally, for readers that
/// must be `'static` (a decompressor owns them): whoever drives the stream hands the tally's
/// growth to `Progress::advance` (`Tally::report`).
pub struct Tally<R> {
    pub inner: R,
    pub count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R> Tally<R> {
    pub fn new(inner: R) -> Tally<R> {
        Tally {
            inner,
            count: std::sync::Arc::default(),
        }
    }
}

impl<R: std::io::Read> std::io::Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Hands what `count` grew by since `*reported` to `progress`.
pub fn report(progress: &dyn Progress, count: &std::sync::atomic::AtomicU64, reported: &mut u64) {
    let now = count.load(std::sync::atomic::Ordering::Relaxed);
    if now > *reported {
        progress.advance(now - *reported);
        *reported = now;
    }
}

#[cfg(test)]
mod tests {
    use super::{Counting, Event, Progress, Recorder, Step, Unit};
    use std::io::Read;

    #[test]
    fn the_recorder_keeps_steps_in_order_with_their_units() {
        let r = Recorder::new();
        r.begin("download", Some(10), Unit::Bytes);
        let mut c = Counting {
            inner: &b"0123456789"[..],
            progress: &r,
        };
        let mut s = Vec::new();
        c.read_to_end(&mut s).unwrap();
        r.end();
        r.begin("check", None, Unit::Items);
        assert_eq!(
            r.steps(),
            vec![
                Step {
                    name: "download".into(),
                    total: Some(10),
                    unit: Unit::Bytes,
                    done: 10,
                    ended: true
                },
                Step {
                    name: "check".into(),
                    total: None,
                    unit: Unit::Items,
                    done: 0,
                    ended: false
                },
            ]
        );
        assert_eq!(
            r.events().last(),
            Some(&Event::Begin {
                step: "check".into(),
                total: None,
                unit: Unit::Items
            })
        );
    }
}
