//! The benchmarks `make bench` prints (`src/bin/banger-bench.rs` runs them).

pub mod disks;
pub mod guests;
pub mod net;
pub mod oci;
pub mod sandbox;
pub mod shares;
pub mod snapshots;
pub mod warm;
