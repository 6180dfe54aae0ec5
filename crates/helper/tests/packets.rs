//! Real packets through the helper's bridge and rules, in namespaces the test creates.
//!
//! The lab: a "host" namespace where the helper's executor runs (as it would on the real
//! host), an "outside" namespace joined to it by a veth (the rest of the world, with the
//! servers the test starts), and stand-in guests: namespaces on a veth whose host end is
//! attached to the owner's bridge, configured as a banger guest is (its address and MAC,
//! the bridge's gateway as default route). Nothing touches the host's own interfaces,
//! routes or firewall. Needs root.

use crate::support;

use banger_helper::Privileged;
use banger_helper_proto::{
    Backend, FirewallManager, LegacyScan, TapName, bridge_name, nft_table_name,
};
use banger_net::firewall::fix;
use support::lab::{HOST_UPLINK, Lab, OUTSIDE, PATIENCE, REFUSAL, publish, sock, wait_for};
use support::{Netns, Server};

#[test]
fn guests_reach_the_outside_through_nat_and_nothing_reaches_them_uninvited() {
    let lab = Lab::new();
    let owner = lab.owner(4100, "10.213.0.0/24");
    // A real TAP too, so removal is checked for one.
    let tap = TapName::for_vm("0000000000a1").unwrap();
    lab.call(|| owner.p.create_tap(&tap).unwrap());
    let guest = lab.guest(&owner, 0);
    assert_eq!(lab.host.sysctl("net.ipv4.ip_forward"), "1");

    let outside = Server::start(&lab.outside, &format!("{OUTSIDE}:7000"));
    let seen = guest.ns.tcp(sock(OUTSIDE, 7000), None, PATIENCE).unwrap();
    assert_eq!(
        seen, HOST_UPLINK,
        "the outside sees the host's address: masquerade"
    );
    assert_eq!(
        guest.ns.udp(sock(OUTSIDE, 7000), PATIENCE).unwrap(),
        HOST_UPLINK
    );

    let in_guest = Server::start(&guest.ns, &format!("{}:80", guest.ip()));
    let seen = lab.host.tcp(sock(&guest.ip(), 80), None, PATIENCE).unwrap();
    assert_eq!(
        seen,
        owner.gateway(),
        "the host reaches the guest over the bridge"
    );
    let seen = guest.ns.tcp(sock(&owner.gateway(), 7999), None, PATIENCE);
    assert!(
        seen.unwrap_err().contains("refused"),
        "the guest reaches the host (nothing listens there, so: refused)"
    );

    // Even with a route to the subnet, the outside cannot open connections to a guest.
    lab.outside.ip(&[
        "route",
        "add",
        &owner.subnet.to_string(),
        "via",
        HOST_UPLINK,
    ]);
    let err = lab
        .outside
        .tcp(sock(&guest.ip(), 80), None, REFUSAL)
        .unwrap_err();
    assert!(!err.contains("refused"), "dropped, not answered: {err}");

    // A guest sending from an address outside its subnet is dropped before NAT.
    guest
        .ns
        .ip(&["addr", "add", "192.0.2.50/32", "dev", "eth0"]);
    let spoofed = guest
        .ns
        .tcp(sock(OUTSIDE, 7000), Some("192.0.2.50"), REFUSAL);
    assert!(spoofed.is_err(), "{spoofed:?}");
    let udp_spoof = |ns: &Netns| {
        ns.run(|| {
            let s = std::net::UdpSocket::bind("192.0.2.50:0").unwrap();
            s.send_to(b"spoofed", sock(OUTSIDE, 7000)).unwrap();
        })
    };
    udp_spoof(&guest.ns);
    // A genuine datagram sent after it on the same path: once it has arrived, the spoofed
    // one would have too.
    assert_eq!(
        guest.ns.udp(sock(OUTSIDE, 7000), PATIENCE).unwrap(),
        HOST_UPLINK
    );
    assert!(
        !outside.udp_senders().iter().any(|s| s == "192.0.2.50"),
        "dropped"
    );
    // The control: without the guard rule the same datagram arrives, so it was the guard
    // that stopped it. (A TCP check proves nothing here: the outside has no way back to
    // 192.0.2.50 either way.)
    let table = nft_table_name(owner.uid);
    lab.host
        .cmd("nft", &["flush", "chain", "ip", &table, "guard"]);
    udp_spoof(&guest.ns);
    wait_for(|| outside.udp_senders().iter().any(|s| s == "192.0.2.50"));
    lab.call(|| owner.p.ensure_nat().unwrap());

    drop((outside, in_guest));
    lab.tear_down(&[&owner], "0");
}

#[test]
fn guests_cannot_reach_the_hosts_loopback_through_route_localnet() {
    let lab = Lab::new();
    let owner = lab.owner(4101, "10.213.0.0/24");
    let guest = lab.guest(&owner, 0);
    let _loopback_service = Server::start(&lab.host, "127.0.0.1:7100");
    assert_eq!(
        lab.host.sysctl(&format!(
            "net.ipv4.conf.{}.route_localnet",
            bridge_name(owner.uid)
        )),
        "1",
        "on for localhost publishing"
    );

    // A hostile guest routes 127.0.0.1 to the gateway (its own loopback has no address,
    // so no local route shadows that).
    guest.ns.ip(&["addr", "flush", "dev", "lo"]);
    guest
        .ns
        .set_sysctl("net.ipv4.conf.eth0.route_localnet", "1");
    guest
        .ns
        .ip(&["route", "add", "127.0.0.1/32", "via", &owner.gateway()]);
    let attack = || guest.ns.tcp(sock("127.0.0.1", 7100), None, REFUSAL);
    assert!(attack().is_err(), "the guard drops it");

    // The control: without the guard rule the same attack reaches the host's loopback
    // service, so it is the guard that protects it.
    let table = nft_table_name(owner.uid);
    lab.host
        .cmd("nft", &["flush", "chain", "ip", &table, "guard"]);
    assert_eq!(
        guest
            .ns
            .tcp(sock("127.0.0.1", 7100), None, PATIENCE)
            .unwrap(),
        guest.ip(),
        "the host's loopback service answered the guest"
    );
    lab.call(|| owner.p.ensure_nat().unwrap());
    assert!(attack().is_err(), "ensure_nat restored the guard");

    lab.tear_down(&[&owner], "0");
}

#[test]
fn published_tcp_and_udp_ports_reach_guest_servers_from_the_host_and_the_outside() {
    let lab = Lab::new();
    let owner = lab.owner(4102, "10.213.0.0/24");
    let guest = lab.guest(&owner, 0);
    let neighbour = lab.guest(&owner, 1);
    let web = publish("8080:80", &guest);
    let dns = publish("5353:53/udp", &guest);
    let local_only = publish("127.0.0.1:9090:90", &guest);
    lab.call(|| {
        for p in [web, dns, local_only] {
            owner.p.add_publish(p).unwrap();
        }
    });
    let _s80 = Server::start(&guest.ns, "0.0.0.0:80");
    let _s53 = Server::start(&guest.ns, "0.0.0.0:53");
    let _s90 = Server::start(&guest.ns, "0.0.0.0:90");

    // From the outside: the guest sees the real client.
    let got = lab.outside.tcp(sock(HOST_UPLINK, 8080), None, PATIENCE);
    assert_eq!(got.unwrap(), OUTSIDE);
    assert_eq!(
        lab.outside.udp(sock(HOST_UPLINK, 5353), PATIENCE).unwrap(),
        OUTSIDE
    );

    // From the host, on its own addresses and on localhost.
    for addr in [HOST_UPLINK, "127.0.0.1", &owner.gateway()] {
        let got = lab.host.tcp(sock(addr, 8080), None, PATIENCE);
        assert!(got.is_ok(), "host -> {addr}:8080: {got:?}");
        let got = lab.host.udp(sock(addr, 5353), PATIENCE);
        assert!(got.is_ok(), "host -> {addr}:5353/udp: {got:?}");
    }
    // Localhost answers come back masqueraded as the gateway (the guest cannot answer
    // 127.0.0.1 itself).
    let got = lab
        .host
        .tcp(sock("127.0.0.1", 8080), None, PATIENCE)
        .unwrap();
    assert_eq!(got, owner.gateway());

    // A port published on 127.0.0.1 only: the host's localhost, and nobody else.
    let got = lab.host.tcp(sock("127.0.0.1", 9090), None, PATIENCE);
    assert_eq!(got.unwrap(), owner.gateway());
    let err = lab
        .outside
        .tcp(sock(HOST_UPLINK, 9090), None, PATIENCE)
        .unwrap_err();
    assert!(err.contains("refused"), "the host itself answers: {err}");
    let err = lab
        .host
        .tcp(sock(HOST_UPLINK, 9090), None, PATIENCE)
        .unwrap_err();
    assert!(err.contains("refused"), "{err}");

    // Another guest reaches a published port through the gateway, answered through the
    // host. (A guest reaching its *own* published port that way works only where
    // br_netfilter is not loaded: with it, the kernel bridges the DNAT'ed packet straight
    // back out of the port it came in on, which a bridge does not do without hairpin
    // mode — see docs/privileges.md.)
    let got = neighbour
        .ns
        .tcp(sock(&owner.gateway(), 8080), None, PATIENCE);
    assert_eq!(got.unwrap(), owner.gateway());

    // Unpublished: refused by the host, which has nothing on that port.
    lab.call(|| owner.p.remove_publish(web).unwrap());
    let err = lab
        .outside
        .tcp(sock(HOST_UPLINK, 8080), None, PATIENCE)
        .unwrap_err();
    assert!(err.contains("refused"), "{err}");
    assert!(
        lab.outside.udp(sock(HOST_UPLINK, 5353), PATIENCE).is_ok(),
        "the other stays"
    );

    lab.tear_down(&[&owner], "0");
}

#[test]
fn another_owners_bridge_does_not_forward_into_ours() {
    let lab = Lab::new();
    let ours = lab.owner(4103, "10.213.0.0/24");
    let theirs = lab.owner(4104, "10.214.0.0/24");
    let a = lab.guest(&ours, 0);
    let b = lab.guest(&theirs, 0);
    let _sa = Server::start(&a.ns, "0.0.0.0:80");
    let _sb = Server::start(&b.ns, "0.0.0.0:80");
    let _out = Server::start(&lab.outside, &format!("{OUTSIDE}:7000"));

    // Both reach the outside…
    for g in [&a, &b] {
        assert_eq!(
            g.ns.tcp(sock(OUTSIDE, 7000), None, PATIENCE).unwrap(),
            HOST_UPLINK
        );
    }
    // …but neither reaches the other's guest directly.
    let err = b.ns.tcp(sock(&a.ip(), 80), None, REFUSAL).unwrap_err();
    assert!(!err.contains("refused"), "dropped: {err}");
    let err = a.ns.tcp(sock(&b.ip(), 80), None, REFUSAL).unwrap_err();
    assert!(!err.contains("refused"), "dropped: {err}");

    // The control: it is our table's forward rules that keep them out.
    let table = nft_table_name(ours.uid);
    lab.host
        .cmd("nft", &["flush", "chain", "ip", &table, "forward"]);
    // (B's own table masquerades it on the way out of its bridge.)
    let got = b.ns.tcp(sock(&a.ip(), 80), None, PATIENCE);
    assert_eq!(got.unwrap(), ours.gateway());
    lab.call(|| ours.p.ensure_nat().unwrap());
    assert!(b.ns.tcp(sock(&a.ip(), 80), None, REFUSAL).is_err());

    // A published port is public, to the other owner's guests too.
    lab.call(|| ours.p.add_publish(publish("8080:80", &a)).unwrap());
    assert!(
        b.ns.tcp(sock(&theirs.gateway(), 8080), None, PATIENCE)
            .is_ok()
    );

    // Removing one owner leaves the other's network and the shared forwarding alone.
    lab.call(|| {
        ours.p.remove_nat().unwrap();
        ours.p.remove_bridge().unwrap();
    });
    assert_eq!(
        lab.host.sysctl("net.ipv4.ip_forward"),
        "1",
        "the other owner needs it"
    );
    assert_eq!(
        b.ns.tcp(sock(OUTSIDE, 7000), None, PATIENCE).unwrap(),
        HOST_UPLINK
    );

    lab.tear_down(&[&ours, &theirs], "0");
}

#[test]
fn a_forward_drop_elsewhere_blocks_guests_until_the_suggested_fix_is_applied() {
    let lab = Lab::new();
    let owner = lab.owner(4105, "10.213.0.0/24");
    let guest = lab.guest(&owner, 0);
    let _out = Server::start(&lab.outside, &format!("{OUTSIDE}:7000"));
    let _web = Server::start(&guest.ns, "0.0.0.0:80");
    lab.call(|| owner.p.add_publish(publish("8080:80", &guest)).unwrap());
    let bridge = bridge_name(owner.uid);
    let works = || {
        guest.ns.tcp(sock(OUTSIDE, 7000), None, PATIENCE).is_ok()
            && lab
                .outside
                .tcp(sock(HOST_UPLINK, 8080), None, PATIENCE)
                .is_ok()
    };
    let blocked = || {
        guest.ns.tcp(sock(OUTSIDE, 7000), None, REFUSAL).is_err()
            && lab
                .outside
                .tcp(sock(HOST_UPLINK, 8080), None, REFUSAL)
                .is_err()
    };
    assert!(works());

    // Docker on iptables-nft: FORWARD policy drop, DOCKER-USER jumped to first.
    for args in [
        &["-N", "DOCKER-USER"][..],
        &["-A", "DOCKER-USER", "-j", "RETURN"],
        &["-A", "FORWARD", "-j", "DOCKER-USER"],
        &["-P", "FORWARD", "DROP"],
    ] {
        lab.host.cmd("iptables-nft", args);
    }
    assert!(blocked(), "a drop in another table is final");
    let report = lab.call(|| owner.p.firewall().unwrap());
    assert!(report.nat_problems.is_empty(), "{:?}", report.nat_problems);
    let docker = report
        .forward_drop
        .iter()
        .find(|c| c.backend == Backend::Nftables)
        .expect("docker's FORWARD is reported");
    assert_eq!(
        (docker.table.as_str(), docker.chain.as_str()),
        ("filter", "FORWARD")
    );
    assert_eq!(docker.manager, FirewallManager::Docker);
    assert!(!docker.lets_guests_through());
    for argv in fix::commands(docker, &bridge) {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        lab.host.cmd(&argv[0], &args);
    }
    assert!(works(), "the suggested fix lets guests through");
    let report = lab.call(|| owner.p.firewall().unwrap());
    assert!(
        report.forward_drop.iter().all(|c| c.lets_guests_through()),
        "{report:?}"
    );

    // The same with legacy iptables, which nft cannot see.
    lab.host.cmd("iptables-legacy", &["-P", "FORWARD", "DROP"]);
    assert!(blocked());
    let report = lab.call(|| owner.p.firewall().unwrap());
    assert_eq!(report.legacy, LegacyScan::Inspected);
    let legacy = report
        .forward_drop
        .iter()
        .find(|c| c.backend == Backend::IptablesLegacy)
        .expect("legacy FORWARD is reported");
    assert_eq!(legacy.manager, FirewallManager::Iptables);
    assert!(!legacy.lets_guests_through());
    for argv in fix::commands(legacy, &bridge) {
        assert_eq!(argv[0], "iptables-legacy");
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        lab.host.cmd(&argv[0], &args);
    }
    assert!(works());

    // Another forwarder exists now: banger turned ip_forward on, but leaves it on.
    lab.tear_down(&[&owner], "1");
}
