//! The crate's integration tests, one module per file beside this one, linked into one
//! test binary (a binary per file linked the crate and its dependencies again for each).
//! Run one file's tests with `cargo test -p banger-store --test store-tests FILE::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod crud;
mod disks;
mod intents;
mod leases;
mod open;
mod readonly;
mod shares;
mod snapshots;
mod standbys;
mod transitions;
mod vm_net;
mod warm;
