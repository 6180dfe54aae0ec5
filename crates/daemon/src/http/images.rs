//! `/v1/images`: list, inspect, build, pull, import, import-kernel, warm, remove. Each handler is one call of the image
//! service (`crate::images`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use banger_api::progress::schema::ImageStreamLine;
use banger_api::{
    ApiError, BuildImageRequest, ImageVerifyReport, ImageView, ImportImageRequest,
    ImportKernelRequest, PruneImagesRequest, PruneReport, PullImageRequest,
};

use super::body::{self, Json, Name};
use super::operation;
use crate::error::DaemonError;
use crate::images;
use crate::prune;
use crate::state::Daemon;
use crate::warm;

/// The URL of image `name`, for `Location`.
fn location(image: &ImageView) -> Option<String> {
    Some(format!("{}/images/{}", banger_api::API_PREFIX, image.name))
}

#[utoipa::path(
    get, path = "/v1/images", tag = "images", operation_id = "list_images",
    summary = "List registered images",
    responses(
        (status = 200, description = "Every registered image", body = Vec<ImageView>),
        (status = 500, description = "The state store failed", body = ApiError),
    )
)]
pub async fn list(State(daemon): State<Arc<Daemon>>) -> Result<Response, DaemonError> {
    Ok(body::json(StatusCode::OK, &images::list(&daemon)?))
}

#[utoipa::path(
    get, path = "/v1/images/{name}", tag = "images", operation_id = "get_image",
    summary = "Inspect an image",
    params(("name" = String, Path, description = "Image name")),
    responses(
        (status = 200, description = "The image", body = ImageView),
        (status = 404, description = "No such image", body = ApiError),
    )
)]
pub async fn get(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    Ok(body::json(StatusCode::OK, &images::get(&daemon, &name)?))
}

#[utoipa::path(
    post, path = "/v1/images/{name}/verify", tag = "images", operation_id = "verify_image",
    summary = "Check an image's files against its manifest",
    description = "Reads every file of the image again and compares its size and digest with \
what its manifest recorded: the SHA-256 of the whole file, or for an OCI import's root \
filesystem the chunked SHA-256 (`sha256_1m`). Takes about a second per GiB.",
    params(("name" = String, Path, description = "Image name")),
    responses(
        (status = 200, description = "Each file and what is wrong with it, if anything", body = ImageVerifyReport),
        (status = 404, description = "No such image", body = ApiError),
        (status = 500, description = "The image's manifest is unreadable", body = ApiError),
    )
)]
pub async fn verify(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    Ok(body::json(
        StatusCode::OK,
        &images::verify(&daemon, &name).await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/images/build", tag = "images", operation_id = "build_image",
    summary = "Build an image from a catalog recipe and register it",
    description = "Can take minutes the first time (downloads from the Debian archive). Send \
`Accept: application/x-ndjson` to receive its phases, with byte counts for downloads.",
    request_body(content = BuildImageRequest),
    responses(
        (status = 201, description = "Built and registered", body = ImageView,
            headers(("Location" = String, description = "The image's URL: /v1/images/{name}"))),
        (status = 200, description = "With `Accept: application/x-ndjson`: progress lines, then \
one `result` line (status 201, the image) or one `error` line",
            content_type = "application/x-ndjson", body = ImageStreamLine),
        (status = 400, description = "Unknown recipe or invalid name (`field` says which)", body = ApiError),
        (status = 409, description = "An image of that name exists and `force` is not set", body = ApiError),
        (status = 500, description = "The build failed; a previous image of that name is untouched", body = ApiError),
        (status = 503, description = "The guest agent binary is missing", body = ApiError),
    )
)]
pub async fn build(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Json(req): Json<BuildImageRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        location,
        move |d, progress| async move { images::build(&d, req, &*progress).await },
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/images/pull", tag = "images", operation_id = "pull_image",
    summary = "Fetch (or build) a catalogued image and register it",
    description = "A download entry is fetched and verified against its pinned SHA-256 (an \
interrupted download resumes where it stopped); a recipe entry is built. Send \
`Accept: application/x-ndjson` to receive its phases, with byte counts for downloads.",
    request_body(content = PullImageRequest),
    responses(
        (status = 201, description = "Fetched and registered", body = ImageView,
            headers(("Location" = String, description = "The image's URL: /v1/images/{name}"))),
        (status = 200, description = "With `Accept: application/x-ndjson`: progress lines, then \
one `result` line (status 201, the image) or one `error` line",
            content_type = "application/x-ndjson", body = ImageStreamLine),
        (status = 404, description = "No catalog entry of that name", body = ApiError),
        (status = 409, description = "The image is registered and `force` is not set", body = ApiError),
        (status = 503, description = "A download failed or did not match its digest; nothing was registered", body = ApiError),
    )
)]
pub async fn pull(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Json(req): Json<PullImageRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        location,
        move |d, progress| async move { images::pull(&d, req, &*progress).await },
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/images/import", tag = "images", operation_id = "import_image",
    summary = "Import an OCI image (registry, OCI layout or docker-archive)",
    description = "`reference` uses skopeo's syntax: `docker://REGISTRY/REPO:TAG`, \
`oci:DIR[:TAG]` (a path on the daemon's host) or `docker-archive:FILE`. linux/amd64 is chosen \
from an index; every blob is checked against its digest; hostile layers are refused, naming \
the layer and the entry. The image boots with the kernel and initrd of `kernel` (default \
`minimal`, built on first use). Send `Accept: application/x-ndjson` for progress.",
    request_body(content = ImportImageRequest),
    responses(
        (status = 201, description = "Imported and registered", body = ImageView,
            headers(("Location" = String, description = "The image's URL: /v1/images/{name}"))),
        (status = 200, description = "With `Accept: application/x-ndjson`: progress lines, then \
one `result` line (status 201, the image) or one `error` line",
            content_type = "application/x-ndjson", body = ImageStreamLine),
        (status = 400, description = "Bad reference, invalid or hostile image (the message names the layer and entry)", body = ApiError),
        (status = 409, description = "An image of that name exists and `force` is not set", body = ApiError),
    )
)]
pub async fn import(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Json(req): Json<ImportImageRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        location,
        move |d, progress| async move { images::import(&d, req, &*progress).await },
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/images/import-kernel", tag = "images", operation_id = "import_kernel",
    summary = "Import a kernel (ELF vmlinux or bzImage) as a kernel image",
    description = "The ELF form is extracted from a bzImage (gzip, xz, zstd or lz4 payload) and \
its PVH fact recorded once. `path` is on the daemon's host. Without `initrd` the image gets an \
agent-only initramfs (the kernel then needs its virtio drivers built in).",
    request_body(content = ImportKernelRequest),
    responses(
        (status = 201, description = "Imported and registered", body = ImageView,
            headers(("Location" = String, description = "The image's URL: /v1/images/{name}"))),
        (status = 200, description = "With `Accept: application/x-ndjson`: progress lines, then \
one `result` line (status 201, the image) or one `error` line",
            content_type = "application/x-ndjson", body = ImageStreamLine),
        (status = 400, description = "Not a kernel, or a relative path", body = ApiError),
        (status = 409, description = "An image of that name exists and `force` is not set", body = ApiError),
    )
)]
pub async fn import_kernel(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Json(req): Json<ImportKernelRequest>,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        location,
        move |d, progress| async move { images::import_kernel(&d, req, &*progress).await },
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/images/{name}/warm", tag = "images", operation_id = "warm_image",
    summary = "Boot the image once and keep the agent-ready guest as its warm state",
    description = "Boots a VM of the image with default resources (building a catalogued image \
first), snapshots it once its agent answers, and removes that VM. `vm run` of the image with the \
same resources, driver and network mode then restores the warm state instead of booting (each \
such VM gets its own clock, RNG state, hostname, machine-id and SSH host key). A warm state that \
no longer matches the image, its agent, the VMM or banger is retired and the VM boots cold. \
Refused on the bridge network and under Firecracker.",
    params(("name" = String, Path, description = "Image name")),
    responses(
        (status = 201, description = "The image, with its warm state", body = ImageView,
            headers(("Location" = String, description = "The image's URL: /v1/images/{name}"))),
        (status = 200, description = "With `Accept: application/x-ndjson`: progress lines, then \
one `result` line (status 201, the image) or one `error` line",
            content_type = "application/x-ndjson", body = ImageStreamLine),
        (status = 404, description = "No such image", body = ApiError),
        (status = 409, description = "The network mode is `bridge`", body = ApiError),
        (status = 503, description = "No VMM that can restore (Firecracker)", body = ApiError),
    )
)]
pub async fn warm_image(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Name(name): Name,
) -> Response {
    operation::run(
        &daemon,
        &headers,
        StatusCode::CREATED,
        location,
        move |d, progress| async move { warm::warm(&d, &name, &*progress).await },
    )
    .await
}

#[utoipa::path(
    delete, path = "/v1/images/{name}", tag = "images", operation_id = "remove_image",
    summary = "Remove an image and its files",
    params(("name" = String, Path, description = "Image name")),
    responses(
        (status = 200, description = "The removed image", body = ImageView),
        (status = 404, description = "No such image", body = ApiError),
        (status = 409, description = "VMs still use it", body = ApiError),
    )
)]
pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Name(name): Name,
) -> Result<Response, DaemonError> {
    let image = operation::detached(&daemon, move |d| async move {
        // Its standbys are the daemon's: they go first, or they would hold the image.
        crate::warm::standby::remove_for_image(&d, &name).await;
        let removed = images::remove(&d, &name);
        if removed.is_err() {
            // Refused (VMs still use it): the image stays warm, with its standbys.
            crate::warm::standby::refill(&d, &name);
        }
        removed
    })
    .await?;
    Ok(body::json(StatusCode::OK, &image))
}

#[utoipa::path(
    post, path = "/v1/images/prune", tag = "images", operation_id = "prune_images",
    summary = "Reclaim disk space: unused images, the download cache, build leftovers",
    description = "Removes every image no VM uses (except the default image unless `all`), \
the download cache, and image directories no image refers to; answers what went and how many \
bytes that freed. With `dry_run`, answers the same without removing anything. Images a VM \
uses are never removed.",
    request_body(content = PruneImagesRequest),
    responses(
        (status = 200, description = "What was (or, in a dry run, would be) removed", body = PruneReport),
        (status = 400, description = "An unknown field", body = ApiError),
        (status = 500, description = "A file could not be removed", body = ApiError),
    )
)]
pub async fn prune(
    State(daemon): State<Arc<Daemon>>,
    Json(req): Json<PruneImagesRequest>,
) -> Result<Response, DaemonError> {
    let report =
        operation::detached(&daemon, move |d| async move { prune::prune(&d, req).await }).await?;
    Ok(body::json(StatusCode::OK, &report))
}
