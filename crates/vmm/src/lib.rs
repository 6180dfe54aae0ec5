//! banger's VMM drivers.
//!
//! * [`driver`] — the [`VmmDriver`] trait every driver implements; [`drivers`] — the
//!   [`Driver`] enum the daemon holds (one variant per driver, so no boxed futures are needed).
//! * [`spec`] — what the daemon asks for ([`LaunchSpec`]); [`runtime`] — what it stores to find
//!   a running VM again after a restart ([`VmRuntime`]).
//! * [`host`] — host probing shared with `banger doctor`: KVM usability, the TSC frequency.
//! * [`select`] — which driver and accelerator this host gets, and why.
//! * [`qemu`] — the QEMU driver, with its QMP client in [`qmp`]; [`firecracker`] — the
//!   Firecracker driver (its API client, the boot plan per release, detached launch).
//! * [`process`] — pid-reuse-safe liveness, waiting for and signalling VMM processes that are
//!   not our children; [`agent`] — connecting to the guest agent's channel; [`console`] —
//!   capturing the serial console into a size-capped log.
//! * [`validate`] — checks on a [`LaunchSpec`]'s values shared by every driver.
//! * [`sandbox`] — what a VMM process may reach: seccomp, its own uid, a jail; its posture.
//! * [`virtiofs`] — host directories shared with a guest: one `virtiofsd` per share.
//! * [`testkit`] — a tiny bootable PVH kernel so tests can run real QEMU without a real image;
//!   `fake` (cargo feature `testkit`) — a driver whose VMM is a real process serving the real
//!   agent, so daemon tests run every lifecycle path without QEMU.

pub mod agent;
pub mod console;
pub mod driver;
pub mod drivers;
pub mod error;
#[cfg(feature = "testkit")]
pub mod fake;
pub mod firecracker;
mod fsutil;
pub mod host;
pub mod process;
pub mod qemu;
pub mod qmp;
pub mod runtime;
pub mod sandbox;
pub mod select;
pub mod spec;
pub mod testkit;
pub mod validate;
pub mod virtiofs;

pub use driver::{RunState, VmmDriver, WaitOutcome};
pub use drivers::Driver;
pub use error::VmmError;
pub use firecracker::{FirecrackerConfig, FirecrackerDriver};
pub use host::kvm::{KvmStatus, probe_kvm};
pub use host::tsc::{TscFrequency, TscSource, tsc_khz, tsc_khz_cached};
pub use qemu::{MachinePreference, QemuConfig, QemuDriver};
pub use runtime::{AgentEndpoint, ConsoleSource, MachineType, VmRuntime};
pub use select::{
    FirecrackerFound, HostVmms, SelectError, Selection, VmmPreference, select_driver,
};
pub use spec::{
    Accel, DriveFormat, DriveSpec, DriverKind, GuestMemory, HostForward, KernelFormat, LaunchSpec,
    NicSpec, RAM_FILE, SnapshotFiles, UserNetSpec,
};

/// Result alias for this crate.
pub type Result<T, E = VmmError> = std::result::Result<T, E>;
