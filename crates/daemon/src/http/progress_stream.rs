//! A [`Progress`] sink that becomes an NDJSON response body. Reporting never blocks
//! the operation and memory stays bounded however slowly the client reads: `advance`
//! events carry absolute counts, so a waiting one is replaced by the next, and past a
//! cap further events are dropped (the final line never is).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use banger_api::progress::Outcome;
use banger_system::progress::{Progress, ProgressEvent};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

/// Events waiting for a slow client beyond this are dropped.
const MAX_QUEUED: usize = 1024;

pub struct ProgressStream {
    queue: Mutex<Queue>,
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<ProgressEvent>,
    last: Option<Bytes>,
    /// The operation is over: no more events, `last` is the final line.
    finished: bool,
    /// The client went away: nothing more is queued.
    closed: bool,
}

impl ProgressStream {
    /// The sink, and the body chunks (one line each) to send to the client.
    pub fn new() -> (Arc<ProgressStream>, mpsc::Receiver<std::io::Result<Bytes>>) {
        let (tx, rx) = mpsc::channel(16);
        let stream = Arc::new(ProgressStream {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        });
        tokio::spawn(forward(stream.clone(), tx));
        (stream, rx)
    }

    /// Queue the final line; the body ends after it.
    pub fn finish<T: serde::Serialize>(&self, outcome: &Outcome<T>) {
        let line = encode(outcome);
        let mut q = self.lock();
        q.last = Some(line);
        q.finished = true;
        drop(q);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for ProgressStream {
    fn report(&self, event: ProgressEvent) {
        let mut q = self.lock();
        if q.closed || q.finished {
            return;
        }
        let replaces = matches!(event, ProgressEvent::Advance { .. })
            && matches!(q.events.back(), Some(ProgressEvent::Advance { .. }));
        if replaces {
            q.events.pop_back();
        } else if q.events.len() >= MAX_QUEUED {
            return;
        }
        q.events.push_back(event);
        drop(q);
        self.wake.notify_one();
    }
}

/// Move queued events to the body until the final line is sent or the client leaves.
async fn forward(stream: Arc<ProgressStream>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let (events, last) = {
            let mut q = stream.lock();
            let events: Vec<ProgressEvent> = q.events.drain(..).collect();
            let last = if q.finished { q.last.take() } else { None };
            (events, last)
        };
        for line in events.iter().map(encode).chain(last.clone()) {
            if tx.send(Ok(line)).await.is_err() {
                stream.lock().closed = true;
                return;
            }
        }
        if last.is_some() {
            return;
        }
        // `notify_one` keeps a permit when nobody waits, so no wake-up is lost.
        stream.wake.notified().await;
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!(r#"{{"event":"note","message":"unencodable progress event: {e}"}}"#).into_bytes()
    });
    line.push(b'\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(mut rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Ok(chunk)) = rx.recv().await {
            out.push(String::from_utf8_lossy(&chunk).trim_end().to_string());
        }
        out
    }

    #[tokio::test]
    async fn events_then_exactly_one_final_line() {
        let (sink, rx) = ProgressStream::new();
        sink.phase(
            "download",
            Some(10),
            Some(banger_system::progress::Unit::Bytes),
        );
        sink.advance(4);
        sink.note("hello");
        sink.finish(&Outcome::Result {
            status: 201,
            value: serde_json::json!({"name": "dev"}),
        });
        sink.note("after the end: dropped");
        let got = lines(rx).await;
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].contains(r#""event":"phase""#), "{got:?}");
        assert_eq!(got[1], r#"{"event":"advance","done":4}"#);
        assert_eq!(
            got[3],
            r#"{"event":"result","status":201,"value":{"name":"dev"}}"#
        );
    }

    #[tokio::test]
    async fn a_slow_reader_bounds_the_queue() {
        let (sink, rx) = ProgressStream::new();
        // Nobody reads while these are reported (the forwarder cannot run: this test's
        // runtime is single-threaded and we do not yield).
        for i in 0..100_000 {
            sink.advance(i);
        }
        for i in 0..(MAX_QUEUED * 3) {
            sink.note(&format!("note {i}"));
        }
        assert!(sink.lock().events.len() <= MAX_QUEUED);
        sink.finish(&Outcome::Result {
            status: 200,
            value: serde_json::Value::Null,
        });
        let got = lines(rx).await;
        assert_eq!(got[0], r#"{"event":"advance","done":99999}"#);
        assert!(got.len() <= MAX_QUEUED + 1);
        assert!(
            got.last()
                .is_some_and(|l| l.contains(r#""event":"result""#))
        );
    }

    #[tokio::test]
    async fn a_departed_client_stops_the_queue() {
        let (sink, rx) = ProgressStream::new();
        drop(rx);
        sink.note("nobody listens");
        tokio::task::yield_now().await;
        sink.note("still nobody");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(sink.lock().closed);
        assert!(sink.lock().events.is_empty());
    }
}
