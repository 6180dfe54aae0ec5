//! Firecracker facts every part of banger shares: which releases banger accepts and how
//! to read `firecracker --version`; and [`install`], which puts an official release on the
//! host (`sudo banger firecracker install`).
//!
//! A leaf crate: `banger-vmm` (whose `firecracker/` module is the driver) and
//! `banger-doctor` both use it, so the version window has one owner.

pub mod install;
pub mod version;
pub mod window;

pub use version::{
    KNOWN_TESTED, MIN_SUPPORTED, SemVer, VersionError, must_parse, parse_version_output,
    query_version,
};
pub use window::{INSTALL_COMMAND, Support, TooOld, require_supported, support};
