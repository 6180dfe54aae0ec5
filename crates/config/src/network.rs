//! The `[network]` table: how guests are networked, on which subnet, with which resolvers.
//!
//! * `mode` — `auto` (bridge networking when banger may do privileged work: the system
//!   install's helper, a helper started by hand, or a root daemon; else QEMU user-mode
//!   networking), `bridge` (insist on it), `user` (always user-mode), `none` (no network:
//!   the agent channel still works). The mode actually in force is decided where the
//!   privileges are known (`banger_helper::select_network_mode`).
//! * `subnet` — the owner's bridge subnet; unset, one is chosen that avoids the host's
//!   routes (`auto`).
//! * `dns` — the resolvers guests are given on the bridge; unset, the host's own
//!   (`auto`), or public ones when the host has only a local stub (`builtin`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use banger_helper_proto::Subnet;
use serde::{Deserialize, Serialize};

use crate::{Config, Provenance, Resolved};

/// Resolvers when neither the config nor the host provides a usable one.
pub const BUILTIN_DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)];
/// At most this many resolvers (the guest's resolv.conf reads no more).
pub const MAX_DNS: usize = 3;
/// The host's resolver configuration.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of upstream resolvers (when `/etc/resolv.conf` names its stub).
pub const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// How the user wants guests networked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Auto,
    Bridge,
    User,
    None,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Auto => "auto",
            NetworkMode::Bridge => "bridge",
            NetworkMode::User => "user",
            NetworkMode::None => "none",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(NetworkMode::Auto),
            "bridge" => Ok(NetworkMode::Bridge),
            "user" => Ok(NetworkMode::User),
            "none" => Ok(NetworkMode::None),
            other => Err(format!(
                "unknown network mode {other:?}; expected auto, bridge, user or none"
            )),
        }
    }
}

/// The `[network]` table as written: `None` means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub mode: Option<NetworkMode>,
    pub subnet: Option<Subnet>,
    pub dns: Option<Vec<Ipv4Addr>>,
}

impl Config {
    /// `network.mode` (config) or `auto` (builtin).
    pub fn network_mode_resolved(&self) -> Resolved<NetworkMode> {
        match self.network.mode {
            Some(mode) => Resolved::new(mode, Provenance::Config),
            None => Resolved::new(NetworkMode::Auto, Provenance::Builtin),
        }
    }

    /// [`Config::dns_resolved`] from this host's files ([`HOST_RESOLV_CONF`],
    /// [`RESOLVED_UPSTREAM`]).
    pub fn guest_dns(&self) -> Resolved<Vec<Ipv4Addr>> {
        let resolv = std::fs::read_to_string(HOST_RESOLV_CONF).ok();
        let upstream = std::fs::read_to_string(RESOLVED_UPSTREAM).ok();
        self.dns_resolved(resolv.as_deref(), upstream.as_deref())
    }

    /// The resolvers guests get: `network.dns` (config); else the host's, from the text
    /// of `/etc/resolv.conf` and, when that names only a local stub (systemd-resolved,
    /// dnsmasq on 127.0.0.1), of systemd-resolved's upstream list (auto); else
    /// [`BUILTIN_DNS`]. Loopback resolvers are the guest's own loopback inside a VM, so
    /// they never count.
    pub fn dns_resolved(
        &self,
        resolv_conf: Option<&str>,
        resolved_upstream: Option<&str>,
    ) -> Resolved<Vec<Ipv4Addr>> {
        if let Some(dns) = &self.network.dns {
            return Resolved::new(dns.clone(), Provenance::Config);
        }
        for text in [resolv_conf, resolved_upstream].into_iter().flatten() {
            let found = nameservers(text);
            if !found.is_empty() {
                return Resolved::new(found, Provenance::Auto);
            }
        }
        Resolved::new(BUILTIN_DNS.to_vec(), Provenance::Builtin)
    }
}

/// The usable IPv4 `nameserver` lines of a resolv.conf, at most [`MAX_DNS`].
pub fn nameservers(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|addr| addr.parse::<Ipv4Addr>().ok())
        .filter(|addr| usable_resolver(*addr).is_ok())
        .take(MAX_DNS)
        .collect()
}

/// Whether a guest could use `addr` as a resolver; the reason when not.
pub fn usable_resolver(addr: Ipv4Addr) -> Result<(), String> {
    if addr.is_loopback() {
        return Err(format!(
            "{addr} is a loopback address: inside a VM that is the guest itself; use a resolver the guest can reach (your network's, or a public one)"
        ));
    }
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
        return Err(format!("{addr} is not a unicast address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{ConfigError, parse_with_home};

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse_with_home(text, Path::new("/cfg/config.toml"), None)
    }

    fn bad(text: &str) -> (usize, usize, Option<String>, String) {
        let err = p(text).unwrap_err();
        let (line, col) = err.position().unwrap();
        (line, col, err.key().map(str::to_string), err.to_string())
    }

    #[test]
    fn every_key_parses() {
        let cfg = p(
            "[network]\nmode = \"bridge\"\nsubnet = \"192.168.77.0/24\"\ndns = [\"10.0.0.53\", \"1.1.1.1\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.network.mode, Some(NetworkMode::Bridge));
        assert_eq!(cfg.network.subnet, Some("192.168.77.0/24".parse().unwrap()));
        assert_eq!(
            cfg.network.dns,
            Some(vec![Ipv4Addr::new(10, 0, 0, 53), Ipv4Addr::new(1, 1, 1, 1)])
        );
        for mode in ["auto", "bridge", "user", "none"] {
            let cfg = p(&format!("[network]\nmode = {mode:?}\n")).unwrap();
            assert_eq!(cfg.network.mode.unwrap().as_str(), mode);
            assert_eq!(mode.parse::<NetworkMode>().unwrap().to_string(), mode);
        }
        assert_eq!(p("").unwrap().network, NetworkConfig::default());
    }

    #[test]
    fn bad_values_name_the_key_position_and_the_fix() {
        let (line, col, key, msg) = bad("[network]\nmode = \"tap\"\n");
        assert_eq!((line, col, key.as_deref()), (2, 8, Some("network.mode")));
        assert!(msg.contains("\"tap\" is not one of"), "{msg}");

        let (line, col, key, msg) = bad("[network]\nsubnet = \"8.8.8.0/24\"\n");
        assert_eq!((line, col, key.as_deref()), (2, 10, Some("network.subnet")));
        assert!(msg.contains("not a private range"), "{msg}");
        for (subnet, why) in [
            ("10.0.0.0/8", "prefix outside"),
            ("10.213.0.1/24", "host bits set"),
            ("10.213.0.0", "not an IPv4 subnet"),
        ] {
            let msg = bad(&format!("[network]\nsubnet = {subnet:?}\n")).3;
            assert!(msg.contains(why), "{subnet}: {msg}");
        }
        let msg = bad("[network]\nsubnet = 24\n").3;
        assert!(msg.contains("`network.subnet` must be a string"), "{msg}");

        let (line, col, key, msg) = bad("[network]\ndns = [\"1.1.1.1\", \"127.0.0.53\"]\n");
        assert_eq!((line, col, key.as_deref()), (2, 19, Some("network.dns")));
        assert!(
            msg.contains("loopback") && msg.contains("127.0.0.53"),
            "{msg}"
        );
        assert!(bad("[network]\ndns = []\n").3.contains("at least one"));
        assert!(bad("[network]\ndns = \"1.1.1.1\"\n").3.contains("an array"));
        assert!(
            bad("[network]\ndns = [\"dns.google\"]\n")
                .3
                .contains("IPv4")
        );
        let four = "[network]\ndns = [\"1.1.1.1\", \"1.0.0.1\", \"9.9.9.9\", \"8.8.8.8\"]\n";
        assert!(bad(four).3.contains("at most 3"));

        let (line, col, key, msg) = bad("[network]\nbridge = \"br0\"\n");
        assert_eq!((line, col, key.as_deref()), (2, 1, Some("network.bridge")));
        assert!(
            msg.contains("in [network]") && msg.contains("mode, subnet, dns"),
            "{msg}"
        );
    }

    #[test]
    fn provenance() {
        let cfg = p("").unwrap();
        assert_eq!(
            cfg.network_mode_resolved(),
            Resolved::new(NetworkMode::Auto, Provenance::Builtin)
        );
        let host = "# generated\nnameserver 192.168.1.1\nnameserver ::1\nnameserver 127.0.0.1\noptions edns0\n";
        assert_eq!(
            cfg.dns_resolved(Some(host), None),
            Resolved::new(vec![Ipv4Addr::new(192, 168, 1, 1)], Provenance::Auto)
        );
        // systemd-resolved's stub: its upstream list is used instead.
        let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\n";
        let upstream = "nameserver 10.1.2.3\nnameserver 10.1.2.4\n";
        assert_eq!(
            cfg.dns_resolved(Some(stub), Some(upstream)).value,
            [Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(10, 1, 2, 4)]
        );
        assert_eq!(
            cfg.dns_resolved(Some(stub), None),
            Resolved::new(BUILTIN_DNS.to_vec(), Provenance::Builtin)
        );
        let cfg = p("[network]\nmode = \"user\"\ndns = [\"10.0.0.2\"]\n").unwrap();
        assert_eq!(cfg.network_mode_resolved().source, Provenance::Config);
        assert_eq!(
            cfg.dns_resolved(Some(host), None),
            Resolved::new(vec![Ipv4Addr::new(10, 0, 0, 2)], Provenance::Config)
        );
    }
}
