//! The connection's moving parts: routes from stream ids to their owners, the reader task
//! that demultiplexes frames, the writer task that serialises them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use banger_agent_proto::{CONTROL_STREAM, Decoder, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::ClientError;

/// Per-stream inboxes, and whether the connection is closed. One lock for both, so a route
/// registered concurrently with the close cannot be missed by it.
#[derive(Default)]
struct Routes {
    map: HashMap<u32, mpsc::UnboundedSender<Message>>,
    next: u32,
    closed: bool,
}

/// State shared by the client, its sessions and its tasks.
pub struct Shared {
    routes: Mutex<Routes>,
    closed: watch::Sender<bool>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            routes: Mutex::new(Routes {
                next: 1,
                ..Routes::default()
            }),
            closed: watch::Sender::new(false),
        })
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // Every update of `Routes` is a single statement: a panic cannot leave it half-done.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims a fresh stream id and its inbox. The id is released when the guard drops.
    pub fn register(
        self: &Arc<Self>,
    ) -> Result<(RouteGuard, mpsc::UnboundedReceiver<Message>), ClientError> {
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
        routes.map.insert(stream, tx);
        let guard = RouteGuard {
            shared: Arc::clone(self),
            stream,
        };
        Ok((guard, rx))
    }

    pub fn is_closed(&self) -> bool {
        self.routes().closed
    }

    pub fn subscribe_closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Marks the connection closed; dropping every inbox sender tells each owner.
    pub fn close(&self) {
        let mut routes = self.routes();
        routes.closed = true;
        routes.map.clear();
        drop(routes);
        self.closed.send_replace(true);
    }

    fn deliver(&self, stream: u32, message: Message) {
        if stream == CONTROL_STREAM {
            match message {
                Message::Error(err) => {
                    tracing::warn!(message = %err.message, "guest agent reported a connection error");
                }
                // Extra `Ready`s answer the handshake's resent `Hello`s.
                Message::Ready(_) => {}
                other => tracing::debug!(kind = ?other.kind(), "ignoring frame on stream 0"),
            }
            return;
        }
        let routes = self.routes();
        match routes.map.get(&stream) {
            // A send error means the owner is gone: its guard removes the route.
            Some(inbox) => {
                let _ = inbox.send(message);
            }
            None => {
                tracing::debug!(stream, kind = ?message.kind(), "frame for a stream nobody waits on")
            }
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
        self.shared.routes().map.remove(&self.stream);
    }
}

/// Reads frames until the stream ends, handing each to its stream's owner.
pub async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    mut decoder: Decoder,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(item) = decoder.next_message() {
            match item {
                Ok((stream, message)) => shared.deliver(stream, message),
                Err(err) => tracing::warn!(error = %err, "undecodable bytes from the guest agent"),
            }
        }
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => decoder.push(&buf[..n]),
            Err(err) => {
                tracing::debug!(error = %err, "reading from the guest agent failed");
                break;
            }
        }
    }
    shared.close();
}

/// Writes queued frames in order; each frame is written whole, so a caller that gives up
/// half-way (a dropped future) can never leave a torn frame on the stream.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    while let Some(frame) = frames.recv().await {
        let written = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        };
        if let Err(err) = written.await {
            tracing::debug!(error = %err, "writing to the guest agent failed");
            break;
        }
    }
    shared.close();
    let _ = writer.shutdown().await;
}
