//! The owner's nftables table: NAT, forward rules and published ports.

use banger_helper_proto::{Failure, FailureKind, Publish};
use banger_net::netlink::Netlink;
use banger_net::{firewall, listeners, nft, sysctl};

use super::{Executor, system};

impl Executor {
    pub(super) fn ensure_nat(&self) -> Result<(), Failure> {
        let nl = Netlink::open().map_err(system)?;
        let (link, subnet) = self.require_bridge(&nl, "ensure_nat")?;
        let nft = self.nft()?;
        let forwarding = sysctl::ip_forward().map_err(system)?;
        let mut batch = nft::ensure_nat(&self.table(), &link.name, &subnet);
        if !forwarding {
            // Recorded in the same transaction as the table, so a marker never exists
            // without the table that needs forwarding.
            batch.extend(nft::add_forwarding_marker());
        }
        nft.apply("ensure_nat", batch).map_err(system)?;
        sysctl::set_route_localnet(&link.name).map_err(system)?;
        if !forwarding {
            sysctl::set_ip_forward(true).map_err(system)?;
        }
        Ok(())
    }

    /// Delete the owner's table. The last owner's removal also puts `ip_forward` back
    /// off when banger turned it on — unless something else now routes through this
    /// host (another firewall's forward chain, legacy iptables tables), which may have
    /// come to rely on it meanwhile.
    pub(super) fn remove_nat(&self) -> Result<(), Failure> {
        let nft = self.nft()?;
        if nft.list_table(&self.table()).map_err(system)?.is_some() {
            nft.apply("remove_nat", nft::delete_table(&self.table()))
                .map_err(system)?;
        }
        let tables = nft.ip_tables().map_err(system)?;
        let last_owner = !tables
            .iter()
            .any(|t| t.starts_with(nft::OWNER_TABLE_PREFIX));
        if !last_owner || !tables.iter().any(|t| t == nft::FORWARDING_MARKER) {
            return Ok(());
        }
        let ruleset = nft.list_ruleset().map_err(system)?;
        let mut others = firewall::forwarders(&firewall::tables_from_ruleset(&ruleset));
        match firewall::legacy::tables_in_use() {
            Ok(legacy) => others.extend(
                legacy
                    .into_iter()
                    .map(|t| format!("the legacy iptables table {t}")),
            ),
            Err(e) => others.push(format!(
                "legacy iptables tables that cannot be listed ({e})"
            )),
        }
        if others.is_empty() {
            sysctl::set_ip_forward(false).map_err(system)?;
        } else {
            tracing::info!(
                "leaving net.ipv4.ip_forward on, which banger turned on: {} also route(s) through this host",
                others.join(", ")
            );
        }
        nft.apply("remove_nat", nft::delete_forwarding_marker())
            .map_err(system)
    }

    pub(super) fn add_publish(&self, p: &Publish) -> Result<(), Failure> {
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
        let taken: Vec<String> =
            listeners::listening(p.mapping.protocol, p.mapping.host_port.get())
                .map_err(|e| {
                    Failure::new(
                        FailureKind::System,
                        format!("cannot read which host sockets listen: {e}"),
                    )
                })?
                .iter()
                .filter(|l| listeners::clashes(l, p.mapping.host_addr))
                .map(|l| format!("{}:{}", l.addr, l.port))
                .collect();
        if !taken.is_empty() {
            return Err(Failure::new(
                FailureKind::Conflict,
                format!(
                    "host port {}/{} is in use on this host ({}); publishing it would take over that service's connections; choose another host port",
                    p.mapping.host_port,
                    p.mapping.protocol,
                    taken.join(", ")
                ),
            ));
        }
        nft.apply("add_publish", nft::add_publish(&self.table(), p))
            .map_err(system)
    }

    pub(super) fn remove_publish(&self, p: &Publish) -> Result<(), Failure> {
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
}
