//! `GET /v1/vms/{name}/logs[?follow=true]`: the serial console log, optionally
//! followed until the VM stops or the client disconnects.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::{CONSOLE_LOG, lookup};
use crate::error::{DaemonError, Result};
use crate::http::{Body, full};
use crate::state::Daemon;

/// How often a followed log is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub async fn logs(daemon: &Daemon, name: &str, follow: bool) -> Result<Response<Body>> {
    let vm = lookup(daemon, name)?;
    let path = vm.dir.join(CONSOLE_LOG);
    if !follow {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(DaemonError::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        return Ok(text_response(full(bytes)));
    }

    let (tx, rx) = mpsc::channel::<std::io::Result<Frame<Bytes>>>(8);
    let daemon: Option<Arc<Daemon>> = daemon.self_arc();
    let id = vm.id.clone();
    tokio::spawn(async move {
        let mut offset = 0u64;
        loop {
            let chunk = tokio::task::spawn_blocking({
                let path = path.clone();
                move || read_from(&path, offset)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match chunk {
                Ok(bytes) if !bytes.is_empty() => {
                    offset += bytes.len() as u64;
                    if tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            // Caught up: stop once the VM is no longer running (after a final read).
            let running = daemon
                .as_ref()
                .and_then(|d| d.store().get_vm(&id).ok().flatten())
                .is_some_and(|vm| vm.state.is_active());
            if !running {
                if let Ok(bytes) = read_from(&path, offset)
                    && !bytes.is_empty()
                {
                    let _ = tx.send(Ok(Frame::data(Bytes::from(bytes)))).await;
                }
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(text_response(ChannelBody(rx).boxed()))
}

fn text_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Everything in `path` from `offset` on (at most 1 MiB per call).
fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(1 << 20).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A response body fed by a channel: each message is one frame.
struct ChannelBody(mpsc::Receiver<std::io::Result<Frame<Bytes>>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<Frame<Bytes>>>> {
        self.0.poll_recv(cx)
    }
}
