//! The crate's integration tests, one module per file beside this one, linked into one
//! test binary (a binary per file linked the crate and its dependencies again for each).
//! Run one file's tests with `cargo test -p banger --test banger-tests FILE::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod image_recipe;
mod memory;
mod ssh_config;
mod stdout_gone;
mod system_install;
mod version;
