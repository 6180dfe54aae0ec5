//! `POST /v1/vms/{name}/pause` and `/resume`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use banger_api::{ApiError, VmView};

use super::body::{self, Name};
use super::operation;
use crate::error::DaemonError;
use crate::state::Daemon;
use crate::vms;

#[utoipa::path(
    post, path = "/v1/vms/{name}/pause", tag = "vms", operation_id = "pause_vm",
    summary = "Freeze a running VM's vCPUs",
    description = "The VMM keeps running and the guest's memory stays allocated; commands \
cannot run in it until it is resumed. QEMU: QMP `stop`; Firecracker: `PATCH /vm`. A paused VM \
is returned as it is.",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    responses(
        (status = 200, description = "The VM, in state `paused`", body = VmView),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 409, description = "The VM is not running", body = ApiError),
        (status = 500, description = "The VMM refused", body = ApiError),
    )
)]
pub async fn pause(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    let vm =
        operation::detached(&daemon, move |d| async move { vms::pause(&d, &name).await }).await?;
    Ok(body::json(StatusCode::OK, &vm))
}

#[utoipa::path(
    post, path = "/v1/vms/{name}/resume", tag = "vms", operation_id = "resume_vm",
    summary = "Let a paused VM run again",
    description = "A running VM is returned as it is.",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    responses(
        (status = 200, description = "The VM, in state `running`", body = VmView),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 409, description = "The VM is not paused", body = ApiError),
        (status = 500, description = "The VMM refused", body = ApiError),
    )
)]
pub async fn resume(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    let vm = operation::detached(
        &daemon,
        move |d| async move { vms::resume(&d, &name).await },
    )
    .await?;
    Ok(body::json(StatusCode::OK, &vm))
}
