//! The daemon's VMM drivers: which one a new VM gets, and one shared instance per kind.
//!
//! A VM keeps the driver it was created with (the store records its kind), so a daemon
//! may run QEMU and Firecracker VMs side by side. Each driver is built on first use;
//! every call that concerns a launched VM is routed by the kind in its runtime record.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banger_config::{Config, VmmPreference};
use banger_paths::Layout;
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
    /// `[sandbox]`'s id range, checked when the QEMU driver is built.
    vmm_ids: (u32, u32),
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
            vmm_ids: config.sandbox.id_range(),
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
        Drivers {
            fixed: Some((Arc::new(driver), selection)),
            ..Drivers::new(layout, config)
        }
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
                Ok(Driver::Firecracker(FirecrackerDriver::new(
                    FirecrackerConfig::new(binary),
                )))
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

    /// Processes of a `kind` VMM using `vm_dir` that no record names (see `vms/strays.rs`).
    pub fn processes_using(
        &self,
        kind: DriverKind,
        vm_dir: &std::path::Path,
    ) -> std::io::Result<Vec<banger_vmm::process::ProcessIdentity>> {
        self.get(kind)
            .map_err(std::io::Error::other)?
            .processes_using(vm_dir)
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
