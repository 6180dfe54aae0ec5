//! The API's OpenAPI document: generated from the handlers' annotations and the wire
//! types, so it cannot describe routes the router does not have (`docs/openapi.json`
//! is a checked-in copy; a test fails when they drift).

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "banger daemon API",
        description = "The owner daemon's HTTP/JSON API, served on its Unix socket \
(`$XDG_RUNTIME_DIR/banger/bangerd.sock` in dev mode, `/run/banger/bangerd.sock` in a system \
install; mode 0600, so file permissions are the access control). Every route lives under `/v1`; \
a breaking change gets a new prefix. Every error is an `ApiError`. Request bodies are JSON and \
unknown fields are refused. Long operations stream NDJSON progress to clients that send \
`Accept: application/x-ndjson`. See docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://banger", description = "The daemon's Unix socket (any host name)")),
    tags(
        (name = "vms", description = "VM lifecycle"),
        (name = "exec", description = "Commands in running VMs"),
        (name = "images", description = "Images VMs boot from"),
        (name = "snapshots", description = "Snapshots of VMs, which clones resume from"),
        (name = "daemon", description = "The daemon itself"),
    )
)]
pub struct ApiDoc;

/// The document, generated once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| super::router::routes().split_for_parts().1)
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn to_json() -> String {
    match document().to_pretty_json() {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(e) => format!("{{\"error\": \"cannot encode the OpenAPI document: {e}\"}}\n"),
    }
}

/// `GET /v1/openapi.json`
pub fn served() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(to_json);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::body::JSON),
        )],
        text.clone(),
    )
        .into_response()
}
