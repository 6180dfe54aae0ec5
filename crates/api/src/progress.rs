//! Streamed operations. A client that sends `Accept: application/x-ndjson` to a long
//! operation (VM create/start/stop, image build) gets `200` and one JSON object per
//! line: [`ProgressEvent`]s while the work runs, then exactly one [`Outcome`] line with
//! the result or the error and the HTTP status the plain answer would have had.

use banger_system::progress::ProgressEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::types::ApiError;

/// The media type of progress streams.
pub const NDJSON: &str = "application/x-ndjson";

/// Longest line a client accepts; progress lines are far shorter and a result is one
/// VM or image.
pub const MAX_LINE: usize = 1 << 20;

/// The last line of a streamed operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Outcome<T> {
    /// The operation succeeded: `value` is what the plain answer's body would be.
    #[schema(title = "result")]
    Result { status: u16, value: T },
    /// The operation failed: `error` is what the plain answer's body would be.
    #[schema(title = "error")]
    Error { status: u16, error: ApiError },
}

/// One line of a progress stream (for the OpenAPI document; clients should skip
/// `event` kinds they do not know, which later versions may add).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StreamLine<T> {
    Progress(ProgressEvent),
    Outcome(Outcome<T>),
}

/// What one line of a stream means to a client.
#[derive(Debug)]
pub enum Line<T> {
    Progress(ProgressEvent),
    Outcome(Outcome<T>),
    /// An event kind this client does not know: skip it.
    Unknown,
}

/// Decode one line. Only a malformed line or a malformed outcome is an error.
pub fn parse_line<T: DeserializeOwned>(line: &[u8]) -> Result<Line<T>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(line)?;
    match value.get("event").and_then(|e| e.as_str()) {
        Some("result" | "error") => serde_json::from_value(value).map(Line::Outcome),
        _ => Ok(serde_json::from_value(value)
            .map(Line::Progress)
            .unwrap_or(Line::Unknown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_decode_by_their_event() {
        let p: Line<u32> = parse_line(br#"{"event":"advance","done":7}"#).unwrap();
        assert!(matches!(
            p,
            Line::Progress(ProgressEvent::Advance { done: 7 })
        ));
        let r: Line<u32> = parse_line(br#"{"event":"result","status":201,"value":5}"#).unwrap();
        assert!(matches!(
            r,
            Line::Outcome(Outcome::Result {
                status: 201,
                value: 5
            })
        ));
        let e: Line<u32> = parse_line(
            br#"{"event":"error","status":409,"error":{"kind":"conflict","message":"m"}}"#,
        )
        .unwrap();
        assert!(matches!(
            e,
            Line::Outcome(Outcome::Error { status: 409, .. })
        ));
        let later: Line<u32> = parse_line(br#"{"event":"checkpoint","at":1}"#).unwrap();
        assert!(matches!(later, Line::Unknown));
        // A result that does not decode is an error, never skipped.
        assert!(parse_line::<u32>(br#"{"event":"result","status":200,"value":"x"}"#).is_err());
        assert!(parse_line::<u32>(b"not json").is_err());
    }

    #[test]
    fn outcomes_have_a_stable_wire_form() {
        let line = serde_json::to_string(&Outcome::Result {
            status: 200,
            value: 1,
        })
        .unwrap();
        assert_eq!(line, r#"{"event":"result","status":200,"value":1}"#);
    }
}
