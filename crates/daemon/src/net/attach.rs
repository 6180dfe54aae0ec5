//! Making a starting VM's networking: the bridge, NAT, an address, a TAP and the published
//! ports (bridge modes), or QEMU's user-mode network with `hostfwd` (user mode); and the
//! kernel arguments from which the guest agent configures the guest's interface.

use std::net::Ipv4Addr;
use std::sync::Arc;

use banger_helper::{HelperError, Privileged};
use banger_helper_proto::{FailureKind, MacAddr, PortMapping, Protocol, Publish, Subnet, TapName};
use banger_store::VmRecord;
use banger_vmm::{HostForward, NicSpec, UserNetSpec};

use super::{Plumbing, USER_DNS, USER_GATEWAY, USER_GUEST, USER_PREFIX, mode_name};
use crate::error::{DaemonError, ErrorKind, Result};
use crate::state::Daemon;

/// What a VM's launch gets from its networking.
#[derive(Debug, Default)]
pub struct Attachment {
    pub nics: Vec<NicSpec>,
    pub user_net: Option<UserNetSpec>,
    /// `banger.ip=ADDR/PREFIX banger.gw=GATEWAY banger.dns=A,B`: read by the guest agent,
    /// which configures the first Ethernet interface (the guest kernel has no `ip=`).
    pub kernel_args: Vec<String>,
    /// The same configuration for a guest that does not boot but is restored from a
    /// snapshot (bridge modes): its agent applies it during Reidentify.
    pub guest: Option<banger_agent_proto::NetIdentity>,
}

/// Parse and check `-p` values: each a [`PortMapping`], no host port given twice for a
/// protocol. Returns their canonical text, as stored.
pub fn parse_ports(specs: &[String]) -> Result<Vec<String>> {
    let mut seen: Vec<PortMapping> = Vec::new();
    for spec in specs {
        let mapping: PortMapping =
            spec.parse()
                .map_err(|e: banger_helper_proto::PublishError| {
                    DaemonError::from_error(ErrorKind::Invalid, &e).with_field("publish")
                })?;
        if let Some(other) = seen.iter().find(|o| {
            o.protocol == mapping.protocol
                && o.host_port == mapping.host_port
                && (o.host_addr.is_none()
                    || mapping.host_addr.is_none()
                    || o.host_addr == mapping.host_addr)
        }) {
            return Err(DaemonError::invalid(format!(
                "host port {}/{} is published twice ({other} and {mapping}); give each mapping its own host port",
                mapping.host_port, mapping.protocol
            ))
            .with_field("publish"));
        }
        seen.push(mapping);
    }
    Ok(seen.iter().map(ToString::to_string).collect())
}

/// The mappings stored for VM `vm`.
pub fn stored_ports(daemon: &Daemon, vm_id: &str) -> Result<Vec<PortMapping>> {
    Ok(mappings(&daemon.store().vm_ports(vm_id)?))
}

/// Mappings as `parse_ports` stored them: they parse; one that does not is skipped, not
/// fatal.
pub fn mappings(specs: &[String]) -> Vec<PortMapping> {
    specs.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Make VM `vm`'s networking as `plumbing` says. On error, what was made stays recorded
/// and the caller's release gives it back.
pub async fn attach(daemon: &Daemon, vm: &VmRecord, plumbing: &Plumbing) -> Result<Attachment> {
    let ports = stored_ports(daemon, &vm.id)?;
    let mode = mode_name(&plumbing.selection.networking);
    if mode != "none" {
        daemon.net.check_ports(&vm.name, &ports)?;
    }
    daemon.store().set_vm_network(&vm.id, mode)?;
    match (&plumbing.privileged, mode) {
        (Some(privileged), "bridge") => bridge(daemon, vm, privileged.clone(), &ports).await,
        (_, "user") => Ok(user(&ports)),
        _ if !ports.is_empty() => Err(DaemonError::unavailable(format!(
            "VM {} publishes ports, but it gets no network: {}",
            vm.name, plumbing.selection.reason
        ))
        .with_hint("set network.mode = \"auto\" (or \"user\") in config.toml, or recreate the VM without -p")),
        _ => Ok(Attachment::default()),
    }
}

fn user(ports: &[PortMapping]) -> Attachment {
    let guest: Ipv4Addr = USER_GUEST.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    Attachment {
        nics: Vec::new(),
        user_net: Some(UserNetSpec {
            mac: MacAddr::for_guest(guest).to_string(),
            forwards: ports
                .iter()
                .map(|m| HostForward {
                    udp: m.protocol == Protocol::Udp,
                    host_addr: m.host_addr,
                    host_port: m.host_port.get(),
                    guest_port: m.guest_port.get(),
                })
                .collect(),
        }),
        kernel_args: guest_args(
            USER_GUEST,
            USER_PREFIX,
            USER_GATEWAY,
            &[USER_DNS.to_string()],
        ),
        // Every user-mode guest has the same address behind its own VMM: a clone keeps it.
        guest: None,
    }
}

async fn bridge(
    daemon: &Daemon,
    vm: &VmRecord,
    privileged: Arc<dyn Privileged>,
    ports: &[PortMapping],
) -> Result<Attachment> {
    let _bridge = daemon.net.lock.lock().await;
    let config = daemon.config.clone();
    let p = privileged.clone();
    let subnet = blocking(move || -> Result<Subnet> {
        let existing = p
            .inventory()
            .map_err(helper_error)?
            .bridge
            .map(|b| b.subnet);
        let routes = banger_net::netlink::Netlink::open()
            .and_then(|nl| nl.ipv4_routes())
            .ok();
        let subnet =
            banger_helper::subnet::resolve_subnet(&config, existing, routes.as_deref(), None)
                .map_err(|e| DaemonError::from_error(ErrorKind::Unavailable, &e))?
                .value;
        p.ensure_bridge(subnet).map_err(helper_error)?;
        p.ensure_nat().map_err(helper_error)?;
        Ok(subnet)
    })
    .await?;
    let (first, last) = subnet.guest_range();
    let lease = daemon
        .store()
        .lease_address(&vm.id, &subnet.to_string(), first, last)?;
    let address = lease.address;
    let tap = TapName::for_vm(&vm.id)
        .map_err(|e| DaemonError::internal(format!("VM {}: {e}", vm.name)))?;
    let publishes: Vec<Publish> = ports
        .iter()
        .map(|&mapping| Publish {
            mapping,
            guest_addr: address,
        })
        .collect();
    let made_tap = tap.clone();
    blocking(move || -> Result<()> {
        privileged.create_tap(&made_tap).map_err(helper_error)?;
        for publish in publishes {
            privileged.add_publish(publish).map_err(helper_error)?;
        }
        Ok(())
    })
    .await?;
    let dns: Vec<String> = daemon
        .config
        .guest_dns()
        .value
        .iter()
        .map(ToString::to_string)
        .collect();
    let mac = MacAddr::for_guest(address).to_string();
    Ok(Attachment {
        guest: Some(banger_agent_proto::NetIdentity {
            mac: mac.clone(),
            address,
            prefix: subnet.prefix(),
            gateway: Some(subnet.gateway()),
            dns: daemon.config.guest_dns().value.clone(),
        }),
        nics: vec![NicSpec {
            id: "eth0".into(),
            tap: tap.as_str().to_string(),
            mac,
        }],
        user_net: None,
        kernel_args: guest_args(
            &address.to_string(),
            subnet.prefix(),
            &subnet.gateway().to_string(),
            &dns,
        ),
    })
}

/// The guest's network configuration as kernel arguments for the agent.
fn guest_args(address: &str, prefix: u8, gateway: &str, dns: &[String]) -> Vec<String> {
    let mut args = vec![
        format!("banger.ip={address}/{prefix}"),
        format!("banger.gw={gateway}"),
    ];
    if !dns.is_empty() {
        args.push(format!("banger.dns={}", dns.join(",")));
    }
    args
}

/// Run blocking privileged work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DaemonError::internal(format!("network task failed: {e}")))?
}

/// A helper error as the daemon reports it: the helper's classification decides the kind.
pub(super) fn helper_error(e: HelperError) -> DaemonError {
    let kind = match e.kind() {
        Some(FailureKind::BadRequest) => ErrorKind::Invalid,
        Some(FailureKind::Conflict | FailureKind::NotPermitted) => ErrorKind::Conflict,
        Some(_) => ErrorKind::Internal,
        None => ErrorKind::Unavailable,
    };
    DaemonError::caused(kind, "setting up the VM's network failed", &e)
        .with_hint("`banger doctor` checks the root helper, the bridge and the firewall")
}
