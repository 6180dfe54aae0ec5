//! The client the CLI uses to talk to the owner daemon.
//!
//! One HTTP/1.1 connection per request keeps the client stateless; the socket is
//! local, so a connection costs microseconds.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use banger_system::progress::Progress;

use crate::progress::{Line, MAX_LINE, NDJSON, Outcome, parse_line};
use crate::types::*;
use crate::{API_PREFIX, EXEC_UPGRADE};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("cannot reach the banger daemon at {}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error body.
    #[error("{}", .error.message)]
    Api { status: u16, error: ApiError },
    /// The connection broke: most often the daemon stopped or crashed mid-request.
    #[error("the connection to the banger daemon broke before its answer was complete")]
    Transport(#[from] hyper::Error),
    #[error("the banger daemon sent an unreadable answer to {what}: {detail}")]
    Decode { what: String, detail: String },
}

impl ClientError {
    /// The daemon's hint, if the error came with one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => error.hint.as_deref(),
            ClientError::Transport(_) => Some(
                "the daemon may have stopped or crashed: `banger daemon status` says whether one runs \
                 (in dev mode the next command starts one) and daemon.log in its state directory says why; \
                 `banger vm ls` shows what state your VMs reached",
            ),
            _ => None,
        }
    }

    /// True when the daemon is not running (socket missing or refusing).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }

    /// True when the connection broke before an answer arrived: typically a daemon
    /// that was exiting (or had not finished starting) when we connected.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, ClientError::Transport(_))
    }
}

/// A daemon client bound to one socket path.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

type ReqBody = BoxBody<Bytes, std::convert::Infallible>;

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the response (or upgraded stream) is done; its
            // errors surface through `send_request` or the body.
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(req).await?)
    }

    fn build(method: Method, path: &str, body: Option<Vec<u8>>) -> Request<ReqBody> {
        let uri = format!("{API_PREFIX}{path}");
        let builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "banger");
        let result = match body {
            Some(bytes) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(bytes)).boxed()),
            None => builder.body(Empty::new().boxed()),
        };
        // The method, a path we formatted and constant headers are always valid.
        result.unwrap_or_else(|_| Request::new(Empty::new().boxed()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Decode {
                what: path.to_string(),
                detail: e.to_string(),
            })?;
        let resp = self.send(Self::build(method, path, body)).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// Like [`Client::call`] for a long operation: asks for the NDJSON progress stream,
    /// hands each event to `progress`, and returns the final line's result. A daemon
    /// that answers plain JSON (one predating streams) works too, silently.
    async fn call_with_progress<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        progress: &dyn Progress,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Decode {
                what: path.to_string(),
                detail: e.to_string(),
            })?;
        let mut req = Self::build(method, path, body);
        req.headers_mut()
            .insert(header::ACCEPT, header::HeaderValue::from_static(NDJSON));
        let resp = self.send(req).await?;
        let status = resp.status();
        let streamed = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(NDJSON));
        if !status.is_success() || !streamed {
            let bytes = resp.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                return Err(api_error(status, &bytes));
            }
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                what: path.to_string(),
                detail: e.to_string(),
            });
        }
        let decode = |detail: String| ClientError::Decode {
            what: path.to_string(),
            detail,
        };
        let mut body = resp.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match parse_line::<T>(&line).map_err(|e| decode(e.to_string()))? {
                    Line::Progress(event) => progress.report(event),
                    Line::Unknown => {}
                    Line::Outcome(Outcome::Result { value, .. }) => return Ok(value),
                    Line::Outcome(Outcome::Error { status, error }) => {
                        return Err(ClientError::Api { status, error });
                    }
                }
            }
            if pending.len() > MAX_LINE {
                return Err(decode(format!(
                    "a progress line is longer than {MAX_LINE} bytes"
                )));
            }
        }
        Err(decode(
            "the progress stream ended before the operation's result (did the daemon exit?)".into(),
        ))
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/health", None::<&()>).await
    }

    /// Ask the daemon to exit. Running VMs keep running.
    pub async fn shutdown_daemon(&self) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(Method::POST, "/daemon/shutdown", None::<&()>)
            .await?;
        Ok(())
    }

    pub async fn list_vms(&self) -> Result<Vec<VmView>, ClientError> {
        self.call(Method::GET, "/vms", None::<&()>).await
    }

    pub async fn get_vm(&self, name: &str) -> Result<VmView, ClientError> {
        self.call(Method::GET, &format!("/vms/{}", encode(name)), None::<&()>)
            .await
    }

    /// Create (and with `start`, boot) a VM; `progress` hears the image build when
    /// there is one, and the boot phases.
    pub async fn create_vm(
        &self,
        req: &CreateVmRequest,
        progress: &dyn Progress,
    ) -> Result<VmView, ClientError> {
        self.call_with_progress(Method::POST, "/vms", Some(req), progress)
            .await
    }

    pub async fn start_vm(
        &self,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<VmView, ClientError> {
        self.call_with_progress(
            Method::POST,
            &format!("/vms/{}/start", encode(name)),
            None::<&()>,
            progress,
        )
        .await
    }

    pub async fn pause_vm(&self, name: &str) -> Result<VmView, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/pause", encode(name)),
            None::<&()>,
        )
        .await
    }

    /// Tell the daemon that VM `name`'s read-write copies at `guest_paths` were just
    /// synced back whole.
    pub async fn shares_synced(
        &self,
        name: &str,
        guest_paths: Vec<String>,
    ) -> Result<VmView, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/shares/synced", encode(name)),
            Some(&crate::SharesSyncedRequest { guest_paths }),
        )
        .await
    }

    pub async fn resume_vm(&self, name: &str) -> Result<VmView, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/resume", encode(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn stop_vm(
        &self,
        name: &str,
        req: &StopVmRequest,
        progress: &dyn Progress,
    ) -> Result<VmView, ClientError> {
        self.call_with_progress(
            Method::POST,
            &format!("/vms/{}/stop", encode(name)),
            Some(req),
            progress,
        )
        .await
    }

    pub async fn remove_vm(&self, name: &str, force: bool) -> Result<VmView, ClientError> {
        let q = if force { "?force=true" } else { "" };
        self.call(
            Method::DELETE,
            &format!("/vms/{}{q}", encode(name)),
            None::<&()>,
        )
        .await
    }

    /// Snapshot VM `name`; `progress` hears the pause, save and disk copies.
    pub async fn snapshot_vm(
        &self,
        name: &str,
        req: &crate::CreateSnapshotRequest,
        progress: &dyn Progress,
    ) -> Result<crate::SnapshotView, ClientError> {
        self.call_with_progress(
            Method::POST,
            &format!("/vms/{}/snapshot", encode(name)),
            Some(req),
            progress,
        )
        .await
    }

    /// The VM's serial console log (from its last `tail` lines, when given); with
    /// `follow`, the body stays open and streams new output until the VM stops or the
    /// caller drops the stream.
    pub async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<LogStream, ClientError> {
        let mut query = Vec::new();
        if follow {
            query.push("follow=true".to_string());
        }
        if let Some(n) = tail {
            query.push(format!("tail={n}"));
        }
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let req = Self::build(Method::GET, &format!("/vms/{}/logs{q}", encode(name)), None);
        let resp = self.send(req).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await?.to_bytes();
            return Err(api_error(status, &bytes));
        }
        Ok(LogStream {
            body: resp.into_body(),
        })
    }

    /// Start a command in the VM; returns the raw upgraded connection speaking
    /// [`crate::stream`] frames.
    pub async fn exec(
        &self,
        name: &str,
        req: &ExecRequest,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| ClientError::Decode {
            what: "exec".into(),
            detail: e.to_string(),
        })?;
        let mut request = Self::build(
            Method::POST,
            &format!("/vms/{}/exec", encode(name)),
            Some(body),
        );
        let headers = request.headers_mut();
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
        headers.insert(
            header::UPGRADE,
            header::HeaderValue::from_static(EXEC_UPGRADE),
        );
        let resp = self.send(request).await?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let bytes = resp.into_body().collect().await?.to_bytes();
            return Err(api_error(status, &bytes));
        }
        let upgraded = hyper::upgrade::on(resp).await?;
        Ok(TokioIo::new(upgraded))
    }
}

/// A streamed response body (console logs).
pub struct LogStream {
    body: Incoming,
}

impl std::fmt::Debug for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStream")
    }
}

impl LogStream {
    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let error = serde_json::from_slice::<ApiError>(body).unwrap_or_else(|_| ApiError {
        kind: "internal".into(),
        message: format!(
            "daemon answered {status}: {}",
            String::from_utf8_lossy(body).trim()
        ),
        hint: None,
        field: None,
    });
    ClientError::Api {
        status: status.as_u16(),
        error,
    }
}

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode a path segment. Names are validated DNS labels, but a user may
/// type anything; encoding keeps a bad name a clean "not found" or "invalid".
pub fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

mod images;
mod snapshots;
#[cfg(test)]
mod tests;
