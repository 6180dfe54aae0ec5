//! HTTP plumbing: response bodies, JSON helpers, routing.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DaemonError, Result};
use crate::state::Daemon;
use crate::{images, vms};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Request bodies larger than this are refused: no API call needs more.
const MAX_REQUEST_BODY: usize = 1 << 20;

pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|e| {
        format!("{{\"kind\":\"internal\",\"message\":\"cannot encode answer: {e}\"}}").into_bytes()
    });
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn ok<T: Serialize>(value: &T) -> Result<Response<Body>> {
    Ok(json_response(StatusCode::OK, value))
}

pub fn error_response(err: &DaemonError) -> Response<Body> {
    json_response(err.kind.status(), &err.to_api())
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Read and decode a JSON request body; an empty body decodes as `T::default()`.
pub async fn read_json<T: DeserializeOwned + Default>(req: Request<Incoming>) -> Result<T> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_REQUEST_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| DaemonError::invalid(format!("cannot read request body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| DaemonError::invalid(format!("invalid request body: {e}")))
}

/// `?key=true` style flags.
pub fn query_flag(req: &Request<Incoming>, key: &str) -> bool {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, "true"))))
        .any(|(k, v)| k == key && matches!(v, "true" | "1" | "yes"))
}

/// Dispatch one request to its handler.
pub async fn route(daemon: Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = dispatch(daemon, req, &method, &path).await;
    match result {
        Ok(resp) => resp,
        Err(err) => {
            tracing::debug!(%method, %path, error = %err.message, "request failed");
            error_response(&err)
        }
    }
}

async fn dispatch(
    daemon: Arc<Daemon>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>> {
    let Some(rest) = path.strip_prefix(banger_api::API_PREFIX) else {
        return Err(not_a_route(method, path));
    };
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            banger_api::client::decode(s)
                .ok_or_else(|| DaemonError::invalid(format!("bad escape in path {path}")))
        })
        .collect::<Result<_>>()?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();

    match (method, segs.as_slice()) {
        (&Method::GET, ["health"]) => ok(&daemon.health()),
        (&Method::POST, ["daemon", "shutdown"]) => {
            daemon.request_shutdown();
            ok(&serde_json::json!({ "shutting_down": true }))
        }

        (&Method::GET, ["images"]) => ok(&images::list(&daemon)?),
        (&Method::POST, ["images", "build"]) => {
            let body = read_json(req).await?;
            ok(&detached(&daemon, |d| async move { images::build(&d, body).await }).await?)
        }
        (&Method::POST, ["images", "pull"]) => {
            let body = read_json(req).await?;
            ok(&detached(&daemon, |d| async move { images::pull(&d, body).await }).await?)
        }
        (&Method::POST, ["images", "import"]) => {
            let body = read_json(req).await?;
            ok(&detached(&daemon, |d| async move { images::import(&d, body).await }).await?)
        }
        (&Method::POST, ["images", "import-kernel"]) => {
            let body = read_json(req).await?;
            ok(&detached(
                &daemon,
                |d| async move { images::import_kernel(&d, body).await },
            )
            .await?)
        }
        (&Method::GET, ["images", name]) => ok(&images::get(&daemon, name)?),
        (&Method::DELETE, ["images", name]) => ok(&images::remove(&daemon, name)?),

        (&Method::GET, ["vms"]) => ok(&vms::list(&daemon)?),
        (&Method::POST, ["vms"]) => {
            let body = read_json(req).await?;
            let vm = detached(&daemon, |d| async move { vms::create(&d, body).await }).await?;
            Ok(json_response(StatusCode::CREATED, &vm))
        }
        (&Method::GET, ["vms", name]) => ok(&vms::get(&daemon, name)?),
        (&Method::DELETE, ["vms", name]) => {
            let (name, force) = (name.to_string(), query_flag(&req, "force"));
            ok(&detached(
                &daemon,
                |d| async move { vms::remove(&d, &name, force).await },
            )
            .await?)
        }
        (&Method::POST, ["vms", name, "start"]) => {
            let name = name.to_string();
            ok(&detached(&daemon, |d| async move { vms::start(&d, &name).await }).await?)
        }
        (&Method::POST, ["vms", name, "stop"]) => {
            let name = name.to_string();
            let body = read_json(req).await?;
            ok(&detached(&daemon, |d| async move { vms::stop(&d, &name, body).await }).await?)
        }
        (&Method::GET, ["vms", name, "logs"]) => {
            let follow = query_flag(&req, "follow");
            vms::logs(&daemon, name, follow).await
        }
        (&Method::POST, ["vms", name, "exec"]) => {
            let name = name.to_string();
            vms::exec(daemon, &name, req).await
        }
        _ => Err(not_a_route(method, path)),
    }
}

/// Run a state-changing operation in its own task, so it completes even when the
/// client goes away mid-request (hyper drops a request's future when its connection
/// closes). Without this, a Ctrl-C during `vm run` could leave a VM stuck in
/// `starting` with its VMM running and nobody watching it.
async fn detached<T, F, Fut>(daemon: &Arc<Daemon>, op: F) -> Result<T>
where
    F: FnOnce(Arc<Daemon>) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(op(daemon.clone()))
        .await
        .map_err(|e| DaemonError::internal(format!("the operation's task failed: {e}")))?
}

fn not_a_route(method: &Method, path: &str) -> DaemonError {
    DaemonError::not_found(format!("no API route {method} {path}"))
        .with_hint("this banger CLI and daemon may be different versions; restart the daemon with `banger daemon stop`")
}
