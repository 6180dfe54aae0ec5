//! The crate's integration tests, one module per file beside this one, linked into one
//! test binary (a binary per file linked the crate and its dependencies again for each).
//! Run one file's tests with `cargo test -p banger-agent --test agent-tests FILE::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod connection;
mod exec;
mod flow;
