//! The connection's moving parts: routes from stream ids to their owners, each with a byte
//! budget; the reader task that demultiplexes the guest's frames and polices them; the
//! writer task that serialises the host's.
//!
//! The guest is not trusted (its root can write anything to the agent's port), so nothing it
//! sends may grow the host's memory or log without bound:
//!
//! * every route holds at most a budget of bytes not yet taken by its owner. A version-2 exec
//!   route's budget is the output window the host granted (plus room for a few control
//!   frames): a guest that sends more is cut off. Other routes (and version-1 execs, which
//!   have no credit) make the reader wait until the owner catches up — the guest's writes
//!   then stall in the transport, not in host memory.
//! * frames that do not decode, host-to-guest kinds, and connection-level errors are counted
//!   ([`crate::police`]) and summarised in one log line per interval; a connection that keeps
//!   sending them is closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use banger_agent_proto::{CONTROL_STREAM, Decoder, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, TryAcquireError, mpsc, watch};

use crate::ClientError;
use crate::police::{Police, Verdict};

/// Bytes a route may hold that make the reader wait (backpressure routes). Above the largest
/// frame the decoder accepts, so one frame always fits.
pub const BACKPRESSURE_BUDGET: u64 = 2 * 1024 * 1024;

/// Room beyond a version-2 exec's output window for its control frames (Started, Exited,
/// Error): a guest that needs more is misbehaving.
pub const CONTROL_SLACK: u64 = 64 * 1024;

/// What each queued message costs against its route's budget, beyond its payload: keeps a
/// flood of empty frames bounded too.
pub const FRAME_COST: u64 = 64;

/// How a route's budget is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The reader waits for the owner (replies, file chunks, version-1 execs).
    Backpressure,
    /// The guest must stay within what it was granted (version-2 execs).
    Credit { window: u64 },
}

impl Budget {
    fn limit(self) -> u64 {
        match self {
            Budget::Backpressure => BACKPRESSURE_BUDGET,
            Budget::Credit { window } => window + CONTROL_SLACK,
        }
    }
}

/// What reaches a route's owner.
pub enum Delivery {
    Message {
        message: Message,
        cost: u32,
    },
    /// The guest broke the route's rules; nothing more will come on it.
    Violation(String),
}

/// Stdin credit the guest granted an exec (version 2).
#[derive(Default)]
pub struct InputCredit {
    bytes: Mutex<u64>,
    granted: Notify,
}

impl InputCredit {
    pub fn new(window: u64) -> Arc<InputCredit> {
        Arc::new(InputCredit {
            bytes: Mutex::new(window),
            granted: Notify::new(),
        })
    }

    fn bytes(&self) -> MutexGuard<'_, u64> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn grant(&self, n: u64) {
        let mut bytes = self.bytes();
        *bytes = bytes.saturating_add(n);
        drop(bytes);
        self.granted.notify_one();
    }

    /// Waits until some credit is available and takes up to `want` bytes of it.
    pub async fn take(&self, want: u64) -> u64 {
        loop {
            let granted = self.granted.notified();
            {
                let mut bytes = self.bytes();
                if *bytes > 0 {
                    let n = want.min(*bytes);
                    *bytes -= n;
                    return n;
                }
            }
            granted.await;
        }
    }
}

#[derive(Clone)]
struct RouteEntry {
    inbox: mpsc::UnboundedSender<Delivery>,
    budget: Arc<Semaphore>,
    mode: Budget,
    input: Option<Arc<InputCredit>>,
}

/// Per-stream routes, and whether the connection is closed. One lock for both, so a route
/// registered concurrently with the close cannot be missed by it.
#[derive(Default)]
struct Routes {
    map: HashMap<u32, RouteEntry>,
    next: u32,
    closed: bool,
}

/// Why the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The guest hung up (end of file) or the stream failed.
    Ended,
    /// The guest kept sending malformed or forbidden frames.
    Junk,
    /// The client was dropped or shut down.
    Shutdown,
}

/// State shared by the client, its sessions and its tasks.
pub struct Shared {
    routes: Mutex<Routes>,
    closed: watch::Sender<Option<CloseReason>>,
    /// Names the connection in logs ("VM dev").
    pub label: String,
    /// The protocol version agreed at the handshake.
    version: Mutex<u32>,
    /// When the connection closed.
    closed_at: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    pub fn new(label: String) -> Arc<Shared> {
        Arc::new(Shared {
            routes: Mutex::new(Routes {
                next: 1,
                ..Routes::default()
            }),
            closed: watch::Sender::new(None),
            label,
            version: Mutex::new(banger_agent_proto::MIN_PROTO_VERSION),
            closed_at: Mutex::new(None),
        })
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // Every update of `Routes` is a single statement: a panic cannot leave it half-done.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn version(&self) -> u32 {
        *self.version.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_version(&self, version: u32) {
        *self.version.lock().unwrap_or_else(PoisonError::into_inner) = version;
    }

    /// Claims a fresh stream id and its inbox. The id is released when the guard drops.
    pub fn register(
        self: &Arc<Self>,
        mode: Budget,
        input: Option<Arc<InputCredit>>,
    ) -> Result<(RouteGuard, Inbox), ClientError> {
        let mut routes = self.routes();
        if routes.closed {
            return Err(ClientError::Closed);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = loop {
            let id = routes.next;
            routes.next = routes.next.wrapping_add(1);
            if id != CONTROL_STREAM && !routes.map.contains_key(&id) {
                break id;
            }
        };
        let limit = usize::try_from(mode.limit()).unwrap_or(Semaphore::MAX_PERMITS);
        let budget = Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS)));
        routes.map.insert(
            stream,
            RouteEntry {
                inbox: tx,
                budget: budget.clone(),
                mode,
                input,
            },
        );
        let guard = RouteGuard {
            shared: Arc::clone(self),
            stream,
        };
        Ok((guard, Inbox { rx, budget }))
    }

    pub fn is_closed(&self) -> bool {
        self.routes().closed
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.closed.borrow()
    }

    pub fn closed_at(&self) -> Option<std::time::Instant> {
        *self
            .closed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe_closed(&self) -> watch::Receiver<Option<CloseReason>> {
        self.closed.subscribe()
    }

    /// Marks the connection closed; dropping every inbox sender tells each owner. The first
    /// reason given sticks.
    pub fn close(&self, reason: CloseReason) {
        let mut routes = self.routes();
        routes.closed = true;
        for entry in routes.map.values() {
            // A reader waiting on a full budget must not wait for an owner that is gone.
            entry.budget.close();
        }
        routes.map.clear();
        drop(routes);
        self.closed.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                *self
                    .closed_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(std::time::Instant::now());
                true
            } else {
                false
            }
        });
    }

    /// Hands `message` (whose frame payload was `payload_len` bytes) to its stream's owner.
    /// `Err` names a rule the guest broke.
    async fn deliver(
        &self,
        stream: u32,
        message: Message,
        payload_len: usize,
    ) -> Result<(), String> {
        let entry = self.routes().map.get(&stream).cloned();
        let Some(entry) = entry else {
            tracing::debug!(stream, kind = ?message.kind(), "frame for a stream nobody waits on");
            return Ok(());
        };
        if let Message::InputCredit(credit) = message {
            if let Some(input) = &entry.input {
                input.grant(credit.bytes);
            }
            return Ok(());
        }
        let limit = entry.mode.limit();
        let cost = (payload_len as u64 + FRAME_COST).min(limit);
        // `limit` fits a u32 (at most a few MiB), and so does `cost`.
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        match entry.mode {
            Budget::Backpressure => match entry.budget.acquire_many(cost).await {
                Ok(permit) => permit.forget(),
                // The owner went away while we waited.
                Err(_) => return Ok(()),
            },
            Budget::Credit { window } => match entry.budget.try_acquire_many(cost) {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::Closed) => return Ok(()),
                Err(TryAcquireError::NoPermits) => {
                    let why = format!(
                        "the guest agent sent more output on stream {stream} than the {window} bytes it was granted; the exec was cut off"
                    );
                    self.routes().map.remove(&stream);
                    entry.budget.close();
                    let _ = entry.inbox.send(Delivery::Violation(why.clone()));
                    return Err(why);
                }
            },
        }
        // A send error means the owner is gone: its guard removes the route.
        let _ = entry.inbox.send(Delivery::Message { message, cost });
        Ok(())
    }
}

/// A route's receiving end: taking a message gives its cost back to the budget.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Delivery>,
    budget: Arc<Semaphore>,
}

impl Inbox {
    pub async fn recv(&mut self) -> Option<Delivery> {
        let delivery = self.rx.recv().await?;
        if let Delivery::Message { cost, .. } = &delivery {
            self.budget.add_permits(*cost as usize);
        }
        Some(delivery)
    }

    /// The next message; a violation or a closed route is `None`.
    pub async fn recv_message(&mut self) -> Option<Message> {
        match self.recv().await? {
            Delivery::Message { message, .. } => Some(message),
            Delivery::Violation(_) => None,
        }
    }
}

/// Owns a stream id's route; removes it on drop.
pub struct RouteGuard {
    shared: Arc<Shared>,
    pub stream: u32,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(entry) = self.shared.routes().map.remove(&self.stream) {
            entry.budget.close();
        }
    }
}

/// How often the police's counts are summarised in the log.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Reads frames until the stream ends (or the guest is cut off), handing each to its
/// stream's owner.
pub async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    mut decoder: Decoder,
    shared: Arc<Shared>,
) {
    let mut police = Police::new(shared.label.clone());
    let mut summary = tokio::time::interval(SUMMARY_INTERVAL);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 64 * 1024];
    let reason = 'read: loop {
        while let Some(item) = decoder.next_frame() {
            let verdict = match item {
                Err(err) => police.decode_error(&err),
                Ok(frame) => {
                    let stream = frame.stream;
                    let payload_len = frame.payload.len();
                    match Message::from_frame(frame) {
                        Err(err) => police.decode_error(&err),
                        Ok(message) if (message.kind() as u8) < 0x80 => {
                            police.forbidden(message.kind())
                        }
                        Ok(message) if stream == CONTROL_STREAM => police.control(message),
                        Ok(message) => match shared.deliver(stream, message, payload_len).await {
                            Ok(()) => Verdict::Fine,
                            Err(why) => police.violation(why),
                        },
                    }
                }
            };
            if verdict == Verdict::CutOff {
                break 'read CloseReason::Junk;
            }
        }
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) => break CloseReason::Ended,
                Ok(n) => decoder.push(&buf[..n]),
                Err(err) => {
                    tracing::debug!(error = %err, "reading from the guest agent failed");
                    break CloseReason::Ended;
                }
            },
            _ = summary.tick() => police.summarise(),
        }
    };
    police.summarise();
    shared.close(reason);
}

/// Writes queued frames in order; each frame is written whole, so a caller that gives up
/// half-way (a dropped future) can never leave a torn frame on the stream.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let mut closed = shared.subscribe_closed();
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            // The reader cut the guest off: stop writing to it too.
            _ = closed.wait_for(Option::is_some) => None,
        };
        let Some(frame) = frame else { break };
        let written = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        };
        if let Err(err) = written.await {
            tracing::debug!(error = %err, "writing to the guest agent failed");
            break;
        }
    }
    shared.close(CloseReason::Ended);
    let _ = writer.shutdown().await;
}
