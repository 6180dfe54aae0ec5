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
//! Beyond the notes, from Firecracker's source (`guest::serial`, `api::observability`): the
//! serial's output is opened and written as Firecracker does (`serial_out_path` write-only,
//! created, non-blocking, no append; stdout made non-blocking; a lost byte is a log line),
//! the logger and metrics files are opened read-write and non-blocking, and the guest's
//! `ttyS0` (a pipe in its directory) lets a test flood the console at a UART's pace.
//! Not verified against the real binaries (no KVM for a stock guest here): the exact
//! `fault_message` of an InstanceStart whose `serial_out_path` cannot be opened, and the
//! UART's real throughput under Firecracker (~1 MiB/s is assumed from QEMU's measurement).
//!
//! Personality: [`personality::VERSION_ENV`] (`1.5.0`, `1.13.0`, `1.14.1`; default 1.14.1)
//! picks the release impersonated, down to the bytes of `--version`.

pub mod api;
pub mod cli;
pub mod guest;
pub mod http;
pub mod jailer;
pub mod personality;
pub mod server;
pub mod vmm;

pub use cli::run;
