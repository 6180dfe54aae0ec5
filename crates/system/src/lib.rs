//! Host facts and the seam for external commands.
//!
//! Everything that asks the host a question (run a tool, read `/proc`, read
//! `/etc/os-release`) goes through this crate so unit tests can substitute answers,
//! while integration tests run the real thing.

pub mod cgroup;
pub mod errors;
pub mod fsperm;
pub mod host;
pub mod notify;
pub mod osrelease;
pub mod preflight;
pub mod procfs;
pub mod progress;
pub mod random;
pub mod rotate;
pub mod runner;
pub mod tail;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;

pub use errors::{error_chain, is_storage_full};
pub use host::{HostResources, read_host_resources};
pub use runner::{CommandOutput, CommandRunner, RealRunner, retry_while_busy};
