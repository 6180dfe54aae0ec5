//! The daemon's VMM drivers: which one a new VM gets, and one shared instance per kind.
//!
//! A VM keeps the driver it was created with (the store records its kind), so a daemon
//! may run QEMU and Firecracker VMs side by side. Each driver is built on first use;
//! every call that concerns a launched VM is routed by the kind in its runtime record.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use banger_config::{Config, VmmPreference};
use banger_paths::Layout;
use banger_vmm::sandbox::cgroup::{self, CgroupPolicy, Overhead};
use banger_vmm::{
    Accel, Driver, DriverKind, FirecrackerConfig, FirecrackerDriver, FirecrackerFound, HostVmms,
    LaunchSpec, QemuConfig, QemuDriver, RunState, SelectError, Selection, VmRuntime, VmmDriver,
    VmmError, WaitOutcome,
};
use tokio::net::UnixStream;

/// How long `firecracker --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Every driver this daemon has built, and what it needs to build the others.
pub struct Drivers {
    runtime_dir: PathBuf,
    firecracker_bin: PathBuf,
    /// A system install's helper socket: Firecracker is started through the helper's
    /// jailer when it has one ([`super::jailer`]).
    jail_helper: Option<PathBuf>,
    /// This owner's chroot base under that helper (`<state>-jail/<uid>`).
    jail_base: PathBuf,
    /// `[sandbox]`'s id range, checked when the QEMU driver is built.
    vmm_ids: (u32, u32),
    /// Names this daemon's VM cgroups (`banger-<instance>`): its state directory, hashed.
    cgroup_instance: String,
    /// `[sandbox]`'s allowances on top of a VM's own resources.
    cgroup_overhead: Overhead,
    /// Per-VM cgroup limits, set up on first use (a v2 daemon moves itself into a leaf).
    cgroups: OnceLock<CgroupPolicy>,
    built: Mutex<HashMap<DriverKind, Arc<Driver>>>,
    /// Tests: this one driver serves every kind, and selection always picks it.
    #[cfg(test)]
    fixed: Option<(Arc<Driver>, Selection)>,
}

impl Drivers {
    pub fn new(layout: &Layout, config: &Config) -> Drivers {
        Drivers {
            runtime_dir: layout.runtime_dir.clone(),
            firecracker_bin: config.firecracker_bin_resolved().value,
            jail_helper: layout
                .mode
                .is_system_install()
                .then(|| layout.helper_socket()),
            // SAFETY: geteuid has no preconditions and cannot fail.
            jail_base: banger_paths::jail_root(&layout.state_dir)
                .join(unsafe { libc::geteuid() }.to_string()),
            vmm_ids: config.sandbox.id_range(),
            cgroup_instance: cgroup::instance_name(&layout.state_dir),
            cgroup_overhead: Overhead {
                memory_mib: config
                    .sandbox
                    .vmm_memory_overhead_mib
                    .unwrap_or(cgroup::DEFAULT_MEMORY_OVERHEAD_MIB),
                pids_max: config
                    .sandbox
                    .vmm_pids_max
                    .unwrap_or(cgroup::DEFAULT_PIDS_MAX),
            },
            cgroups: OnceLock::new(),
            built: Mutex::new(HashMap::new()),
            #[cfg(test)]
            fixed: None,
        }
    }

    /// Tests: `driver` for every VM, whatever its kind, and `selection` for new ones.
    #[cfg(test)]
    pub fn fixed(
        layout: &Layout,
        config: &Config,
        driver: Driver,
        selection: Selection,
    ) -> Drivers {
        // Unit tests make no cgroups on the machine running them.
        let cgroups = OnceLock::new();
        let _ = cgroups.set(CgroupPolicy::Unavailable {
            reason: "unit test".into(),
        });
        Drivers {
            fixed: Some((Arc::new(driver), selection)),
            cgroups,
            ..Drivers::new(layout, config)
        }
    }

    /// Whether and where this daemon limits its VMs ([`cgroup`]), set up on first use.
    pub fn cgroups(&self) -> &CgroupPolicy {
        self.cgroups.get_or_init(|| {
            let policy =
                match CgroupPolicy::for_this_process(&self.cgroup_instance, self.cgroup_overhead) {
                    // A system install's daemon on a v1 host cannot write root's hierarchies:
                    // the root helper makes each VM's groups for it.
                    CgroupPolicy::Unavailable { .. }
                        if cgroup::delegate::helper_makes_groups(self.jail_helper.is_some()) =>
                    {
                        let socket = self.jail_helper.clone().unwrap_or_default();
                        CgroupPolicy::Delegated {
                            delegate: cgroup::Delegate(Arc::new(
                                super::helper_cgroup::HelperCgroups::new(socket),
                            )),
                            overhead: self.cgroup_overhead,
                        }
                    }
                    policy => policy,
                };
            match &policy {
                CgroupPolicy::Limit { cgroups, overhead } => tracing::info!(
                    backend = %cgroups.describe(),
                    ?overhead,
                    "VMs get cgroups with memory and tasks limits"
                ),
                CgroupPolicy::Delegated { delegate, overhead } => tracing::info!(
                    backend = %delegate.0.describe(),
                    ?overhead,
                    "VMs get cgroups with memory and tasks limits"
                ),
                CgroupPolicy::Unavailable { reason } => {
                    tracing::warn!(%reason, "VMs run without cgroup limits")
                }
            }
            policy
        })
    }

    /// Probe the host now and choose the driver for a new VM.
    pub fn select(&self, preference: VmmPreference) -> Result<Selection, SelectError> {
        #[cfg(test)]
        if let Some((_, selection)) = &self.fixed {
            return Ok(selection.clone());
        }
        let kvm = banger_vmm::probe_kvm();
        let firecracker = self.firecracker_found();
        let qemu = qemu_binary();
        banger_vmm::select_driver(
            preference,
            &HostVmms {
                kvm: &kvm,
                firecracker: firecracker.as_ref(),
                qemu: qemu.as_deref(),
            },
        )
    }

    /// [`Drivers::select`] for a request: no usable driver is the host's problem, and doctor
    /// says which part is missing.
    pub fn select_for_request(
        &self,
        preference: VmmPreference,
    ) -> Result<Selection, crate::error::DaemonError> {
        self.select(preference).map_err(|e| {
            crate::error::DaemonError::from_error(crate::error::ErrorKind::Unavailable, &e)
                .with_hint("`banger doctor` checks the host")
        })
    }

    /// The VMM binary VMs of `kind` would run now, if this host has one (what a warm
    /// state's key identifies the VMM by).
    pub fn binary(&self, kind: DriverKind) -> Option<PathBuf> {
        match kind {
            DriverKind::Qemu => qemu_binary(),
            DriverKind::Firecracker => {
                banger_system::runner::lookup_executable(&self.firecracker_bin.to_string_lossy())
            }
        }
    }

    /// The Firecracker binary and its `--version`. A binary that does not answer within
    /// [`VERSION_TIMEOUT`] counts as broken rather than holding up the caller.
    fn firecracker_found(&self) -> Option<FirecrackerFound> {
        let path =
            banger_system::runner::lookup_executable(&self.firecracker_bin.to_string_lossy())?;
        let (tx, rx) = std::sync::mpsc::channel();
        let query = path.clone();
        std::thread::spawn(move || {
            let version = banger_firecracker::query_version(&banger_system::RealRunner, &query)
                .map_err(|e| banger_system::error_chain(&e));
            let _ = tx.send(version);
        });
        let version = rx
            .recv_timeout(VERSION_TIMEOUT)
            .unwrap_or_else(|_| Err(format!("it did not answer within {VERSION_TIMEOUT:?}")));
        Some(FirecrackerFound { path, version })
    }

    /// The driver of `kind`, built on first use.
    pub fn get(&self, kind: DriverKind) -> Result<Arc<Driver>, VmmError> {
        #[cfg(test)]
        if let Some((driver, _)) = &self.fixed {
            return Ok(driver.clone());
        }
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(driver) = built.get(&kind) {
            return Ok(driver.clone());
        }
        let driver = Arc::new(self.build(kind)?);
        built.insert(kind, driver.clone());
        Ok(driver)
    }

    fn build(&self, kind: DriverKind) -> Result<Driver, VmmError> {
        let unusable = |problem: String| VmmError::InvalidConfig {
            driver: kind,
            problem,
        };
        match kind {
            DriverKind::Qemu => {
                let binary = qemu_binary().ok_or_else(|| {
                    unusable("qemu-system-x86_64 was not found; install qemu-system-x86".into())
                })?;
                let kvm = banger_vmm::probe_kvm();
                let accel = if kvm.usable_for_guests {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
                // microvm under TCG needs the host TSC frequency; measuring it takes a
                // moment, so it is cached per host boot.
                let tsc_khz = match accel {
                    Accel::Tcg => Some(
                        banger_vmm::tsc_khz_cached(&self.runtime_dir.join("tsc_khz"))
                            .map_err(|e| {
                                unusable(format!(
                                    "cannot determine the host TSC frequency (needed to boot \
                                     guests under TCG): {:#}",
                                    anyhow::Error::from(e)
                                ))
                            })?
                            .khz,
                    ),
                    Accel::Kvm => None,
                };
                let (base, count) = self.vmm_ids;
                let ids = banger_vmm::sandbox::IdRange::new(base, count)
                    .map_err(|e| unusable(format!("[sandbox] in config.toml: {e}")))?;
                let mut config = QemuConfig::new(binary, accel, tsc_khz);
                // A root daemon's QEMU drops to its own uid in a jail; an ordinary user's
                // keeps that user, with seccomp either way (docs/security.md).
                config.sandbox = banger_vmm::sandbox::SandboxPolicy::for_this_process(ids);
                config.cgroups = self.cgroups().clone();
                Ok(Driver::Qemu(QemuDriver::new(config)?))
            }
            DriverKind::Firecracker => {
                let binary = banger_system::runner::lookup_executable(
                    &self.firecracker_bin.to_string_lossy(),
                )
                .ok_or_else(|| {
                    unusable(format!(
                        "no firecracker binary at {:?}; install it with `{}` or set \
                         firecracker_bin in config.toml",
                        self.firecracker_bin,
                        banger_firecracker::INSTALL_COMMAND
                    ))
                })?;
                let (base, count) = self.vmm_ids;
                let ids = banger_vmm::sandbox::IdRange::new(base, count)
                    .map_err(|e| unusable(format!("[sandbox] in config.toml: {e}")))?;
                let mut config = FirecrackerConfig::new(binary);
                // The same sandbox as QEMU's (docs/security.md).
                config.sandbox = banger_vmm::sandbox::SandboxPolicy::for_this_process(ids);
                config.cgroups = self.cgroups().clone();
                let mut driver = FirecrackerDriver::new(config);
                if let Some(socket) = &self.jail_helper {
                    driver = driver.with_jailer(Arc::new(super::jailer::HelperJailer::new(
                        socket.clone(),
                        self.jail_base.clone(),
                    )));
                }
                Ok(Driver::Firecracker(driver))
            }
        }
    }

    pub async fn launch(&self, kind: DriverKind, spec: &LaunchSpec) -> Result<VmRuntime, VmmError> {
        self.get(kind)?.launch(spec).await
    }

    pub async fn request_shutdown(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.get(rt.driver)?.request_shutdown(rt).await
    }

    pub async fn kill(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.get(rt.driver)?.kill(rt).await
    }

    pub async fn pause(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.get(rt.driver)?.pause(rt).await
    }

    pub async fn resume(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        self.get(rt.driver)?.resume(rt).await
    }

    pub async fn save_snapshot(
        &self,
        rt: &VmRuntime,
        dir: &std::path::Path,
    ) -> Result<banger_vmm::SnapshotFiles, VmmError> {
        self.get(rt.driver)?.save_snapshot(rt, dir).await
    }

    pub async fn run_state(&self, rt: &VmRuntime) -> Result<RunState, VmmError> {
        self.get(rt.driver)?.run_state(rt).await
    }

    /// A VMM a launch left running without handing over its runtime (the daemon died
    /// mid-launch): found through the record the driver wrote in the VM directory.
    pub fn leftover(&self, vm_dir: &std::path::Path) -> Option<VmRuntime> {
        banger_vmm::firecracker::read_launch_record(vm_dir).filter(VmRuntime::is_alive)
    }

    pub async fn connect_agent(&self, rt: &VmRuntime) -> Result<UnixStream, VmmError> {
        self.get(rt.driver)?.connect_agent(rt).await
    }

    /// What marks a `kind` VMM using `vm_dir` that no record names (see `vms/strays.rs`);
    /// an error when this host cannot build that driver.
    pub fn stray_marks(
        &self,
        kind: DriverKind,
        vm_dir: &std::path::Path,
    ) -> Result<banger_vmm::process::Marks, VmmError> {
        Ok(self.get(kind)?.stray_marks(vm_dir))
    }

    /// Liveness depends only on the runtime record, never on building a driver.
    pub fn is_alive(&self, rt: &VmRuntime) -> bool {
        rt.is_alive()
    }

    pub async fn wait_exit(
        &self,
        rt: &VmRuntime,
        timeout: Duration,
    ) -> Result<WaitOutcome, VmmError> {
        rt.wait_exit(timeout).await
    }
}

fn qemu_binary() -> Option<PathBuf> {
    banger_system::runner::lookup_executable("qemu-system-x86_64")
}
