//! JSON in and out: the extractors that turn every malformed request into the API's
//! error body, the response helpers and the request limits. A leaf: it knows HTTP and
//! serde, nothing about VMs or images.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::{DaemonError, ErrorKind};

/// Request bodies larger than this are refused: no API call needs more.
pub const MAX_REQUEST_BODY: usize = banger_api::MAX_REQUEST_BODY;

/// Where to read the request schemas; named by errors about a malformed request.
const SCHEMA_HINT: &str = "GET /v1/openapi.json describes every request body";

/// A JSON response with `status`. Pretty-printed: people read these with curl too.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            (
                status,
                [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
                bytes,
            )
                .into_response()
        }
        Err(e) => DaemonError::internal(format!("cannot encode the answer: {e}")).into_response(),
    }
}

/// `201 Created` with the new resource's URL in `Location`.
pub fn created<T: Serialize>(location: &str, value: &T) -> Response {
    let mut resp = json(StatusCode::CREATED, value);
    if let Ok(url) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, url);
    }
    resp
}

pub const JSON: &str = "application/json";

impl IntoResponse for DaemonError {
    fn into_response(self) -> Response {
        tracing::debug!(kind = self.kind.as_str(), error = %self.message, "request failed");
        json(self.kind.status(), &self.to_api())
    }
}

/// A JSON request body. An empty body decodes as `T::default()` (every request type's
/// fields are optional or checked by the handler); a non-empty one must be JSON, at
/// most [`MAX_REQUEST_BODY`] bytes, and may not carry fields `T` does not know.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = DaemonError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, DaemonError> {
        let (parts, body) = req.into_parts();
        if let Some(len) = content_length(&parts.headers)
            && len > MAX_REQUEST_BODY as u64
        {
            return Err(too_large());
        }
        let bytes = http_body_util::Limited::new(body, MAX_REQUEST_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    DaemonError::invalid(format!("cannot read the request body: {e}"))
                }
            })?
            .to_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Json(T::default()));
        }
        check_json_content_type(&parts.headers)?;
        check_object(&bytes)?;
        decode(&bytes).map(Json)
    }
}

/// Every request body is a JSON object. serde would also read a struct from an array,
/// field by field in order, so `[]` created a VM with every default and `["x"]` one named
/// `x`: a client that sends the wrong shape is told so instead.
fn check_object(bytes: &[u8]) -> Result<(), DaemonError> {
    let what = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'-' | b'0'..=b'9') => "a number",
        // An object, or not JSON at all: the decoder says which.
        _ => return Ok(()),
    };
    Err(DaemonError::invalid(format!(
        "invalid request body: it is {what}, not a JSON object"
    ))
    .with_hint("send the request's fields as one object, e.g. {\"name\": \"dev\"}; GET /v1/openapi.json describes every request body"))
}

/// Decode `bytes` as `T`, naming the offending field when a value is wrong.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DaemonError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // A path (`shares[0].host`) can hold an unknown key the caller made up: quoted
        // and cut when it is long.
        let path = match path.chars().count() > crate::error::QUOTED_CHARS {
            true => crate::error::quoted(&path),
            false => path,
        };
        // serde repeats what it refused (`unknown field `…``): cut to a readable size.
        let inner = crate::error::shorten_quotes(&e.into_inner().to_string());
        if path == "." || path.is_empty() {
            DaemonError::invalid(format!("invalid request body: {inner}")).with_hint(SCHEMA_HINT)
        } else {
            DaemonError::invalid(format!("invalid request body: {path}: {inner}"))
                .with_hint(SCHEMA_HINT)
                .with_field(path)
        }
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large() -> DaemonError {
    DaemonError::new(
        ErrorKind::TooLarge,
        format!("the request body is larger than the {MAX_REQUEST_BODY}-byte limit"),
    )
}

/// A body is JSON when it says so (`application/json`, or a `+json` type) or says
/// nothing. Anything else (curl's default form encoding, say) is refused rather than
/// guessed at.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), DaemonError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == JSON || (mime.starts_with("application/") && mime.ends_with("+json")) {
        return Ok(());
    }
    Err(DaemonError::new(
        ErrorKind::UnsupportedMediaType,
        format!(
            "the request body is {}, not JSON",
            crate::error::quoted(value.to_str().unwrap_or("?"))
        ),
    )
    .with_hint("send the body as JSON with `Content-Type: application/json`"))
}

/// A query string decoded as `T`. Unknown keys are refused like unknown JSON fields.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = DaemonError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, DaemonError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query).map(Query).map_err(|e| {
            DaemonError::invalid(format!(
                "invalid query string {}: {}",
                crate::error::quoted(query),
                crate::error::shorten_quotes(&e.to_string())
            ))
            .with_hint("GET /v1/openapi.json lists each route's parameters")
        })
    }
}

/// A boolean query flag: `?force`, `?force=true|1|yes`, `?force=false|0|no`.
pub fn flag<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    let text = String::deserialize(de)?;
    match text.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(serde::de::Error::custom(format!(
            "{} is not a boolean: use true or false",
            crate::error::quoted(&text)
        ))),
    }
}

/// The `{name}` segment of a path (a VM or image name, or a VM id), percent-decoded.
pub struct Name(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = DaemonError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, DaemonError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(name)| Name(name))
            .map_err(|e| {
                DaemonError::invalid(format!(
                    "bad path {}: {}",
                    crate::error::quoted(parts.uri.path()),
                    crate::error::shorten_quotes(&e.to_string())
                ))
            })
    }
}

/// A response body fed by a channel: each message is one chunk. The producer stops
/// when the client goes away (its `send` fails).
pub struct ChannelBody(pub mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<http_body::Frame<Bytes>>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(http_body::Frame::data)))
    }
}

/// A streamed `200` response of `content_type`.
pub fn stream(content_type: &'static str, body: ChannelBody) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        axum::body::Body::new(body),
    )
        .into_response()
}
