//! `POST /v1/vms/{name}/snapshot` and `/v1/snapshots`: take, list, inspect, remove. Each
//! handler turns the request into one call of the snapshot service (`crate::snapshots`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use banger_api::{ApiError, CreateSnapshotRequest, SnapshotView};

use super::body::{self, Json, Name};
use super::operation;
use crate::error::DaemonError;
use crate::snapshots;
use crate::state::Daemon;

/// The URL of snapshot `id`, for `Location`.
fn location(id: &str) -> String {
    format!("{}/snapshots/{id}", banger_api::API_PREFIX)
}

#[utoipa::path(
    post, path = "/v1/vms/{name}/snapshot", tag = "snapshots", operation_id = "snapshot_vm",
    summary = "Snapshot a running or paused VM",
    description = "Pauses the VM, has its VMM save the guest's memory and device state, copies \
its disks while it is frozen, and resumes it (a paused VM stays paused; with `stop` it is \
stopped). The snapshot is registered only once every file is complete. Clones are made from \
it with `POST /v1/vms` and `from`; a clone of a bridged VM gets a TAP, MAC and address of its \
own. Refused for clones (not supported yet). Send `Accept: application/x-ndjson` to receive progress as a stream that ends \
with the result.",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    request_body(content = CreateSnapshotRequest, description = "An empty body takes a snapshot with a generated name"),
    responses(
        (status = 201, description = "The snapshot", body = SnapshotView,
            headers(("Location" = String, description = "The snapshot's URL: /v1/snapshots/{id}"))),
        (status = 400, description = "A field is invalid (`field` names it)", body = ApiError),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 409, description = "The VM is not running, the name is taken, or the VM cannot be snapshotted", body = ApiError),
        (status = 500, description = "The VMM could not save the guest, or a disk could not be copied", body = ApiError),
    )
)]
pub async fn take(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
    headers: HeaderMap,
    Json(req): Json<CreateSnapshotRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        |snap: &SnapshotView| Some(location(&snap.id)),
        move |d, progress| async move { snapshots::take(&d, &name, req, &*progress).await },
    )
    .await
}

#[utoipa::path(
    get, path = "/v1/snapshots", tag = "snapshots", operation_id = "list_snapshots",
    summary = "List snapshots",
    responses(
        (status = 200, description = "Every snapshot, oldest first", body = Vec<SnapshotView>),
        (status = 500, description = "The state store failed", body = ApiError),
    )
)]
pub async fn list(State(daemon): State<Arc<Daemon>>) -> Result<Response, DaemonError> {
    Ok(body::json(StatusCode::OK, &snapshots::list(&daemon)?))
}

#[utoipa::path(
    get, path = "/v1/snapshots/{name}", tag = "snapshots", operation_id = "get_snapshot",
    summary = "Inspect a snapshot, with the VMs cloned from it",
    params(("name" = String, Path, description = "Snapshot name or id")),
    responses(
        (status = 200, description = "The snapshot", body = SnapshotView),
        (status = 404, description = "No such snapshot", body = ApiError),
    )
)]
pub async fn get(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    Ok(body::json(StatusCode::OK, &snapshots::get(&daemon, &name)?))
}

#[utoipa::path(
    delete, path = "/v1/snapshots/{name}", tag = "snapshots", operation_id = "remove_snapshot",
    summary = "Remove a snapshot and its files",
    params(("name" = String, Path, description = "Snapshot name or id")),
    responses(
        (status = 200, description = "The removed snapshot", body = SnapshotView),
        (status = 404, description = "No such snapshot", body = ApiError),
        (status = 409, description = "VMs are cloned from it (the message names them)", body = ApiError),
    )
)]
pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    let snap = operation::detached(
        &daemon,
        move |d| async move { snapshots::remove(&d, &name) },
    )
    .await?;
    Ok(body::json(StatusCode::OK, &snap))
}
