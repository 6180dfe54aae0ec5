//! The crate's integration tests, one module per file beside this one, linked into one
//! test binary (a binary per file linked the crate and its dependencies again for each).
//! Run one file's tests with `cargo test -p banger-doctor --test doctor-tests FILE::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod defaults;
mod firecracker;
mod image_recipes;
mod network;
mod network_netns;
mod real_host;
mod runtime;
mod security;
mod store;
mod vmm;
