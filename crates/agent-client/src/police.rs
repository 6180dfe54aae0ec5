//! Policing what a guest sends after the handshake: bytes that do not decode, frames of
//! host-to-guest kinds, connection-level errors, broken flow-control rules. Each is counted,
//! not logged: one summary line per interval says how many and shows the first (escaped and
//! capped). A connection that sends more than [`JUNK_LIMIT`] of them within an interval is
//! cut off; its owner reconnects with back-off.
//!
//! A healthy agent sends none of these (a stale half frame right after a reconnect is
//! skipped before the handshake, not here), so the limit is generous for accidents and tight
//! for floods: a guest writing junk at full speed costs the host a counter, not a log line
//! per frame.

use std::time::{Duration, Instant};

use banger_agent_proto::{DecodeError, Kind, Message};

/// Offences within one interval that cut a connection off.
pub const JUNK_LIMIT: u64 = 256;
/// How long offences are counted before the count starts again.
pub const JUNK_INTERVAL: Duration = Duration::from_secs(10);
/// Longest excerpt of guest text a log line carries.
pub const EXCERPT_CHARS: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Close the connection.
    CutOff,
}

/// The offences of one connection.
pub struct Police {
    label: String,
    since: Instant,
    offences: u64,
    skipped_bytes: u64,
    first: Option<String>,
    /// Offences in the current interval only, for the limit.
    recent: u64,
    recent_since: Instant,
    cut_off: bool,
}

impl Police {
    pub fn new(label: String) -> Police {
        let now = Instant::now();
        Police {
            label,
            since: now,
            offences: 0,
            skipped_bytes: 0,
            first: None,
            recent: 0,
            recent_since: now,
            cut_off: false,
        }
    }

    pub fn decode_error(&mut self, err: &DecodeError) -> Verdict {
        if let DecodeError::Garbage { skipped } = err {
            self.skipped_bytes += *skipped as u64;
        }
        self.offence(|| err.to_string())
    }

    pub fn forbidden(&mut self, kind: Kind) -> Verdict {
        self.offence(|| format!("a {kind:?} frame, which only the host may send"))
    }

    pub fn violation(&mut self, why: String) -> Verdict {
        self.offence(|| why)
    }

    /// A message on stream 0 (the connection itself).
    pub fn control(&mut self, message: Message) -> Verdict {
        match message {
            // Extra `Ready`s answer the handshake's resent `Hello`s.
            Message::Ready(_) => Verdict::Fine,
            Message::Error(err) => {
                self.offence(|| format!("the agent reported a connection error: {}", err.message))
            }
            other => {
                let kind = other.kind();
                self.offence(|| format!("a {kind:?} frame on stream 0"))
            }
        }
    }

    fn offence(&mut self, describe: impl FnOnce() -> String) -> Verdict {
        let now = Instant::now();
        if now.duration_since(self.recent_since) >= JUNK_INTERVAL {
            self.recent = 0;
            self.recent_since = now;
        }
        self.offences += 1;
        self.recent += 1;
        if self.first.is_none() {
            self.first = Some(banger_system::text::sanitize(&describe(), EXCERPT_CHARS));
        }
        if self.recent > JUNK_LIMIT && !self.cut_off {
            self.cut_off = true;
            tracing::warn!(
                agent = %self.label,
                offences = self.recent,
                "the guest agent keeps sending malformed frames; closing its connection (it is reopened with back-off)"
            );
            return Verdict::CutOff;
        }
        Verdict::Fine
    }

    /// Log what was counted since the last summary (nothing if nothing was), and start over.
    pub fn summarise(&mut self) {
        if self.offences > 0 {
            tracing::warn!(
                agent = %self.label,
                offences = self.offences,
                skipped_bytes = self.skipped_bytes,
                seconds = self.since.elapsed().as_secs(),
                first = %self.first.as_deref().unwrap_or(""),
                "the guest agent sent frames that were dropped"
            );
        }
        self.since = Instant::now();
        self.offences = 0;
        self.skipped_bytes = 0;
        self.first = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_off_once_and_counted() {
        let mut police = Police::new("VM t".into());
        let junk = DecodeError::Garbage { skipped: 10 };
        let verdicts: Vec<Verdict> = (0..JUNK_LIMIT * 3)
            .map(|_| police.decode_error(&junk))
            .collect();
        let cut = verdicts.iter().filter(|v| **v == Verdict::CutOff).count();
        assert_eq!(cut, 1, "cut off exactly once");
        assert_eq!(verdicts[JUNK_LIMIT as usize], Verdict::CutOff);
        assert_eq!(police.skipped_bytes, JUNK_LIMIT * 30);
        police.summarise();
        assert_eq!(police.offences, 0);
    }

    #[test]
    fn the_excerpt_is_escaped_and_capped() {
        let mut police = Police::new("VM t".into());
        let long = format!("line\nforged\x1b[2J{}", "x".repeat(10_000));
        police.control(Message::error(long));
        let first = police.first.clone().unwrap_or_default();
        assert!(!first.contains('\n') && !first.contains('\x1b'), "{first}");
        assert!(
            first.chars().count() < EXCERPT_CHARS + 30,
            "{}",
            first.len()
        );
        let ready = banger_agent_proto::Ready {
            nonce: 1,
            proto_version: 2,
            agent_version: "x".into(),
            kernel_release: "x".into(),
            pid1: false,
            timings: Default::default(),
            features: Vec::new(),
            share_errors: Vec::new(),
        };
        assert_eq!(police.control(Message::Ready(ready)), Verdict::Fine);
    }
}
