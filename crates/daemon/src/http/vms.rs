//! `/v1/vms`: list, create, inspect, start, stop, remove. Each handler turns the
//! request into one call of the VM service (`crate::vms`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use banger_api::progress::schema::VmStreamLine;
use banger_api::{ApiError, CreateVmRequest, StopVmRequest, VmView};
use serde::Deserialize;
use utoipa::IntoParams;

use super::body::{self, Json, Name, Query};
use super::operation;
use crate::error::DaemonError;
use crate::state::Daemon;
use crate::vms;

/// The URL of VM `id`, for `Location`.
pub fn location(id: &str) -> String {
    format!("{}/vms/{id}", banger_api::API_PREFIX)
}

#[utoipa::path(
    get, path = "/v1/vms", tag = "vms", operation_id = "list_vms",
    summary = "List VMs",
    responses(
        (status = 200, description = "Every VM, oldest first", body = Vec<VmView>),
        (status = 500, description = "The state store failed", body = ApiError),
    )
)]
pub async fn list(State(daemon): State<Arc<Daemon>>) -> Result<Response, DaemonError> {
    Ok(body::json(StatusCode::OK, &vms::list(&daemon)?))
}

#[utoipa::path(
    post, path = "/v1/vms", tag = "vms", operation_id = "create_vm",
    summary = "Create a VM, and boot it with `start: true`",
    description = "Validates the request, builds the image first if it is catalogued but not \
built yet, lays out the VM's disks and registers it. With `start: true` the answer comes once \
the guest agent is ready. Send `Accept: application/x-ndjson` to receive progress (image \
build, boot phases) as a stream that ends with the result.",
    request_body(content = CreateVmRequest, description = "An empty body creates a VM with every default"),
    responses(
        (status = 201, description = "Created (and running, with `start`)", body = VmView,
            headers(("Location" = String, description = "The new VM's URL: /v1/vms/{id}"))),
        (status = 200, description = "With `Accept: application/x-ndjson`: progress lines, \
then one `result` line (status 201, the VM) or one `error` line", content_type = "application/x-ndjson", body = VmStreamLine),
        (status = 400, description = "A field is invalid (`field` names it)", body = ApiError),
        (status = 404, description = "No such image, and the catalog cannot build it", body = ApiError),
        (status = 409, description = "The name is taken", body = ApiError),
        (status = 500, description = "Building the image, laying out disks or booting failed", body = ApiError),
        (status = 503, description = "A host tool or the guest agent is missing, or the requested VMM (`vmm`) cannot run here", body = ApiError),
    )
)]
pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Json(req): Json<CreateVmRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        |vm: &VmView| Some(location(&vm.id)),
        move |d, progress| async move { vms::create(&d, req, &*progress).await },
    )
    .await
}

#[utoipa::path(
    get, path = "/v1/vms/{name}", tag = "vms", operation_id = "get_vm",
    summary = "Inspect a VM",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    responses(
        (status = 200, description = "The VM", body = VmView),
        (status = 404, description = "No such VM", body = ApiError),
    )
)]
pub async fn get(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    Ok(body::json(StatusCode::OK, &vms::get(&daemon, &name)?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Kill the VM first if it is running (its disks are deleted, so there is nothing
    /// to shut down cleanly for).
    #[serde(default, deserialize_with = "body::flag")]
    force: bool,
}

#[utoipa::path(
    delete, path = "/v1/vms/{name}", tag = "vms", operation_id = "remove_vm",
    summary = "Remove a VM and its disks",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has"), RemoveQuery),
    responses(
        (status = 200, description = "The removed VM, with state `removed`", body = VmView),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 409, description = "The VM is active and `force` was not set", body = ApiError),
        (status = 500, description = "Killing the VMM or deleting its files failed", body = ApiError),
    )
)]
pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
    Query(query): Query<RemoveQuery>,
) -> Result<Response, DaemonError> {
    let vm = operation::detached(&daemon, move |d| async move {
        vms::remove(&d, &name, query.force).await
    })
    .await?;
    Ok(body::json(StatusCode::OK, &vm))
}

#[utoipa::path(
    post, path = "/v1/vms/{name}/start", tag = "vms", operation_id = "start_vm",
    summary = "Boot a created, stopped or failed VM",
    description = "Answers once the guest agent is ready; a running VM is returned as it is. \
Send `Accept: application/x-ndjson` to receive the boot phases as they happen.",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    responses(
        (status = 200, description = "The running VM (or, with `Accept: application/x-ndjson`, \
progress lines then a `result` line with status 200)", body = VmView,
            content(
                (VmView = "application/json"),
                (VmStreamLine = "application/x-ndjson"),
            )),
        (status = 404, description = "No such VM, or its image is gone", body = ApiError),
        (status = 409, description = "The VM is stopping, starting or paused", body = ApiError),
        (status = 500, description = "The boot failed; the VM is marked `failed`", body = ApiError),
    )
)]
pub async fn start(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Name(name): Name,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::OK,
        |_: &VmView| None,
        move |d, progress| async move { vms::start(&d, &name, &*progress).await },
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/vms/{name}/stop", tag = "vms", operation_id = "stop_vm",
    summary = "Stop a VM",
    description = "Graceful unless `force`: the agent powers the guest off, then the ACPI power \
button is pressed (QEMU) or Ctrl-Alt-Del sent (Firecracker), then the VMM is killed; a paused VM \
is resumed first. Send `Accept: application/x-ndjson` to follow the steps.",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    request_body(content = StopVmRequest, description = "An empty body stops gracefully with the default timeout"),
    responses(
        (status = 200, description = "The stopped VM (or, with `Accept: application/x-ndjson`, \
progress lines then a `result` line with status 200)", body = VmView,
            content(
                (VmView = "application/json"),
                (VmStreamLine = "application/x-ndjson"),
            )),
        (status = 400, description = "A field is invalid", body = ApiError),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 500, description = "The VMM could not be killed", body = ApiError),
    )
)]
pub async fn stop(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Name(name): Name,
    Json(req): Json<StopVmRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::OK,
        |_: &VmView| None,
        move |d, progress| async move { vms::stop(&d, &name, req, &*progress).await },
    )
    .await
}
