//! The [`VmmDriver`] trait and the [`Driver`] enum the daemon holds.
//!
//! The trait uses `-> impl Future + Send` methods (Rust 2024, no `async_trait`): each driver
//! writes plain `async fn`s and the daemon can still `tokio::spawn` the futures. Such a trait
//! is not object-safe, so instead of `Box<dyn VmmDriver>` the daemon holds [`Driver`], an enum
//! with one variant per driver that forwards every call. Adding Firecracker means adding a
//! variant; callers do not change.
//!
//! Liveness, waiting and the agent connection depend only on the [`VmRuntime`] record, not on
//! the driver, so the trait provides them; drivers override only what differs.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

use crate::error::VmmError;
#[cfg(feature = "testkit")]
use crate::fake::FakeDriver;
use crate::process::{self, ProcessIdentity};
use crate::qemu::QemuDriver;
use crate::runtime::VmRuntime;
use crate::spec::{DriverKind, KernelFormat, LaunchSpec};

/// Result of [`VmmDriver::wait_exit`]. A VMM is not our child, so its exit status is unknown:
/// the guest's console log and the driver's logs tell what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    Exited,
    StillRunning,
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

    /// Open the host end of the guest agent's channel.
    fn connect_agent(
        &self,
        rt: &VmRuntime,
    ) -> impl Future<Output = Result<UnixStream, VmmError>> + Send {
        crate::agent::connect_agent(rt)
    }

    /// Whether the VMM process of `rt` still runs: same boot, same pid, same start time.
    fn is_alive(&self, rt: &VmRuntime) -> bool {
        runtime_is_alive(rt)
    }

    /// Processes of this driver's VMM that use `vm_dir`, found on the host rather than in any
    /// record: a VMM (or its launcher) started by a daemon that died before storing its pid.
    fn processes_using(&self, vm_dir: &Path) -> std::io::Result<Vec<ProcessIdentity>>;

    /// Wait up to `timeout` for the VMM process to exit.
    fn wait_exit(
        &self,
        rt: &VmRuntime,
        timeout: Duration,
    ) -> impl Future<Output = Result<WaitOutcome, VmmError>> + Send {
        runtime_wait_exit(rt, timeout)
    }
}

/// The process identity stored in a runtime record.
pub(crate) fn identity(rt: &VmRuntime) -> ProcessIdentity {
    ProcessIdentity {
        pid: rt.pid,
        start_time: rt.pid_start_time,
    }
}

/// A record from an earlier boot of the host names no process of this boot.
fn same_boot(rt: &VmRuntime) -> bool {
    process::boot_id().is_ok_and(|id| id == rt.boot_id)
}

pub(crate) fn runtime_is_alive(rt: &VmRuntime) -> bool {
    same_boot(rt) && process::is_running(identity(rt))
}

pub(crate) async fn runtime_wait_exit(
    rt: &VmRuntime,
    timeout: Duration,
) -> Result<WaitOutcome, VmmError> {
    if !same_boot(rt) {
        return Ok(WaitOutcome::Exited);
    }
    let exited = process::wait_exit(identity(rt), timeout)
        .await
        .map_err(|source| VmmError::io("watch VMM process", format!("/proc/{}", rt.pid), source))?;
    Ok(if exited {
        WaitOutcome::Exited
    } else {
        WaitOutcome::StillRunning
    })
}

/// The driver chosen for this host; forwards to the variant.
#[derive(Debug)]
pub enum Driver {
    Qemu(QemuDriver),
    /// The test driver (cargo feature `testkit`): a real process, no QEMU.
    #[cfg(feature = "testkit")]
    Fake(FakeDriver),
}

impl VmmDriver for Driver {
    fn kind(&self) -> DriverKind {
        match self {
            Driver::Qemu(d) => d.kind(),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.kind(),
        }
    }

    fn kernel_format(&self) -> KernelFormat {
        match self {
            Driver::Qemu(d) => d.kernel_format(),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.kernel_format(),
        }
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<VmRuntime, VmmError> {
        match self {
            Driver::Qemu(d) => d.launch(spec).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.launch(spec).await,
        }
    }

    async fn request_shutdown(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        match self {
            Driver::Qemu(d) => d.request_shutdown(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.request_shutdown(rt).await,
        }
    }

    async fn kill(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        match self {
            Driver::Qemu(d) => d.kill(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.kill(rt).await,
        }
    }

    async fn connect_agent(&self, rt: &VmRuntime) -> Result<UnixStream, VmmError> {
        match self {
            Driver::Qemu(d) => d.connect_agent(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.connect_agent(rt).await,
        }
    }

    fn is_alive(&self, rt: &VmRuntime) -> bool {
        match self {
            Driver::Qemu(d) => d.is_alive(rt),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.is_alive(rt),
        }
    }

    fn processes_using(&self, vm_dir: &Path) -> std::io::Result<Vec<ProcessIdentity>> {
        match self {
            Driver::Qemu(d) => d.processes_using(vm_dir),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.processes_using(vm_dir),
        }
    }

    async fn wait_exit(&self, rt: &VmRuntime, timeout: Duration) -> Result<WaitOutcome, VmmError> {
        match self {
            Driver::Qemu(d) => d.wait_exit(rt, timeout).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.wait_exit(rt, timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    /// The daemon shares one driver between tasks and spawns its futures: both must be Send.
    #[test]
    fn driver_and_its_futures_can_cross_threads() {
        assert_send_sync::<Driver>();
        fn futures(driver: &Driver, spec: &LaunchSpec, rt: &VmRuntime) {
            assert_send(&driver.launch(spec));
            assert_send(&driver.request_shutdown(rt));
            assert_send(&driver.kill(rt));
            assert_send(&driver.connect_agent(rt));
            assert_send(&driver.wait_exit(rt, Duration::from_secs(1)));
        }
        let _ = futures;
    }
}
