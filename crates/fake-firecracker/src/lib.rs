//! A fake Firecracker for banger's tests. **A test double only: nothing in the product may
//! run it.**
//!
//! It speaks Firecracker's real API over its real transport with the real status codes and
//! `fault_message` bodies, and enforces every rule of `shared/notes/firecracker-api.md`
//! that can be checked without KVM: per-release unknown/required fields, pre-boot-only
//! resources, InstanceStart's preconditions, `GET /` states, pause/resume, Ctrl-Alt-Del,
//! snapshot shapes and preconditions, a vsock `uds_path` that must not pre-exist, and the
//! hybrid-vsock handshake. Its "guest" is a real `banger-agent` run on the host, so a driver
//! under test really execs commands through it.
//!
//! Personality: [`personality::VERSION_ENV`] (`1.5.0`, `1.13.0`, `1.14.1`; default 1.14.1)
//! picks the release impersonated, down to the bytes of `--version`.

pub mod api;
pub mod cli;
pub mod guest;
pub mod http;
pub mod personality;
pub mod server;
pub mod vmm;

pub use cli::run;
