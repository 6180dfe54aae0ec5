//! A client for Firecracker's API: HTTP/1.1 over its Unix socket, one connection per call
//! (Firecracker serves requests one at a time, so nothing is gained by keeping one open).
//!
//! Success is `204 No Content` (or `200` with a JSON body for `GET`); every rejection is a
//! 4xx whose body is `{"fault_message": "…"}` — or, for transport-level errors of its HTTP
//! server, `{"error": "…"}`. Both become [`VmmError::FirecrackerApi`] naming the endpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::error::VmmError;

/// Largest answer body read: Firecracker's are a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// One API call to make.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: Method,
    /// `/drives/root`, `/actions`, …
    pub path: String,
    pub body: Option<serde_json::Value>,
}

impl ApiCall {
    pub fn put(path: impl Into<String>, body: serde_json::Value) -> ApiCall {
        ApiCall {
            method: Method::PUT,
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn patch(path: impl Into<String>, body: serde_json::Value) -> ApiCall {
        ApiCall {
            method: Method::PATCH,
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn get(path: impl Into<String>) -> ApiCall {
        ApiCall {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    /// `PUT /drives/root`, as errors name the endpoint.
    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The API of one Firecracker process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    vm_id: String,
    socket: PathBuf,
    timeout: Duration,
}

impl ApiClient {
    pub fn new(vm_id: &str, socket: &Path, timeout: Duration) -> ApiClient {
        ApiClient {
            vm_id: vm_id.to_owned(),
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    /// Make `call`; the answer's JSON body, if it had one.
    pub async fn call(&self, call: &ApiCall) -> Result<Option<serde_json::Value>, VmmError> {
        match tokio::time::timeout(self.timeout, self.exchange(call)).await {
            Ok(result) => result,
            Err(_) => Err(self.unreachable(
                call,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.timeout),
                ),
            )),
        }
    }

    async fn exchange(&self, call: &ApiCall) -> Result<Option<serde_json::Value>, VmmError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(call, e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(call, std::io::Error::other(e)))?;
        tokio::spawn(connection);
        let body = match &call.body {
            Some(value) => Bytes::from(value.to_string()),
            None => Bytes::new(),
        };
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(&call.path)
            .header(header::HOST, "localhost")
            .header(header::ACCEPT, "application/json");
        if call.body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| self.unreachable(call, std::io::Error::other(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(call, std::io::Error::other(e)))?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| self.unreachable(call, std::io::Error::other(e)))?
            .to_bytes();
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                VmmError::FirecrackerApi {
                    vm_id: self.vm_id.clone(),
                    endpoint: call.endpoint(),
                    status: status.as_u16(),
                    fault: format!("the answer is not JSON: {e}"),
                }
            });
        }
        Err(VmmError::FirecrackerApi {
            vm_id: self.vm_id.clone(),
            endpoint: call.endpoint(),
            status: status.as_u16(),
            fault: fault_message(&bytes),
        })
    }

    fn unreachable(&self, call: &ApiCall, source: std::io::Error) -> VmmError {
        VmmError::FirecrackerUnreachable {
            vm_id: self.vm_id.clone(),
            socket: self.socket.clone(),
            endpoint: call.endpoint(),
            source,
        }
    }
}

/// The `fault_message` (API errors) or `error` (HTTP-level errors) of an error body, else the
/// body itself, bounded and on one line.
fn fault_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("fault_message").or_else(|| v.get("error")))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let one_line: String = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    one_line.chars().take(1000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_messages_are_extracted() {
        assert_eq!(
            fault_message(br#"{"fault_message": "Boot source error: nope"}"#),
            "Boot source error: nope"
        );
        assert_eq!(
            fault_message(
                br#"{ "error": "Invalid HTTP Method: Unsupported HTTP method.\nAll previous unanswered requests will be dropped." }"#
            ),
            "Invalid HTTP Method: Unsupported HTTP method. All previous unanswered requests will be dropped."
        );
        assert_eq!(fault_message(b"garbage"), "garbage");
    }
}
