//! The daemon's HTTP API: [`router`] (routes only), [`body`] (JSON in and out, error
//! bodies, limits), [`operation`] (detached operations and their progress streams),
//! and one file per resource whose handlers turn a request into a call of the
//! service (`crate::vms`, `crate::images`) without touching the transport.

mod body;
mod exec;
mod images;
mod logs;
pub mod openapi;
mod operation;
mod pause;
mod progress_stream;
mod router;
mod shares;
mod snapshots;
mod system;
mod vms;

#[cfg(test)]
mod tests;

pub use router::router;
