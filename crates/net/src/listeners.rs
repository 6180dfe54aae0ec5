//! Which local addresses listen on a port: a published port must not take over a port a
//! host service already serves (the DNAT would silently steal its connections, the host's
//! own included).
//!
//! Read from `/proc/thread-self/net/{tcp,tcp6,udp,udp6}` (this thread's network namespace;
//! readable by anyone). IPv6 sockets count when they could receive IPv4: bound to `::`
//! (dual-stack) or to an IPv4-mapped address.

use std::net::{Ipv4Addr, Ipv6Addr};

use banger_helper_proto::Protocol;

/// TCP_LISTEN and TCP_CLOSE (an unconnected, bound UDP socket) in the `st` column.
const TCP_LISTEN: &str = "0A";
const UDP_BOUND: &str = "07";

/// A local socket bound to `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The IPv4 address it is bound to; `UNSPECIFIED` for every address.
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// The sockets of `protocol` bound to `port` that could receive IPv4.
pub fn listening(protocol: Protocol, port: u16) -> std::io::Result<Vec<Listener>> {
    let (files, state) = match protocol {
        Protocol::Tcp => (["tcp", "tcp6"], TCP_LISTEN),
        Protocol::Udp => (["udp", "udp6"], UDP_BOUND),
    };
    let mut found = Vec::new();
    for file in files {
        let path = format!("/proc/thread-self/net/{file}");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // A kernel without IPv6 has no tcp6.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        found.extend(parse(&text, state).into_iter().filter(|l| l.port == port));
    }
    Ok(found)
}

/// The IPv4-reachable sockets in `state` of a `/proc/net/{tcp,udp}[6]` table.
pub fn parse(text: &str, state: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1)?;
            let st = cols.nth(1)?;
            (st == state).then_some(())?;
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(Listener {
                addr: ipv4_of(addr)?,
                port,
            })
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host (little-endian) byte order.
fn ipv4_of(hex: &str) -> Option<Ipv4Addr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes = |w: u32| w.to_le_bytes();
    match words.as_slice() {
        [w] => Some(Ipv4Addr::from(bytes(*w))),
        [a, b, c, d] => {
            let mut octets = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                octets[i * 4..i * 4 + 4].copy_from_slice(&bytes(*w));
            }
            let v6 = Ipv6Addr::from(octets);
            if v6.is_unspecified() {
                Some(Ipv4Addr::UNSPECIFIED)
            } else {
                v6.to_ipv4_mapped()
            }
        }
        _ => None,
    }
}

/// Whether a listener would have its connections taken by a publish on `host_addr`
/// (`None`: every address).
pub fn clashes(listener: &Listener, host_addr: Option<Ipv4Addr>) -> bool {
    match host_addr {
        None => true,
        Some(addr) => listener.addr.is_unspecified() || listener.addr == addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1060 1 0 100 0 0 10 0
   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1061 1 0 100 0 0 10 0
   2: 020200C0:DEDC 507100CB:0050 06 00000000:00000000 03:00000E48 00000000     0        0 0 3 0
";
    const TCP6: &str =
        "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0
   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 0
   2: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 0
";

    #[test]
    fn reads_the_kernels_tables() {
        assert_eq!(
            parse(TCP, TCP_LISTEN),
            [
                Listener {
                    addr: Ipv4Addr::UNSPECIFIED,
                    port: 2024
                },
                Listener {
                    addr: Ipv4Addr::LOCALHOST,
                    port: 5432
                },
            ]
        );
        // ::, ::ffff:127.0.0.1, and ::1 (IPv6 only: left out).
        assert_eq!(
            parse(TCP6, TCP_LISTEN),
            [
                Listener {
                    addr: Ipv4Addr::UNSPECIFIED,
                    port: 22
                },
                Listener {
                    addr: Ipv4Addr::LOCALHOST,
                    port: 8080
                },
            ]
        );
    }

    #[test]
    fn what_a_publish_would_take_over() {
        let local = Listener {
            addr: Ipv4Addr::LOCALHOST,
            port: 5432,
        };
        let any = Listener {
            addr: Ipv4Addr::UNSPECIFIED,
            port: 5432,
        };
        let other = Ipv4Addr::new(192, 168, 1, 5);
        assert!(clashes(&local, None));
        assert!(clashes(&any, Some(other)));
        assert!(clashes(&local, Some(Ipv4Addr::LOCALHOST)));
        assert!(!clashes(&local, Some(other)));
    }
}
