//! The streaming decoder: bytes in, frames out, resynchronising on the magic after garbage.

use crate::frame::{Frame, Kind};
use crate::message::Message;
use crate::{HEADER_LEN, MAGIC, MAX_PAYLOAD};

/// Why bytes on the stream did not make a frame. The decoder has already skipped past the
/// offending bytes when it returns one, so the reader just logs or reports it and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Bytes that did not start with the magic (stale bytes of an old connection, noise).
    #[error("skipped {skipped} bytes that did not start a frame (no \"BNGR\" magic)")]
    Garbage { skipped: usize },
    /// A header announcing a payload over the limit: taken as corruption, skipped.
    #[error(
        "a frame header announces {len} payload bytes, over the {MAX_PAYLOAD}-byte limit; skipped it as corrupt"
    )]
    Oversize { len: u64 },
    /// A header with a kind this protocol version does not know: taken as corruption, skipped.
    #[error("a frame header has unknown kind {kind:#04x}; skipped it as corrupt")]
    UnknownKind { kind: u8 },
    /// A whole frame whose payload is not the JSON its kind needs.
    #[error("malformed {kind:?} payload on stream {stream}: {reason}")]
    BadPayload {
        kind: Kind,
        stream: u32,
        reason: String,
    },
}

impl DecodeError {
    /// The stream a well-framed but malformed message was for; `None` when the frame itself
    /// was broken (its stream id cannot be trusted).
    pub fn stream(&self) -> Option<u32> {
        match self {
            DecodeError::BadPayload { stream, .. } => Some(*stream),
            _ => None,
        }
    }
}

/// Turns a byte stream pushed in arbitrary pieces into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes before `start` are consumed; compacted on the next push.
    start: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes pushed but not yet returned as frames or skipped.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Forgets everything buffered (a new connection starts clean).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// The next complete frame, an error describing bytes just skipped, or `None` when more
    /// bytes are needed. Call it until it returns `None` after every push.
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        let data = &self.buf[self.start..];
        if data.is_empty() {
            return None;
        }
        match find_magic(data) {
            Some(0) => {}
            Some(skipped) => {
                self.start += skipped;
                return Some(Err(DecodeError::Garbage { skipped }));
            }
            None => {
                // Keep a tail that could be the beginning of a magic split across pushes.
                let keep = magic_prefix_suffix(data);
                let skipped = data.len() - keep;
                if skipped == 0 {
                    return None;
                }
                self.start += skipped;
                return Some(Err(DecodeError::Garbage { skipped }));
            }
        }
        if data.len() < HEADER_LEN {
            return None;
        }
        let kind_byte = data[4];
        let stream = u32::from_be_bytes([data[5], data[6], data[7], data[8]]);
        let len = u32::from_be_bytes([data[9], data[10], data[11], data[12]]);
        // A broken header is skipped one byte at a time so the scan finds the next real frame
        // even if it starts inside the bytes this header claimed.
        let Some(len) = usize::try_from(len).ok().filter(|len| *len <= MAX_PAYLOAD) else {
            self.start += 1;
            return Some(Err(DecodeError::Oversize { len: len.into() }));
        };
        let Some(kind) = Kind::from_u8(kind_byte) else {
            self.start += 1;
            return Some(Err(DecodeError::UnknownKind { kind: kind_byte }));
        };
        let end = HEADER_LEN + len;
        if data.len() < end {
            return None;
        }
        let payload = data[HEADER_LEN..end].to_vec();
        self.start += end;
        Some(Ok(Frame {
            kind,
            stream,
            payload,
        }))
    }

    /// Like [`Decoder::next_frame`], with the payload interpreted: `(stream, message)`.
    pub fn next_message(&mut self) -> Option<Result<(u32, Message), DecodeError>> {
        self.next_frame().map(|frame| {
            let frame = frame?;
            let stream = frame.stream;
            Message::from_frame(frame).map(|message| (stream, message))
        })
    }
}

fn find_magic(data: &[u8]) -> Option<usize> {
    data.windows(MAGIC.len()).position(|window| window == MAGIC)
}

/// Length of the longest suffix of `data` that is a proper prefix of the magic.
fn magic_prefix_suffix(data: &[u8]) -> usize {
    (1..MAGIC.len())
        .rev()
        .find(|n| data.len() >= *n && data[data.len() - n..] == MAGIC[..*n])
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
