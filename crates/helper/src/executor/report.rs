//! Read-only verbs: what exists for the owner, and what the firewall looks like.

use banger_helper_proto::{BridgeInfo, Failure, FirewallReport, Inventory, TapName};
use banger_net::netlink::{LinkKind, Netlink};
use banger_net::{firewall, nft, sysctl};

use super::{Executor, system};

impl Executor {
    pub(super) fn inventory(&self) -> Result<Inventory, Failure> {
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

    pub(super) fn firewall(&self) -> Result<FirewallReport, Failure> {
        let ruleset = self.nft()?.list_ruleset().map_err(system)?;
        Ok(FirewallReport {
            ip_forward: sysctl::ip_forward().map_err(system)?,
            bridge: self.bridge(),
            nat_table: firewall::has_table(&ruleset, &self.table()),
            forward_drop: firewall::drop_policy_chains(&ruleset, "forward", &self.table()),
        })
    }
}
