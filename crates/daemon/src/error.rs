//! The daemon's error type and how each kind maps onto HTTP.

use banger_api::ApiError;
use hyper::StatusCode;

/// An error a handler returns; becomes a JSON [`ApiError`] body.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DaemonError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// The request field at fault, as the API spells it (`memory_mib`).
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    /// The path exists but not with this method (the response lists the ones it has).
    MethodNotAllowed,
    Conflict,
    Invalid,
    /// An invalid request whose body exceeds the size limit.
    TooLarge,
    /// An invalid request whose body is not JSON.
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Conflict => "conflict",
            // Clients act on "the request is wrong"; the status says which way.
            ErrorKind::Invalid | ErrorKind::TooLarge | ErrorKind::UnsupportedMediaType => "invalid",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl DaemonError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> DaemonError {
        DaemonError {
            kind,
            message: message.into(),
            hint: None,
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> DaemonError {
        DaemonError::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> DaemonError {
        DaemonError::new(ErrorKind::Conflict, message)
    }

    pub fn invalid(message: impl Into<String>) -> DaemonError {
        DaemonError::new(ErrorKind::Invalid, message)
    }

    pub fn unavailable(message: impl Into<String>) -> DaemonError {
        DaemonError::new(ErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> DaemonError {
        DaemonError::new(ErrorKind::Internal, message)
    }

    /// An internal error: `what` failed because of `err`, whose whole chain of causes is kept
    /// in the message (one convention: see `banger_system::errors`). A full disk anywhere in
    /// the chain says so in the hint instead of whatever else the caller would guess.
    pub fn caused(
        kind: ErrorKind,
        what: impl std::fmt::Display,
        err: &(dyn std::error::Error + 'static),
    ) -> DaemonError {
        let error = DaemonError::new(kind, format!("{what}: {}", banger_system::error_chain(err)));
        if banger_system::is_storage_full(err) {
            error.with_hint(NO_SPACE_HINT)
        } else {
            error
        }
    }

    /// `err` itself is the whole story (a parse error, a refusal with its reason): its chain
    /// of causes becomes the message, never just its outermost line.
    pub fn from_error(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> DaemonError {
        let error = DaemonError::new(kind, banger_system::error_chain(err));
        if banger_system::is_storage_full(err) {
            error.with_hint(NO_SPACE_HINT)
        } else {
            error
        }
    }

    pub fn with_no_space_hint(self) -> DaemonError {
        self.with_hint(NO_SPACE_HINT)
    }

    /// Whether the hint is the full-disk one (callers keep it rather than adding theirs).
    pub fn is_no_space(&self) -> bool {
        self.hint.as_deref() == Some(NO_SPACE_HINT)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> DaemonError {
        self.hint = Some(hint.into());
        self
    }

    /// Name the request field at fault, so clients can point at it (the CLI names
    /// its own flag instead).
    pub fn with_field(mut self, field: impl Into<String>) -> DaemonError {
        self.field = Some(field.into());
        self
    }

    pub fn to_api(&self) -> ApiError {
        ApiError {
            kind: self.kind.as_str().to_string(),
            message: self.message.clone(),
            hint: self.hint.clone(),
            field: self.field.clone(),
        }
    }
}

/// What to do about ENOSPC, wherever it happens.
const NO_SPACE_HINT: &str = "the disk is full: free space on it (`df -h` shows which) and retry";

impl From<banger_store::StoreError> for DaemonError {
    fn from(e: banger_store::StoreError) -> DaemonError {
        if e.is_full() {
            return DaemonError::internal(banger_system::error_chain(&e)).with_hint(NO_SPACE_HINT);
        }
        DaemonError::caused(ErrorKind::Internal, "state store", &e)
    }
}

pub type Result<T> = std::result::Result<T, DaemonError>;

/// How many characters of a user-supplied name an error quotes.
pub const QUOTED_CHARS: usize = 64;

/// `text` (a name, a size, a VMM: whatever the caller sent) as an error quotes it: in
/// double quotes with escapes, cut to its first [`QUOTED_CHARS`] characters and its length
/// when longer, so a 5000-character name does not come back 5000 characters long. Every
/// message that quotes a refused user string goes through here.
pub fn quoted(text: &str) -> String {
    let count = text.chars().count();
    if count <= QUOTED_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(QUOTED_CHARS).collect();
    let debug = format!("{head:?}");
    // `{:?}` of a string always ends with its closing quote.
    let open = debug.strip_suffix('"').unwrap_or(&debug);
    format!("{open}…\" ({count} characters)")
}

/// `message` (a parser's error: serde's, a URL decoder's) with every quoted span in it —
/// between backticks (`` unknown field `…` ``) or double quotes (`string "…"`) — longer than
/// [`QUOTED_CHARS`] cut as [`quoted`] cuts it: such messages repeat what the caller sent.
pub fn shorten_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let delimiter = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let inner_start = open + 1;
        let Some(len) = closing(&rest[inner_start..], delimiter) else {
            // Unbalanced: the rest is left as it is.
            rest = &rest[inner_start..];
            break;
        };
        let inner = &rest[inner_start..inner_start + len];
        let count = inner.chars().count();
        if count > QUOTED_CHARS {
            out.extend(inner.chars().take(QUOTED_CHARS));
            out.push('…');
            out.push(delimiter);
            out.push_str(&format!(" ({count} characters)"));
        } else {
            out.push_str(inner);
            out.push(delimiter);
        }
        rest = &rest[inner_start + len + delimiter.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Where the span closed by `delimiter` ends in `text` (a `\"` inside double quotes is an
/// escape, not the end).
fn closing(text: &str, delimiter: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if delimiter == '"' => escaped = true,
            _ if c == delimiter => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot resolve the subnet for bridge banger0")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn quoted_cuts_long_text_and_says_how_long() {
        assert_eq!(quoted("dev"), "\"dev\"");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        let exact = "a".repeat(QUOTED_CHARS);
        assert_eq!(quoted(&exact), format!("{exact:?}"));
        let long = "é".repeat(5000);
        let q = quoted(&long);
        assert_eq!(
            q,
            format!("\"{}…\" (5000 characters)", "é".repeat(QUOTED_CHARS))
        );
    }

    #[test]
    fn shorten_quotes_cuts_each_long_span() {
        let long = "b".repeat(300);
        let message = format!("unknown field `{long}`, expected `name` or \"x\\\"{long}\"");
        let short = shorten_quotes(&message);
        let cut = "b".repeat(QUOTED_CHARS);
        assert_eq!(
            short,
            format!(
                "unknown field `{cut}…` (300 characters), expected `name` or \"x\\\"{}…\" (303 characters)",
                "b".repeat(QUOTED_CHARS - 3)
            )
        );
        assert_eq!(shorten_quotes("no quotes here"), "no quotes here");
        assert_eq!(shorten_quotes("a lone ` stays"), "a lone ` stays");
    }

    #[test]
    fn from_error_keeps_every_cause_and_the_full_disk_hint() {
        let plain = Outer(std::io::Error::other("route table unreadable"));
        let e = DaemonError::from_error(ErrorKind::Unavailable, &plain);
        assert_eq!(
            e.message,
            "cannot resolve the subnet for bridge banger0: route table unreadable"
        );
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.hint.is_none());

        let full = Outer(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let e = DaemonError::from_error(ErrorKind::Internal, &full);
        assert!(e.is_no_space(), "{e:?}");
    }
}
