//! Fuzz targets: each takes arbitrary bytes and must never panic, hang or grow without
//! bound, whatever the bytes. They are plain functions so that they run three ways:
//!
//! * coverage-guided with cargo-fuzz (`fuzz/`, nightly): `make fuzz`;
//! * without nightly, under a seeded mutation loop over the corpora (`banger-fuzz-stable`,
//!   which `make fuzz` falls back to);
//! * over the checked-in corpora (`fuzz/corpus/<target>/`) as a regression test in
//!   `make test` (`tests/corpora.rs`).
//!
//! What they cover, by trust boundary:
//!
//! | target | input from | code |
//! |---|---|---|
//! | `agent_stream` | a guest | the frame decoder and message parser, fed in arbitrary pieces |
//! | `agent_host` | a guest | the host's whole agent connection: handshake, routes, budgets, policing |
//! | `api_request` | a local client | the API's request bodies and the exec stream's frames |
//! | `config` | the owner's `config.toml` | config parsing |
//! | `catalog` | the image catalog | catalog parsing |
//! | `deb` | the Debian archive | `.deb` (ar, tar, decompression) and deb822 index parsing |
//! | `oci_layer` | a registry | applying an OCI layer's tar stream: nothing escapes the tree |

pub mod mutate;
pub mod seeds;
mod targets;

pub use targets::{agent_host, agent_stream, api_request, catalog, config, deb, oci_layer};

/// A target: arbitrary bytes in, a panic on any violated property.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: [(&str, Target); 7] = [
    ("agent_stream", agent_stream),
    ("agent_host", agent_host),
    ("api_request", api_request),
    ("config", config),
    ("catalog", catalog),
    ("deb", deb),
    ("oci_layer", oci_layer),
];
