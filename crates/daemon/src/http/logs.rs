//! `GET /v1/vms/{name}/logs`: the serial console log as text, optionally followed.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use banger_api::ApiError;
use serde::Deserialize;
use utoipa::IntoParams;

use super::body::{self, ChannelBody, Name, Query};
use crate::error::DaemonError;
use crate::state::Daemon;
use crate::vms;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Keep the response open and stream new output until the VM stops.
    #[serde(default, deserialize_with = "body::flag")]
    follow: bool,
    /// Start with the last `tail` lines instead of the whole log (read from the end of
    /// the file, so a huge log costs nothing).
    #[serde(default)]
    #[param(minimum = 0)]
    tail: Option<u64>,
}

#[utoipa::path(
    get, path = "/v1/vms/{name}/logs", tag = "vms", operation_id = "vm_logs",
    summary = "The VM's serial console log",
    description = "The log as it is now (or its last `tail` lines); with `follow`, a streamed \
body that grows with the console and ends when the VM stops (or when the client closes the \
connection).",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has"), LogsQuery),
    responses(
        (status = 200, description = "Console output (raw bytes from the guest; usually UTF-8)",
            body = String, content_type = "text/plain"),
        (status = 400, description = "An unknown query parameter", body = ApiError),
        (status = 404, description = "No such VM", body = ApiError),
    )
)]
pub async fn logs(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
    Query(query): Query<LogsQuery>,
) -> Result<Response, DaemonError> {
    let chunks = vms::logs::stream(&daemon, &name, query.follow, query.tail)?;
    Ok(body::stream(
        "text/plain; charset=utf-8",
        ChannelBody(chunks),
    ))
}
