//! The commands that let a bridge's traffic through a chain that blocks it.
//!
//! Accepting *all* of the bridge's traffic in another table is safe: an accept there only
//! stops that table from dropping it, while banger's own table still drops every new
//! connection into the bridge that is not a published port. Each manager gets the command
//! it keeps (docker's `DOCKER-USER` survives docker restarts, ufw and firewalld persist
//! their own rules); plain iptables and nftables rules last until the next reboot.

use banger_helper_proto::{Backend, FirewallManager, ForeignChain};

/// The commands to run as root, each an argument vector, for the directions `chain` does
/// not already accept. Empty when it lets the bridge through.
pub fn commands(chain: &ForeignChain, bridge: &str) -> Vec<Vec<String>> {
    let mut dirs = Vec::new();
    if !chain.accepts_from_bridge {
        dirs.push(("-i", "iifname", "in"));
    }
    if !chain.accepts_to_bridge {
        dirs.push(("-o", "oifname", "out"));
    }
    if dirs.is_empty() {
        return Vec::new();
    }
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let iptables = match chain.backend {
        Backend::Nftables => "iptables-nft",
        Backend::IptablesLegacy => "iptables-legacy",
    };
    match (chain.manager, chain.backend) {
        (FirewallManager::Docker, _) => dirs
            .iter()
            .map(|(flag, _, _)| {
                argv(&[iptables, "-I", "DOCKER-USER", flag, bridge, "-j", "ACCEPT"])
            })
            .collect(),
        (FirewallManager::Ufw, _) => dirs
            .iter()
            .map(|(_, _, word)| argv(&["ufw", "route", "allow", word, "on", bridge]))
            .collect(),
        (FirewallManager::Firewalld, _) => vec![
            argv(&[
                "firewall-cmd",
                "--permanent",
                "--zone=trusted",
                &format!("--add-interface={bridge}"),
            ]),
            argv(&["firewall-cmd", "--reload"]),
        ],
        (FirewallManager::Iptables, _) | (FirewallManager::Nftables, Backend::IptablesLegacy) => {
            dirs.iter()
                .map(|(flag, _, _)| {
                    argv(&[iptables, "-I", &chain.chain, flag, bridge, "-j", "ACCEPT"])
                })
                .collect()
        }
        (FirewallManager::Nftables, Backend::Nftables) => dirs
            .iter()
            .map(|(_, key, _)| {
                argv(&[
                    "nft",
                    "insert",
                    "rule",
                    &chain.family,
                    &chain.table,
                    &chain.chain,
                    key,
                    bridge,
                    "accept",
                ])
            })
            .collect(),
    }
}

/// How long the fix lasts, when that is not forever.
pub fn lifetime_note(chain: &ForeignChain) -> Option<&'static str> {
    match chain.manager {
        FirewallManager::Docker => Some(
            "DOCKER-USER rules survive docker restarts but not a reboot: add them to a unit that runs after docker.service",
        ),
        FirewallManager::Ufw | FirewallManager::Firewalld => None,
        FirewallManager::Iptables => Some(
            "iptables rules last until reboot: save them (iptables-persistent: netfilter-persistent save)",
        ),
        FirewallManager::Nftables => Some(
            "the rule lasts until the ruleset is reloaded or the host reboots: add it to the file that defines the table (e.g. /etc/nftables.conf)",
        ),
    }
}

/// A command as a shell line a user can paste: plain words bare, others single-quoted.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
