//! Per-network-namespace sysctls, read and written through `/proc/sys` (which shows the
//! namespace of the process that opens it).

use std::path::{Path, PathBuf};

use crate::NetError;

const PROC_SYS_NET: &str = "/proc/sys/net/ipv4";

fn path(rel: &str) -> PathBuf {
    Path::new(PROC_SYS_NET).join(rel)
}

fn read(rel: &str) -> Result<String, NetError> {
    let path = path(rel);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| NetError::Sysctl { path, source })
}

fn write(rel: &str, value: &str) -> Result<(), NetError> {
    let path = path(rel);
    std::fs::write(&path, value).map_err(|source| NetError::Sysctl { path, source })
}

/// `net.ipv4.ip_forward`.
pub fn ip_forward() -> Result<bool, NetError> {
    Ok(read("ip_forward")? == "1")
}

pub fn set_ip_forward(on: bool) -> Result<(), NetError> {
    write("ip_forward", if on { "1" } else { "0" })
}

/// Let DNAT'ed packets from the host's 127.0.0.1 leave through `bridge` (for ports
/// published on localhost). The NAT table drops packets *from* the bridge to 127/8.
pub fn set_route_localnet(bridge: &str) -> Result<(), NetError> {
    write(&format!("conf/{bridge}/route_localnet"), "1")
}

/// Whether `route_localnet` is on for `bridge`.
pub fn route_localnet(bridge: &str) -> Result<bool, NetError> {
    Ok(read(&format!("conf/{bridge}/route_localnet"))? == "1")
}

/// The lowest port an unprivileged process may bind (`ip_unprivileged_port_start`).
pub fn unprivileged_port_start() -> Result<u16, NetError> {
    let text = read("ip_unprivileged_port_start")?;
    Ok(text.parse().unwrap_or(1024))
}
