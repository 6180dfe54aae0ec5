//! IPv4 subnets for the bridge, and guest MAC addresses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Narrowest and widest bridge subnets accepted: a /29 holds 5 guests, a /16 65 533.
pub const MIN_PREFIX: u8 = 16;
pub const MAX_PREFIX: u8 = 29;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("{0:?} is not an IPv4 subnet; write it as ADDRESS/PREFIX, e.g. 10.213.0.0/24")]
    Syntax(String),
    #[error(
        "subnet {0} has a prefix outside /{MIN_PREFIX}../{MAX_PREFIX}; pick a prefix in that range"
    )]
    Prefix(String),
    #[error("{given} has host bits set; the subnet is {network}")]
    HostBits { given: String, network: String },
    #[error(
        "subnet {0} is not a private range; use part of 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10"
    )]
    NotPrivate(String),
}

/// A private IPv4 subnet (network address and prefix) for a banger bridge. The first
/// host address is the bridge's own (the guests' gateway); guests get the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Subnet, SubnetError> {
        let text = format!("{network}/{prefix}");
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(SubnetError::Prefix(text));
        }
        let masked = u32::from(network) & mask(prefix);
        if masked != u32::from(network) {
            return Err(SubnetError::HostBits {
                given: text,
                network: format!("{}/{prefix}", Ipv4Addr::from(masked)),
            });
        }
        let subnet = Subnet { network, prefix };
        if !PRIVATE.iter().any(|(n, p)| {
            let outer = Subnet {
                network: Ipv4Addr::from(*n),
                prefix: *p,
            };
            outer.contains(network) && outer.contains(subnet.broadcast())
        }) {
            return Err(SubnetError::NotPrivate(text));
        }
        Ok(subnet)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The bridge's address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The first and last addresses guests may have (gateway and broadcast excluded).
    pub fn guest_range(&self) -> (Ipv4Addr, Ipv4Addr) {
        (
            Ipv4Addr::from(u32::from(self.network) + 2),
            Ipv4Addr::from(u32::from(self.broadcast()) - 1),
        )
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `addr` may be a guest's address in this subnet.
    pub fn is_guest_address(&self, addr: Ipv4Addr) -> bool {
        let (first, last) = self.guest_range();
        (u32::from(first)..=u32::from(last)).contains(&u32::from(addr))
    }

    /// Whether the two ranges share any address.
    pub fn overlaps(&self, network: Ipv4Addr, prefix: u8) -> bool {
        let shorter = self.prefix.min(prefix);
        let m = mask(shorter);
        u32::from(self.network) & m == u32::from(network) & m
    }
}

/// Netmask of a prefix length (0..=32).
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// RFC 1918 and the shared address space (RFC 6598), as (network, prefix).
const PRIVATE: [(u32, u8); 4] = [
    (0x0a00_0000, 8),
    (0xac10_0000, 12),
    (0xc0a8_0000, 16),
    (0x6440_0000, 10),
];

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Subnet, SubnetError> {
        let syntax = || SubnetError::Syntax(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 2 {
            return Err(syntax());
        }
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        Subnet::new(addr, prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = SubnetError;
    fn try_from(s: String) -> Result<Subnet, SubnetError> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// A guest's MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC banger gives the guest at `addr`: locally administered, unicast, and the
    /// address's four bytes, so it is unique wherever the address is (one per lease).
    pub fn for_guest(addr: Ipv4Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x0a, 0x62, o[0], o[1], o[2], o[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives() {
        let s: Subnet = "10.213.4.0/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.213.4.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 213, 4, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 213, 4, 255));
        assert_eq!(
            s.guest_range(),
            (Ipv4Addr::new(10, 213, 4, 2), Ipv4Addr::new(10, 213, 4, 254))
        );
        assert!(s.is_guest_address(Ipv4Addr::new(10, 213, 4, 9)));
        assert!(!s.is_guest_address(s.gateway()));
        assert!(!s.is_guest_address(s.broadcast()));
        assert!(!s.is_guest_address(Ipv4Addr::new(10, 213, 5, 9)));
        assert!(s.overlaps(Ipv4Addr::new(10, 0, 0, 0), 8));
        assert!(s.overlaps(Ipv4Addr::new(10, 213, 4, 128), 25));
        assert!(!s.overlaps(Ipv4Addr::new(10, 213, 5, 0), 24));
        assert!(
            s.overlaps(Ipv4Addr::UNSPECIFIED, 0),
            "a default route covers everything"
        );
    }

    #[test]
    fn rejects_bad_subnets() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0/24",
            "10.0.0.0/24x",
            "10.0.0.0/+8",
            "x/24",
            "10.0.0.0/024",
        ] {
            assert!(
                matches!(bad.parse::<Subnet>(), Err(SubnetError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "10.0.0.0/8".parse::<Subnet>(),
            Err(SubnetError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/30".parse::<Subnet>(),
            Err(SubnetError::Prefix(_))
        ));
        let err = "10.0.0.1/24".parse::<Subnet>().unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/24"), "{err}");
        for public in [
            "8.8.8.0/24",
            "127.0.0.0/24",
            "169.254.0.0/16",
            "172.32.0.0/24",
        ] {
            assert!(
                matches!(public.parse::<Subnet>(), Err(SubnetError::NotPrivate(_))),
                "{public}"
            );
        }
        assert!("172.31.255.0/24".parse::<Subnet>().is_ok());
        assert!("100.64.0.0/16".parse::<Subnet>().is_ok());
        assert!(serde_json::from_str::<Subnet>("\"8.8.8.0/24\"").is_err());
    }

    #[test]
    fn mac_is_local_unicast_and_encodes_the_address() {
        let mac = MacAddr::for_guest(Ipv4Addr::new(10, 213, 0, 7));
        assert_eq!(mac.to_string(), "0a:62:0a:d5:00:07");
        assert_eq!(mac.0[0] & 0x01, 0, "unicast");
        assert_eq!(mac.0[0] & 0x02, 0x02, "locally administered");
    }
}
