//! The crate's integration tests, one module per file beside this one, linked into one
//! test binary (a binary per file linked the crate and its dependencies again for each).
//! Run one file's tests with `cargo test -p banger-fake-firecracker --test fake-firecracker-tests FILE::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/jail_lab.rs"]
mod jail_lab;
mod support;

mod api_transport;
mod configuration;
mod driver;
mod helper_jail;
mod helper_jail_seal;
mod jailed_driver;
mod jailer;
mod lifecycle;
mod snapshot_load;
