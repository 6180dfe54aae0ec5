//! The owner daemon's API, shared by the daemon (server) and the CLI (client).
//!
//! HTTP/1.1 with JSON bodies over the daemon's Unix socket. Routes are versioned
//! under `/v1`; the daemon serves its OpenAPI document at `/v1/openapi.json` (checked
//! in as `docs/openapi.json`) and `docs/api.md` explains the contract. Errors are JSON
//! [`ApiError`] bodies with a message and, where one helps, a hint. Long operations
//! can stream their [`progress`]; interactive exec upgrades the connection to the
//! small framed protocol in [`stream`].

pub mod client;
pub mod progress;
pub mod snapshots;
pub mod stream;
pub mod types;

pub use client::{Client, ClientError};
pub use snapshots::*;
pub use types::*;

/// The API version prefix every route lives under.
pub const API_PREFIX: &str = "/v1";

/// `Upgrade:` token for the exec stream.
pub const EXEC_UPGRADE: &str = "banger-exec/1";

/// Request bodies larger than this are refused (`413`): no API call needs more, and an
/// exec's argv and environment travel in one.
pub const MAX_REQUEST_BODY: usize = 1 << 20;
