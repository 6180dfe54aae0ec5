//! Framing of the exec stream: after `POST /v1/vms/{name}/exec` answers
//! `101 Switching Protocols`, both sides speak these frames on the raw connection.
//!
//! A frame is `kind: u8`, `len: u32` (big endian), then `len` bytes of payload.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::types::{ExitStatus, TtySize};

/// Largest payload either side sends or accepts.
pub const MAX_PAYLOAD: usize = 1 << 20;

mod kind {
    pub const STDIN: u8 = 1;
    pub const STDIN_EOF: u8 = 2;
    pub const SIGNAL: u8 = 3;
    pub const RESIZE: u8 = 4;
    pub const STDOUT: u8 = 10;
    pub const STDERR: u8 = 11;
    pub const EXIT: u8 = 12;
    pub const ERROR: u8 = 13;
}

/// One unit of the exec stream, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// client → daemon
    Stdin(Vec<u8>),
    StdinEof,
    Signal(i32),
    Resize(TtySize),
    /// daemon → client
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(ExitStatus),
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("exec stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("exec stream: frame of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("exec stream: unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("exec stream: malformed {what} frame: {detail}")]
    Malformed { what: &'static str, detail: String },
}

impl StreamFrame {
    fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            StreamFrame::Stdin(d) => (kind::STDIN, d.clone()),
            StreamFrame::StdinEof => (kind::STDIN_EOF, Vec::new()),
            StreamFrame::Signal(s) => (kind::SIGNAL, s.to_be_bytes().to_vec()),
            StreamFrame::Resize(sz) => {
                let mut p = sz.rows.to_be_bytes().to_vec();
                p.extend_from_slice(&sz.cols.to_be_bytes());
                (kind::RESIZE, p)
            }
            StreamFrame::Stdout(d) => (kind::STDOUT, d.clone()),
            StreamFrame::Stderr(d) => (kind::STDERR, d.clone()),
            StreamFrame::Exit(st) => (kind::EXIT, serde_json::to_vec(st).unwrap_or_default()),
            StreamFrame::Error(m) => (kind::ERROR, m.as_bytes().to_vec()),
        }
    }

    fn decode(kind: u8, payload: Vec<u8>) -> Result<StreamFrame, StreamError> {
        let malformed = |what, detail: String| StreamError::Malformed { what, detail };
        Ok(match kind {
            kind::STDIN => StreamFrame::Stdin(payload),
            kind::STDIN_EOF => StreamFrame::StdinEof,
            kind::SIGNAL => {
                let b: [u8; 4] = payload
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed("signal", format!("{} bytes, want 4", payload.len())))?;
                StreamFrame::Signal(i32::from_be_bytes(b))
            }
            kind::RESIZE => {
                if payload.len() != 4 {
                    return Err(malformed(
                        "resize",
                        format!("{} bytes, want 4", payload.len()),
                    ));
                }
                StreamFrame::Resize(TtySize {
                    rows: u16::from_be_bytes([payload[0], payload[1]]),
                    cols: u16::from_be_bytes([payload[2], payload[3]]),
                })
            }
            kind::STDOUT => StreamFrame::Stdout(payload),
            kind::STDERR => StreamFrame::Stderr(payload),
            kind::EXIT => StreamFrame::Exit(
                serde_json::from_slice(&payload).map_err(|e| malformed("exit", e.to_string()))?,
            ),
            kind::ERROR => StreamFrame::Error(String::from_utf8_lossy(&payload).into_owned()),
            other => return Err(StreamError::UnknownKind(other)),
        })
    }
}

/// Write one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &StreamFrame,
) -> Result<(), StreamError> {
    let (kind, payload) = frame.encode();
    if payload.len() > MAX_PAYLOAD {
        return Err(StreamError::TooLarge(payload.len()));
    }
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind);
    // Bounded by MAX_PAYLOAD above, so the length fits in u32.
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&payload);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Read one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<StreamFrame>, StreamError> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut header[1..]).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(StreamError::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    StreamFrame::decode(header[0], payload).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_round_trips() {
        let frames = vec![
            StreamFrame::Stdin(b"abc".to_vec()),
            StreamFrame::StdinEof,
            StreamFrame::Signal(15),
            StreamFrame::Resize(TtySize {
                rows: 40,
                cols: 120,
            }),
            StreamFrame::Stdout(vec![0, 1, 2, 255]),
            StreamFrame::Stderr(Vec::new()),
            StreamFrame::Exit(ExitStatus {
                code: Some(3),
                signal: None,
            }),
            StreamFrame::Error("boom".into()),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            write_frame(&mut buf, f).await.unwrap();
        }
        let mut r = buf.as_slice();
        for f in &frames {
            assert_eq!(read_frame(&mut r).await.unwrap().as_ref(), Some(f));
        }
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_frames_are_errors() {
        let mut r: &[u8] = &[99, 0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(StreamError::UnknownKind(99))
        ));
        let mut r: &[u8] = &[kind::STDOUT, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(StreamError::TooLarge(_))
        ));
        let mut r: &[u8] = &[kind::SIGNAL, 0, 0, 0, 1, 7];
        assert!(matches!(
            read_frame(&mut r).await,
            Err(StreamError::Malformed { .. })
        ));
        // Truncated mid-frame is an I/O error, not a clean end.
        let mut r: &[u8] = &[kind::STDOUT, 0, 0, 0, 9, 1];
        assert!(matches!(read_frame(&mut r).await, Err(StreamError::Io(_))));
    }
}
