//! [`Executor`]: the privileged verbs for one owner — the policy on top of `banger-net`.
//!
//! Every verb names objects that carry the owner (the bridge `bgbr<uid>`, the table
//! `banger_bgbr<uid>`, TAPs whose kernel owner is the uid), checks what already exists
//! before changing anything, and is idempotent: asking twice is not an error. Verbs run
//! one at a time (a mutex), so "check, then change" cannot interleave.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use banger_helper_proto::{
    BridgeInfo, Failure, FailureKind, FirewallReport, Inventory, PROTOCOL_VERSION, Publish, Reply,
    Subnet, TapInfo, TapName, Verb, bridge_name, nft_table_name,
};
use banger_net::netlink::{Link, LinkKind, Netlink};
use banger_net::nft::{self, Nft};
use banger_net::{NetError, firewall, subnet, sysctl, tap};
use banger_system::CommandRunner;

pub struct Executor {
    owner_uid: u32,
    runner: Arc<dyn CommandRunner>,
    /// The `nft` to run; `None` looks it up in PATH and the sbin directories.
    nft_binary: Option<PathBuf>,
    lock: Mutex<()>,
}

fn system(e: NetError) -> Failure {
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
            lock: Mutex::new(()),
        }
    }

    pub fn owner_uid(&self) -> u32 {
        self.owner_uid
    }

    fn bridge(&self) -> String {
        bridge_name(self.owner_uid)
    }

    fn table(&self) -> String {
        nft_table_name(self.owner_uid)
    }

    fn nft(&self) -> Result<Nft<'_>, Failure> {
        match &self.nft_binary {
            Some(path) => Ok(Nft::at(self.runner.as_ref(), path)),
            None => Nft::locate(self.runner.as_ref()).map_err(system),
        }
    }

    /// Carry out one verb for the owner.
    pub fn execute(&self, verb: Verb) -> Result<Reply, Failure> {
        // A poisoned lock only means an earlier verb panicked; the kernel state it guards
        // is re-read by every verb, so carrying on is safe.
        let _serial = self.lock.lock().unwrap_or_else(|p| p.into_inner());
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
        }
    }

    /// The owner's bridge and its subnet (read from its address), if it exists.
    fn current_bridge(&self, nl: &Netlink) -> Result<Option<(Link, Option<Subnet>)>, Failure> {
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

    fn require_bridge(&self, nl: &Netlink, verb: &str) -> Result<(Link, Subnet), Failure> {
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

    fn ensure_bridge(&self, subnet: Subnet) -> Result<BridgeInfo, Failure> {
        let nl = Netlink::open().map_err(system)?;
        let name = self.bridge();
        let existing = self.current_bridge(&nl)?;
        if let Some((_, Some(have))) = &existing
            && *have != subnet
        {
            return Err(Failure::new(
                FailureKind::Conflict,
                format!(
                    "bridge {name} is on {have}, not {subnet}; stop the VMs using it and remove the bridge first"
                ),
            ));
        }
        let own = existing.as_ref().map(|(link, _)| link.index);
        let routes = nl.ipv4_routes().map_err(system)?;
        let clashes = subnet::conflicts(&subnet, &routes, own);
        if !clashes.is_empty() {
            let list: Vec<String> = clashes
                .iter()
                .map(|r| format!("{}/{}", r.destination, r.prefix))
                .collect();
            return Err(Failure::new(
                FailureKind::Conflict,
                format!(
                    "subnet {subnet} overlaps the host's route(s) {}; choose another subnet (network.subnet in config.toml)",
                    list.join(", ")
                ),
            ));
        }
        let link = match existing {
            Some((link, _)) => link,
            None => {
                nl.create_bridge(&name).map_err(system)?;
                nl.link(&name)
                    .map_err(system)?
                    .ok_or_else(|| system(NetError::NoSuchLink(name.clone())))?
            }
        };
        let has_gateway = nl
            .ipv4_addresses(&link)
            .map_err(system)?
            .contains(&(subnet.gateway(), subnet.prefix()));
        if !has_gateway {
            nl.add_ipv4_address(&link, subnet.gateway(), subnet.prefix())
                .map_err(system)?;
        }
        nl.attach_and_up(&link, None).map_err(system)?;
        Ok(BridgeInfo {
            name,
            subnet,
            gateway: subnet.gateway(),
        })
    }

    fn remove_bridge(&self) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        match self.current_bridge(&nl)? {
            Some((link, _)) => nl.delete_link(&link).map_err(system),
            None => Ok(()),
        }
    }

    fn ensure_nat(&self) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        let (link, subnet) = self.require_bridge(&nl, "ensure_nat")?;
        let nft = self.nft()?;
        nft.apply(
            "ensure_nat",
            nft::ensure_nat(&self.table(), &link.name, &subnet),
        )
        .map_err(system)?;
        sysctl::set_route_localnet(&link.name).map_err(system)?;
        sysctl::set_ip_forward().map_err(system)
    }

    fn remove_nat(&self) -> Result<(), Failure> {
        let nft = self.nft()?;
        if nft.list_table(&self.table()).map_err(system)?.is_some() {
            nft.apply("remove_nat", nft::delete_table(&self.table()))
                .map_err(system)?;
        }
        Ok(())
    }

    fn owned_tap(&self, nl: &Netlink, tap: &TapName) -> Result<Option<Link>, Failure> {
        let Some(link) = nl.link(tap.as_str()).map_err(system)? else {
            return Ok(None);
        };
        match link.kind {
            LinkKind::Tap { owner: Some(uid) } if uid == self.owner_uid => Ok(Some(link)),
            _ => Err(Failure::new(
                FailureKind::NotPermitted,
                format!(
                    "{tap} is {}, not a TAP of uid {}; banger only touches its owner's TAPs",
                    link.kind.describe(),
                    self.owner_uid
                ),
            )),
        }
    }

    fn create_tap(&self, tap: &TapName) -> Result<TapInfo, Failure> {
        let nl = Netlink::open().map_err(system)?;
        let (bridge, _) = self.require_bridge(&nl, "create_tap")?;
        let link = match self.owned_tap(&nl, tap)? {
            Some(link) => link,
            None => {
                tap::create_persistent(tap.as_str(), self.owner_uid).map_err(system)?;
                nl.link(tap.as_str())
                    .map_err(system)?
                    .ok_or_else(|| system(NetError::NoSuchLink(tap.to_string())))?
            }
        };
        nl.attach_and_up(&link, Some(&bridge)).map_err(system)?;
        Ok(TapInfo {
            name: tap.clone(),
            bridge: bridge.name,
            owner_uid: self.owner_uid,
        })
    }

    fn delete_tap(&self, tap: &TapName) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        match self.owned_tap(&nl, tap)? {
            Some(link) => nl.delete_link(&link).map_err(system),
            None => Ok(()),
        }
    }

    fn add_publish(&self, p: &Publish) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        let (_, subnet) = self.require_bridge(&nl, "add_publish")?;
        if !subnet.is_guest_address(p.guest_addr) {
            return Err(Failure::new(
                FailureKind::BadRequest,
                format!("{} is not a guest address on {subnet}", p.guest_addr),
            ));
        }
        let lowest = sysctl::unprivileged_port_start().map_err(system)?;
        if self.owner_uid != 0 && p.mapping.host_port.get() < lowest {
            return Err(Failure::new(
                FailureKind::NotPermitted,
                format!(
                    "host port {} is below {lowest}, which only root may bind; publish on port {lowest} or above",
                    p.mapping.host_port
                ),
            ));
        }
        let nft = self.nft()?;
        if nft.list_table(&self.table()).map_err(system)?.is_none() {
            return Err(Failure::new(
                FailureKind::NotFound,
                "add_publish needs the NAT table; ensure_nat first",
            ));
        }
        for (existing, _) in nft.publishes(&self.table()).map_err(system)? {
            if existing == *p {
                return Ok(());
            }
            let (a, b) = (&existing.mapping, &p.mapping);
            let same_addr =
                a.host_addr.is_none() || b.host_addr.is_none() || a.host_addr == b.host_addr;
            if a.protocol == b.protocol && a.host_port == b.host_port && same_addr {
                return Err(Failure::new(
                    FailureKind::Conflict,
                    format!(
                        "host port {}/{} is already published ({existing}); unpublish it first",
                        b.host_port, b.protocol
                    ),
                ));
            }
        }
        nft.apply("add_publish", nft::add_publish(&self.table(), p))
            .map_err(system)
    }

    fn remove_publish(&self, p: &Publish) -> Result<(), Failure> {
        let nft = self.nft()?;
        let found = nft
            .publishes(&self.table())
            .map_err(system)?
            .into_iter()
            .filter(|(existing, _)| existing == p)
            .flat_map(|(_, handle)| nft::delete_rule(&self.table(), nft::CHAIN_PUBLISH, handle))
            .collect::<Vec<_>>();
        if found.is_empty() {
            return Ok(());
        }
        nft.apply("remove_publish", found).map_err(system)
    }

    fn inventory(&self) -> Result<Inventory, Failure> {
        let nl = Netlink::open().map_err(system)?;
        let bridge = match self.current_bridge(&nl)? {
            Some((link, Some(subnet))) => Some(BridgeInfo {
                name: link.name,
                subnet,
                gateway: subnet.gateway(),
            }),
            _ => None,
        };
        let mut taps: Vec<TapName> = nl
            .links()
            .map_err(system)?
            .into_iter()
            .filter(|l| {
                l.kind
                    == LinkKind::Tap {
                        owner: Some(self.owner_uid),
                    }
            })
            .filter_map(|l| TapName::new(&l.name).ok())
            .collect();
        taps.sort();
        let nft = self.nft()?;
        let table = nft.list_table(&self.table()).map_err(system)?;
        let publishes = table
            .as_ref()
            .map(|t| nft::publishes_in(t).into_iter().map(|(p, _)| p).collect())
            .unwrap_or_default();
        Ok(Inventory {
            bridge,
            taps,
            nat: table.is_some(),
            publishes,
        })
    }

    fn firewall(&self) -> Result<FirewallReport, Failure> {
        let ruleset = self.nft()?.list_ruleset().map_err(system)?;
        Ok(FirewallReport {
            ip_forward: sysctl::ip_forward().map_err(system)?,
            bridge: self.bridge(),
            nat_table: firewall::has_table(&ruleset, &self.table()),
            forward_drop: firewall::drop_policy_chains(&ruleset, "forward", &self.table()),
        })
    }
}
