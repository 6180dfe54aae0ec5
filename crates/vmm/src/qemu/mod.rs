//! The QEMU driver.
//!
//! A VM is a `qemu-system-x86_64` in its own session that survives daemon restarts. Sandboxed
//! (the default, [`crate::sandbox`]), it is spawned detached and confined between fork and
//! exec, and [`QemuDriver::launch`] returns once its QMP monitor greets (`detached.rs`);
//! unsandboxed (only scripted tests), it daemonizes itself (`-daemonize -pidfile`) and its
//! launcher returns once the VM has initialised. Either way QEMU's own error message (its
//! stderr) is put into the error verbatim.
//!
//! Machine types (measured on our TCG hosts, Debian 6.1 cloud kernel, 1 vCPU, 512 MiB, medians
//! of 5 from launch to the first line of /init): `-M microvm` with the PVH ELF vmlinux 2.4 s,
//! `-M pc` with the bzImage 2.6–2.8 s. microvm is the default; `pc` is the fallback for kernels
//! without the PVH note, or on request.
//!
//! Here: the driver, its plan and the launch proper; its [`VmmDriver`] methods are in
//! `driver.rs`, snapshots in `snapshot.rs`.

mod argv;
mod config;
mod detached;
mod driver;
pub(crate) mod launch;
mod ram;
mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_system::{CommandRunner, RealRunner};

pub use crate::validate::opt_value;
pub use argv::{ArgvInput, VmPaths, render as render_argv};
pub use config::{MachinePreference, QemuConfig};
pub use snapshot::STATE_FILE;

use crate::driver::VmmDriver;
use crate::error::VmmError;
use crate::runtime::{MachineType, VmRuntime};
use crate::sandbox::cgroup::VmCgroup;
use crate::spec::{Accel, DriverKind, LaunchSpec};
use crate::virtiofs;

/// The QEMU driver: one per daemon, shared by all VM tasks (it is `Send + Sync`).
pub struct QemuDriver {
    config: QemuConfig,
    runner: Arc<dyn CommandRunner>,
    /// The sealed copies of snapshot RAM files restores map ([`ram`]).
    shared_ram: ram::SharedRam,
}

impl std::fmt::Debug for QemuDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What [`QemuDriver::plan`] decided for one launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuLaunchPlan {
    pub machine: MachineType,
    pub kernel: PathBuf,
    pub paths: VmPaths,
    /// Arguments after the program name.
    pub args: Vec<String>,
}

impl QemuDriver {
    /// A driver that runs QEMU directly.
    pub fn new(config: QemuConfig) -> Result<QemuDriver, VmmError> {
        QemuDriver::with_runner(config, Arc::new(RealRunner))
    }

    /// A driver that runs QEMU through `runner` (tests, or a privileged helper later).
    pub fn with_runner(
        config: QemuConfig,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<QemuDriver, VmmError> {
        let bad = |problem: &str| VmmError::InvalidConfig {
            driver: DriverKind::Qemu,
            problem: problem.to_owned(),
        };
        let microvm_possible = config.machine != MachinePreference::Pc;
        if config.accel == Accel::Tcg && microvm_possible && config.tsc_khz.is_none() {
            return Err(bad(
                "microvm under TCG needs the host TSC frequency (tsc_khz); probe it with \
                 host::tsc::tsc_khz_cached, or use machine = pc",
            ));
        }
        if config.tsc_khz == Some(0) {
            return Err(bad("tsc_khz must not be 0"));
        }
        Ok(QemuDriver {
            config,
            runner,
            shared_ram: ram::SharedRam::default(),
        })
    }

    pub fn config(&self) -> &QemuConfig {
        &self.config
    }

    /// Choose the machine type and kernel image and render the command line (QEMU opening
    /// its TAPs by name).
    pub fn plan(&self, spec: &LaunchSpec) -> Result<QemuLaunchPlan, VmmError> {
        self.plan_with_taps(spec, None)
    }

    /// [`QemuDriver::plan`], with the NICs' TAPs passed as the inherited descriptors
    /// `tap_fds` (see [`ArgvInput::tap_fds`]).
    pub fn plan_with_taps(
        &self,
        spec: &LaunchSpec,
        tap_fds: Option<&[i32]>,
    ) -> Result<QemuLaunchPlan, VmmError> {
        self.plan_with_fds(spec, tap_fds, None)
    }

    /// [`QemuDriver::plan_with_taps`], restoring the migration stream inherited at
    /// `incoming_fd` when there is one.
    pub fn plan_with_fds(
        &self,
        spec: &LaunchSpec,
        tap_fds: Option<&[i32]>,
        incoming_fd: Option<i32>,
    ) -> Result<QemuLaunchPlan, VmmError> {
        self.plan_restoring(spec, tap_fds, incoming_fd, None)
    }

    /// [`QemuDriver::plan_with_fds`], mapping the guest's RAM copy-on-write from
    /// `restore_ram` (see [`ArgvInput::restore_ram`]).
    fn plan_restoring(
        &self,
        spec: &LaunchSpec,
        tap_fds: Option<&[i32]>,
        incoming_fd: Option<i32>,
        restore_ram: Option<&Path>,
    ) -> Result<QemuLaunchPlan, VmmError> {
        let (machine, kernel) = self.choose_machine(spec)?;
        let paths = VmPaths::in_dir(&spec.vm_dir);
        let args = argv::render(&ArgvInput {
            spec,
            accel: self.config.accel,
            machine,
            kernel: &kernel,
            tsc_khz: self.config.tsc_khz,
            paths: &paths,
            seccomp: self.config.sandbox.seccomp(),
            daemonize: !self.config.sandbox.seccomp(),
            tap_fds,
            incoming_fd,
            restore_ram,
        })?;
        Ok(QemuLaunchPlan {
            machine,
            kernel,
            paths,
            args,
        })
    }

    /// The launch proper: `virtiofsd`s, then QEMU, both placed in `cgroup`.
    async fn launch_in(
        &self,
        spec: &LaunchSpec,
        plan: QemuLaunchPlan,
        fds: &[i32],
        cgroup: Option<&VmCgroup>,
        deferred_state: Option<&std::fs::File>,
    ) -> Result<VmRuntime, VmmError> {
        // Each share's virtiofsd listens before QEMU connects to it (and before the sandbox
        // gives the VM directory, its sockets included, to QEMU's uid).
        let file_server = match (spec.shares.is_empty(), &self.config.virtiofsd) {
            (true, _) => None,
            (false, None) => {
                return Err(VmmError::NoVirtiofsd {
                    vm_id: spec.vm_id.clone(),
                });
            }
            (false, Some(binary)) => {
                virtiofs::spawn::start(
                    binary,
                    &spec.vm_id,
                    &spec.vm_dir,
                    &spec.shares,
                    virtiofs::Owner::of_this_process(),
                    self.config.launch_timeout,
                    cgroup.map(|c| &c.placement),
                )
                .await?;
                Some(binary)
            }
        };
        let launched = launch::run(&self.config, &self.runner, spec, plan, fds, cgroup).await;
        if launched.is_err()
            && let Some(binary) = file_server
        {
            // Nothing will ever connect to them.
            virtiofs::spawn::reap(binary, &spec.vm_dir, &[], self.config.kill_grace).await;
        }
        let rt = match launched {
            // A stream QEMU cannot load may fail before QMP ever answers.
            Err(VmmError::QemuRefused { stderr, .. }) if spec.restore.is_some() => {
                return Err(VmmError::RestoreFailed {
                    vm_id: spec.vm_id.clone(),
                    state: spec
                        .restore
                        .as_ref()
                        .map(|f| f.state.clone())
                        .unwrap_or_default(),
                    reason: stderr,
                });
            }
            other => other?,
        };
        if let Some(files) = &spec.restore
            && let Err(e) = snapshot::load(self, &rt, files, deferred_state).await
        {
            if let Err(kill) = self.kill(&rt).await {
                tracing::warn!(vm = %rt.vm_id, error = %kill, "cannot stop QEMU after a failed restore");
            }
            return Err(e);
        }
        Ok(rt)
    }

    fn choose_machine(&self, spec: &LaunchSpec) -> Result<(MachineType, PathBuf), VmmError> {
        let pc = || {
            (
                MachineType::Pc,
                spec.bzimage.clone().unwrap_or_else(|| spec.kernel.clone()),
            )
        };
        match self.config.machine {
            MachinePreference::Microvm => Ok((MachineType::Microvm, spec.kernel.clone())),
            MachinePreference::Pc => Ok(pc()),
            MachinePreference::Auto if spec.kernel_pvh => {
                Ok((MachineType::Microvm, spec.kernel.clone()))
            }
            MachinePreference::Auto if spec.bzimage.is_some() => Ok(pc()),
            MachinePreference::Auto => Err(VmmError::InvalidSpec {
                vm_id: spec.vm_id.clone(),
                problem: format!(
                    "kernel {:?} has no PVH ELF note (CONFIG_PVH), so -M microvm cannot boot \
                     it, and no bzImage was given for -M pc",
                    spec.kernel
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pvh: bool, bzimage: Option<&str>) -> LaunchSpec {
        LaunchSpec {
            vm_id: "vm".into(),
            vm_dir: PathBuf::from("/vms/vm"),
            kernel: PathBuf::from("/img/vmlinux"),
            kernel_pvh: pvh,
            bzimage: bzimage.map(PathBuf::from),
            initrd: None,
            kernel_args: Vec::new(),
            drives: Vec::new(),
            nics: Vec::new(),
            user_net: None,
            vcpus: 1,
            memory_mib: 256,
            memory: Default::default(),
            restore: None,
            shares: Vec::new(),
            console_log: PathBuf::from("/vms/vm/console.log"),
        }
    }

    /// The machine follows the image's stored PVH fact; the kernel file is never read
    /// (none of these paths exist).
    #[test]
    fn auto_machine_follows_the_stored_pvh_fact() {
        let driver = QemuDriver::new(QemuConfig::new("qemu", Accel::Kvm, None)).unwrap();
        let plan = driver.plan(&spec(true, Some("/img/bzImage"))).unwrap();
        assert_eq!(plan.machine, MachineType::Microvm);
        assert_eq!(plan.kernel, PathBuf::from("/img/vmlinux"));
        let plan = driver.plan(&spec(false, Some("/img/bzImage"))).unwrap();
        assert_eq!(plan.machine, MachineType::Pc);
        assert_eq!(plan.kernel, PathBuf::from("/img/bzImage"));
        let err = driver.plan(&spec(false, None)).unwrap_err().to_string();
        assert!(err.contains("no PVH ELF note"), "{err}");
    }
}
