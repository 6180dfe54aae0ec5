//! `POST /v1/vms/{name}/shares/synced`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use banger_api::{ApiError, SharesSyncedRequest, VmView};

use super::body::{self, Json, Name};
use crate::error::DaemonError;
use crate::state::Daemon;
use crate::{shares, vms};

#[utoipa::path(
    post, path = "/v1/vms/{name}/shares/synced", tag = "vms", operation_id = "shares_synced",
    summary = "Record that read-write copy-in shares were just synced back",
    description = "`banger vm sync` calls this after copying a copy-in share's guest content \
back to the host whole: the copy's filesystem journal position becomes the share's sync mark, \
and the share stops being `unsynced` until the guest changes it again.",
    params(("name" = String, Path, description = "VM name, id, or a prefix of the id that only one VM has")),
    request_body(content = SharesSyncedRequest),
    responses(
        (status = 200, description = "The VM, its shares included", body = VmView),
        (status = 400, description = "A path is no read-write copy-in share of the VM", body = ApiError),
        (status = 404, description = "No such VM", body = ApiError),
    )
)]
pub async fn synced(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
    Json(req): Json<SharesSyncedRequest>,
) -> Result<Response, DaemonError> {
    let vm = vms::lookup(&daemon, &name)?;
    shares::unsynced::mark_synced(&daemon, &vm, &req.guest_paths)?;
    Ok(body::json(StatusCode::OK, &vms::get(&daemon, &vm.id)?))
}
