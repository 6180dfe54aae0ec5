//! What in a host's firewall stops guest traffic, and the fix.
//!
//! A `drop` verdict is final in netfilter: if another table's forward chain (docker's or
//! ufw's `FORWARD`, firewalld's, a hand-written ruleset) drops by default, guests cannot
//! reach the outside, nor published ports reach guests, whatever banger's table accepts —
//! unless that chain itself accepts the bridge's traffic first. This module reads the
//! rulesets into one small [`model`] (from `nft -j list ruleset`, see [`nft`], and from
//! `iptables-legacy -S`, see [`legacy`]), finds the chains that block, follows their jumps
//! to see whether the bridge is already let through, and says how to let it through
//! ([`fix`]).
//!
//! This reads rules; it does not simulate packets. A rule with conditions it does not
//! model (ports, addresses, conntrack state, marks) is assumed not to apply, so a report
//! errs toward "blocked" and the fix is always safe to apply: banger's own table still
//! drops unsolicited connections into the bridge.

pub mod fix;
pub mod legacy;
mod model;
mod nft;

use banger_helper_proto::{Backend, Blocking, ForeignChain};

pub use model::{Chain, Iface, Rule, Table, Verdict};
pub use nft::tables_from_ruleset;

use crate::nft::OWNER_TABLE_PREFIX;

/// Families whose forward hook sees routed IPv4 traffic.
const IPV4_FAMILIES: [&str; 2] = ["ip", "inet"];
/// How deep jumps are followed (rulesets are shallow; this only stops loops).
const MAX_DEPTH: usize = 16;

/// The forward chains in `tables` that would drop the traffic of guests on `bridge`
/// unless accepted first, with whether they do accept it. banger's own tables are skipped.
pub fn forward_blockers(tables: &[Table], bridge: &str) -> Vec<ForeignChain> {
    let mut found = Vec::new();
    for table in tables {
        let own = table.backend == Backend::Nftables && table.name.starts_with("banger_");
        if own || !IPV4_FAMILIES.contains(&table.family.as_str()) {
            continue;
        }
        for chain in table
            .chains
            .iter()
            .filter(|c| c.hook.as_deref() == Some("forward"))
        {
            let blocking = if chain.policy.as_deref() == Some("drop") {
                Blocking::PolicyDrop
            } else if chain.rules.last().is_some_and(|r| {
                r.is_unconditional() && matches!(r.verdict, Verdict::Drop | Verdict::Reject)
            }) {
                Blocking::FinalRule
            } else {
                continue;
            };
            found.push(ForeignChain {
                family: table.family.clone(),
                table: table.name.clone(),
                chain: chain.name.clone(),
                backend: table.backend,
                blocking,
                manager: table.manager(),
                accepts_from_bridge: walk(table, chain, Direction::In, bridge, 0)
                    == Outcome::Accept,
                accepts_to_bridge: walk(table, chain, Direction::Out, bridge, 0) == Outcome::Accept,
            });
        }
    }
    found
}

/// Other software that routes through this host: every forward-hook base chain of an
/// IPv4 family outside banger's tables, as "FAMILY TABLE CHAIN".
pub fn forwarders(tables: &[Table]) -> Vec<String> {
    tables
        .iter()
        .filter(|t| IPV4_FAMILIES.contains(&t.family.as_str()) && !t.name.starts_with("banger_"))
        .flat_map(|t| {
            t.chains
                .iter()
                .filter(|c| c.hook.as_deref() == Some("forward"))
                .map(move |c| format!("{} {} {}", t.family, t.name, c.name))
        })
        .collect()
}

/// Whether the ruleset has the owner table `table` (family `ip`).
pub fn has_owner_table(tables: &[Table], table: &str) -> bool {
    table.starts_with(OWNER_TABLE_PREFIX)
        && tables
            .iter()
            .any(|t| t.backend == Backend::Nftables && t.family == "ip" && t.name == table)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Arriving from the bridge (`iifname`).
    In,
    /// Leaving through the bridge (`oifname`).
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accept,
    Drop,
    /// The end of the chain (or a `return`): the caller goes on.
    Continue,
}

/// What happens to "everything in `dir` of `bridge`" in `chain`.
fn walk(table: &Table, chain: &Chain, dir: Direction, bridge: &str, depth: usize) -> Outcome {
    if depth > MAX_DEPTH {
        return Outcome::Continue;
    }
    for rule in &chain.rules {
        if !applies(rule, dir, bridge) {
            continue;
        }
        let into = |name: &str| {
            table.chain(name).map_or(Outcome::Continue, |c| {
                walk(table, c, dir, bridge, depth + 1)
            })
        };
        match &rule.verdict {
            Verdict::Accept => return Outcome::Accept,
            Verdict::Drop | Verdict::Reject => return Outcome::Drop,
            Verdict::Jump(target) => match into(target) {
                Outcome::Continue => {}
                decided => return decided,
            },
            Verdict::Goto(target) => return into(target),
            Verdict::Return => return Outcome::Continue,
            Verdict::None => {}
        }
    }
    Outcome::Continue
}

/// Whether `rule` applies to all of the bridge's traffic in `dir`: its interface match in
/// that direction (if any) includes the bridge, it has none in the other direction, and
/// no other condition.
fn applies(rule: &Rule, dir: Direction, bridge: &str) -> bool {
    let (this, other) = match dir {
        Direction::In => (&rule.iif, &rule.oif),
        Direction::Out => (&rule.oif, &rule.iif),
    };
    !rule.other && other.is_none() && this.as_ref().is_none_or(|i| i.matches(bridge))
}

#[cfg(test)]
mod tests;
