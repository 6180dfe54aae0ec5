//! Published host ports checked before a VM starts: a port another program holds is named
//! (with the program, when this user may see it) before anything is made, instead of the
//! VMM failing to bind it half-way through the start, or — in bridge mode — the forward
//! silently losing to the local listener.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use banger_helper_proto::{PortMapping, Protocol};

use crate::error::{DaemonError, Result};

/// Refuse VM `vm`'s start when a host port of `mappings` is in use on this host. Only
/// "in use" and "not an address of this host" are refusals: a port below 1024 that only
/// root may bind is the forwarder's business (the helper's NAT rule needs no bind).
pub fn check_free(vm: &str, mappings: &[PortMapping]) -> Result<()> {
    for mapping in mappings {
        let addr = SocketAddrV4::new(
            mapping.host_addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            mapping.host_port.get(),
        );
        // Bound and let go at once: SO_REUSEADDR (std sets it for TCP listeners) keeps
        // connections in TIME_WAIT from counting as "in use".
        let bound = match mapping.protocol {
            Protocol::Tcp => TcpListener::bind(addr).map(drop),
            Protocol::Udp => UdpSocket::bind(addr).map(drop),
        };
        match bound {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                let by = holder(mapping.protocol, mapping.host_port.get())
                    .map(|who| format!(" by {who}"))
                    .unwrap_or_default();
                return Err(DaemonError::conflict(format!(
                    "host port {}/{} that VM {vm} publishes ({mapping}) is in use{by}",
                    mapping.host_port, mapping.protocol
                ))
                .with_field("publish")
                .with_hint(
                    "stop the program using it, or publish another host port (`-p OTHER:GUEST` when creating the VM)",
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                return Err(DaemonError::invalid(format!(
                    "VM {vm} publishes {mapping} on {}, which is not an address of this host",
                    addr.ip()
                ))
                .with_field("publish")
                .with_hint(
                    "publish on an address this host has, or on all of them (`-p HOST:GUEST`)",
                ));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// `pid N (NAME)` of a process of this user holding `port` (listening for TCP, bound for
/// UDP), found through `/proc/net` and the processes' descriptors; `None` when it cannot
/// be seen (another user's process, say).
fn holder(protocol: Protocol, port: u16) -> Option<String> {
    let (tables, state) = match protocol {
        Protocol::Tcp => (["/proc/net/tcp", "/proc/net/tcp6"], "0A"),
        Protocol::Udp => (["/proc/net/udp", "/proc/net/udp6"], "07"),
    };
    let wanted = format!(":{port:04X}");
    let inodes: Vec<String> = tables
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local = fields.get(1)?;
                    (local.ends_with(&wanted) && fields.get(3) == Some(&state))
                        .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for pid in banger_system::procfs::pids().ok()? {
        let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
        });
        if holds {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", comm.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(spec: &str) -> PortMapping {
        spec.parse().expect("mapping")
    }

    #[test]
    fn a_busy_port_is_named_with_its_holder_and_a_free_one_passes() {
        let busy = TcpListener::bind("0.0.0.0:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let err = check_free("web", &[mapping(&format!("{port}:80"))]).unwrap_err();
        assert!(
            err.message.contains(&format!("host port {port}/tcp"))
                && err.message.contains("in use by pid "),
            "{}",
            err.message
        );
        assert!(
            err.hint
                .as_deref()
                .is_some_and(|h| h.contains("-p OTHER:GUEST"))
        );
        // On loopback only: the wildcard address conflicts with it too.
        let lo = TcpListener::bind("127.0.0.1:0").expect("bind");
        let lo_port = lo.local_addr().expect("addr").port();
        assert!(check_free("web", &[mapping(&format!("{lo_port}:80"))]).is_err());

        let udp = UdpSocket::bind("0.0.0.0:0").expect("bind");
        let udp_port = udp.local_addr().expect("addr").port();
        assert!(check_free("web", &[mapping(&format!("{udp_port}:53/udp"))]).is_err());
        drop(busy);
        let free = TcpListener::bind("0.0.0.0:0").expect("bind");
        let free_port = free.local_addr().expect("addr").port();
        drop(free);
        check_free("web", &[mapping(&format!("{free_port}:80"))]).expect("a free port");

        let err = check_free("web", &[mapping("192.0.2.1:8080:80")]).unwrap_err();
        assert!(
            err.message.contains("not an address of this host"),
            "{}",
            err.message
        );
    }
}
