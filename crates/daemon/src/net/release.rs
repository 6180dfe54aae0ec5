//! Giving a VM's networking back: its published ports, its TAP, its address, and — with the
//! last bridged VM — the owner's NAT table and bridge. Every step is idempotent, so a release
//! interrupted by a dead daemon is simply done again.

use std::net::Ipv4Addr;

use banger_helper_proto::{Publish, TapName};

use super::attach::{blocking, helper_error, stored_ports};
use crate::error::{DaemonError, ErrorKind, Result};
use crate::state::Daemon;

/// Give back everything VM `vm_id` (called `name`) holds. When the privileged part cannot
/// be done now (no helper answers), the record stays so a later release (the next stop, or
/// reconciliation at the daemon's next start) finishes it; the error says why.
pub async fn release(daemon: &Daemon, vm_id: &str, name: &str) -> Result<()> {
    let Some(mode) = daemon.store().vm_network(vm_id)? else {
        return Ok(());
    };
    if mode != "bridge" {
        // User-mode networking and its forwards lived in the VMM, gone with it.
        daemon.store().clear_vm_network(vm_id)?;
        return Ok(());
    }
    let plumbing = daemon.net.plumbing(daemon, None)?;
    let Some(privileged) = plumbing.privileged else {
        return Err(DaemonError::unavailable(format!(
            "VM {name}'s TAP and port forwards cannot be removed now: {}",
            plumbing.selection.reason
        ))
        .with_hint("start the root helper; banger removes them at its next start"));
    };
    let _bridge = daemon.net.lock.lock().await;
    let lease = daemon.store().lease_of(vm_id)?;
    let publishes: Vec<Publish> = match &lease {
        Some(lease) => stored_ports(daemon, vm_id)?
            .into_iter()
            .map(|mapping| Publish {
                mapping,
                guest_addr: lease.address,
            })
            .collect(),
        None => Vec::new(),
    };
    let tap =
        TapName::for_vm(vm_id).map_err(|e| DaemonError::from_error(ErrorKind::Internal, &e))?;
    let last = {
        let store = daemon.store();
        !store
            .list_vm_networks()?
            .iter()
            .any(|(id, mode)| id != vm_id && mode == "bridge")
    };
    let p = privileged.clone();
    blocking(move || -> Result<()> {
        for publish in publishes {
            p.remove_publish(publish).map_err(helper_error)?;
        }
        p.delete_tap(&tap).map_err(helper_error)?;
        Ok(())
    })
    .await?;
    let released: Option<Ipv4Addr> = daemon.store().release_address(vm_id)?;
    daemon.store().clear_vm_network(vm_id)?;
    if last {
        blocking(move || -> Result<()> {
            privileged.remove_nat().map_err(helper_error)?;
            privileged.remove_bridge().map_err(helper_error)
        })
        .await?;
    }
    tracing::info!(vm = %name, address = ?released, last, "network released");
    Ok(())
}

/// At daemon start, after reconciliation: release the networking of every VM that holds
/// some but is not active (a release that could not finish before), and delete the
/// owner's TAPs and port forwards that belong to no active VM (a daemon killed between
/// making them and recording anything, a VM removed while no helper answered), and the
/// bridge and NAT table when no VM is bridged.
pub async fn sweep(daemon: &Daemon) {
    let held = match daemon.store().list_vm_networks() {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %banger_system::error_chain(&e), "cannot list VM networks");
            return;
        }
    };
    for (id, _) in held {
        let vm = daemon.store().get_vm(&id).ok().flatten();
        let active = vm.as_ref().is_some_and(|vm| vm.state.is_active());
        if active {
            continue;
        }
        let name = vm.map_or(id.clone(), |vm| vm.name);
        if let Err(e) = release(daemon, &id, &name).await {
            tracing::warn!(vm = %name, error = %e.message, "cannot release the network of a stopped VM");
        }
    }
    let Ok(plumbing) = daemon.net.plumbing(daemon, None) else {
        return;
    };
    let Some(privileged) = plumbing.privileged else {
        return;
    };
    let active: Vec<String> = match daemon.store().list_vms() {
        Ok(vms) => vms
            .into_iter()
            .filter(|vm| vm.state.is_active())
            .map(|vm| vm.id)
            .collect(),
        Err(_) => return,
    };
    let leased: Vec<Ipv4Addr> = active
        .iter()
        .filter_map(|id| daemon.store().lease_of(id).ok().flatten())
        .map(|lease| lease.address)
        .collect();
    let _bridge = daemon.net.lock.lock().await;
    // A release forgets the last bridged VM's network before it removes the bridge: a
    // daemon killed in between leaves a bridge nothing records. (Read under the lock: an
    // attach records its network before it takes it.)
    let bridged = match daemon.store().list_vm_networks() {
        Ok(held) => held.iter().any(|(_, mode)| mode == "bridge"),
        Err(_) => return,
    };
    let swept = blocking(move || -> Result<Vec<String>> {
        let inventory = privileged.inventory().map_err(helper_error)?;
        let mut gone = Vec::new();
        for publish in inventory.publishes {
            if !leased.contains(&publish.guest_addr) {
                gone.push(publish.to_string());
                privileged.remove_publish(publish).map_err(helper_error)?;
            }
        }
        for tap in inventory.taps {
            let owned = active
                .iter()
                .any(|id| TapName::for_vm(id).is_ok_and(|t| t == tap));
            if !owned {
                privileged.delete_tap(&tap).map_err(helper_error)?;
                gone.push(tap.as_str().to_string());
            }
        }
        if !bridged && (inventory.nat || inventory.bridge.is_some()) {
            privileged.remove_nat().map_err(helper_error)?;
            privileged.remove_bridge().map_err(helper_error)?;
            gone.push("the bridge and NAT table".to_string());
        }
        Ok(gone)
    })
    .await;
    match swept {
        Ok(gone) if !gone.is_empty() => {
            tracing::info!(removed = ?gone, "removed networking no VM uses")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e.message, "cannot sweep the owner's TAPs"),
    }
}
