//! A VM's networking, from the daemon's side: which mode a VM gets when it starts
//! ([`Net::plumbing`]), what is made for it ([`attach`]) and how all of it is given back
//! ([`release`], called from the one release step `vms/release.rs`).
//!
//! The mechanisms live elsewhere: the bridge, TAPs and nftables rules are made through the
//! [`Privileged`] interface (the root helper's socket, or its executor in-process when the
//! daemon is root), addresses are leases in the store, user-mode networking is QEMU's.
//! This module only decides and keeps the books.
//!
//! The books: a VM's `vm_network` row (its mode) is written before its first resource is
//! made and deleted after the last is given back; its address is its lease; its published
//! ports are `vm_ports`. A daemon killed half-way leaves the row, and the next release
//! (reconciliation's included) gives everything back again: every step is idempotent.

pub mod attach;
#[cfg(test)]
pub mod fake;
pub mod ports;
pub mod release;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use banger_helper::{
    HelperProbe, ModeInputs, ModeSelection, Networking, Privileged, probe_helpers,
    select_network_mode,
};
use banger_paths::Mode;
use banger_vmm::DriverKind;

use banger_api::NetworkView;
use banger_helper_proto::PortMapping;
use banger_store::VmRecord;

use crate::error::{DaemonError, ErrorKind, Result};
use crate::state::Daemon;

pub use attach::{Attachment, parse_ports};

/// User-mode networking's fixed addresses (QEMU's slirp defaults).
pub const USER_GUEST: &str = "10.0.2.15";
pub const USER_PREFIX: u8 = 24;
pub const USER_GATEWAY: &str = "10.0.2.2";
pub const USER_DNS: &str = "10.0.2.3";

/// Where a daemon's networking decisions come from.
pub enum NetworkSource {
    /// This host: the install mode, `[network]` and whether a root helper answers, decided
    /// afresh at every VM start (a helper started by hand after the daemon counts).
    Host,
    /// One fixed decision (tests: a fake privileged interface, or no network).
    Fixed {
        selection: ModeSelection,
        privileged: Option<Arc<dyn Privileged>>,
    },
}

/// The networking in force for one operation, and the way to do its privileged part.
#[derive(Clone)]
pub struct Plumbing {
    pub selection: ModeSelection,
    /// Present exactly when `selection.networking` is a bridge mode.
    pub privileged: Option<Arc<dyn Privileged>>,
}

/// The daemon's networking state.
pub struct Net {
    source: NetworkSource,
    /// Serialises bridge and NAT setup with their teardown: the last VM's release must not
    /// remove the bridge a starting VM is attaching to.
    pub lock: tokio::sync::Mutex<()>,
}

impl Net {
    pub fn new(source: NetworkSource) -> Net {
        Net {
            source,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Refuse VM `vm`'s start when a host port of `mappings` is in use on this host
    /// ([`ports::check_free`]). A fixed source's host is the tests' fake, where no other
    /// program runs.
    pub fn check_ports(&self, vm: &str, mappings: &[PortMapping]) -> Result<()> {
        match &self.source {
            NetworkSource::Host => ports::check_free(vm, mappings),
            NetworkSource::Fixed { .. } => Ok(()),
        }
    }

    /// The networking a VM starting now with VMM `vmm` gets (`None`: any VMM, for giving
    /// back, where only the privileged part matters). It may knock on the helper's socket:
    /// a local round trip.
    pub fn plumbing(&self, daemon: &Daemon, vmm: Option<DriverKind>) -> Result<Plumbing> {
        match &self.source {
            NetworkSource::Fixed {
                selection,
                privileged,
            } => Ok(Plumbing {
                selection: selection.clone(),
                privileged: privileged.clone(),
            }),
            NetworkSource::Host => {
                let layout = &daemon.layout;
                let (socket, probe) = match layout.mode {
                    Mode::DevUser => probe_helpers(&layout.helper_socket_candidates()),
                    _ => (
                        layout.helper_socket(),
                        HelperProbe::Absent("not consulted".into()),
                    ),
                };
                let vmm_name = vmm.map_or("the VMM".to_string(), |k| k.to_string());
                let selection = select_network_mode(&ModeInputs {
                    preference: daemon.config.network_mode_resolved(),
                    install: layout.mode,
                    helper_socket: &socket,
                    helper: &probe,
                    // Only QEMU has user-mode networking.
                    vmm_user_net: vmm != Some(DriverKind::Firecracker),
                    vmm: &vmm_name,
                })
                .map_err(|e| {
                    DaemonError::from_error(ErrorKind::Unavailable, &e)
                        .with_hint("`banger doctor` shows the networking mode and why")
                })?;
                let privileged = selection
                    .networking
                    .privileged(owner_uid())
                    .map(Arc::<dyn Privileged>::from);
                Ok(Plumbing {
                    selection,
                    privileged,
                })
            }
        }
    }
}

/// The owner of this daemon's VMs: the user it runs as (in a system install the daemon
/// runs as the owner; in dev mode as whoever started it).
pub fn owner_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The stored name of a mode.
pub fn mode_name(networking: &Networking) -> &'static str {
    match networking {
        Networking::BridgeHelper { .. } | Networking::BridgeInProcess => "bridge",
        Networking::User => "user",
        Networking::None => "none",
    }
}

/// What `vm inspect` shows of VM `vm`'s networking.
pub fn view(daemon: &Daemon, vm: &VmRecord) -> Result<NetworkView> {
    let store = daemon.store();
    let mode = store.vm_network(&vm.id)?;
    let published = store.vm_ports(&vm.id)?;
    let (address, gateway) = match mode.as_deref() {
        Some("bridge") => match store.lease_of(&vm.id)? {
            Some(lease) => {
                let subnet = lease.subnet.parse::<banger_helper_proto::Subnet>().ok();
                (
                    Some(match subnet {
                        Some(s) => format!("{}/{}", lease.address, s.prefix()),
                        None => lease.address.to_string(),
                    }),
                    subnet.map(|s| s.gateway().to_string()),
                )
            }
            None => (None, None),
        },
        Some("user") => (
            Some(format!("{USER_GUEST}/{USER_PREFIX}")),
            Some(USER_GATEWAY.to_string()),
        ),
        _ => (None, None),
    };
    Ok(NetworkView {
        mode,
        address,
        gateway,
        published,
    })
}
