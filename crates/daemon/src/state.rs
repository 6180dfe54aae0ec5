//! The daemon's shared state: store, driver, per-VM slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use anyhow::Context;
use banger_agent_client::AgentClient;
use banger_api::Health;
use banger_config::{Config, VmDefaults};
use banger_paths::Layout;
use banger_store::Store;
use banger_system::{CommandRunner, HostResources, RealRunner};
use banger_vmm::Selection;

use crate::vms::driver::Drivers;
use tokio::sync::watch;

/// The build this daemon runs (see [`crate::run`]); empty in tests.
static BUILD_ID: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

pub fn set_build_id(build: &'static str) {
    let _ = BUILD_ID.set(build);
}

/// Everything the handlers share.
pub struct Daemon {
    pub layout: Layout,
    pub config: Config,
    pub defaults: VmDefaults,
    /// The host's CPUs and memory, read once at start (`None` when they could not be):
    /// the `auto` defaults are sized from it and no guest gets more memory than it has.
    pub host: Option<HostResources>,
    /// How long a boot may take to reach a ready agent (`BANGER_BOOT_TIMEOUT`, read once
    /// at start by `banger_config::env`).
    pub boot_timeout: std::time::Duration,
    /// The VMM drivers, one per kind, built on first use.
    pub driver: Drivers,
    /// The driver a new VM would have got when the daemon started, or why there was none.
    /// Informational only: each VM's driver is chosen when it is created, so a daemon whose
    /// host has no usable VMM still starts (and can list, stop and remove VMs).
    pub selection: Result<Selection, String>,
    pub runner: Arc<dyn CommandRunner>,
    /// VM networking: which mode, and the books of what each VM holds (see `net/`).
    pub net: crate::net::Net,
    store: Mutex<Store>,
    slots: Mutex<HashMap<String, Arc<VmSlot>>>,
    shutdown: watch::Sender<bool>,
    /// Image builds are serialised: two `vm run`s racing to auto-build the default
    /// image must build it once.
    pub image_lock: tokio::sync::Mutex<()>,
    /// The VMs kept restored from warm states for `vm run` to take (`warm::standby`).
    pub standbys: crate::warm::standby::Pool,
    /// Removed VMs' directories being deleted in the background (`trash.rs`).
    pub trash: crate::trash::Trash,
    /// Lets background tasks spawned from a `&Daemon` hold the daemon alive.
    me: Weak<Daemon>,
    /// Where tests make the daemon "die" mid-operation (see `faults.rs`).
    #[cfg(test)]
    pub faults: crate::faults::Faults,
}

/// Per-VM runtime state that does not belong in the store.
pub struct VmSlot {
    /// Serialises lifecycle operations (start, stop, rm) on one VM (see `vms/lock.rs`).
    pub op: Arc<tokio::sync::Mutex<()>>,
    /// Raised by a forced operation to make the holder of `op` give up its waits.
    pub cancel: watch::Sender<u64>,
    /// The live agent connection, when there is one.
    pub agent: tokio::sync::Mutex<Option<AgentClient>>,
    /// How long to wait before reconnecting an agent that was cut off for junk.
    pub agent_backoff: crate::vms::AgentBackoff,
    /// The task copying the VM's serial console into its capped log.
    pub console: crate::vms::ConsoleCapture,
}

impl Default for VmSlot {
    fn default() -> VmSlot {
        VmSlot {
            op: Arc::default(),
            cancel: watch::Sender::new(0),
            agent: tokio::sync::Mutex::default(),
            agent_backoff: Default::default(),
            console: Default::default(),
        }
    }
}

/// What a daemon is made of. [`Daemon::open`] builds the real parts for this host; tests
/// build their own (a fake driver, a temporary state directory) and call
/// [`Daemon::with_parts`].
pub struct Parts {
    pub layout: Layout,
    pub config: Config,
    pub defaults: VmDefaults,
    /// The host's resources (see [`Daemon::host`]).
    pub host: Option<HostResources>,
    /// See [`Daemon::boot_timeout`].
    pub boot_timeout: std::time::Duration,
    pub store: Store,
    pub driver: Drivers,
    pub selection: Result<Selection, String>,
    pub runner: Arc<dyn CommandRunner>,
    pub network: crate::net::NetworkSource,
}

impl Daemon {
    /// The daemon for this host: config, state store, and the driver `select_driver` picks.
    pub fn open(layout: Layout, config: Config) -> anyhow::Result<Arc<Daemon>> {
        Daemon::open_on(layout, config, banger_system::read_host_resources().ok())
    }

    /// [`Daemon::open`] on a host with `host`'s resources (tests give it a host of their own).
    pub fn open_on(
        layout: Layout,
        config: Config,
        host: Option<HostResources>,
    ) -> anyhow::Result<Arc<Daemon>> {
        let boot_timeout = banger_config::env::boot_timeout()?;
        let defaults =
            config.vm_defaults_resolved(host.map(|h| h.cpus), host.map(|h| h.total_memory_bytes));
        let store = Store::open(layout.db_path()).with_context(|| {
            format!("cannot open the state store {}", layout.db_path().display())
        })?;
        let driver = Drivers::new(&layout, &config);
        let selection = driver
            .select(config.vmm)
            .map_err(|e| banger_system::error_chain(&e));
        Ok(Daemon::with_parts(Parts {
            layout,
            config,
            defaults,
            host,
            boot_timeout,
            store,
            driver,
            selection,
            runner: Arc::new(RealRunner),
            network: crate::net::NetworkSource::Host,
        }))
    }

    /// A daemon made of `parts`. Nothing is started: reconcile and serve are the caller's.
    pub fn with_parts(parts: Parts) -> Arc<Daemon> {
        let Parts {
            layout,
            config,
            defaults,
            host,
            boot_timeout,
            store,
            driver,
            selection,
            runner,
            network,
        } = parts;
        let (shutdown, _) = watch::channel(false);
        Arc::new_cyclic(|me| Daemon {
            me: me.clone(),
            layout,
            config,
            defaults,
            host,
            boot_timeout,
            driver,
            selection,
            runner,
            net: crate::net::Net::new(network),
            store: Mutex::new(store),
            slots: Mutex::new(HashMap::new()),
            shutdown,
            image_lock: tokio::sync::Mutex::new(()),
            standbys: crate::warm::standby::Pool::default(),
            trash: crate::trash::Trash::default(),
            #[cfg(test)]
            faults: crate::faults::Faults::default(),
        })
    }

    /// A strong handle for background tasks; `None` only while the daemon is dropped.
    pub fn self_arc(&self) -> Option<Arc<Daemon>> {
        self.me.upgrade()
    }

    /// The store. Held only for the duration of a query, never across an await.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite inconsistent (every
        // write is a transaction), so a poisoned lock is safe to reuse.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slot of VM `id`, created on first use.
    pub fn slot(&self, id: &str) -> Arc<VmSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(id.to_string()).or_default().clone()
    }

    pub fn forget_slot(&self, id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(id);
    }

    pub fn selection_summary(&self) -> String {
        match &self.selection {
            Ok(s) => format!("{} ({})", s.driver, s.accel),
            Err(_) => "none".to_string(),
        }
    }

    pub fn health(&self) -> Health {
        Health {
            version: env!("CARGO_PKG_VERSION").to_string(),
            build: BUILD_ID.get().copied().unwrap_or_default().to_string(),
            pid: std::process::id(),
            mode: self.layout.mode.as_str().to_string(),
            state_dir: self.layout.state_dir.display().to_string(),
            driver: self.selection_summary(),
            driver_reason: match &self.selection {
                Ok(s) => s.reason.clone(),
                Err(why) => why.clone(),
            },
        }
    }

    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
