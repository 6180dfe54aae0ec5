//! Published ports: `-p [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error(
        "{0:?} is not a port mapping; write HOST_PORT:GUEST_PORT, optionally with a host address in front (127.0.0.1:8080:80) and /udp or /tcp behind"
    )]
    Syntax(String),
    #[error("{0:?} is not a port; use a number from 1 to 65535")]
    Port(String),
    #[error("{0:?} is not a protocol; use tcp or udp")]
    Protocol(String),
    #[error(
        "{0:?} is not an IPv4 address to publish on; write one of this host's addresses as digits (127.0.0.1 for localhost, a LAN address), or leave it out to publish on all of them (host names and IPv6 are not supported)"
    )]
    HostAddr(String),
    #[error(
        "{0} is a {1} address: nothing connects to one; publish on an address of this host (127.0.0.1, a LAN address) or on all of them (leave the address out)"
    )]
    HostAddrKind(Ipv4Addr, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TCP or UDP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Port(u16);

impl Port {
    pub fn new(port: u16) -> Result<Port, PublishError> {
        if port == 0 {
            return Err(PublishError::Port("0".into()));
        }
        Ok(Port(port))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Port {
    type Error = PublishError;
    fn try_from(p: u16) -> Result<Port, PublishError> {
        Port::new(p)
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl FromStr for Port {
    type Err = PublishError;
    fn from_str(s: &str) -> Result<Port, PublishError> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PublishError::Port(s.into()));
        }
        let n: u16 = s.parse().map_err(|_| PublishError::Port(s.into()))?;
        Port::new(n).map_err(|_| PublishError::Port(s.into()))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the user asked for with `-p`: a host port (and optionally a host address) that
/// forwards to a guest port. The guest's address is filled in by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    pub protocol: Protocol,
    /// Only connections to this host address are forwarded; `None` means every address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_addr: Option<Ipv4Addr>,
    pub host_port: Port,
    pub guest_port: Port,
}

impl FromStr for PortMapping {
    type Err = PublishError;

    fn from_str(s: &str) -> Result<PortMapping, PublishError> {
        let (ports, protocol) = match s.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Protocol::Tcp),
            Some((ports, "udp")) => (ports, Protocol::Udp),
            Some((_, other)) => return Err(PublishError::Protocol(other.into())),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_addr, host, guest) = match parts.as_slice() {
            [host, guest] => (None, *host, *guest),
            [addr, host, guest] => {
                let addr: Ipv4Addr = addr
                    .parse()
                    .map_err(|_| PublishError::HostAddr((*addr).into()))?;
                if addr.is_broadcast() {
                    return Err(PublishError::HostAddrKind(addr, "broadcast"));
                }
                if addr.is_multicast() {
                    return Err(PublishError::HostAddrKind(addr, "multicast"));
                }
                (Some(addr), *host, *guest)
            }
            _ => return Err(PublishError::Syntax(s.into())),
        };
        Ok(PortMapping {
            protocol,
            host_addr,
            host_port: host.parse()?,
            guest_port: guest.parse()?,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(addr) = self.host_addr {
            write!(f, "{addr}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.guest_port, self.protocol
        )
    }
}

/// A mapping bound to a guest address: what the helper installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub mapping: PortMapping,
    pub guest_addr: Ipv4Addr,
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.mapping;
        match m.host_addr {
            Some(addr) => write!(f, "{addr}:{}", m.host_port)?,
            None => write!(f, "*:{}", m.host_port)?,
        }
        write!(f, " -> {}:{}/{}", self.guest_addr, m.guest_port, m.protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> Result<PortMapping, PublishError> {
        s.parse()
    }

    #[test]
    fn parses_the_cli_forms() {
        let m = map("8080:80").unwrap();
        assert_eq!(
            (
                m.protocol,
                m.host_addr,
                m.host_port.get(),
                m.guest_port.get()
            ),
            (Protocol::Tcp, None, 8080, 80)
        );
        let m = map("5353:53/udp").unwrap();
        assert_eq!(m.protocol, Protocol::Udp);
        let m = map("127.0.0.1:2222:22/tcp").unwrap();
        assert_eq!(m.host_addr, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m.to_string(), "127.0.0.1:2222:22/tcp");
        assert_eq!(map(&m.to_string()).unwrap(), m);
    }

    #[test]
    fn rejects_bad_mappings_with_the_reason() {
        assert!(matches!(map("8080"), Err(PublishError::Syntax(_))));
        assert!(matches!(map("1:2:3:4"), Err(PublishError::Syntax(_))));
        assert!(matches!(map("0:80"), Err(PublishError::Port(_))));
        assert!(matches!(map("65536:80"), Err(PublishError::Port(_))));
        assert!(matches!(map("80:-1"), Err(PublishError::Port(_))));
        assert!(matches!(map("+80:80"), Err(PublishError::Port(_))));
        assert!(matches!(map(":80"), Err(PublishError::Port(_))));
        assert!(matches!(map("80:80/sctp"), Err(PublishError::Protocol(_))));
        let named = map("localhost:80:80").unwrap_err();
        assert!(matches!(named, PublishError::HostAddr(_)));
        // A name is the usual slip: the error says what to write instead.
        assert!(
            named.to_string().contains("127.0.0.1 for localhost"),
            "{named}"
        );
        assert!(serde_json::from_str::<Port>("0").is_err());
        assert!(serde_json::from_str::<Port>("70000").is_err());
        // Nothing connects to a broadcast or multicast address: such a publish would
        // listen and never be reached.
        for addr in ["255.255.255.255", "224.0.0.1", "239.1.2.3"] {
            let err = map(&format!("{addr}:8080:80")).unwrap_err();
            assert!(
                matches!(err, PublishError::HostAddrKind(..)),
                "{addr}: {err}"
            );
            assert!(err.to_string().contains(addr), "{err}");
        }
        map("0.0.0.0:8080:80").unwrap();
    }

    #[test]
    fn publish_json_round_trips() {
        let p = Publish {
            mapping: map("8080:80/udp").unwrap(),
            guest_addr: Ipv4Addr::new(10, 213, 0, 2),
        };
        let json = serde_json::to_value(p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "mapping": {"protocol": "udp", "host_port": 8080, "guest_port": 80},
                "guest_addr": "10.213.0.2"
            })
        );
        assert_eq!(serde_json::from_value::<Publish>(json).unwrap(), p);
        assert_eq!(p.to_string(), "*:8080 -> 10.213.0.2:80/udp");
    }
}
