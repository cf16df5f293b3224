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

/// Holds the advances reported through it until `release`, then passes them on (and every
/// later one): for a reader that starts reading (a decompressor looking at the magic bytes)
/// before its step may begin.
pub struct Held<'p> {
    inner: &'p dyn Progress,
    released: std::sync::atomic::AtomicBool,
    held: std::sync::atomic::AtomicU64,
}

impl<'p> Held<'p> {
    pub fn new(inner: &'p dyn Progress) -> Held<'p> {
        Held {
            inner,
            released: std::sync::atomic::AtomicBool::new(false),
            held: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// From now on advances pass straight through; what was held is passed on first.
    pub fn release(&self) {
        use std::sync::atomic::Ordering;
        self.released.store(true, Ordering::SeqCst);
        let n = self.held.swap(0, Ordering::SeqCst);
        if n > 0 {
            self.inner.advance(n);
        }
    }
}

impl Progress for Held<'_> {
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit) {
        self.inner.begin(step, total, unit);
    }
    fn advance(&self, n: u64) {
        use std::sync::atomic::Ordering;
        if self.released.load(Ordering::SeqCst) {
            self.inner.advance(n);
        } else {
            self.held.fetch_add(n, Ordering::SeqCst);
        }
    }
    fn end(&self) {
        self.inner.end();
    }
}

#[cfg(test)]
mod tests {
    use super::{Counting, Event, Held, Progress, Recorder, Step, Unit};
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

    #[test]
    fn held_advances_pass_on_only_when_released() {
        let r = Recorder::new();
        let h = Held::new(&r);
        h.advance(3);
        assert_eq!(r.events(), []);
        h.begin("unpacking", Some(10), Unit::Bytes);
        h.release();
        h.advance(7);
        assert_eq!(
            r.events(),
            [
                Event::Begin {
                    step: "unpacking".into(),
                    total: Some(10),
                    unit: Unit::Bytes
                },
                Event::Advance(3),
                Event::Advance(7)
            ]
        );
    }
}
