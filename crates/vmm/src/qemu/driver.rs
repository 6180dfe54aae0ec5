//! The QEMU driver as a [`VmmDriver`]: launch, snapshot, shutdown, pause and resume, state
//! and kill, and the QMP helpers they share with the snapshot code.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{MachinePreference, QemuDriver, VmPaths, launch, snapshot};
use crate::driver::{RunState, VmmDriver, WaitOutcome};
use crate::error::VmmError;
use crate::process;
use crate::qmp::QmpClient;
use crate::runtime::VmRuntime;
use crate::sandbox::SandboxPolicy;
use crate::spec::{Accel, DriverKind, KernelFormat, LaunchSpec};
use crate::virtiofs;

impl QemuDriver {
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

    pub(super) fn qmp_error(rt: &VmRuntime, source: crate::qmp::QmpError) -> VmmError {
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

    fn stray_marks(&self, _vm_dir: &std::path::Path) -> process::Marks {
        // Only QEMU: a VM's virtiofsd processes are not strays while its QEMU lives (a
        // restarted daemon adopting the VM must keep them); release reaps them with it.
        process::Marks {
            binaries: vec![self.config.binary.clone()],
            roots: Vec::new(),
        }
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
