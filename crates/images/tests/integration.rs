//! The crate's integration tests, one module per file beside this one, linked into one
//! test binary (a binary per file linked the crate and its dependencies again for each).
//! Run one file's tests with `cargo test -p banger-images --test images-tests FILE::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/ext4_listing.rs"]
mod ext4_listing;
mod support;

mod build_minimal;
mod bzimage;
mod catalog;
mod cpio;
mod deb;
mod debian_fetch;
mod http;
mod import_kernel;
mod incremental_ext4;
mod modinfo;
mod oci_apply;
mod pull;
mod qcow2_overlay;
mod recipe_revision;
mod unprivileged_owners;
mod vmdisk;
