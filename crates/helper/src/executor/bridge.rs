//! The owner's bridge and TAPs.

use banger_helper_proto::{BridgeInfo, Failure, FailureKind, Subnet, TapInfo, TapName};
use banger_net::netlink::{Link, LinkKind, Netlink};
use banger_net::{NetError, subnet, tap};

use super::{Executor, system};

impl Executor {
    pub(super) fn ensure_bridge(&self, subnet: Subnet) -> Result<BridgeInfo, Failure> {
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

    pub(super) fn remove_bridge(&self) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        match self.current_bridge(&nl)? {
            Some((link, _)) => nl.delete_link(&link).map_err(system),
            None => Ok(()),
        }
    }

    pub(super) fn owned_tap(&self, nl: &Netlink, tap: &TapName) -> Result<Option<Link>, Failure> {
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

    pub(super) fn create_tap(&self, tap: &TapName) -> Result<TapInfo, Failure> {
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

    pub(super) fn delete_tap(&self, tap: &TapName) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        match self.owned_tap(&nl, tap)? {
            Some(link) => nl.delete_link(&link).map_err(system),
            None => Ok(()),
        }
    }
}
