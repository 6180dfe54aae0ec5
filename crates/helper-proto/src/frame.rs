//! Framing: a 4-byte big-endian payload length, then that many bytes of JSON.

use std::io::{Read, Write};

use serde::{Serialize, de::DeserializeOwned};

use crate::MAX_FRAME;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection before a frame started (a clean end).
    #[error("the connection was closed")]
    Closed,
    #[error("reading or writing a helper frame failed")]
    Io(#[source] std::io::Error),
    #[error("a helper frame of {len} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge { len: usize },
    #[error("a helper frame is not a valid message")]
    Json(#[source] serde_json::Error),
}

/// Serialize `message` and write it as one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, message: &T) -> Result<(), FrameError> {
    let payload = serde_json::to_vec(message).map_err(FrameError::Json)?;
    if payload.len() > MAX_FRAME {
        return Err(FrameError::TooLarge { len: payload.len() });
    }
    // Cannot truncate: MAX_FRAME fits in u32 and the length was checked just above.
    let len = payload.len() as u32;
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&payload);
    w.write_all(&buf).map_err(FrameError::Io)?;
    w.flush().map_err(FrameError::Io)
}

/// Read one frame and deserialize it. A connection closed before the first byte is
/// [`FrameError::Closed`]; one closed mid-frame is an I/O error.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge { len });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).map_err(FrameError::Io)?;
    serde_json::from_slice(&payload).map_err(FrameError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PROTOCOL_VERSION, Request, Verb};

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let req = Request::new(Verb::Inventory);
        write_frame(&mut buf, &req).unwrap();
        assert_eq!(&buf[..4], &((buf.len() - 4) as u32).to_be_bytes());
        let back: Request = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.version, PROTOCOL_VERSION);
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut buf = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(b"{}");
        let err = read_frame::<Request>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn clean_close_truncation_and_garbage() {
        let empty: &[u8] = &[];
        assert!(matches!(
            read_frame::<Request>(&mut &*empty),
            Err(FrameError::Closed)
        ));
        let short: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame::<Request>(&mut &*short),
            Err(FrameError::Io(_))
        ));
        let mut garbage = 3u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"{x}");
        assert!(matches!(
            read_frame::<Request>(&mut garbage.as_slice()),
            Err(FrameError::Json(_))
        ));
    }
}
