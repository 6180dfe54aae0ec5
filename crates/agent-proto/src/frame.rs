//! Frame kinds and the byte layout of a frame.

use crate::{HEADER_LEN, MAGIC, MAX_PAYLOAD};

/// What a frame carries. Host→guest kinds are below 0x80, guest→host kinds at or above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Host→guest, JSON [`crate::Hello`]: start (or restart) a session.
    Hello = 0x01,
    /// Host→guest, JSON [`crate::Exec`]: run a program on this stream.
    Exec = 0x02,
    /// Host→guest, raw bytes for the exec's stdin.
    Stdin = 0x03,
    /// Host→guest, empty: close the exec's stdin.
    StdinClose = 0x04,
    /// Host→guest, JSON [`crate::Signal`]: signal the exec.
    Signal = 0x05,
    /// Host→guest, JSON [`crate::TtySize`]: resize the exec's terminal.
    Resize = 0x06,
    /// Host→guest, empty: power the guest off (answered with `Ok` first).
    Poweroff = 0x07,
    /// Host→guest, JSON [`crate::PutFile`]: start writing a file.
    PutFile = 0x08,
    /// Host→guest, raw bytes of the file being written.
    PutFileChunk = 0x09,
    /// Host→guest, empty: the file is complete; commit it.
    PutFileEnd = 0x0a,
    /// Host→guest, JSON [`crate::GetFile`]: send a file back.
    GetFile = 0x0b,
    /// Host→guest, empty: answered with `Pong`.
    Ping = 0x0c,
    /// Host→guest, JSON [`crate::SetTime`]: set the guest's wall clock.
    SetTime = 0x0d,
    /// Host→guest (version 2), JSON [`crate::Credit`]: the exec on this stream may send this
    /// many more bytes of output.
    Credit = 0x0e,
    /// Host→guest, JSON [`crate::Reidentify`]: a VM restored from a snapshot becomes its
    /// own machine (RNG, clock, hostname, machine-id, SSH host keys). Answered `Ok`/`Error`.
    Reidentify = 0x0f,
    /// Guest→host, JSON [`crate::Ready`]: the answer to `Hello`.
    Ready = 0x81,
    /// Guest→host, JSON [`crate::Started`]: the exec's process runs.
    Started = 0x82,
    /// Guest→host, raw bytes the exec wrote to stdout (or to its terminal).
    Stdout = 0x83,
    /// Guest→host, raw bytes the exec wrote to stderr.
    Stderr = 0x84,
    /// Guest→host, JSON [`crate::Exited`]: the exec ended; last frame of its stream.
    Exited = 0x85,
    /// Guest→host, raw bytes of a file asked for with `GetFile`.
    FileChunk = 0x86,
    /// Guest→host, JSON [`crate::FileEnd`]: the file is complete.
    FileEnd = 0x87,
    /// Guest→host, empty: the request on this stream succeeded.
    Ok = 0x88,
    /// Guest→host, JSON [`crate::ErrorReply`]: the request on this stream (or, on stream 0,
    /// the connection) went wrong.
    Error = 0x89,
    /// Guest→host, empty: the answer to `Ping`.
    Pong = 0x8a,
    /// Guest→host (version 2), JSON [`crate::Credit`]: the host may send this many more bytes
    /// of stdin to the exec on this stream.
    InputCredit = 0x8b,
}

impl Kind {
    /// Every kind, for exhaustive tests and lookups.
    pub const ALL: [Kind; 26] = [
        Kind::Hello,
        Kind::Exec,
        Kind::Stdin,
        Kind::StdinClose,
        Kind::Signal,
        Kind::Resize,
        Kind::Poweroff,
        Kind::PutFile,
        Kind::PutFileChunk,
        Kind::PutFileEnd,
        Kind::GetFile,
        Kind::Ping,
        Kind::SetTime,
        Kind::Credit,
        Kind::Reidentify,
        Kind::Ready,
        Kind::Started,
        Kind::Stdout,
        Kind::Stderr,
        Kind::Exited,
        Kind::FileChunk,
        Kind::FileEnd,
        Kind::Ok,
        Kind::Error,
        Kind::Pong,
        Kind::InputCredit,
    ];

    /// The kind with this wire value, if any.
    pub fn from_u8(value: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|kind| *kind as u8 == value)
    }
}

/// One frame as it travels on the wire, before its payload is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The frame's wire bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        encode_frame(self.kind, self.stream, &self.payload, &mut out)?;
        Ok(out)
    }
}

/// Failure to put a message on the wire.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A payload over the frame limit; data must be split into chunks first.
    #[error(
        "a {kind:?} payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte frame limit; split data into chunks of at most {} bytes",
        crate::MAX_DATA_CHUNK
    )]
    TooLarge { kind: Kind, len: usize },
    /// A control message that could not be serialised to JSON.
    #[error("could not serialise the {kind:?} message to JSON")]
    Json {
        kind: Kind,
        #[source]
        source: serde_json::Error,
    },
}

/// Appends one frame (header and payload) to `out`.
pub fn encode_frame(
    kind: Kind,
    stream: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let len = payload.len();
    let wire_len = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_PAYLOAD)
        .ok_or(EncodeError::TooLarge { kind, len })?;
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&wire_len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_value() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_u8(0x00), None);
        assert_eq!(Kind::from_u8(0xff), None);
    }

    #[test]
    fn header_layout_is_magic_kind_stream_len() {
        let mut out = Vec::new();
        encode_frame(Kind::Stdout, 0x0102_0304, b"hi", &mut out).unwrap();
        assert_eq!(
            out,
            [
                b'B', b'N', b'G', b'R', 0x83, 1, 2, 3, 4, 0, 0, 0, 2, b'h', b'i'
            ]
        );
    }

    #[test]
    fn oversize_payload_is_refused() {
        let big = vec![0u8; MAX_PAYLOAD + 1];
        let err = encode_frame(Kind::Stdin, 1, &big, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, EncodeError::TooLarge { .. }), "{err}");
        let max = vec![0u8; MAX_PAYLOAD];
        encode_frame(Kind::Stdin, 1, &max, &mut Vec::new()).unwrap();
    }
}
