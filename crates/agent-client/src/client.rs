//! The client: handshake, requests, and the plumbing shared by exec sessions.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use banger_agent_proto::{
    CONTROL_STREAM, Decoder, FEATURE_EXEC_USER, GetFile, Hello, INPUT_WINDOW, MAX_DATA_CHUNK,
    MIN_PROTO_VERSION, Message, OUTPUT_WINDOW, PROTO_VERSION, PutFile, Ready, SetTime,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::ClientError;
use crate::conn::{self, Budget, CloseReason, Inbox, InputCredit, RouteGuard, Shared};
use crate::exec::{ExecRequest, ExecSession};

/// Longest kernel release or agent version kept from a guest's `Ready` (escaped).
pub const MAX_READY_FIELD: usize = 64;
/// Longest error text kept from a guest (escaped).
pub const MAX_GUEST_MESSAGE: usize = 1024;

/// Any byte stream to an agent.
pub trait AgentStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AgentStream for T {}

/// While waiting for `Ready`, `Hello` is sent again this often: the first one may have been
/// swallowed by a partial frame an earlier host left in the agent's buffer, or queued before
/// the agent opened its port. Each resend makes the agent answer again; extra answers are
/// ignored, and they all precede any request, so they reset nothing that matters.
const HELLO_RESEND: Duration = Duration::from_secs(1);

/// Frames queued for the writer task before senders wait (backpressure on large uploads).
const WRITE_QUEUE: usize = 64;

/// How long a request (ping, power-off, file copy, clock) may take, from queueing its first
/// frame to its answer. A frozen guest must not hang its caller: every wait has a deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one guest agent. Cheap to clone; all clones share the connection, which
/// closes when the last clone (and every session) is dropped.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// What the agent said it honours in its `Ready`.
    features: Vec<String>,
    frames: mpsc::Sender<Vec<u8>>,
    reader: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
        self.shared.close(CloseReason::Shutdown);
    }
}

impl AgentClient {
    /// Says `Hello` on `stream` and waits up to `timeout` for the agent's `Ready` with our
    /// nonce, skipping anything else (stale frames and partial frames of an earlier
    /// connection). Must be called inside a tokio runtime.
    pub async fn handshake<S: AgentStream>(
        stream: S,
        timeout: Duration,
    ) -> Result<(AgentClient, Ready), ClientError> {
        AgentClient::handshake_as("guest agent", stream, timeout).await
    }

    /// [`AgentClient::handshake`], naming the connection `label` (e.g. "VM dev") in logs.
    ///
    /// Everything the agent reports about itself in `Ready` is guest-controlled: the strings
    /// are escaped and capped before they are returned.
    pub async fn handshake_as<S: AgentStream>(
        label: &str,
        stream: S,
        timeout: Duration,
    ) -> Result<(AgentClient, Ready), ClientError> {
        let (mut reader, writer) = tokio::io::split(stream);
        let shared = Shared::new(label.to_owned());
        let (frames, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(conn::write_loop(writer, queue, Arc::clone(&shared)));
        let nonce = new_nonce();
        let hello = Message::Hello(Hello {
            proto_version: PROTO_VERSION,
            nonce,
        })
        .encode(CONTROL_STREAM)?;
        let mut decoder = Decoder::new();
        let wait = wait_for_ready(&mut reader, &mut decoder, &frames, &hello, nonce);
        let mut ready = match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result?,
            Err(_) => return Err(ClientError::HandshakeTimeout(timeout)),
        };
        if !(MIN_PROTO_VERSION..=PROTO_VERSION).contains(&ready.proto_version) {
            return Err(ClientError::VersionMismatch {
                agent: ready.proto_version,
                host: PROTO_VERSION,
            });
        }
        shared.set_version(ready.proto_version);
        ready.kernel_release =
            banger_system::text::sanitize(&ready.kernel_release, MAX_READY_FIELD);
        ready.agent_version = banger_system::text::sanitize(&ready.agent_version, MAX_READY_FIELD);
        let reader = tokio::spawn(conn::read_loop(reader, decoder, Arc::clone(&shared)));
        let inner = Inner {
            shared,
            // Guest-supplied: keep only plausible names, a bounded number of them.
            features: ready
                .features
                .iter()
                .filter(|f| f.len() <= 64)
                .take(64)
                .cloned()
                .collect(),
            frames,
            reader: reader.abort_handle(),
        };
        let client = AgentClient {
            inner: Arc::new(inner),
        };
        Ok((client, ready))
    }

    /// Whether the agent listed `feature` in its `Ready`.
    pub fn supports(&self, feature: &str) -> bool {
        self.inner.features.iter().any(|f| f == feature)
    }

    /// Whether the connection has died (or been shut down).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// Why the connection closed (`None` while it is open).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.shared.close_reason()
    }

    /// When the connection closed (`None` while it is open).
    pub fn closed_at(&self) -> Option<std::time::Instant> {
        self.inner.shared.closed_at()
    }

    /// The protocol version agreed at the handshake.
    pub fn proto_version(&self) -> u32 {
        self.inner.shared.version()
    }

    /// Waits until the connection dies.
    pub async fn closed(&self) {
        let mut closed = self.inner.shared.subscribe_closed();
        let _ = closed.wait_for(Option::is_some).await;
    }

    /// Starts `request` in the guest. Its output, errors and exit come as events on the
    /// returned session. Many execs may run at once. With protocol version 2 each exec's
    /// output and stdin are flow-controlled (see `conn.rs`).
    pub async fn exec(&self, request: ExecRequest) -> Result<ExecSession, ClientError> {
        // An older agent would ignore the user and run the command as root.
        if request.user.is_some() && !self.supports(FEATURE_EXEC_USER) {
            return Err(ClientError::Unsupported {
                what: "running a command as another user",
            });
        }
        let wants_stdin = request.stdin;
        let v2 = self.proto_version() >= 2;
        let (budget, input) = if v2 {
            (
                Budget::Credit {
                    window: OUTPUT_WINDOW,
                },
                Some(InputCredit::new(INPUT_WINDOW)),
            )
        } else {
            (Budget::Backpressure, None)
        };
        let (route, events) = self.inner.shared.register(budget, input.clone())?;
        self.send(route.stream, &Message::Exec(request)).await?;
        Ok(ExecSession::new(
            self.clone(),
            route,
            events,
            wants_stdin,
            input,
        ))
    }

    /// Checks the agent answers.
    pub async fn ping(&self) -> Result<(), ClientError> {
        within("Ping", async {
            let (route, mut replies) = self.register()?;
            self.send(route.stream, &Message::Ping).await?;
            match replies.recv_message().await {
                Some(Message::Pong) => Ok(()),
                other => Err(unexpected(other, "Pong")),
            }
        })
        .await
    }

    /// Asks the agent to power the guest off (as PID 1) or to exit (otherwise). Returns once
    /// the agent has acknowledged; the connection closes soon after.
    pub async fn poweroff(&self) -> Result<(), ClientError> {
        self.simple_request(&Message::Poweroff).await
    }

    /// Writes `data` to `path` in the guest with permission bits `mode`. The file appears
    /// complete or not at all (temporary name, then rename).
    pub async fn put_file(&self, path: &str, mode: u32, data: &[u8]) -> Result<(), ClientError> {
        within("PutFile", self.put_file_unbounded(path, mode, data)).await
    }

    async fn put_file_unbounded(
        &self,
        path: &str,
        mode: u32,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let (route, mut replies) = self.register()?;
        let header = Message::PutFile(PutFile {
            path: path.to_owned(),
            mode,
        });
        self.send(route.stream, &header).await?;
        for chunk in data.chunks(MAX_DATA_CHUNK) {
            self.send(route.stream, &Message::PutFileChunk(chunk.to_vec()))
                .await?;
        }
        self.send(route.stream, &Message::PutFileEnd).await?;
        match replies.recv_message().await {
            Some(Message::Ok) => Ok(()),
            other => Err(unexpected(other, "Ok")),
        }
    }

    /// Reads the file at `path` in the guest.
    pub async fn get_file(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        within("GetFile", self.get_file_unbounded(path)).await
    }

    async fn get_file_unbounded(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let (route, mut replies) = self.register()?;
        let request = Message::GetFile(GetFile {
            path: path.to_owned(),
        });
        self.send(route.stream, &request).await?;
        let mut data = Vec::new();
        loop {
            match replies.recv_message().await {
                Some(Message::FileChunk(chunk)) => data.extend_from_slice(&chunk),
                Some(Message::FileEnd(end)) if end.size == data.len() as u64 => return Ok(data),
                Some(Message::FileEnd(end)) => {
                    return Err(ClientError::Protocol(format!(
                        "{path}: the agent announced {} bytes but sent {}",
                        end.size,
                        data.len()
                    )));
                }
                other => return Err(unexpected(other, "FileChunk or FileEnd")),
            }
        }
    }

    /// Sets the guest's wall clock to the host's (needed after a snapshot restore).
    pub async fn set_time(&self) -> Result<(), ClientError> {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let nanos = i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX);
        self.set_time_at(nanos).await
    }

    /// Sets the guest's wall clock to `unix_nanos` nanoseconds after the epoch.
    pub async fn set_time_at(&self, unix_nanos: i64) -> Result<(), ClientError> {
        self.simple_request(&Message::SetTime(SetTime { unix_nanos }))
            .await
    }

    /// Make a guest restored from a snapshot a machine of its own (see
    /// [`banger_agent_proto::Reidentify`]): `entropy` fresh host random bytes, the host's
    /// clock now, the identity of VM `vm_id` named `hostname`. An agent that does not
    /// offer it is an error: a clone must never keep its parent's identity.
    pub async fn reidentify(
        &self,
        vm_id: &str,
        hostname: &str,
        entropy: Vec<u8>,
        network: Option<banger_agent_proto::NetIdentity>,
    ) -> Result<(), ClientError> {
        if !self.supports(banger_agent_proto::FEATURE_REIDENTIFY) {
            return Err(ClientError::Unsupported {
                what: "giving a guest restored from a snapshot its own identity",
            });
        }
        // An older agent would ignore the field and keep its parent's address.
        if network.is_some() && !self.supports(banger_agent_proto::FEATURE_REIDENTIFY_NET) {
            return Err(ClientError::Unsupported {
                what: "giving a guest restored from a snapshot its own network address",
            });
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let unix_nanos = i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX);
        self.simple_request(&Message::Reidentify(banger_agent_proto::Reidentify {
            vm_id: vm_id.to_owned(),
            hostname: hostname.to_owned(),
            unix_nanos,
            entropy,
            network,
        }))
        .await
    }

    async fn simple_request(&self, message: &Message) -> Result<(), ClientError> {
        let what = match message.kind() {
            banger_agent_proto::Kind::Poweroff => "Poweroff",
            banger_agent_proto::Kind::SetTime => "SetTime",
            banger_agent_proto::Kind::Reidentify => "Reidentify",
            _ => "a request",
        };
        within(what, async {
            let (route, mut replies) = self.register()?;
            self.send(route.stream, message).await?;
            match replies.recv_message().await {
                Some(Message::Ok) => Ok(()),
                other => Err(unexpected(other, "Ok")),
            }
        })
        .await
    }

    /// A route for a request and its replies (the reader waits for us to take them).
    pub(crate) fn register(&self) -> Result<(RouteGuard, Inbox), ClientError> {
        self.inner.shared.register(Budget::Backpressure, None)
    }

    /// Queues one frame for the writer.
    pub(crate) async fn send(&self, stream: u32, message: &Message) -> Result<(), ClientError> {
        let frame = message.encode(stream)?;
        self.inner
            .frames
            .send(frame)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Queues one frame without waiting, for use in `Drop`: falls back to a spawned send
    /// when the queue is full. Best effort: a closed connection needs nothing anyway.
    pub(crate) fn send_detached(&self, stream: u32, message: &Message) {
        let Ok(frame) = message.encode(stream) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(frame)) = self.inner.frames.try_send(frame)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let frames = self.inner.frames.clone();
            runtime.spawn(async move {
                let _ = frames.send(frame).await;
            });
        }
    }
}

/// `request` bounded by [`REQUEST_TIMEOUT`].
async fn within<T>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .unwrap_or(Err(ClientError::Timeout {
            what,
            after: REQUEST_TIMEOUT,
        }))
}

/// The error for a reply that is not the one expected: the agent's own error, a closed
/// connection, or a protocol violation.
pub(crate) fn unexpected(reply: Option<Message>, wanted: &str) -> ClientError {
    match reply {
        Some(Message::Error(err)) => ClientError::Agent(banger_system::text::sanitize(
            &err.message,
            MAX_GUEST_MESSAGE,
        )),
        Some(other) => {
            ClientError::Protocol(format!("got {:?} where {wanted} was due", other.kind()))
        }
        None => ClientError::Closed,
    }
}

async fn wait_for_ready<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut Decoder,
    frames: &mpsc::Sender<Vec<u8>>,
    hello: &[u8],
    nonce: u64,
) -> Result<Ready, ClientError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut resend = tokio::time::interval(HELLO_RESEND);
    loop {
        while let Some(item) = decoder.next_message() {
            match item {
                Ok((CONTROL_STREAM, Message::Ready(ready))) if ready.nonce == nonce => {
                    return Ok(ready);
                }
                // Anything else predates our Hello: frames of an old session, garbage.
                Ok(_) | Err(_) => {}
            }
        }
        tokio::select! {
            _ = resend.tick() => {
                frames.send(hello.to_vec()).await.map_err(|_| ClientError::HandshakeClosed)?;
            }
            read = reader.read(&mut buf) => match read {
                Ok(0) => return Err(ClientError::HandshakeClosed),
                Ok(n) => decoder.push(&buf[..n]),
                Err(err) => return Err(ClientError::Io(err)),
            },
        }
    }
}

/// A nonce unlikely to repeat across hosts, daemon restarts and connections: std's
/// per-process random hash keys over the time and a counter.
fn new_nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}
