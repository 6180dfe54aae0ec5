//! Every route of the API, and nothing else: which handler answers which method and
//! path. Handlers live in one file per resource beside this one.

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ApiDoc;
use super::{exec, images, logs, pause, shares, snapshots, system, vms};
use crate::state::Daemon;

/// The routes with their OpenAPI descriptions (used for both the router and the
/// document, so the two cannot drift).
pub fn routes() -> OpenApiRouter<Arc<Daemon>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::shutdown))
        .routes(routes!(system::openapi))
        .routes(routes!(vms::list, vms::create))
        .routes(routes!(vms::get, vms::remove))
        .routes(routes!(vms::start))
        .routes(routes!(vms::stop))
        .routes(routes!(pause::pause))
        .routes(routes!(pause::resume))
        .routes(routes!(shares::synced))
        .routes(routes!(logs::logs))
        .routes(routes!(exec::exec))
        .routes(routes!(images::list))
        .routes(routes!(images::build))
        .routes(routes!(images::pull))
        .routes(routes!(images::import))
        .routes(routes!(images::import_kernel))
        .routes(routes!(images::prune))
        .routes(routes!(images::verify))
        .routes(routes!(images::warm_image))
        .routes(routes!(images::get, images::remove))
        .routes(routes!(snapshots::take))
        .routes(routes!(snapshots::list))
        .routes(routes!(snapshots::get, snapshots::remove))
}

/// The service the daemon's connections run: the routes, JSON answers for unknown
/// paths (404) and wrong methods (405 with `Allow`).
pub fn router(daemon: Arc<Daemon>) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .with_state(daemon)
}
