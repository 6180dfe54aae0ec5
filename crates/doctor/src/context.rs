//! Everything doctor knows about the host, and the seams tests replace.
//!
//! Checks never reach for the host directly: they read fields of [`DoctorContext`]
//! (paths, probed facts, the command runner). [`DoctorContext::from_host`] fills them
//! from the real machine; tests start from that and point fields at temp dirs, fake
//! runners and made-up probe results. Set fields before the first [`crate::run`]:
//! the store and the driver selection are computed once, on first use.

use std::cell::OnceCell;
use std::ffi::OsString;
use std::path::PathBuf;

use banger_config::{Config, ConfigError, HOST_RESOLV_CONF, RESOLVED_UPSTREAM};
use banger_images::imagecat::{Catalog, EntrySource};
use banger_paths::Layout;
use banger_store::{Store, StoreError};
use banger_system::preflight::find_executable;
use banger_system::{CommandRunner, HostResources, RealRunner};
use banger_vmm::{DriverKind, FirecrackerFound, HostVmms, KvmStatus, SelectError, Selection};

use crate::checks::network::{HostNetworkProbe, NetworkProbe};

pub use banger_paths::SYSTEMD_SYSTEM_DIR;
/// The host device for vhost-vsock, needed only by drivers that use kernel vsock.
pub const VHOST_VSOCK_DEVICE: &str = "/dev/vhost-vsock";
/// The QEMU binary the QEMU driver runs.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";
/// The state store as doctor sees it. Doctor checks the path first and only then
/// opens the database read-only, so a missing store is never created.
pub enum StoreState {
    /// No database file: a fresh install.
    Missing,
    /// Present but not usable.
    Unreadable(StoreError),
    Open(Store),
}

/// The inputs of one doctor run (see the module docs).
pub struct DoctorContext {
    pub layout: Layout,
    /// The effective config: built-in defaults when loading failed.
    pub config: Config,
    /// Why config.toml could not be loaded, when it could not.
    pub config_error: Option<String>,
    pub runner: Box<dyn CommandRunner>,
    /// `std::env::consts::ARCH` spelling (`x86_64`, `aarch64`).
    pub arch: String,
    pub os_release_path: PathBuf,
    pub systemd_dir: PathBuf,
    pub install_toml: PathBuf,
    pub vhost_vsock_device: PathBuf,
    pub kvm: KvmStatus,
    /// `PATH`-style list where host tools are looked up; `None` means the process PATH.
    pub search_path: Option<OsString>,
    /// The guest agent binary shipped with banger, or why it was not found.
    pub agent_binary: Result<PathBuf, String>,
    /// `None` when the host's CPUs and memory could not be read.
    pub host_resources: Option<HostResources>,
    /// The effective uid doctor runs as (root reads the firewall itself).
    pub euid: u32,
    /// What the network checks ask the host (routes, the helper, the firewall).
    pub network: Box<dyn NetworkProbe>,
    pub resolv_conf: PathBuf,
    pub resolved_upstream: PathBuf,
    store: OnceCell<StoreState>,
    selection: OnceCell<Result<Selection, SelectError>>,
}

impl DoctorContext {
    /// Describe the real host. A config that failed to load is kept as an error (the
    /// config check reports it) and defaults are used for everything else.
    pub fn from_host(layout: Layout, config: Result<Config, ConfigError>) -> DoctorContext {
        let (config, config_error) = match config {
            Ok(config) => (config, None),
            Err(err) => (Config::default(), Some(crate::error_chain(&err))),
        };
        DoctorContext {
            install_toml: layout.install_toml(),
            layout,
            config,
            config_error,
            runner: Box::new(RealRunner),
            arch: std::env::consts::ARCH.to_string(),
            os_release_path: PathBuf::from(banger_system::osrelease::OS_RELEASE_PATHS[0]),
            systemd_dir: PathBuf::from(SYSTEMD_SYSTEM_DIR),
            vhost_vsock_device: PathBuf::from(VHOST_VSOCK_DEVICE),
            kvm: banger_vmm::probe_kvm(),
            search_path: Some(banger_system::preflight::host_search_path()),
            agent_binary: banger_paths::companion_binary(banger_paths::AGENT_BINARY_NAME),
            host_resources: banger_system::read_host_resources().ok(),
            // SAFETY: geteuid has no preconditions and cannot fail.
            euid: unsafe { libc::geteuid() },
            network: Box::new(HostNetworkProbe),
            resolv_conf: PathBuf::from(HOST_RESOLV_CONF),
            resolved_upstream: PathBuf::from(RESOLVED_UPSTREAM),
            store: OnceCell::new(),
            selection: OnceCell::new(),
        }
    }

    /// The state store, opened read-only on first use.
    pub fn store(&self) -> &StoreState {
        self.store.get_or_init(|| {
            let path = self.layout.db_path();
            match std::fs::symlink_metadata(&path) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => StoreState::Missing,
                _ => match Store::open_read_only(&path) {
                    Ok(store) => StoreState::Open(store),
                    Err(StoreError::NotFound { .. }) => StoreState::Missing,
                    Err(err) => StoreState::Unreadable(err),
                },
            }
        })
    }

    /// `firecracker_bin` as configured (or the built-in name).
    pub fn firecracker_bin(&self) -> String {
        self.config
            .firecracker_bin_resolved()
            .value
            .to_string_lossy()
            .into_owned()
    }

    /// The Firecracker executable, if it can be found.
    pub fn firecracker_path(&self) -> Option<PathBuf> {
        find_executable(&self.firecracker_bin(), self.search_path.as_deref())
    }

    /// The QEMU executable, if it can be found.
    pub fn qemu_path(&self) -> Option<PathBuf> {
        find_executable(QEMU_BINARY, self.search_path.as_deref())
    }

    /// The Firecracker binary with what its `--version` says, if it can be found.
    pub fn firecracker_found(&self) -> Option<FirecrackerFound> {
        let path = self.firecracker_path()?;
        let version = banger_firecracker::query_version(self.runner.as_ref(), &path)
            .map_err(|err| crate::error_chain(&err));
        Some(FirecrackerFound { path, version })
    }

    /// The VMM driver banger would use on this host for a new VM, and why.
    pub fn selection(&self) -> &Result<Selection, SelectError> {
        self.selection.get_or_init(|| {
            let firecracker = self.firecracker_found();
            let qemu = self.qemu_path();
            banger_vmm::select_driver(
                self.config.vmm,
                &HostVmms {
                    kvm: &self.kvm,
                    firecracker: firecracker.as_ref(),
                    qemu: qemu.as_deref(),
                },
            )
        })
    }

    pub fn selected_driver(&self) -> Option<DriverKind> {
        self.selection().as_ref().ok().map(|s| s.driver)
    }

    pub fn qemu_selected(&self) -> bool {
        self.selected_driver() == Some(DriverKind::Qemu)
    }

    /// Firecracker is needed unless QEMU was selected: it is then optional.
    pub fn firecracker_required(&self) -> bool {
        !self.qemu_selected()
    }

    /// VMM binaries the root helper may launch, as (check name, path): the selected
    /// driver's, and Firecracker's whenever it is installed.
    pub fn vmm_binaries(&self) -> Vec<(String, PathBuf)> {
        let mut binaries = Vec::new();
        if let Some(path) = self.firecracker_path() {
            binaries.push(("firecracker binary ownership".to_string(), path));
        }
        let qemu = self.qemu_selected().then(|| self.qemu_path()).flatten();
        if let Some(path) = qemu {
            binaries.push(("qemu binary ownership".to_string(), path));
        }
        binaries
    }

    /// How a catalog image is obtained on first use ("built" or "downloaded"), or
    /// `None` when the catalog does not list `name`.
    pub fn catalog_entry_kind(&self, name: &str) -> Result<Option<&'static str>, String> {
        let catalog = Catalog::embedded().map_err(|err| crate::error_chain(&err))?;
        Ok(catalog.lookup(name).map(|entry| match entry.source {
            EntrySource::Recipe(_) => "built",
            EntrySource::Download(_) => "downloaded",
        }))
    }
}
