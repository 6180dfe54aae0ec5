//! Running a state-changing operation for a request, in one place: the operation runs
//! in its own task, and its answer is one JSON document or, for a client that sends
//! `Accept: application/x-ndjson`, a stream of progress lines that ends with the
//! result. Operations only take a `&dyn Progress`; they never know which it is.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use banger_api::progress::{NDJSON, Outcome};
use banger_system::progress::{NoProgress, Progress};
use serde::Serialize;

use super::body::{self, ChannelBody};
use super::progress_stream::ProgressStream;
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Run a state-changing operation in its own task, so it completes even when the
/// client goes away mid-request (hyper drops a request's future when its connection
/// closes). Without this, a Ctrl-C during `vm run` could leave a VM stuck in
/// `starting` with its VMM running and nobody watching it.
pub async fn detached<T, F, Fut>(daemon: &Arc<Daemon>, op: F) -> Result<T>
where
    F: FnOnce(Arc<Daemon>) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(op(daemon.clone()))
        .await
        .map_err(|e| DaemonError::internal(format!("the operation's task failed: {e}")))?
}

/// Run `op` detached and answer with `status` and its result (with a `Location` when
/// `location` gives one), or stream its progress when the client asked for NDJSON.
pub async fn run<T, F, Fut>(
    daemon: &Arc<Daemon>,
    headers: &HeaderMap,
    status: StatusCode,
    location: fn(&T) -> Option<String>,
    op: F,
) -> Response
where
    F: FnOnce(Arc<Daemon>, Arc<dyn Progress>) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Serialize + Send + 'static,
{
    if !wants_ndjson(headers) {
        let done = detached(daemon, |d| op(d, Arc::new(NoProgress))).await;
        return match done {
            Ok(value) => match location(&value) {
                Some(url) => body::created(&url, &value),
                None => body::json(status, &value),
            },
            Err(e) => e.into_response(),
        };
    }

    let (progress, lines) = ProgressStream::new();
    let task = tokio::spawn(op(daemon.clone(), progress.clone()));
    tokio::spawn(async move {
        let outcome = match task.await {
            Ok(Ok(value)) => Outcome::Result {
                status: status.as_u16(),
                value,
            },
            Ok(Err(e)) => error_outcome(e),
            Err(e) => error_outcome(DaemonError::internal(format!(
                "the operation's task failed: {e}"
            ))),
        };
        progress.finish(&outcome);
    });
    body::stream(NDJSON, ChannelBody(lines))
}

fn error_outcome<T>(e: DaemonError) -> Outcome<T> {
    tracing::debug!(kind = e.kind.as_str(), error = %e.message, "streamed operation failed");
    Outcome::Error {
        status: e.kind.status().as_u16(),
        error: e.to_api(),
    }
}

/// Whether `Accept` lists the NDJSON media type (parameters and q-values aside; a
/// client that names it at all can read it).
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| item.split(';').next())
        .any(|mime| mime.trim().eq_ignore_ascii_case(NDJSON))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn ndjson_is_chosen_only_when_asked_for() {
        assert!(wants_ndjson(&accept(&["application/x-ndjson"])));
        assert!(wants_ndjson(&accept(&[
            "application/json;q=0.5, Application/X-NDJSON;q=1"
        ])));
        assert!(wants_ndjson(&accept(&[
            "text/plain",
            "application/x-ndjson"
        ])));
        assert!(!wants_ndjson(&accept(&[])));
        assert!(!wants_ndjson(&accept(&["application/json", "*/*"])));
    }
}
