//! The packet tests' lab: a "host" namespace where the helper's executor runs, an
//! "outside" namespace joined to it by a veth, owners (bridge and NAT through the real
//! executor) and stand-in guests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use banger_helper::{Executor, InProcess, Privileged};
use banger_helper_proto::{MacAddr, Publish, Subnet, bridge_name};
use banger_system::RealRunner;

use super::Netns;

/// The host's address on the link to the outside, and the outside's.
pub const HOST_UPLINK: &str = "198.51.100.1";
pub const OUTSIDE: &str = "198.51.100.2";
/// What must work is given this long (the machine may be busy)…
pub const PATIENCE: Duration = Duration::from_secs(20);
/// …and what must not work, this long to prove it does not.
pub const REFUSAL: Duration = Duration::from_secs(2);

pub fn sock(addr: &str, port: u16) -> SocketAddr {
    format!("{addr}:{port}").parse().unwrap()
}

pub struct Lab {
    pub host: Netns,
    pub outside: Netns,
}

impl Lab {
    pub fn new() -> Lab {
        let host = Netns::new();
        let outside = Netns::new();
        // A new namespace copies the host's ip_forward and rp_filter; start from a fresh
        // host's forwarding (off), and without reverse-path filtering, so that what stops a
        // spoofed packet is banger's guard and nothing else.
        host.set_sysctl("net.ipv4.ip_forward", "0");
        host.set_sysctl("net.ipv4.conf.all.rp_filter", "0");
        host.set_sysctl("net.ipv4.conf.default.rp_filter", "0");
        host.ip(&[
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "o0",
            "netns",
            &outside.path(),
        ]);
        host.ip(&["addr", "add", &format!("{HOST_UPLINK}/24"), "dev", "up0"]);
        host.ip(&["link", "set", "up0", "up"]);
        outside.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "o0"]);
        outside.ip(&["link", "set", "o0", "up"]);
        // The outside is the host's way to the rest of the world.
        host.ip(&["route", "add", "default", "via", OUTSIDE]);
        Lab { host, outside }
    }

    /// The owner's bridge and NAT, as the daemon would ask for them.
    pub fn owner(&self, uid: u32, subnet: &str) -> Owner {
        let p = InProcess::new(Arc::new(Executor::new(uid, Arc::new(RealRunner), None)));
        let subnet: Subnet = subnet.parse().unwrap();
        self.host.run(|| {
            p.ensure_bridge(subnet).unwrap();
            p.ensure_nat().unwrap();
        });
        Owner { uid, p, subnet }
    }

    /// A stand-in guest on `owner`'s bridge with the `n`th guest address.
    pub fn guest(&self, owner: &Owner, n: u32) -> Guest {
        let ns = Netns::new();
        let (first, _) = owner.subnet.guest_range();
        let addr = Ipv4Addr::from(u32::from(first) + n);
        let host_end = format!("vg{}x{n}", owner.uid);
        self.host.ip(&[
            "link",
            "add",
            &host_end,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns.path(),
        ]);
        self.host.ip(&[
            "link",
            "set",
            &host_end,
            "master",
            &bridge_name(owner.uid),
            "up",
        ]);
        let mac = MacAddr::for_guest(addr).to_string();
        ns.ip(&["link", "set", "eth0", "address", &mac]);
        let cidr = format!("{addr}/{}", owner.subnet.prefix());
        ns.ip(&["addr", "add", &cidr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        let gateway = owner.subnet.gateway().to_string();
        ns.ip(&["route", "add", "default", "via", &gateway]);
        Guest { ns, addr }
    }

    pub fn call<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.host.run(f)
    }

    /// Remove everything the owners asked for, and check nothing of it is left: links,
    /// nftables tables, the sysctls the helper changed. `veths` are the test's own.
    pub fn tear_down(&self, owners: &[&Owner], forwarding_after: &str) {
        for owner in owners {
            self.call(|| {
                let inv = owner.p.inventory().unwrap();
                for p in inv.publishes {
                    owner.p.remove_publish(p).unwrap();
                }
                for tap in inv.taps {
                    owner.p.delete_tap(&tap).unwrap();
                }
                owner.p.remove_nat().unwrap();
                owner.p.remove_bridge().unwrap();
                assert_eq!(owner.p.inventory().unwrap(), Default::default());
            });
        }
        let helper_made: Vec<String> = self
            .host
            .links()
            .into_iter()
            .filter(|l| l.starts_with("bgbr") || l.starts_with("bgt"))
            .collect();
        assert!(helper_made.is_empty(), "left behind: {helper_made:?}");
        let tables = self.host.cmd("nft", &["list", "tables"]);
        assert!(!tables.contains("banger"), "left behind: {tables}");
        assert_eq!(
            self.host.sysctl("net.ipv4.ip_forward"),
            forwarding_after,
            "ip_forward after removal"
        );
    }
}

pub struct Owner {
    pub uid: u32,
    pub p: InProcess,
    pub subnet: Subnet,
}

impl Owner {
    pub fn gateway(&self) -> String {
        self.subnet.gateway().to_string()
    }
}

pub struct Guest {
    pub ns: Netns,
    pub addr: Ipv4Addr,
}

impl Guest {
    pub fn ip(&self) -> String {
        self.addr.to_string()
    }
}

pub fn publish(spec: &str, guest: &Guest) -> Publish {
    Publish {
        mapping: spec.parse().unwrap(),
        guest_addr: guest.addr,
    }
}

/// Wait until `ready` holds (a datagram was seen), polling a bounded number of times.
pub fn wait_for(ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}
