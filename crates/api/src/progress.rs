//! Streamed operations. A client that sends `Accept: application/x-ndjson` to a long
//! operation (VM create/start/stop, image build) gets `200` and one JSON object per
//! line: [`ProgressEvent`]s while the work runs, then exactly one [`Outcome`] line with
//! the result or the error and the HTTP status the plain answer would have had.

use banger_system::progress::ProgressEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::types::ApiError;

/// The media type of progress streams.
pub const NDJSON: &str = "application/x-ndjson";

/// Longest line a client accepts; progress lines are far shorter and a result is one
/// VM or image.
pub const MAX_LINE: usize = 1 << 20;

/// The last line of a streamed operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Outcome<T> {
    /// The operation succeeded: `value` is what the plain answer's body would be.
    Result { status: u16, value: T },
    /// The operation failed: `error` is what the plain answer's body would be.
    Error { status: u16, error: ApiError },
}

/// The OpenAPI form of the stream lines. utoipa would inline a generic `T` into each
/// use of [`Outcome`], which generated clients turn into clashing anonymous models, so
/// each operation's lines are named here with `$ref`s to their result type. The
/// tests check they read exactly what [`Outcome`] writes.
pub mod schema {
    use banger_system::progress::ProgressEvent;
    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    use crate::types::{ApiError, ImageView, VmView};

    #[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ResultEvent {
        Result,
    }

    #[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ErrorEvent {
        Error,
    }

    /// The last line of a failed streamed operation.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    pub struct ErrorLine {
        pub event: ErrorEvent,
        /// The HTTP status the plain answer would have had.
        pub status: u16,
        pub error: ApiError,
    }

    macro_rules! stream_lines {
        ($line:ident, $result:ident, $value:ty, $what:literal) => {
            #[doc = concat!("The last line of a successful streamed ", $what, ".")]
            #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
            pub struct $result {
                pub event: ResultEvent,
                /// The HTTP status the plain answer would have had.
                pub status: u16,
                pub value: $value,
            }

            #[doc = concat!(
                "One line of a streamed ", $what, ": progress events, then one result or ",
                "error line. Skip `event` kinds you do not know; later versions may add some."
            )]
            #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
            #[serde(untagged)]
            // Describes the wire for the document and tests; nothing holds many of them.
            #[allow(clippy::large_enum_variant)]
            pub enum $line {
                Progress(ProgressEvent),
                Result($result),
                Error(ErrorLine),
            }
        };
    }

    stream_lines!(VmStreamLine, VmResultLine, VmView, "VM operation");
    stream_lines!(ImageStreamLine, ImageResultLine, ImageView, "image build");
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
    fn schema_types_read_what_outcome_writes() {
        let error = Outcome::<u8>::Error {
            status: 409,
            error: ApiError {
                kind: "conflict".into(),
                message: "m".into(),
                hint: None,
                field: None,
            },
        };
        let text = serde_json::to_string(&error).unwrap();
        let line: schema::ErrorLine = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&line).unwrap(), text);

        let image = crate::types::ImageView {
            name: "minimal".into(),
            source: "recipe:minimal".into(),
            kernel_path: "/k".into(),
            kernel_format: "elf-vmlinux".into(),
            initrd_path: None,
            rootfs_path: None,
            kernel_release: None,
            kernel_pvh: Some(true),
            size_bytes: 1,
            created_at: "t".into(),
            init: None,
            digest: None,
            run: None,
            warm: None,
            recipe: None,
        };
        let text = serde_json::to_string(&Outcome::Result {
            status: 201,
            value: image,
        })
        .unwrap();
        let line: schema::ImageStreamLine = serde_json::from_str(&text).unwrap();
        assert!(matches!(line, schema::ImageStreamLine::Result(_)));
        assert_eq!(serde_json::to_string(&line).unwrap(), text);
        let note: schema::VmStreamLine =
            serde_json::from_str(r#"{"event":"note","message":"x"}"#).unwrap();
        assert!(matches!(note, schema::VmStreamLine::Progress(_)));
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
