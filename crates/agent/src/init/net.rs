//! The guest's network interfaces: loopback always, and the first Ethernet interface from
//! the kernel command line (`banger.ip=ADDR/PREFIX banger.gw=GATEWAY banger.dns=A,B`, set by
//! the host from the VM's lease or QEMU's user-mode network). The guest kernel has no `ip=`
//! autoconfiguration, and an image need not carry any network tool: the classic interface
//! ioctls do it in a few system calls, before any service (sshd) starts.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::check;

/// How long the NIC's driver gets to register the interface after its module loads.
const NIC_WAIT: Duration = Duration::from_secs(5);
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The guest's network configuration from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

impl GuestNet {
    /// `None` without `banger.ip`; an error naming the bad value otherwise.
    pub fn from_args(
        ip: Option<&str>,
        gw: Option<&str>,
        dns: Option<&str>,
    ) -> Option<Result<GuestNet, String>> {
        let ip = ip?;
        Some((|| {
            let (addr, prefix) = ip
                .split_once('/')
                .ok_or_else(|| format!("banger.ip={ip:?} is not ADDRESS/PREFIX"))?;
            let address: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("banger.ip={ip:?}: {addr:?} is not an IPv4 address"))?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| (1..=30).contains(p))
                .ok_or_else(|| format!("banger.ip={ip:?}: the prefix must be 1 to 30"))?;
            let gateway = gw
                .map(|g| {
                    g.parse()
                        .map_err(|_| format!("banger.gw={g:?} is not an IPv4 address"))
                })
                .transpose()?;
            let dns = dns
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|d| {
                    d.parse()
                        .map_err(|_| format!("banger.dns: {d:?} is not an IPv4 address"))
                })
                .collect::<Result<_, _>>()?;
            Ok(GuestNet {
                address,
                prefix,
                gateway,
                dns,
            })
        })())
    }

    fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - u32::from(self.prefix)))
    }

    /// The resolv.conf the guest gets.
    pub fn resolv_conf(&self) -> String {
        let mut text = String::from("# written by banger-agent from the VM's network\n");
        for server in &self.dns {
            text.push_str(&format!("nameserver {server}\n"));
        }
        text
    }
}

/// Configure the first Ethernet interface as `net` says; returns its name.
pub fn configure(net: &GuestNet) -> io::Result<String> {
    let name = wait_for_ethernet()?;
    let sock = socket()?;
    let mut ifr = ifreq(&name)?;
    set_addr(&mut ifr, net.address);
    // SAFETY: SIOCSIFADDR reads the valid ifreq we pass.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &ifr) })?;
    set_addr(&mut ifr, net.netmask());
    // SAFETY: as above, SIOCSIFNETMASK reads the ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNETMASK, &ifr) })?;
    up(&sock, &name)?;
    if let Some(gateway) = net.gateway {
        add_default_route(&sock, gateway)?;
    }
    if !net.dns.is_empty() {
        write_resolv_conf(&net.resolv_conf())?;
    }
    Ok(name)
}

/// Give a guest restored from a snapshot its own interface identity: the first Ethernet
/// interface goes down (the kernel drops its routes and neighbour entries, the parent's),
/// takes `mac`, has its address replaced by `net`'s, and comes up announcing itself with a
/// gratuitous ARP (`arp_notify`), so the bridge and its peers learn the new pair at once.
/// Returns the interface's name.
pub fn reconfigure(net: &GuestNet, mac: [u8; 6]) -> io::Result<String> {
    let name = first_ethernet(Path::new("/sys/class/net")).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the guest has no Ethernet interface",
        )
    })?;
    let sock = socket()?;
    set_up(&sock, &name, false)?;
    let mut ifr = ifreq(&name)?;
    let mut hw: libc::sockaddr = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    hw.sa_family = libc::ARPHRD_ETHER;
    for (dst, src) in hw.sa_data.iter_mut().zip(mac) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_hwaddr = hw;
    // SAFETY: SIOCSIFHWADDR reads the valid ifreq we pass.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &ifr) })?;
    let mut ifr = ifreq(&name)?;
    // Replaces the primary address, and with it the parent's subnet route.
    set_addr(&mut ifr, net.address);
    // SAFETY: SIOCSIFADDR reads the valid ifreq we pass.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &ifr) })?;
    set_addr(&mut ifr, net.netmask());
    // SAFETY: as above, SIOCSIFNETMASK reads the ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNETMASK, &ifr) })?;
    // Best effort: without it the neighbours learn the new address at their next ARP.
    let notify = format!("/proc/sys/net/ipv4/conf/{name}/arp_notify");
    if let Err(e) = std::fs::write(&notify, "1") {
        crate::log!("cannot enable gratuitous ARP through {notify}: {e}");
    }
    set_up(&sock, &name, true)?;
    if let Some(gateway) = net.gateway {
        add_default_route(&sock, gateway)?;
    }
    if !net.dns.is_empty() {
        write_resolv_conf(&net.resolv_conf())?;
    }
    Ok(name)
}

pub fn loopback_up() -> io::Result<()> {
    up(&socket()?, "lo")
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory effects; the result is checked.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is too long"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and sockaddr is the
    // generic view of it the kernel interface takes.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn set_addr(ifr: &mut libc::ifreq, addr: Ipv4Addr) {
    ifr.ifr_ifru.ifru_addr = sockaddr_in(addr);
}

fn up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    set_up(sock, name, true)
}

fn set_up(sock: &OwnedFd, name: &str, up: bool) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS fills the flags of the valid ifreq we pass.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) })?;
    let flag = libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCGIFFLAGS just initialised the flags member of the union.
    unsafe {
        if up {
            ifr.ifr_ifru.ifru_flags |= flag;
        } else {
            ifr.ifr_ifru.ifru_flags &= !flag;
        }
    }
    // SAFETY: SIOCSIFFLAGS reads the valid ifreq we pass.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) })?;
    Ok(())
}

fn add_default_route(sock: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    // SAFETY: rtentry is plain old data; all-zero is valid (no device: the kernel picks the
    // interface whose subnet holds the gateway).
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT reads the valid rtentry we pass.
    match check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &rt) }) {
        // A restarted agent (under systemd) finds its route in place.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}

/// The first interface of type Ethernet, waiting for its driver to register it.
fn wait_for_ethernet() -> io::Result<String> {
    let started = Instant::now();
    loop {
        if let Some(name) = first_ethernet(Path::new("/sys/class/net")) {
            return Ok(name);
        }
        if started.elapsed() > NIC_WAIT {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no Ethernet interface appeared within {NIC_WAIT:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn first_ethernet(sys_class_net: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(sys_class_net)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            std::fs::read_to_string(sys_class_net.join(name).join("type"))
                .is_ok_and(|t| t.trim() == "1")
                && name != "lo"
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

fn write_resolv_conf(text: &str) -> io::Result<()> {
    // Replace, not write through: a dangling link to systemd-resolved's stub would
    // otherwise swallow it.
    let tmp = format!("{RESOLV_CONF}.banger");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, RESOLV_CONF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_arguments_parse() {
        let net = GuestNet::from_args(
            Some("10.213.0.7/24"),
            Some("10.213.0.1"),
            Some("1.1.1.1,9.9.9.9"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(net.address, Ipv4Addr::new(10, 213, 0, 7));
        assert_eq!(net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(net.gateway, Some(Ipv4Addr::new(10, 213, 0, 1)));
        assert_eq!(
            net.resolv_conf(),
            "# written by banger-agent from the VM's network\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n"
        );
        assert!(GuestNet::from_args(None, Some("10.0.0.1"), None).is_none());
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/0",
            "host/24",
            "10.0.0.1/x",
        ] {
            assert!(
                GuestNet::from_args(Some(bad), None, None).unwrap().is_err(),
                "{bad}"
            );
        }
        assert!(
            GuestNet::from_args(Some("10.0.0.2/24"), Some("gw"), None)
                .unwrap()
                .is_err()
        );
        assert!(
            GuestNet::from_args(Some("10.0.0.2/24"), None, Some("1.1.1.1,x"))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn the_first_ethernet_interface_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [("lo", "772"), ("sit0", "776"), ("eth1", "1"), ("eth0", "1")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("type"), format!("{kind}\n")).unwrap();
        }
        assert_eq!(first_ethernet(dir.path()).as_deref(), Some("eth0"));
    }
}
