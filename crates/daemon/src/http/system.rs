//! The daemon itself: health, shutdown, and the API's own description.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use banger_api::Health;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body;
use crate::error::DaemonError;
use crate::state::Daemon;

#[utoipa::path(
    get, path = "/v1/health", tag = "daemon", operation_id = "health",
    summary = "Is the daemon up, and which one is it",
    description = "Cheap; clients call it to check the daemon's version and build against their own.",
    responses((status = 200, description = "The daemon answers", body = Health))
)]
pub async fn health(State(daemon): State<Arc<Daemon>>) -> Response {
    body::json(StatusCode::OK, &daemon.health())
}

/// The answer to a shutdown request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShuttingDown {
    /// Always true: the daemon exits once this answer is sent.
    pub shutting_down: bool,
}

#[utoipa::path(
    post, path = "/v1/daemon/shutdown", tag = "daemon", operation_id = "shutdown_daemon",
    summary = "Stop the daemon; VMs keep running",
    description = "A later daemon finds the running VMs again. In dev mode the next banger \
command starts a daemon; under systemd the service manager decides.",
    responses((status = 200, description = "The daemon is exiting", body = ShuttingDown))
)]
pub async fn shutdown(State(daemon): State<Arc<Daemon>>) -> Response {
    daemon.request_shutdown();
    body::json(
        StatusCode::OK,
        &ShuttingDown {
            shutting_down: true,
        },
    )
}

#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "daemon", operation_id = "openapi",
    summary = "This API's OpenAPI 3.1 document",
    responses((status = 200, description = "The document (also checked in as docs/openapi.json)",
        body = Object, content_type = "application/json"))
)]
pub async fn openapi() -> Response {
    super::openapi::served()
}

/// Any path the API does not have. An empty name (`GET /v1/vms/`, what a client sends for
/// `banger inspect ""`) is answered as the missing object it is, not as a missing route.
pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> DaemonError {
    let empty = match uri.path() {
        "/v1/vms/" => Some(("VM", "`banger vm ls` lists your VMs")),
        "/v1/images/" => Some(("image", "`banger image ls` lists your images")),
        "/v1/snapshots/" => Some(("snapshot", "`banger snapshot ls` lists your snapshots")),
        _ => None,
    };
    if let Some((what, list)) = empty {
        return DaemonError::not_found(format!("no {what} named \"\": the name is empty"))
            .with_hint(format!("give a {what}'s name; {list}"));
    }
    DaemonError::not_found(format!("no API route {method} {}", uri.path()))
        .with_hint("GET /v1/openapi.json lists every route; an older daemon may lack newer routes (`banger daemon status` shows its version)")
}

/// A path the API has, with a method it does not take. The router adds `Allow`.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> DaemonError {
    DaemonError::new(
        crate::error::ErrorKind::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
    .with_hint("the Allow header lists the methods it takes")
}
