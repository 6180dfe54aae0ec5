//! Read-only verbs: what exists for the owner, and what the firewall looks like.

use banger_helper_proto::{BridgeInfo, Failure, FirewallReport, Inventory, TapName};
use banger_net::netlink::{LinkKind, Netlink};
use banger_net::nft::Nft;
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
        let nft = self.nft()?;
        let ruleset = nft.list_ruleset().map_err(system)?;
        let tables = firewall::tables_from_ruleset(&ruleset);
        let bridge = self.bridge();
        let nat_table = firewall::has_owner_table(&tables, &self.table());
        let nat_problems = if nat_table {
            self.audit_table(&nft)?
        } else {
            Vec::new()
        };
        let mut forward_drop = firewall::forward_blockers(&tables, &bridge);
        let (legacy, legacy_drop) = firewall::legacy::scan(self.runner.as_ref(), None, &bridge);
        forward_drop.extend(legacy_drop);
        Ok(FirewallReport {
            ip_forward: sysctl::ip_forward().map_err(system)?,
            bridge,
            nat_table,
            nat_problems,
            forward_drop,
            legacy,
        })
    }

    /// What is wrong with the owner's table, judged against the bridge it serves.
    fn audit_table(&self, nft: &Nft<'_>) -> Result<Vec<String>, Failure> {
        let Some(listing) = nft.list_table(&self.table()).map_err(system)? else {
            return Ok(Vec::new());
        };
        let nl = Netlink::open().map_err(system)?;
        let current = self.current_bridge(&nl)?;
        let mut problems = match &current {
            Some((link, Some(subnet))) => nft::audit(&listing, &self.table(), &link.name, subnet),
            Some((_, None)) => vec![format!(
                "bridge {} has no banger gateway address, so the table serves nothing",
                self.bridge()
            )],
            None => vec![format!(
                "the table exists but bridge {} does not; it is left over",
                self.bridge()
            )],
        };
        if let Some((link, _)) = &current
            && !sysctl::route_localnet(&link.name).unwrap_or(false)
        {
            problems.push(format!(
                "route_localnet is off on {}, so ports published on 127.0.0.1 do not reach guests",
                link.name
            ));
        }
        Ok(problems)
    }
}
