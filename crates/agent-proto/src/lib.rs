//! The banger host↔guest agent protocol.
//!
//! One byte stream (a virtio-serial port, a vsock connection or a Unix socket) carries frames:
//!
//! ```text
//! magic "BNGR" | kind u8 | stream id u32 BE | payload length u32 BE | payload
//! ```
//!
//! Control payloads are JSON; data payloads (stdin, stdout, stderr, file chunks) are raw bytes.
//! Many execs share the stream, each on a stream id chosen by the host; stream 0 is the
//! connection itself (handshake, connection-level errors). The [`Decoder`] resynchronises on
//! the magic after garbage, so a reader never has to give up on a stream.
//!
//! This crate does no I/O: both the guest agent (std threads) and the host client (tokio)
//! build on it. `docs/agent-protocol.md` describes the protocol for humans.

mod decoder;
mod frame;
mod message;

pub mod tools;

pub use decoder::{DecodeError, Decoder};
pub use frame::{EncodeError, Frame, Kind, encode_frame};
pub use message::{
    BootTimings, Credit, ErrorReply, Exec, Exited, FEATURE_EXEC_USER, FEATURE_REIDENTIFY,
    FEATURE_REIDENTIFY_NET, FileEnd, GetFile, Hello, MAX_REIDENTIFY_ENTROPY, Message, NetIdentity,
    PutFile, Ready, Reidentify, SetTime, Signal, Started, TtySize,
};

/// The four bytes every frame starts with; the decoder scans for them to resynchronise.
pub const MAGIC: [u8; 4] = *b"BNGR";

/// The newest version of this protocol, which both sides of this build speak.
///
/// The host sends its version in `Hello`; the agent answers in `Ready` with the lower of the
/// two (it speaks every version down to [`MIN_PROTO_VERSION`]), and the session uses that.
/// Version 2 adds per-exec flow control (`Credit`, `InputCredit`); a version-1 peer gets
/// none and sends none.
pub const PROTO_VERSION: u32 = 2;

/// The oldest version either side still speaks.
pub const MIN_PROTO_VERSION: u32 = 1;

/// The version a session runs at when the host says `host` and the agent speaks up to
/// `agent`: the lower one.
pub fn negotiate(host: u32, agent: u32) -> u32 {
    host.min(agent)
}

/// Version 2: how many bytes of output an exec may send before the host grants more
/// (`Credit`). The host never holds more than this (plus a few control frames) per exec.
pub const OUTPUT_WINDOW: u64 = 256 * 1024;

/// Version 2: how many bytes of stdin the host may send an exec before the agent grants more
/// (`InputCredit`).
pub const INPUT_WINDOW: u64 = 256 * 1024;

/// Bytes in a frame header: magic (4), kind (1), stream id (4), payload length (4).
pub const HEADER_LEN: usize = 13;

/// Largest payload a frame may carry. A header announcing more is treated as corruption.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Largest data chunk (stdout, stderr, stdin, file chunk) either side sends in one frame.
/// Smaller than [`MAX_PAYLOAD`] so one busy exec cannot hold the shared stream for long.
pub const MAX_DATA_CHUNK: usize = 64 * 1024;

/// The vsock port the agent listens on unless told otherwise (Firecracker's hybrid vsock
/// reaches it with `CONNECT 1024`). Shared so host and guest name it once.
pub const DEFAULT_VSOCK_PORT: u32 = 1024;

/// Stream id of the connection itself: `Hello`, `Ready` and connection-level `Error`s.
pub const CONTROL_STREAM: u32 = 0;
