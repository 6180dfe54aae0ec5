//! Progress of long operations (downloads, image builds, layer unpacking, boots).
//!
//! The code doing the work reports [`ProgressEvent`]s to a [`Progress`] sink and never
//! knows who listens: the daemon forwards them to the CLI as a stream, the CLI draws a bar
//! on a terminal or prints plain lines otherwise, tests collect them. Reporting must be
//! cheap and must never fail the operation, so sinks swallow their own errors.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Bytes,
    Items,
}

/// One step of progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A new phase begins (it ends the previous one). `total` is in `unit`s when known.
    #[cfg_attr(feature = "schema", schema(title = "phase"))]
    Phase {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<Unit>,
    },
    /// `done` units of the current phase are complete (an absolute count, not a delta, so a
    /// listener that missed events still shows the truth).
    #[cfg_attr(feature = "schema", schema(title = "advance"))]
    Advance { done: u64 },
    /// A line worth showing (what is being fetched, a warning, a decision taken).
    #[cfg_attr(feature = "schema", schema(title = "note"))]
    Note { message: String },
}

/// A sink for progress events.
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);

    fn phase(&self, name: &str, total: Option<u64>, unit: Option<Unit>) {
        self.report(ProgressEvent::Phase {
            name: name.to_string(),
            total,
            unit,
        });
    }

    fn advance(&self, done: u64) {
        self.report(ProgressEvent::Advance { done });
    }

    fn note(&self, message: &str) {
        self.report(ProgressEvent::Note {
            message: message.to_string(),
        });
    }
}

/// Discards everything: for callers nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _event: ProgressEvent) {}
}

/// How often a [`ProgressReader`] reports at most: often enough for a smooth bar,
/// rarely enough to cost nothing next to the I/O.
const READ_REPORT_BYTES: u64 = 256 << 10;
const READ_REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// A reader that reports how many bytes have passed through it as [`ProgressEvent::Advance`]
/// events of the current phase (call [`Progress::phase`] with the total first). Reports
/// are throttled, and the final count is reported at end of file.
pub struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
    done: u64,
    reported: u64,
    last_report: Instant,
}

impl<'a, R: Read> ProgressReader<'a, R> {
    pub fn new(inner: R, progress: &'a dyn Progress) -> Self {
        ProgressReader {
            inner,
            progress,
            done: 0,
            reported: 0,
            last_report: Instant::now(),
        }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let due = self.done - self.reported >= READ_REPORT_BYTES
            || self.last_report.elapsed() >= READ_REPORT_INTERVAL;
        if self.done != self.reported && (n == 0 || due) {
            self.progress.advance(self.done);
            self.reported = self.done;
            self.last_report = Instant::now();
        }
        Ok(n)
    }
}

/// Keeps every event: for tests.
#[derive(Debug, Default)]
pub struct Recorded(pub std::sync::Mutex<Vec<ProgressEvent>>);

impl Progress for Recorded {
    fn report(&self, event: ProgressEvent) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_a_stable_wire_form() {
        let phase = ProgressEvent::Phase {
            name: "download".into(),
            total: Some(10),
            unit: Some(Unit::Bytes),
        };
        assert_eq!(
            serde_json::to_string(&phase).unwrap_or_default(),
            r#"{"event":"phase","name":"download","total":10,"unit":"bytes"}"#
        );
        let back: ProgressEvent = serde_json::from_str(r#"{"event":"advance","done":4}"#)
            .unwrap_or(ProgressEvent::Note {
                message: String::new(),
            });
        assert_eq!(back, ProgressEvent::Advance { done: 4 });
    }

    #[test]
    fn reader_reports_absolute_counts_and_the_final_one() {
        let data = vec![7u8; (READ_REPORT_BYTES * 3 + 5) as usize];
        let sink = Recorded::default();
        let mut out = Vec::new();
        std::io::copy(&mut ProgressReader::new(data.as_slice(), &sink), &mut out)
            .unwrap_or_default();
        assert_eq!(out, data);
        let events = sink.0.lock().map(|v| v.clone()).unwrap_or_default();
        let counts: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::Advance { done } => Some(*done),
                _ => None,
            })
            .collect();
        assert!(counts.len() >= 3, "{counts:?}");
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&(data.len() as u64)));
    }

    #[test]
    fn recorded_keeps_order() {
        let sink = Recorded::default();
        sink.phase("unpack", None, Some(Unit::Items));
        sink.advance(3);
        sink.note("done");
        let events = sink.0.lock().map(|v| v.len()).unwrap_or(0);
        assert_eq!(events, 3);
    }
}
