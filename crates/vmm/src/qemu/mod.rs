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

mod argv;
mod config;
mod detached;
pub(crate) mod launch;
mod ram;
mod snapshot;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_system::{CommandRunner, RealRunner};

pub use crate::validate::opt_value;
pub use argv::{ArgvInput, VmPaths, render as render_argv};
pub use config::{MachinePreference, QemuConfig};
pub use snapshot::STATE_FILE;

use crate::driver::{RunState, VmmDriver, WaitOutcome};
use crate::error::VmmError;
use crate::process;
use crate::qmp::QmpClient;
use crate::runtime::{MachineType, VmRuntime};
use crate::sandbox::SandboxPolicy;
use crate::sandbox::cgroup::VmCgroup;
use crate::spec::{Accel, DriverKind, KernelFormat, LaunchSpec};
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

    /// A QMP connection to a running VM (for snapshot work: stop, migrate, cont, …).
    pub async fn qmp(&self, rt: &VmRuntime) -> Result<QmpClient, VmmError> {
        self.check_driver(rt)?;
        QmpClient::connect(&rt.control_socket, self.config.qmp_timeout)
            .await
            .map_err(|source| VmmError::Qmp {
                vm_id: rt.vm_id.clone(),
                socket: rt.control_socket.clone(),
                source,
            })
    }

    fn check_driver(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        if rt.driver == DriverKind::Qemu {
            Ok(())
        } else {
            Err(VmmError::WrongDriver {
                vm_id: rt.vm_id.clone(),
                expected: DriverKind::Qemu,
                found: rt.driver,
            })
        }
    }

    fn qmp_error(rt: &VmRuntime, source: crate::qmp::QmpError) -> VmmError {
        VmmError::Qmp {
            vm_id: rt.vm_id.clone(),
            socket: rt.control_socket.clone(),
            source,
        }
    }

    /// Best effort: ask QEMU to quit over QMP. Errors only matter for logging, signals follow.
    async fn try_quit(&self, rt: &VmRuntime) {
        let result = async {
            let mut qmp = self.qmp(rt).await?;
            qmp.quit().await.map_err(|e| Self::qmp_error(rt, e))
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(vm = %rt.vm_id, error = %e, "QMP quit failed; falling back to signals");
        }
    }

    /// Remove what QEMU leaves behind when it is killed (it cleans up after itself on `quit`).
    /// Skipped when the pid file names another live process: a newer VMM owns the directory.
    fn remove_leftovers(rt: &VmRuntime) {
        let paths = VmPaths::in_dir(&rt.vm_dir);
        let newer_owner = launch::read_pid_file(&paths.pid_file)
            .is_ok_and(|pid| pid != rt.pid && matches!(process::read_stat(pid), Ok(Some(_))));
        if newer_owner {
            return;
        }
        let agent_socket = match &rt.agent {
            crate::runtime::AgentEndpoint::VirtioSerial { socket } => Some(socket.clone()),
            crate::runtime::AgentEndpoint::HybridVsock { .. } => None,
        };
        for path in [
            Some(rt.control_socket.clone()),
            agent_socket,
            rt.console.as_ref().map(|c| c.path().to_path_buf()),
            Some(paths.pid_file),
        ]
        .into_iter()
        .flatten()
        {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover file");
                }
                _ => {}
            }
        }
    }
}

impl VmmDriver for QemuDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Qemu
    }

    fn kernel_format(&self) -> KernelFormat {
        match self.config.machine {
            MachinePreference::Auto | MachinePreference::Microvm => KernelFormat::ElfVmlinux,
            MachinePreference::Pc => KernelFormat::BzImage,
        }
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<VmRuntime, VmmError> {
        // A sandboxed QEMU cannot open its TAPs (no CAP_NET_ADMIN, a uid that is not the
        // TAPs' owner, no /dev/net/tun in its jail): the daemon opens them and QEMU
        // inherits the descriptors, as libvirt does. They close here once QEMU has them.
        let taps = if self.config.sandbox.seccomp() {
            launch::open_taps(spec)?
        } else {
            Vec::new()
        };
        let mut fds: Vec<i32> = taps.iter().map(AsRawFd::as_raw_fd).collect();
        let tap_fds = (!taps.is_empty()).then(|| fds.clone());
        // The stream is inherited like the TAPs: the jail need not see the snapshot.
        let state = spec
            .restore
            .as_ref()
            .map(|files| snapshot::open_state(spec, files))
            .transpose()?;
        // A snapshot with a RAM file: QEMU maps the RAM copy-on-write and is handed the
        // device state over QMP once it is up (`x-ignore-shared` must be set first). A
        // sandboxed QEMU maps the sealed shared copy (`ram.rs`), inherited; an unsandboxed
        // one (scripted tests) runs as the daemon's user and maps the file itself.
        let ram_file = spec.restore.as_ref().and_then(|f| f.memory.as_deref());
        let sealed = match ram_file {
            Some(path) if self.config.sandbox.seccomp() => Some(self.shared_ram.sealed(path)?),
            _ => None,
        };
        fds.extend(sealed.as_ref().map(|fd| fd.as_raw_fd()));
        let ram_path = match (&sealed, ram_file) {
            (Some(fd), _) => Some(PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))),
            (None, path) => path.map(Path::to_path_buf),
        };
        let (incoming_fd, deferred) = match ram_path {
            Some(_) => (None, state.as_ref()),
            None => (state.as_ref().map(AsRawFd::as_raw_fd), None),
        };
        fds.extend(incoming_fd);
        let plan =
            self.plan_restoring(spec, tap_fds.as_deref(), incoming_fd, ram_path.as_deref())?;
        // Only a sandboxed QEMU can be placed: an unsandboxed one daemonizes itself.
        let cgroup = match self.config.sandbox {
            SandboxPolicy::Off => None,
            _ => {
                self.config
                    .cgroups
                    .make(
                        &spec.vm_id,
                        spec.memory_mib,
                        self.config.accel == Accel::Tcg,
                    )
                    .await?
            }
        };
        let launched = self
            .launch_in(spec, plan, &fds, cgroup.as_ref(), deferred)
            .await;
        if launched.is_err() && cgroup.is_some() {
            self.config.cgroups.discard(&spec.vm_id).await;
        }
        launched
    }
    async fn save_snapshot(
        &self,
        rt: &VmRuntime,
        dir: &std::path::Path,
    ) -> Result<crate::spec::SnapshotFiles, VmmError> {
        self.check_driver(rt)?;
        snapshot::save(self, rt, dir).await
    }

    async fn request_shutdown(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.check_driver(rt)?;
        if !rt.is_alive() {
            return Ok(());
        }
        let mut qmp = self.qmp(rt).await?;
        qmp.execute("system_powerdown", None)
            .await
            .map_err(|e| Self::qmp_error(rt, e))?;
        Ok(())
    }

    fn processes_using(
        &self,
        vm_dir: &std::path::Path,
    ) -> std::io::Result<Vec<process::ProcessIdentity>> {
        // Only QEMU: a VM's virtiofsd processes are not strays while its QEMU lives (a
        // restarted daemon adopting the VM must keep them); release reaps them with it.
        process::find_using_dir(&self.config.binary, vm_dir)
    }

    /// QMP `stop`: the vCPUs halt, QEMU keeps serving.
    async fn pause(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.check_driver(rt)?;
        let mut qmp = self.qmp(rt).await?;
        qmp.execute("stop", None)
            .await
            .map_err(|e| Self::qmp_error(rt, e))?;
        Ok(())
    }

    /// QMP `cont`.
    async fn resume(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.check_driver(rt)?;
        let mut qmp = self.qmp(rt).await?;
        qmp.execute("cont", None)
            .await
            .map_err(|e| Self::qmp_error(rt, e))?;
        Ok(())
    }

    /// `query-status`: `paused` after `stop`; `prelaunch` before the guest first ran; any
    /// other status (running, shutdown, …) means the guest is not held by banger.
    async fn run_state(&self, rt: &VmRuntime) -> Result<RunState, VmmError> {
        self.check_driver(rt)?;
        let mut qmp = self.qmp(rt).await?;
        let status = qmp
            .query_status()
            .await
            .map_err(|e| Self::qmp_error(rt, e))?;
        Ok(match status.as_str() {
            // After a snapshot was saved the guest stays stopped in `postmigrate`.
            "paused" | "postmigrate" => RunState::Paused,
            "prelaunch" => RunState::NotStarted,
            _ => RunState::Running,
        })
    }

    async fn kill(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.check_driver(rt)?;
        let grace = self.config.kill_grace;
        if rt.is_alive() {
            self.try_quit(rt).await;
            let mut gone = rt.wait_exit(grace).await? == WaitOutcome::Exited;
            for signal in [libc::SIGTERM, libc::SIGKILL] {
                if gone {
                    break;
                }
                tracing::info!(vm = %rt.vm_id, pid = rt.pid, signal, "signalling VMM process");
                rt.signal(signal)?;
                gone = rt.wait_exit(grace).await? == WaitOutcome::Exited;
            }
            if !gone {
                return Err(VmmError::Unkillable {
                    vm_id: rt.vm_id.clone(),
                    pid: rt.pid,
                    waited: grace * 3,
                });
            }
        }
        Self::remove_leftovers(rt);
        // A virtiofsd quits when QEMU disconnects; one that has not yet is stopped here.
        if let Some(binary) = &self.config.virtiofsd {
            virtiofs::spawn::reap(binary, &rt.vm_dir, &[], grace).await;
        }
        Ok(())
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
