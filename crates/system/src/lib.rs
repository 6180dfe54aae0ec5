//! Host facts and the seam for external commands.
//!
//! Everything that asks the host a question (run a tool, read `/proc`, read
//! `/etc/os-release`) goes through this crate so unit tests can substitute answers,
//! while integration tests run the real thing.

pub mod fsperm;
pub mod host;
pub mod osrelease;
pub mod preflight;
pub mod progress;
pub mod runner;
pub mod tail;

pub use host::{HostResources, read_host_resources};
pub use runner::{CommandOutput, CommandRunner, RealRunner, retry_while_busy};

/// An error and its causes on one line, `outer: cause: root cause` — for reporters that
/// print an error once (each message names only its own step).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
