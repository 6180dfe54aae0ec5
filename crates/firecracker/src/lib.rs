//! Firecracker support for banger.
//!
//! Today this crate pins which Firecracker releases banger accepts and knows how to
//! read `firecracker --version`. The Firecracker VMM driver will live here too.

pub mod version;

pub use version::{
    KNOWN_TESTED, MIN_SUPPORTED, SemVer, VersionError, must_parse, parse_version_output,
    query_version,
};
