//! The little of a firewall ruleset the analysis needs: tables, chains, and for each rule
//! its interface matches, whether it has other conditions, and its verdict.

use banger_helper_proto::{Backend, FirewallManager};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: String,
    pub name: String,
    pub backend: Backend,
    pub chains: Vec<Chain>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// The hook of a base chain (`forward`, …); `None` for a regular chain.
    pub hook: Option<String>,
    /// `accept` or `drop` for a base chain.
    pub policy: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// `iifname` / `-i` match.
    pub iif: Option<Iface>,
    /// `oifname` / `-o` match.
    pub oif: Option<Iface>,
    /// Any other condition (addresses, ports, conntrack state, marks, …).
    pub other: bool,
    pub verdict: Verdict,
}

/// An interface-name match: one of `names` (a trailing `*` or `+` is a prefix
/// wildcard), or with `negate`, none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub names: Vec<String>,
    pub negate: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
    Jump(String),
    Goto(String),
    Return,
    /// No verdict (counters, logging): evaluation goes on.
    #[default]
    None,
}

impl Iface {
    pub fn matches(&self, name: &str) -> bool {
        let hit = self.names.iter().any(|pattern| {
            match pattern
                .strip_suffix('*')
                .or_else(|| pattern.strip_suffix('+'))
            {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            }
        });
        hit != self.negate
    }
}

impl Rule {
    /// A rule with no condition at all.
    pub fn is_unconditional(&self) -> bool {
        self.iif.is_none() && self.oif.is_none() && !self.other
    }
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// Who manages the table, judged by its names (it decides which fix to suggest).
    pub fn manager(&self) -> FirewallManager {
        let has = |name: &str| self.chain(name).is_some();
        if has("DOCKER-USER") {
            FirewallManager::Docker
        } else if self.chains.iter().any(|c| c.name.starts_with("ufw-")) {
            FirewallManager::Ufw
        } else if self.name == "firewalld" {
            FirewallManager::Firewalld
        } else if self.family == "ip" && self.name == "filter" && has("FORWARD") {
            FirewallManager::Iptables
        } else {
            FirewallManager::Nftables
        }
    }
}
