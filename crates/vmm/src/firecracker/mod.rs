//! The Firecracker driver.
//!
//! A VM is one `firecracker --api-sock <vm dir>/firecracker.sock` process, started detached
//! (its own session, stdio to files) so it outlives the daemon like a daemonized QEMU, and
//! configured through its HTTP API as `shared/notes/firecracker-api.md` prescribes:
//! [`payloads`] renders the boot sequence, [`api`] talks to the socket, [`launch`] spawns,
//! records and drives it. The guest agent is reached over hybrid vsock
//! ([`crate::agent::hybrid_vsock_connect`]).
//!
//! Stopping is the daemon's chain (agent poweroff, then [`VmmDriver::request_shutdown`] =
//! `SendCtrlAltDel`, then [`VmmDriver::kill`] = SIGTERM, SIGKILL); pause and resume are
//! `PATCH /vm`; a restarted daemon finds a VM again through its pid, start time and
//! `GET /`.

pub mod api;
mod confine;
pub mod jailed;
mod launch;
pub mod payloads;
pub mod relocate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use banger_firecracker::SemVer;
use banger_system::{CommandRunner, RealRunner};
use serde_json::json;

pub use api::{ApiCall, ApiClient};

/// The runtime record a Firecracker launch wrote into `vm_dir` before driving the API, if
/// there is one: how a daemon that died mid-launch finds the process again.
pub fn read_launch_record(vm_dir: &std::path::Path) -> Option<VmRuntime> {
    launch::read_launch_record(&FcPaths::in_dir(vm_dir).launch_record)
}
pub use payloads::{FcPaths, PlanInput, boot_plan};

use crate::driver::{RunState, VmmDriver, WaitOutcome};
use crate::error::VmmError;
use crate::runtime::VmRuntime;
use crate::spec::{DriverKind, KernelFormat, LaunchSpec, SnapshotFiles};

/// Firecracker's `snapshot_path` in a snapshot directory.
pub const STATE_FILE: &str = "vmstate";
/// Firecracker's `mem_file_path` in a snapshot directory.
pub const MEMORY_FILE: &str = "memory";

/// How the Firecracker driver runs VMs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirecrackerConfig {
    /// The `firecracker` executable.
    pub binary: PathBuf,
    /// Upper bound for each API call.
    pub api_timeout: Duration,
    /// Upper bound for the API socket to appear after spawning.
    pub start_timeout: Duration,
    /// How long `kill` waits after SIGTERM and after SIGKILL.
    pub kill_grace: Duration,
    /// The guest's vsock context id (0-2 are reserved).
    pub guest_cid: u32,
    /// The vsock port the guest agent listens on.
    pub agent_port: u32,
    /// Per-VM cgroup limits ([`crate::sandbox::cgroup`]); the daemon sets them up once.
    pub cgroups: crate::sandbox::cgroup::CgroupPolicy,
    /// How Firecracker is confined ([`crate::sandbox`], `confine`); by default what this
    /// process's privileges call for, with the default id range.
    pub sandbox: crate::sandbox::SandboxPolicy,
}

impl FirecrackerConfig {
    pub fn new(binary: impl Into<PathBuf>) -> FirecrackerConfig {
        FirecrackerConfig {
            binary: binary.into(),
            api_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
            kill_grace: Duration::from_secs(5),
            guest_cid: 3,
            agent_port: banger_agent_proto::DEFAULT_VSOCK_PORT,
            cgroups: crate::sandbox::cgroup::CgroupPolicy::Unavailable {
                reason: "this driver was configured without cgroup limits".into(),
            },
            sandbox: crate::sandbox::SandboxPolicy::for_this_process(
                crate::sandbox::IdRange::default(),
            ),
        }
    }
}

/// The Firecracker driver: one per daemon, shared by all VM tasks.
pub struct FirecrackerDriver {
    config: FirecrackerConfig,
    runner: Arc<dyn CommandRunner>,
    /// Who starts Firecracker through its jailer (the root helper in a system install);
    /// `None`: the daemon spawns it in banger's own sandbox.
    jailer: Option<Arc<dyn jailed::JailLauncher>>,
}

impl std::fmt::Debug for FirecrackerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirecrackerDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FirecrackerDriver {
    pub fn new(config: FirecrackerConfig) -> FirecrackerDriver {
        FirecrackerDriver::with_runner(config, Arc::new(RealRunner))
    }

    /// A driver that asks `runner` for `firecracker --version` (tests).
    pub fn with_runner(
        config: FirecrackerConfig,
        runner: Arc<dyn CommandRunner>,
    ) -> FirecrackerDriver {
        FirecrackerDriver {
            config,
            runner,
            jailer: None,
        }
    }

    /// Start every Firecracker through its jailer, by `launcher` ([`jailed`]).
    pub fn with_jailer(mut self, launcher: Arc<dyn jailed::JailLauncher>) -> FirecrackerDriver {
        self.jailer = Some(launcher);
        self
    }

    /// The chroot of `rt`'s Firecracker when it was started through the jailer (its API
    /// socket lies there), else `None`.
    fn chroot_of(&self, rt: &VmRuntime) -> Option<std::path::PathBuf> {
        let launcher = self.jailer.as_ref()?;
        let chroot = launcher.chroot(&jailed::jail_id(&rt.vm_id).ok()?)?;
        rt.control_socket.starts_with(&chroot).then_some(chroot)
    }

    /// Remove VM `vm_id`'s jail, if it was started through the jailer (its one release).
    async fn release_jail(&self, vm_id: &str) -> Result<(), VmmError> {
        let Some(launcher) = &self.jailer else {
            return Ok(());
        };
        let id = jailed::jail_id(vm_id).map_err(|problem| VmmError::InvalidSpec {
            vm_id: vm_id.to_owned(),
            problem,
        })?;
        let launcher = Arc::clone(launcher);
        let jailer = |source| VmmError::Jailer {
            vm_id: vm_id.to_owned(),
            action: "release",
            source,
        };
        tokio::task::spawn_blocking(move || launcher.release(&id))
            .await
            .map_err(|e| jailer(Box::new(e)))?
            .map_err(jailer)
    }

    pub fn config(&self) -> &FirecrackerConfig {
        &self.config
    }

    /// The binary's release, refused below the supported floor (asked at every launch: the
    /// binary may have been replaced since the daemon started).
    pub async fn version(&self) -> Result<SemVer, VmmError> {
        let runner = Arc::clone(&self.runner);
        let binary = self.config.binary.clone();
        let query = tokio::task::spawn_blocking(move || {
            banger_firecracker::query_version(runner.as_ref(), &binary)
        });
        let spawn_error = |source: std::io::Error| VmmError::Spawn {
            binary: self.config.binary.clone(),
            source,
        };
        let version = tokio::time::timeout(self.config.start_timeout, query)
            .await
            .map_err(|_| {
                spawn_error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "`--version` did not answer",
                ))
            })?
            .map_err(|join| spawn_error(std::io::Error::other(join)))?
            .map_err(|source| VmmError::FirecrackerVersion {
                binary: self.config.binary.clone(),
                source,
            })?;
        banger_firecracker::require_supported(&version, &self.config.binary)?;
        Ok(version)
    }

    fn api(&self, rt: &VmRuntime) -> ApiClient {
        ApiClient::new(&rt.vm_id, &rt.control_socket, self.config.api_timeout)
    }

    fn check_driver(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        if rt.driver == DriverKind::Firecracker {
            Ok(())
        } else {
            Err(VmmError::WrongDriver {
                vm_id: rt.vm_id.clone(),
                expected: DriverKind::Firecracker,
                found: rt.driver,
            })
        }
    }

    /// A running VM's API, refusing a record of another driver or a VMM that is gone.
    fn live_api(&self, rt: &VmRuntime, action: &'static str) -> Result<ApiClient, VmmError> {
        self.check_driver(rt)?;
        if !rt.is_alive() {
            return Err(VmmError::WrongState {
                vm_id: rt.vm_id.clone(),
                action,
                problem: format!("its Firecracker process {} is gone", rt.pid),
            });
        }
        Ok(self.api(rt))
    }
}

impl VmmDriver for FirecrackerDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Firecracker
    }

    /// notes: "x86_64 boots only an uncompressed ELF `vmlinux` (not bzImage)".
    fn kernel_format(&self) -> KernelFormat {
        KernelFormat::ElfVmlinux
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<VmRuntime, VmmError> {
        let version = self.version().await?;
        let cgroup = self
            .config
            .cgroups
            .make(&spec.vm_id, spec.memory_mib, false)
            .await?;
        let launched = launch::run(
            &self.config,
            spec,
            &version,
            cgroup.as_ref(),
            self.jailer.as_ref(),
        )
        .await;
        if launched.is_err() {
            // A jail the launch made goes with it (nothing to do when none was made).
            if let Err(e) = self.release_jail(&spec.vm_id).await {
                tracing::warn!(vm = %spec.vm_id, error = %banger_system::error_chain(&e), "cannot release a failed launch's jail");
            }
        }
        if launched.is_err() && cgroup.is_some() {
            self.config.cgroups.discard(&spec.vm_id).await;
        }
        launched
    }

    /// `SendCtrlAltDel`: the guest's init sees Ctrl-Alt-Del and ends the machine; with
    /// `reboot=k` Firecracker then exits.
    async fn request_shutdown(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.check_driver(rt)?;
        if !rt.is_alive() {
            return Ok(());
        }
        self.api(rt)
            .call(&ApiCall::put(
                "/actions",
                json!({ "action_type": "SendCtrlAltDel" }),
            ))
            .await?;
        Ok(())
    }

    /// Firecracker has no "quit" call: SIGTERM (it dies at once), then SIGKILL; then the
    /// VM's jail, when it has one, is released.
    async fn kill(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.check_driver(rt)?;
        let grace = self.config.kill_grace;
        if rt.is_alive() {
            let mut gone = false;
            // A jailed Firecracker is pid 1 of its own pid namespace, where the kernel drops
            // a SIGTERM it has no handler for; it dies at once of either, so SIGKILL.
            let signals: &[i32] = if self.jailer.is_some() {
                &[libc::SIGKILL]
            } else {
                &[libc::SIGTERM, libc::SIGKILL]
            };
            for &signal in signals {
                tracing::info!(vm = %rt.vm_id, pid = rt.pid, signal, "signalling Firecracker");
                rt.signal(signal)?;
                if rt.wait_exit(grace).await? == WaitOutcome::Exited {
                    gone = true;
                    break;
                }
            }
            if !gone {
                return Err(VmmError::Unkillable {
                    vm_id: rt.vm_id.clone(),
                    pid: rt.pid,
                    waited: grace * 2,
                });
            }
        }
        launch::remove_leftovers(rt);
        self.release_jail(&rt.vm_id).await
    }

    /// notes: "Pause/resume: `PATCH /vm {"state":"Paused"|"Resumed"}`".
    async fn pause(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.live_api(rt, "pause")?
            .call(&ApiCall::patch("/vm", json!({ "state": "Paused" })))
            .await?;
        Ok(())
    }

    async fn resume(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.live_api(rt, "resume")?
            .call(&ApiCall::patch("/vm", json!({ "state": "Resumed" })))
            .await?;
        Ok(())
    }

    /// notes: "Create (VM must be Paused): `PUT /snapshot/create {snapshot_path*,
    /// mem_file_path*, snapshot_type Full|Diff}`. Never send `version`". Both files are
    /// written under temp names, fsynced and renamed.
    async fn save_snapshot(
        &self,
        rt: &VmRuntime,
        dir: &std::path::Path,
    ) -> Result<SnapshotFiles, VmmError> {
        let api = self.live_api(rt, "save a snapshot")?;
        if self.run_state(rt).await? != RunState::Paused {
            return Err(VmmError::WrongState {
                vm_id: rt.vm_id.clone(),
                action: "save a snapshot",
                problem: "the guest runs; pause it first".into(),
            });
        }
        // What the restore must reproduce, recorded first: a VM whose paths are not
        // relocatable is refused before anything is written.
        let config = api
            .call(&ApiCall::get("/vm/config"))
            .await?
            .unwrap_or_default();
        let layout =
            relocate::Layout::from_vm_config(&config, rt.vmm_version.as_deref().unwrap_or(""))
                .map_err(|why| VmmError::WrongState {
                    vm_id: rt.vm_id.clone(),
                    action: "save a snapshot",
                    problem: format!(
                        "{why}: it was started by an older banger; stop and start it, then take \
                     the snapshot again"
                    ),
                })?;
        layout.write(dir)?;
        let files = SnapshotFiles {
            state: dir.join(STATE_FILE),
            memory: Some(dir.join(MEMORY_FILE)),
        };
        // Written where the VMM may write — the VM directory (banger's sandbox) or the root
        // of its chroot (the jailer's, which Firecracker sees as `/`) — then renamed into
        // `dir` (the same file system: both are under banger's state, as the jail's links
        // require).
        let chroot = self.chroot_of(rt);
        let (scratch, seen_as) = match &chroot {
            Some(chroot) => (chroot.clone(), std::path::PathBuf::from("/")),
            None => (rt.vm_dir.clone(), rt.vm_dir.clone()),
        };
        let commit = |temp: &std::path::Path, path: &std::path::Path| match &chroot {
            Some(_) => crate::fsutil::commit_from_jail(temp, path),
            None => crate::fsutil::commit(temp, path),
        };
        let name = |p: &std::path::Path| {
            format!(
                ".{}.tmp",
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        };
        let (state_name, memory_name) = (name(&files.state), name(&dir.join(MEMORY_FILE)));
        let (state_tmp, memory_tmp) = (scratch.join(&state_name), scratch.join(&memory_name));
        let result = api
            .call(&ApiCall::put(
                "/snapshot/create",
                json!({
                    "snapshot_type": "Full",
                    "snapshot_path": seen_as.join(&state_name),
                    "mem_file_path": seen_as.join(&memory_name),
                }),
            ))
            .await
            .and_then(|_| {
                commit(&state_tmp, &files.state)?;
                commit(&memory_tmp, &dir.join(MEMORY_FILE))?;
                // A jailed Firecracker wrote them as the VM's uid, readable by it alone.
                crate::fsutil::reclaim(&files.state)?;
                crate::fsutil::reclaim(&dir.join(MEMORY_FILE))
            });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&state_tmp);
            let _ = std::fs::remove_file(&memory_tmp);
            let _ = std::fs::remove_file(&files.state);
            let _ = std::fs::remove_file(dir.join(MEMORY_FILE));
            let _ = std::fs::remove_file(dir.join(relocate::LAYOUT_FILE));
            return Err(e);
        }
        Ok(files)
    }

    /// notes: "`GET /` → `{"app_name","id","state","vmm_version"}`; state is "Not started" |
    /// "Running" | "Paused"."
    async fn run_state(&self, rt: &VmRuntime) -> Result<RunState, VmmError> {
        let api = self.live_api(rt, "read the state")?;
        let call = ApiCall::get("/");
        let info = api.call(&call).await?.unwrap_or_default();
        match info.get("state").and_then(|s| s.as_str()) {
            Some("Running") => Ok(RunState::Running),
            Some("Paused") => Ok(RunState::Paused),
            Some("Not started") => Ok(RunState::NotStarted),
            other => Err(VmmError::FirecrackerApi {
                vm_id: rt.vm_id.clone(),
                endpoint: call.endpoint(),
                status: 200,
                fault: format!("unexpected instance state {other:?}"),
            }),
        }
    }

    fn stray_marks(&self, vm_dir: &std::path::Path) -> crate::process::Marks {
        // A jailed Firecracker names no host path and runs a copy of the binary: it is
        // found by its root, the VM's chroot (the VM directory is named by the VM's id).
        let chroot = self.jailer.as_ref().and_then(|launcher| {
            let id = vm_dir.file_name()?.to_str()?;
            launcher.chroot(&jailed::jail_id(id).ok()?)
        });
        crate::process::Marks {
            binaries: vec![self.config.binary.clone()],
            roots: chroot.filter(|c| c.is_dir()).into_iter().collect(),
        }
    }
}
