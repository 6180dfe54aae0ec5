//! [`Driver`]: the enum the daemon holds, one variant per VMM driver, forwarding every call
//! of [`VmmDriver`] (whose `impl Future` methods make `dyn VmmDriver` impossible).

use std::time::Duration;

use tokio::net::UnixStream;

use crate::driver::{RunState, VmmDriver, WaitOutcome};
use crate::error::VmmError;
#[cfg(feature = "testkit")]
use crate::fake::FakeDriver;
use crate::firecracker::FirecrackerDriver;
use crate::qemu::QemuDriver;
use crate::runtime::VmRuntime;
use crate::spec::{DriverKind, KernelFormat, LaunchSpec, SnapshotFiles};

/// The driver chosen for this host; forwards to the variant.
#[derive(Debug)]
pub enum Driver {
    Qemu(QemuDriver),
    Firecracker(FirecrackerDriver),
    /// The test driver (cargo feature `testkit`): a real process, no QEMU.
    #[cfg(feature = "testkit")]
    Fake(FakeDriver),
}

impl VmmDriver for Driver {
    fn kind(&self) -> DriverKind {
        match self {
            Driver::Qemu(d) => d.kind(),
            Driver::Firecracker(d) => d.kind(),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.kind(),
        }
    }

    fn kernel_format(&self) -> KernelFormat {
        match self {
            Driver::Qemu(d) => d.kernel_format(),
            Driver::Firecracker(d) => d.kernel_format(),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.kernel_format(),
        }
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<VmRuntime, VmmError> {
        match self {
            Driver::Qemu(d) => d.launch(spec).await,
            Driver::Firecracker(d) => d.launch(spec).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.launch(spec).await,
        }
    }

    async fn request_shutdown(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        match self {
            Driver::Qemu(d) => d.request_shutdown(rt).await,
            Driver::Firecracker(d) => d.request_shutdown(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.request_shutdown(rt).await,
        }
    }

    async fn kill(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        match self {
            Driver::Qemu(d) => d.kill(rt).await,
            Driver::Firecracker(d) => d.kill(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.kill(rt).await,
        }
    }

    async fn pause(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        match self {
            Driver::Qemu(d) => d.pause(rt).await,
            Driver::Firecracker(d) => d.pause(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.pause(rt).await,
        }
    }

    async fn resume(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        match self {
            Driver::Qemu(d) => d.resume(rt).await,
            Driver::Firecracker(d) => d.resume(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.resume(rt).await,
        }
    }

    async fn save_snapshot(
        &self,
        rt: &VmRuntime,
        dir: &std::path::Path,
    ) -> Result<SnapshotFiles, VmmError> {
        match self {
            Driver::Qemu(d) => d.save_snapshot(rt, dir).await,
            Driver::Firecracker(d) => d.save_snapshot(rt, dir).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.save_snapshot(rt, dir).await,
        }
    }

    async fn run_state(&self, rt: &VmRuntime) -> Result<RunState, VmmError> {
        match self {
            Driver::Qemu(d) => d.run_state(rt).await,
            Driver::Firecracker(d) => d.run_state(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.run_state(rt).await,
        }
    }

    async fn connect_agent(&self, rt: &VmRuntime) -> Result<UnixStream, VmmError> {
        match self {
            Driver::Qemu(d) => d.connect_agent(rt).await,
            Driver::Firecracker(d) => d.connect_agent(rt).await,
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.connect_agent(rt).await,
        }
    }

    fn is_alive(&self, rt: &VmRuntime) -> bool {
        match self {
            Driver::Qemu(d) => d.is_alive(rt),
            Driver::Firecracker(d) => d.is_alive(rt),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.is_alive(rt),
        }
    }

    fn stray_marks(&self, vm_dir: &std::path::Path) -> crate::process::Marks {
        match self {
            Driver::Qemu(d) => d.stray_marks(vm_dir),
            Driver::Firecracker(d) => d.stray_marks(vm_dir),
            #[cfg(feature = "testkit")]
            Driver::Fake(d) => d.stray_marks(vm_dir),
        }
    }

    async fn wait_exit(&self, rt: &VmRuntime, timeout: Duration) -> Result<WaitOutcome, VmmError> {
        match self {
            Driver::Qemu(d) => d.wait_exit(rt, timeout).await,
            Driver::Firecracker(d) => d.wait_exit(rt, timeout).await,
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
            assert_send(&driver.pause(rt));
            assert_send(&driver.resume(rt));
            assert_send(&driver.run_state(rt));
            assert_send(&driver.save_snapshot(rt, std::path::Path::new("/")));
            assert_send(&driver.connect_agent(rt));
            assert_send(&driver.wait_exit(rt, Duration::from_secs(1)));
        }
        let _ = futures;
    }
}
