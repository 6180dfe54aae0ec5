//! `POST /v1/vms/{name}/exec`: start a command, then upgrade the connection to the
//! exec stream (`banger_api::stream`) and hand it to the VM service's pump.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use banger_api::{ApiError, EXEC_UPGRADE, ExecRequest};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::{Json, Name};
use crate::error::DaemonError;
use crate::state::Daemon;
use crate::vms;

/// A request that asked to switch to the exec stream, and the means to do so.
pub struct ExecUpgrade(OnUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for ExecUpgrade {
    type Rejection = DaemonError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, DaemonError> {
        let asks = has_token(&parts.headers, header::CONNECTION, "upgrade")
            && has_token(&parts.headers, header::UPGRADE, EXEC_UPGRADE);
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        match on_upgrade {
            Some(on_upgrade) if asks => Ok(ExecUpgrade(on_upgrade)),
            _ => Err(DaemonError::invalid(format!(
                "exec needs the headers `Connection: upgrade` and `Upgrade: {EXEC_UPGRADE}`"
            ))
            .with_hint(
                "the answer is 101 Switching Protocols, then the exec stream (docs/api.md)",
            )),
        }
    }
}

/// Whether the comma-separated header `name` lists `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[utoipa::path(
    post, path = "/v1/vms/{name}/exec", tag = "exec", operation_id = "exec_vm",
    summary = "Run a command in a running VM (upgrades the connection)",
    description = "Send `Connection: upgrade` and `Upgrade: banger-exec/1`. When the command has \
started the daemon answers `101 Switching Protocols` and both sides then speak the exec stream on \
the raw connection: frames of one kind byte, a big-endian u32 length and a payload (stdin, \
stdin-eof, signal, resize from the client; stdout, stderr, exit, error from the daemon; see \
docs/api.md). The command is killed if the client disconnects before it ends. Generated clients \
cannot follow the upgrade: use a raw HTTP/1.1 connection.",
    params(
        ("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has"),
        ("Connection" = String, Header, description = "Must list `upgrade`"),
        ("Upgrade" = String, Header, description = "Must be `banger-exec/1`"),
    ),
    request_body(content = ExecRequest),
    responses(
        (status = 101, description = "The command runs; the connection now carries the exec stream",
            headers(("Upgrade" = String, description = "`banger-exec/1`"))),
        (status = 400, description = "Not an upgrade request, or an invalid body (empty `argv`, a relative `cwd`)", body = ApiError),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 409, description = "The VM is not running (a paused VM: the hint says to resume it)", body = ApiError),
        (status = 503, description = "The guest agent cannot be reached", body = ApiError),
    )
)]
pub async fn exec(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
    ExecUpgrade(on_upgrade): ExecUpgrade,
    Json(req): Json<ExecRequest>,
) -> Result<Response, DaemonError> {
    let session = vms::exec::start(&daemon, &name, req).await?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => vms::exec::pump(TokioIo::new(upgraded), session).await,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade failed");
                vms::exec::abandon(session).await;
            }
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static(EXEC_UPGRADE)),
        ],
    )
        .into_response())
}
