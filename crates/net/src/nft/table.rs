//! The owner's table (family `ip`, named after the owner's bridge), as data.
//!
//! * `guard` (prerouting, raw priority): drop packets from the bridge to 127.0.0.0/8, so
//!   `route_localnet` on the bridge cannot expose the host's loopback services to guests,
//!   and packets from the bridge whose source is not on the subnet (a guest spoofing
//!   another network's address);
//! * `prerouting` and `output` (nat, dstnat): connections to a local address jump to
//!   `publish`, the chain of DNAT rules for published ports (see `publish.rs`);
//! * `postrouting` (nat, srcnat): masquerade the subnet out of any other interface, and
//!   connections DNAT'ed into the bridge from the host's loopback or from another guest
//!   (so replies come back the same way);
//! * `forward` (filter): accept what guests send and the replies to it, and published
//!   connections; drop any other new connection into the bridge.
//!
//! Every rule carries a comment naming its role (`banger: …`): [`super::audit`] reads them
//! back to tell whether the table is intact.

use std::net::Ipv4Addr;

use banger_helper_proto::Subnet;
use serde_json::{Value, json};

use super::json::{FAMILY, add_rule, ct_dnat, local_daddr, m, meta, payload, prefix, verdict};

/// The publish chain: a regular chain the nat base chains jump to.
pub const CHAIN_PUBLISH: &str = "publish";
/// Comments of the base rules start with this.
pub const ROLE_PREFIX: &str = "banger: ";
/// Names of the owners' tables start with this (`banger_bgbr<uid>`).
pub const OWNER_TABLE_PREFIX: &str = "banger_bgbr";
/// An empty table whose presence records that banger turned `ip_forward` on (it was
/// off), so the last owner's `remove_nat` may turn it off again.
pub const FORWARDING_MARKER: &str = "banger_ip_forward";

/// A base chain of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub name: &'static str,
    pub kind: &'static str,
    pub hook: &'static str,
    pub prio: i32,
}

pub const BASE_CHAINS: [BaseChain; 5] = [
    BaseChain {
        name: "guard",
        kind: "filter",
        hook: "prerouting",
        prio: -300,
    },
    BaseChain {
        name: "prerouting",
        kind: "nat",
        hook: "prerouting",
        prio: -100,
    },
    BaseChain {
        name: "output",
        kind: "nat",
        hook: "output",
        prio: -100,
    },
    BaseChain {
        name: "postrouting",
        kind: "nat",
        hook: "postrouting",
        prio: 100,
    },
    BaseChain {
        name: "forward",
        kind: "filter",
        hook: "forward",
        prio: 0,
    },
];

/// One rule of a base chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRule {
    pub chain: &'static str,
    /// What it is for; its comment is `banger: ROLE`.
    pub role: &'static str,
    pub expr: Vec<Value>,
}

impl TableRule {
    pub fn comment(&self) -> String {
        format!("{ROLE_PREFIX}{}", self.role)
    }
}

/// Every rule of the base chains, in order.
pub fn base_rules(bridge: &str, subnet: &Subnet) -> Vec<TableRule> {
    let net = prefix(subnet.network(), subnet.prefix());
    let loopback = prefix(Ipv4Addr::new(127, 0, 0, 0), 8);
    let iif = |op| m(op, meta("iifname"), json!(bridge));
    let oif = |op| m(op, meta("oifname"), json!(bridge));
    let jump = json!({ "jump": { "target": CHAIN_PUBLISH } });
    let rule = |chain, role, expr| TableRule { chain, role, expr };
    vec![
        rule(
            "guard",
            "guests may not reach the host's loopback",
            vec![
                iif("=="),
                m("==", payload("ip", "daddr"), loopback.clone()),
                verdict("drop"),
            ],
        ),
        rule(
            "guard",
            "guests send only from their subnet",
            vec![
                iif("=="),
                m("!=", payload("ip", "saddr"), net.clone()),
                verdict("drop"),
            ],
        ),
        rule(
            "prerouting",
            "published ports",
            vec![local_daddr(), jump.clone()],
        ),
        rule(
            "output",
            "published ports from the host",
            vec![local_daddr(), jump],
        ),
        rule(
            "postrouting",
            "guests reach the outside through NAT",
            vec![
                m("==", payload("ip", "saddr"), net.clone()),
                oif("!="),
                verdict("masquerade"),
            ],
        ),
        rule(
            "postrouting",
            "published ports reached from the host's loopback",
            vec![
                oif("=="),
                ct_dnat(),
                m("==", payload("ip", "saddr"), loopback),
                verdict("masquerade"),
            ],
        ),
        rule(
            "postrouting",
            "published ports reached from guests",
            vec![
                oif("=="),
                ct_dnat(),
                m("==", payload("ip", "saddr"), net),
                verdict("masquerade"),
            ],
        ),
        rule(
            "forward",
            "guests reach the outside",
            vec![iif("=="), verdict("accept")],
        ),
        rule(
            "forward",
            "replies to guests",
            vec![
                oif("=="),
                m(
                    "in",
                    json!({ "ct": { "key": "state" } }),
                    json!(["established", "related"]),
                ),
                verdict("accept"),
            ],
        ),
        rule(
            "forward",
            "published ports reach guests",
            vec![oif("=="), ct_dnat(), verdict("accept")],
        ),
        rule(
            "forward",
            "nothing else reaches guests",
            vec![oif("=="), verdict("drop")],
        ),
    ]
}

fn base_chain(table: &str, c: &BaseChain) -> Value {
    json!({ "add": { "chain": {
        "family": FAMILY, "table": table, "name": c.name,
        "type": c.kind, "hook": c.hook, "prio": c.prio, "policy": "accept"
    } } })
}

fn flush(table: &str, chain: &str) -> Value {
    json!({ "flush": { "chain": { "family": FAMILY, "table": table, "name": chain } } })
}

/// Create or refresh the table for `bridge` on `subnet`. Idempotent: the base chains are
/// flushed and refilled in the same transaction; the `publish` chain is left alone.
pub fn ensure_nat(table: &str, bridge: &str, subnet: &Subnet) -> Vec<Value> {
    let mut cmds = vec![json!({ "add": { "table": { "family": FAMILY, "name": table } } })];
    for chain in &BASE_CHAINS {
        cmds.push(base_chain(table, chain));
        cmds.push(flush(table, chain.name));
    }
    cmds.push(
        json!({ "add": { "chain": { "family": FAMILY, "table": table, "name": CHAIN_PUBLISH } } }),
    );
    for rule in base_rules(bridge, subnet) {
        cmds.push(add_rule(
            table,
            rule.chain,
            Some(&rule.comment()),
            rule.expr,
        ));
    }
    cmds
}

pub fn delete_table(table: &str) -> Vec<Value> {
    vec![super::json::delete_table(table)]
}

/// Record that banger turned `ip_forward` on (idempotent).
pub fn add_forwarding_marker() -> Vec<Value> {
    vec![json!({ "add": { "table": { "family": FAMILY, "name": FORWARDING_MARKER } } })]
}

pub fn delete_forwarding_marker() -> Vec<Value> {
    vec![super::json::delete_table(FORWARDING_MARKER)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_refreshed_not_duplicated() {
        let subnet: Subnet = "10.213.0.0/24".parse().unwrap();
        let cmds = ensure_nat("banger_bgbr0", "bgbr0", &subnet);
        let flushed: Vec<&str> = cmds
            .iter()
            .filter_map(|c| c.pointer("/flush/chain/name")?.as_str())
            .collect();
        assert_eq!(
            flushed,
            ["guard", "prerouting", "output", "postrouting", "forward"],
            "every base chain is flushed before it is refilled; publish is kept"
        );
        let text = serde_json::to_string(&cmds).unwrap();
        assert!(text.contains(r#""addr":"10.213.0.0","len":24"#), "{text}");
    }

    #[test]
    fn every_rule_is_named_and_in_a_base_chain() {
        let subnet: Subnet = "10.213.0.0/24".parse().unwrap();
        let rules = base_rules("bgbr0", &subnet);
        let mut roles: Vec<&str> = rules.iter().map(|r| r.role).collect();
        roles.sort();
        roles.dedup();
        assert_eq!(roles.len(), rules.len(), "roles are unique");
        for rule in &rules {
            assert!(BASE_CHAINS.iter().any(|c| c.name == rule.chain), "{rule:?}");
        }
    }
}
