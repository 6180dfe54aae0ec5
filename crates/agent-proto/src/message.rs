//! Typed messages and their mapping to frames.
//!
//! Control structs accept unknown JSON fields on purpose: a newer host or agent may add optional
//! fields without breaking an older peer of the same protocol version.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::decoder::DecodeError;
use crate::frame::{EncodeError, Frame, Kind, encode_frame};

/// Host→guest: start a session. Sent on stream 0 on every (re)connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub proto_version: u32,
    /// Echoed in `Ready`, so the host can tell its answer from stale bytes of an old connection.
    pub nonce: u64,
}

/// Guest→host: the answer to `Hello`; the agent has reset its session and is serving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub nonce: u64,
    pub proto_version: u32,
    pub agent_version: String,
    /// `uname -r` of the guest.
    pub kernel_release: String,
    /// Whether the agent runs as PID 1 (the minimal image) or under another init.
    #[serde(default)]
    pub pid1: bool,
    pub timings: BootTimings,
    /// Optional request fields this agent honours (e.g. [`FEATURE_EXEC_USER`]). An older
    /// agent ignores fields it does not know, so a host must not send one the agent does
    /// not list here when ignoring it would change the outcome.
    #[serde(default)]
    pub features: Vec<String>,
    /// The shared directories the agent could not mount at boot, each as `PATH: reason`.
    /// The host fails the start with them: a command must never run against an empty
    /// mountpoint. An older agent sends none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share_errors: Vec<String>,
}

/// The agent runs an [`Exec`] as its `user`.
pub const FEATURE_EXEC_USER: &str = "exec-user";

/// Guest uptime (CLOCK_BOOTTIME, microseconds) at the agent's boot milestones.
///
/// `agent_start_us` is when the agent's `main` ran: as PID 1 that is the moment the kernel
/// handed control to userspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootTimings {
    pub agent_start_us: u64,
    /// After the modules of `/etc/banger/modules` were loaded (PID 1 only).
    #[serde(default)]
    pub modules_loaded_us: Option<u64>,
    /// After the work disk was mounted (only when one was asked for and mounted).
    #[serde(default)]
    pub disk_mounted_us: Option<u64>,
    /// When the agent had its transport open and could first serve a host.
    pub ready_us: u64,
    /// When this `Ready` was sent.
    pub now_us: u64,
}

/// Terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// Host→guest: run `argv` on this stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub argv: Vec<String>,
    /// Added to (and overriding) the agent's default environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; `/` when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Whether the host will send stdin; otherwise stdin is `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// Run on a new pseudo-terminal of this size (stdout and stderr merge into `Stdout`).
    #[serde(default)]
    pub tty: Option<TtySize>,
    /// Run as this user, in an OCI image config's `User` syntax: `NAME`, `UID`,
    /// `NAME:GROUP`, `UID:GID` (names from the guest's `/etc/passwd` and `/etc/group`).
    /// Root when absent. Only sent to agents listing [`FEATURE_EXEC_USER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Exec {
    /// Run `argv` as root in `/`, stdin `/dev/null`, no terminal; the builder methods
    /// below change that.
    pub fn new<I, S>(argv: I) -> Exec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec {
            argv: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: None,
            stdin: false,
            tty: None,
            user: None,
        }
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Exec {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn cwd(mut self, cwd: impl Into<String>) -> Exec {
        self.cwd = Some(cwd.into());
        self
    }

    pub fn stdin(mut self, stdin: bool) -> Exec {
        self.stdin = stdin;
        self
    }

    pub fn user(mut self, user: impl Into<String>) -> Exec {
        self.user = Some(user.into());
        self
    }

    pub fn tty(mut self, rows: u16, cols: u16) -> Exec {
        self.tty = Some(TtySize { rows, cols });
        self
    }
}

/// Host→guest: send signal `signo` to the exec's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub signo: i32,
}

/// Host→guest: write a file at `path` with permission bits `mode`; chunks and an end follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutFile {
    pub path: String,
    pub mode: u32,
}

/// Host→guest: send the file at `path` back as chunks and an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetFile {
    pub path: String,
}

/// Host→guest: set the guest's CLOCK_REALTIME (needed after a snapshot restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTime {
    /// Nanoseconds since the Unix epoch.
    pub unix_nanos: i64,
}

/// The agent honours [`Reidentify`].
pub const FEATURE_REIDENTIFY: &str = "reidentify";

/// Most entropy bytes a [`Reidentify`] may carry (the kernel credits at most 256 bits per
/// add anyway; more only wastes the frame).
pub const MAX_REIDENTIFY_ENTROPY: usize = 512;

/// Host→guest: this guest was restored from a snapshot and must stop looking like the VM
/// it was saved from. The agent, in this order: mixes `entropy` into the kernel RNG and
/// forces a reseed (no vmgenid on our guest kernels), sets the wall clock (frozen at save
/// time), then makes the identity of VM `vm_id` named `hostname` (hostname, machine-id,
/// SSH host keys) from the reseeded RNG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reidentify {
    pub vm_id: String,
    pub hostname: String,
    /// Nanoseconds since the Unix epoch.
    pub unix_nanos: i64,
    /// Fresh random bytes from the host, at most [`MAX_REIDENTIFY_ENTROPY`].
    pub entropy: Vec<u8>,
    /// The clone's own network identity (a bridged VM): applied last, before the host
    /// lets anyone use the guest. Only sent to agents listing [`FEATURE_REIDENTIFY_NET`]:
    /// an older one would ignore it and keep its parent's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetIdentity>,
}

/// A restored guest's first Ethernet interface as it must be now: its MAC replaced, the
/// parent's addresses, routes and neighbours flushed, this address and default route set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetIdentity {
    /// `aa:bb:cc:dd:ee:ff`, a unicast address.
    pub mac: String,
    pub address: std::net::Ipv4Addr,
    /// 1 to 30.
    pub prefix: u8,
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Written to `/etc/resolv.conf` when not empty.
    #[serde(default)]
    pub dns: Vec<std::net::Ipv4Addr>,
}

/// Listed in [`Ready::features`] by agents that apply [`Reidentify::network`].
pub const FEATURE_REIDENTIFY_NET: &str = "reidentify-net";

/// Either way (version 2): the peer may send `bytes` more bytes of data on this exec stream —
/// output (host→guest `Credit`) or stdin (guest→host `InputCredit`). Windows start at
/// [`crate::OUTPUT_WINDOW`] and [`crate::INPUT_WINDOW`] bytes per exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub bytes: u64,
}

/// Guest→host: the exec's process was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: u32,
}

/// Guest→host: the exec ended. Exactly one of `code` and `signal` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
}

/// Guest→host: the file asked for is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEnd {
    /// Bytes sent in chunks, so the host can check it got them all.
    pub size: u64,
    /// Permission bits of the file.
    pub mode: u32,
}

/// Guest→host: what went wrong, as a sentence for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub message: String,
}

/// Every message of the protocol, host→guest and guest→host.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello(Hello),
    Exec(Exec),
    Stdin(Vec<u8>),
    StdinClose,
    Signal(Signal),
    Resize(TtySize),
    Poweroff,
    PutFile(PutFile),
    PutFileChunk(Vec<u8>),
    PutFileEnd,
    GetFile(GetFile),
    Ping,
    SetTime(SetTime),
    Reidentify(Reidentify),
    Credit(Credit),
    Ready(Ready),
    Started(Started),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exited(Exited),
    FileChunk(Vec<u8>),
    FileEnd(FileEnd),
    Ok,
    Error(ErrorReply),
    Pong,
    InputCredit(Credit),
}

/// How a kind's payload is laid out.
enum Body<'a> {
    Empty,
    Raw(&'a [u8]),
    Json(serde_json::Result<Vec<u8>>),
}

impl Message {
    /// A connection- or stream-level error reply.
    pub fn error(message: impl Into<String>) -> Message {
        Message::Error(ErrorReply {
            message: message.into(),
        })
    }

    /// The frame kind this message travels as.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Exec(_) => Kind::Exec,
            Message::Stdin(_) => Kind::Stdin,
            Message::StdinClose => Kind::StdinClose,
            Message::Signal(_) => Kind::Signal,
            Message::Resize(_) => Kind::Resize,
            Message::Poweroff => Kind::Poweroff,
            Message::PutFile(_) => Kind::PutFile,
            Message::PutFileChunk(_) => Kind::PutFileChunk,
            Message::PutFileEnd => Kind::PutFileEnd,
            Message::GetFile(_) => Kind::GetFile,
            Message::Ping => Kind::Ping,
            Message::SetTime(_) => Kind::SetTime,
            Message::Reidentify(_) => Kind::Reidentify,
            Message::Credit(_) => Kind::Credit,
            Message::Ready(_) => Kind::Ready,
            Message::Started(_) => Kind::Started,
            Message::Stdout(_) => Kind::Stdout,
            Message::Stderr(_) => Kind::Stderr,
            Message::Exited(_) => Kind::Exited,
            Message::FileChunk(_) => Kind::FileChunk,
            Message::FileEnd(_) => Kind::FileEnd,
            Message::Ok => Kind::Ok,
            Message::Error(_) => Kind::Error,
            Message::Pong => Kind::Pong,
            Message::InputCredit(_) => Kind::InputCredit,
        }
    }

    fn body(&self) -> Body<'_> {
        match self {
            Message::StdinClose
            | Message::Poweroff
            | Message::PutFileEnd
            | Message::Ping
            | Message::Ok
            | Message::Pong => Body::Empty,
            Message::Stdin(data)
            | Message::PutFileChunk(data)
            | Message::Stdout(data)
            | Message::Stderr(data)
            | Message::FileChunk(data) => Body::Raw(data),
            Message::Hello(m) => Body::Json(serde_json::to_vec(m)),
            Message::Exec(m) => Body::Json(serde_json::to_vec(m)),
            Message::Signal(m) => Body::Json(serde_json::to_vec(m)),
            Message::Resize(m) => Body::Json(serde_json::to_vec(m)),
            Message::PutFile(m) => Body::Json(serde_json::to_vec(m)),
            Message::GetFile(m) => Body::Json(serde_json::to_vec(m)),
            Message::SetTime(m) => Body::Json(serde_json::to_vec(m)),
            Message::Reidentify(m) => Body::Json(serde_json::to_vec(m)),
            Message::Credit(m) | Message::InputCredit(m) => Body::Json(serde_json::to_vec(m)),
            Message::Ready(m) => Body::Json(serde_json::to_vec(m)),
            Message::Started(m) => Body::Json(serde_json::to_vec(m)),
            Message::Exited(m) => Body::Json(serde_json::to_vec(m)),
            Message::FileEnd(m) => Body::Json(serde_json::to_vec(m)),
            Message::Error(m) => Body::Json(serde_json::to_vec(m)),
        }
    }

    /// Appends this message, as one frame on `stream`, to `out`.
    pub fn encode_into(&self, stream: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let kind = self.kind();
        match self.body() {
            Body::Empty => encode_frame(kind, stream, &[], out),
            Body::Raw(data) => encode_frame(kind, stream, data, out),
            Body::Json(json) => {
                let json = json.map_err(|source| EncodeError::Json { kind, source })?;
                encode_frame(kind, stream, &json, out)
            }
        }
    }

    /// This message as one frame's wire bytes on `stream`.
    pub fn encode(&self, stream: u32) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(stream, &mut out)?;
        Ok(out)
    }

    /// Interprets a frame's payload. Empty-payload kinds ignore any payload (reserved for
    /// future use); JSON kinds fail with [`DecodeError::BadPayload`] on malformed JSON.
    pub fn from_frame(frame: Frame) -> Result<Message, DecodeError> {
        let Frame {
            kind,
            stream,
            payload,
        } = frame;
        Ok(match kind {
            Kind::Hello => Message::Hello(parse(kind, stream, &payload)?),
            Kind::Exec => Message::Exec(parse(kind, stream, &payload)?),
            Kind::Stdin => Message::Stdin(payload),
            Kind::StdinClose => Message::StdinClose,
            Kind::Signal => Message::Signal(parse(kind, stream, &payload)?),
            Kind::Resize => Message::Resize(parse(kind, stream, &payload)?),
            Kind::Poweroff => Message::Poweroff,
            Kind::PutFile => Message::PutFile(parse(kind, stream, &payload)?),
            Kind::PutFileChunk => Message::PutFileChunk(payload),
            Kind::PutFileEnd => Message::PutFileEnd,
            Kind::GetFile => Message::GetFile(parse(kind, stream, &payload)?),
            Kind::Ping => Message::Ping,
            Kind::SetTime => Message::SetTime(parse(kind, stream, &payload)?),
            Kind::Reidentify => Message::Reidentify(parse(kind, stream, &payload)?),
            Kind::Credit => Message::Credit(parse(kind, stream, &payload)?),
            Kind::Ready => Message::Ready(parse(kind, stream, &payload)?),
            Kind::Started => Message::Started(parse(kind, stream, &payload)?),
            Kind::Stdout => Message::Stdout(payload),
            Kind::Stderr => Message::Stderr(payload),
            Kind::Exited => Message::Exited(parse(kind, stream, &payload)?),
            Kind::FileChunk => Message::FileChunk(payload),
            Kind::FileEnd => Message::FileEnd(parse(kind, stream, &payload)?),
            Kind::Ok => Message::Ok,
            Kind::Error => Message::Error(parse(kind, stream, &payload)?),
            Kind::Pong => Message::Pong,
            Kind::InputCredit => Message::InputCredit(parse(kind, stream, &payload)?),
        })
    }
}

fn parse<T: DeserializeOwned>(kind: Kind, stream: u32, payload: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|err| DecodeError::BadPayload {
        kind,
        stream,
        reason: err.to_string(),
    })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
