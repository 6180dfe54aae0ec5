//! The benchmarks `make bench` prints (`src/bin/banger-bench.rs` runs them).

pub mod disks;
pub mod guests;
pub mod net;
pub mod oci;
pub mod sandbox;
pub mod shares;
pub mod snapshots;
pub mod warm;

use anyhow::bail;

/// A bench's number of samples: `default`, or the value of the environment variable `var`
/// when it is set (1 to 50; anything else is refused, naming the variable).
pub fn samples_from_env(var: &str, default: usize) -> anyhow::Result<usize> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(default);
    };
    match value.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n @ 1..=50) => Ok(n),
        _ => bail!(
            "{var}={}: expected a number of samples from 1 to 50 (unset it for the default, {default})",
            value.to_string_lossy()
        ),
    }
}
