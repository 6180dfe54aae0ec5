//! [`Executor`]: the privileged verbs for one owner — the policy on top of `banger-net`.
//!
//! Every verb names objects that carry the owner (the bridge `bgbr<uid>`, the table
//! `banger_bgbr<uid>`, TAPs whose kernel owner is the uid), checks what already exists
//! before changing anything, and is idempotent: asking twice is not an error. Verbs run
//! one at a time (a mutex), so "check, then change" cannot interleave; the jail and cgroup
//! verbs, which touch only per-VM chroots and groups, have a mutex of their own, so a
//! jailer run (up to 40 s) never holds up the network verbs.
//!
//! The verbs live by concern: `bridge` (the bridge and TAPs), `nat` (the nftables table
//! and published ports), `report` (the read-only answers).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use banger_helper_proto::{
    Failure, FailureKind, PROTOCOL_VERSION, Reply, Subnet, Verb, bridge_name, nft_table_name,
};
use banger_net::NetError;
use banger_net::netlink::{Link, LinkKind, Netlink};
use banger_net::nft::Nft;
use banger_system::CommandRunner;

mod bridge;
mod cgroup;
mod jail;
mod nat;
mod report;

pub use jail::{JailSetup, jail_parent_cgroup};

pub struct Executor {
    owner_uid: u32,
    runner: Arc<dyn CommandRunner>,
    /// The `nft` to run; `None` looks it up in PATH and the sbin directories.
    nft_binary: Option<PathBuf>,
    /// How Firecracker is jailed; `None`: `launch_jailed` is refused.
    jail: Option<JailSetup>,
    /// Serialises the network verbs (bridge, TAPs, nftables, reports).
    lock: Mutex<()>,
    /// Serialises the jail and cgroup verbs (chroots and groups of VMs, nothing shared
    /// with the network verbs).
    jail_lock: Mutex<()>,
}

pub(crate) fn system(e: NetError) -> Failure {
    Failure::new(FailureKind::System, banger_system::error_chain(&e))
}

impl Executor {
    pub fn new(
        owner_uid: u32,
        runner: Arc<dyn CommandRunner>,
        nft_binary: Option<PathBuf>,
    ) -> Executor {
        Executor {
            owner_uid,
            runner,
            nft_binary,
            jail: None,
            lock: Mutex::new(()),
            jail_lock: Mutex::new(()),
        }
    }

    /// This executor jails the owner's Firecracker as `setup` says.
    pub fn with_jail(mut self, setup: JailSetup) -> Executor {
        self.jail = Some(setup);
        self
    }

    pub fn owner_uid(&self) -> u32 {
        self.owner_uid
    }

    pub(super) fn bridge(&self) -> String {
        bridge_name(self.owner_uid)
    }

    pub(super) fn table(&self) -> String {
        nft_table_name(self.owner_uid)
    }

    pub(super) fn nft(&self) -> Result<Nft<'_>, Failure> {
        match &self.nft_binary {
            Some(path) => Ok(Nft::at(self.runner.as_ref(), path)),
            None => Nft::locate(self.runner.as_ref()).map_err(system),
        }
    }

    /// Carry out one verb for the owner.
    pub fn execute(&self, verb: Verb) -> Result<Reply, Failure> {
        // A poisoned lock only means an earlier verb panicked; the kernel state it guards
        // is re-read by every verb, so carrying on is safe.
        let lock = match verb {
            Verb::LaunchJailed { .. }
            | Verb::ReleaseJail { .. }
            | Verb::EnsureVmCgroup { .. }
            | Verb::RemoveVmCgroup { .. } => &self.jail_lock,
            _ => &self.lock,
        };
        let _serial = lock.lock().unwrap_or_else(|p| p.into_inner());
        match verb {
            Verb::Hello => Ok(Reply::Hello {
                version: PROTOCOL_VERSION,
                owner_uid: self.owner_uid,
            }),
            Verb::EnsureBridge { subnet } => self.ensure_bridge(subnet).map(Reply::Bridge),
            Verb::RemoveBridge => self.remove_bridge().map(|()| Reply::Done),
            Verb::EnsureNat => self.ensure_nat().map(|()| Reply::Done),
            Verb::RemoveNat => self.remove_nat().map(|()| Reply::Done),
            Verb::CreateTap { tap } => self.create_tap(&tap).map(Reply::Tap),
            Verb::DeleteTap { tap } => self.delete_tap(&tap).map(|()| Reply::Done),
            Verb::AddPublish { publish } => self.add_publish(&publish).map(|()| Reply::Done),
            Verb::RemovePublish { publish } => self.remove_publish(&publish).map(|()| Reply::Done),
            Verb::Inventory => self.inventory().map(Reply::Inventory),
            Verb::Firewall => self.firewall().map(Reply::Firewall),
            Verb::LaunchJailed { launch } => self.launch_jailed(&launch).map(Reply::Jailed),
            Verb::ReleaseJail { id } => self.release_jail(&id).map(|()| Reply::Done),
            Verb::EnsureVmCgroup { id, limits } => self
                .ensure_vm_cgroup(&id, limits)
                .map(|dirs| Reply::VmCgroup { dirs }),
            Verb::RemoveVmCgroup { id } => self.remove_vm_cgroup(&id).map(|()| Reply::Done),
        }
    }

    /// The owner's bridge and its subnet (read from its address), if it exists.
    pub(super) fn current_bridge(
        &self,
        nl: &Netlink,
    ) -> Result<Option<(Link, Option<Subnet>)>, Failure> {
        let name = self.bridge();
        let Some(link) = nl.link(&name).map_err(system)? else {
            return Ok(None);
        };
        if link.kind != LinkKind::Bridge {
            return Err(Failure::new(
                FailureKind::Conflict,
                format!(
                    "{name} exists but is {}, not a bridge; remove it (ip link del {name})",
                    link.kind.describe()
                ),
            ));
        }
        let subnet = nl
            .ipv4_addresses(&link)
            .map_err(system)?
            .into_iter()
            .find_map(|(addr, prefix)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                let network = Ipv4Addr::from(u32::from(addr) & mask);
                Subnet::new(network, prefix)
                    .ok()
                    .filter(|s| s.gateway() == addr)
            });
        Ok(Some((link, subnet)))
    }

    pub(super) fn require_bridge(
        &self,
        nl: &Netlink,
        verb: &str,
    ) -> Result<(Link, Subnet), Failure> {
        match self.current_bridge(nl)? {
            Some((link, Some(subnet))) => Ok((link, subnet)),
            Some((_, None)) => Err(Failure::new(
                FailureKind::Conflict,
                format!(
                    "bridge {} has no banger gateway address; run ensure_bridge again",
                    self.bridge()
                ),
            )),
            None => Err(Failure::new(
                FailureKind::NotFound,
                format!(
                    "{verb} needs the bridge {}, which does not exist; ensure_bridge first",
                    self.bridge()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// While a jail verb runs (its lock held), the network verbs still answer, and the
    /// other jail verbs wait for it.
    #[test]
    fn a_jailer_run_does_not_hold_up_the_network_verbs() {
        let executor = Arc::new(Executor::new(
            1000,
            Arc::new(banger_system::RealRunner),
            None,
        ));
        let held = executor.jail_lock.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for verb in [
            Verb::Hello,
            Verb::ReleaseJail {
                id: banger_helper_proto::JailId::new("abc").unwrap(),
            },
        ] {
            let executor = Arc::clone(&executor);
            let tx = tx.clone();
            std::thread::spawn(move || {
                let name = verb.name();
                let _ = executor.execute(verb);
                let _ = tx.send(name);
            });
        }
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("hello"));
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "release_jail ran while another jail verb held the jail lock"
        );
        drop(held);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("release_jail"));
    }
}
