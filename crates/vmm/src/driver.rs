//! The [`VmmDriver`] trait: what every VMM driver can do.
//!
//! The trait uses `-> impl Future + Send` methods (Rust 2024, no `async_trait`): each driver
//! writes plain `async fn`s and the daemon can still `tokio::spawn` the futures. Such a trait
//! is not object-safe, so the daemon holds [`crate::Driver`] (in `drivers.rs`), an enum with
//! one variant per driver that forwards every call.
//!
//! Liveness, waiting and the agent connection depend only on the [`VmRuntime`] record, not on
//! the driver, so the trait's defaults delegate to it; drivers override only what differs.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

use crate::error::VmmError;
use crate::process::ProcessIdentity;
use crate::runtime::VmRuntime;
use crate::spec::{DriverKind, KernelFormat, LaunchSpec, SnapshotFiles};

/// Result of [`VmmDriver::wait_exit`]. A VMM is not our child, so its exit status is unknown:
/// the guest's console log and the driver's logs tell what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    Exited,
    StillRunning,
}

/// Whether the guest's vCPUs run, as the VMM itself reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// The VMM runs but the guest was never started (Firecracker before `InstanceStart`).
    NotStarted,
    Running,
    Paused,
}

/// What every VMM driver can do.
pub trait VmmDriver {
    fn kind(&self) -> DriverKind;

    /// The kernel image format this driver boots best; images should provide it.
    fn kernel_format(&self) -> KernelFormat;

    /// Boot a VM. Returns once the VMM has initialised (control and agent sockets exist);
    /// the guest kernel is then still booting. The VMM process is not a child of the caller
    /// and keeps running if the caller exits.
    fn launch(&self, spec: &LaunchSpec)
    -> impl Future<Output = Result<VmRuntime, VmmError>> + Send;

    /// Ask the guest to power off (ACPI power button or equivalent); returns without waiting.
    /// A no-op when the VM has already exited.
    fn request_shutdown(&self, rt: &VmRuntime)
    -> impl Future<Output = Result<(), VmmError>> + Send;

    /// Stop the VM now: ask the VMM to quit, then SIGTERM, then SIGKILL, waiting after each.
    /// Returns once the process is gone; a no-op when it already is.
    fn kill(&self, rt: &VmRuntime) -> impl Future<Output = Result<(), VmmError>> + Send;

    /// Freeze the guest's vCPUs; the VMM process keeps running. A no-op when already paused.
    fn pause(&self, rt: &VmRuntime) -> impl Future<Output = Result<(), VmmError>> + Send;

    /// Let a paused guest run again. A no-op when it runs.
    fn resume(&self, rt: &VmRuntime) -> impl Future<Output = Result<(), VmmError>> + Send;

    /// Save the paused guest's device state and memory into new files in `dir` (an existing
    /// directory), complete and fsynced when this returns. The guest stays paused, its
    /// disks flushed: the caller may copy them before it resumes. Refused when the guest
    /// runs. A VMM launched with [`LaunchSpec::restore`] of these files continues it.
    fn save_snapshot(
        &self,
        rt: &VmRuntime,
        dir: &Path,
    ) -> impl Future<Output = Result<SnapshotFiles, VmmError>> + Send;

    /// Ask the VMM whether its guest runs, is paused, or was never started: what a restarted
    /// daemon needs to know about a VM it finds again.
    fn run_state(&self, rt: &VmRuntime) -> impl Future<Output = Result<RunState, VmmError>> + Send;

    /// Open the host end of the guest agent's channel.
    fn connect_agent(
        &self,
        rt: &VmRuntime,
    ) -> impl Future<Output = Result<UnixStream, VmmError>> + Send {
        crate::agent::connect_agent(rt)
    }

    /// Whether the VMM process of `rt` still runs: same boot, same pid, same start time.
    fn is_alive(&self, rt: &VmRuntime) -> bool {
        rt.is_alive()
    }

    /// What marks a process as this driver's VMM using `vm_dir` (its binaries, its jails'
    /// roots), for finding one on the host rather than in any record: a VMM (or its
    /// launcher) started by a daemon that died before storing its pid. A caller asking
    /// several drivers looks for all their marks in one pass ([`crate::process::find_marked`]).
    fn stray_marks(&self, vm_dir: &Path) -> crate::process::Marks;

    /// Processes of this driver's VMM that use `vm_dir` ([`VmmDriver::stray_marks`]).
    fn processes_using(&self, vm_dir: &Path) -> std::io::Result<Vec<ProcessIdentity>> {
        crate::process::find_marked(&self.stray_marks(vm_dir), vm_dir)
    }

    /// Wait up to `timeout` for the VMM process to exit.
    fn wait_exit(
        &self,
        rt: &VmRuntime,
        timeout: Duration,
    ) -> impl Future<Output = Result<WaitOutcome, VmmError>> + Send {
        rt.wait_exit(timeout)
    }
}
