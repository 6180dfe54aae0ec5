//! Networking through the lifecycle, against the fake driver and the fake host side: what a
//! running VM holds, and that every way to a dead VM gives all of it back.

use banger_api::{CreateVmRequest, StopVmRequest};
use banger_helper_proto::TapName;
use banger_system::progress::NoProgress;

use crate::testing::{Harness, Incarnation, request, wait_for};

fn create(inc: &Incarnation, name: &str, publish: &[&str]) -> banger_api::VmView {
    let req = CreateVmRequest {
        publish: publish.iter().map(|p| p.to_string()).collect(),
        ..request(name, true)
    };
    inc.block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .unwrap_or_else(|e| panic!("create {name}: {}", e.message))
}

fn id_of(inc: &Incarnation, name: &str) -> String {
    crate::vms::lookup(&inc.daemon, name).expect("lookup").id
}

#[test]
fn a_running_vm_holds_a_tap_an_address_and_its_ports_and_stop_gives_them_back() {
    let harness = Harness::new();
    let inc = harness.start();
    create(&inc, "web", &["8080:80", "127.0.0.1:5353:53/udp"]);
    create(&inc, "db", &[]);
    let (web, db) = (id_of(&inc, "web"), id_of(&inc, "db"));
    let host = harness.host_net.inventory_now();
    assert!(host.bridge.is_some() && host.nat, "{host:?}");
    assert_eq!(host.taps, {
        let mut taps = vec![
            TapName::for_vm(&web).unwrap(),
            TapName::for_vm(&db).unwrap(),
        ];
        taps.sort();
        taps
    });
    assert_eq!(host.publishes.len(), 2, "{host:?}");
    let view = crate::vms::get(&inc.daemon, "web").expect("inspect");
    let net = view.network.expect("network view");
    assert_eq!(net.mode.as_deref(), Some("bridge"));
    assert_eq!(net.published, ["8080:80/tcp", "127.0.0.1:5353:53/udp"]);
    let web_addr = net.address.expect("address");
    let db_addr = crate::vms::get(&inc.daemon, "db")
        .unwrap()
        .network
        .unwrap()
        .address
        .unwrap();
    assert_ne!(web_addr, db_addr, "two VMs, one address");
    assert!(
        host.publishes
            .iter()
            .all(|p| web_addr.starts_with(&p.guest_addr.to_string()))
    );

    inc.block_on(crate::vms::stop(
        &inc.daemon,
        "web",
        StopVmRequest::default(),
        &NoProgress,
    ))
    .expect("stop");
    let host = harness.host_net.inventory_now();
    assert_eq!(host.taps, [TapName::for_vm(&db).unwrap()]);
    assert!(host.publishes.is_empty(), "{host:?}");
    assert!(host.bridge.is_some(), "db still runs on the bridge");
    let view = crate::vms::get(&inc.daemon, "web")
        .unwrap()
        .network
        .unwrap();
    assert_eq!(view.mode, None);
    assert_eq!(view.published.len(), 2, "the ports stay with the VM");

    inc.block_on(crate::vms::remove(&inc.daemon, "db", true))
        .expect("rm -f");
    let host = harness.host_net.inventory_now();
    assert!(
        host.taps.is_empty() && host.bridge.is_none() && !host.nat,
        "{host:?}"
    );

    // Started again, its ports come back.
    inc.block_on(crate::vms::start(&inc.daemon, "web", &NoProgress))
        .expect("start");
    assert_eq!(harness.host_net.inventory_now().publishes.len(), 2);
    harness.assert_consistent();
}

#[test]
fn a_killed_vmm_and_a_killed_daemon_release_everything() {
    let harness = Harness::new();
    let inc = harness.start();
    create(&inc, "a", &["9000:9000"]);
    create(&inc, "b", &["9001:9001/udp"]);
    // The VMM of `a` dies on its own: the exit watcher releases it.
    let vmm = harness
        .vmm_processes()
        .into_iter()
        .find(|p| {
            let vm = crate::vms::lookup(&inc.daemon, "a").unwrap();
            crate::vms::runtime_of(&vm).map(|r| r.pid) == Some(p.pid)
        })
        .expect("a's VMM");
    banger_vmm::process::signal(vmm, libc::SIGKILL).expect("kill a's VMM");
    wait_for("a released", || {
        harness.host_net.inventory_now().taps.len() == 1
    });
    assert_eq!(harness.host_net.inventory_now().publishes.len(), 1);
    // The daemon dies, then `b`'s VMM: the next daemon reconciles and releases.
    inc.kill();
    for p in harness.vmm_processes() {
        let _ = banger_vmm::process::signal(p, libc::SIGKILL);
    }
    wait_for("no VMM", || harness.vmm_processes().is_empty());
    let again = harness.start();
    let host = harness.host_net.inventory_now();
    assert!(
        host.taps.is_empty() && host.publishes.is_empty() && host.bridge.is_none() && !host.nat,
        "{host:?}"
    );
    assert!(again.daemon.store().list_leases().unwrap().is_empty());
    harness.assert_consistent();
}

#[test]
fn a_tap_nobody_records_is_swept_at_start() {
    let harness = Harness::new();
    {
        use banger_helper::Privileged;
        let host = &harness.host_net;
        host.ensure_bridge("10.213.0.0/24".parse().unwrap())
            .unwrap();
        host.create_tap(&TapName::for_vm("0123456789ab").unwrap())
            .unwrap();
    }
    let _inc = harness.start();
    assert!(harness.host_net.inventory_now().taps.is_empty());
}

/// A daemon killed while releasing the last bridged VM, between forgetting its network and
/// removing the bridge: nothing records the bridge any more, and the next start removes it
/// and the NAT table (the chaos test found this).
#[test]
fn a_bridge_and_nat_no_vm_uses_are_swept_at_start() {
    let harness = Harness::new();
    {
        use banger_helper::Privileged;
        let host = &harness.host_net;
        host.ensure_bridge("10.213.0.0/24".parse().unwrap())
            .unwrap();
        host.ensure_nat().unwrap();
    }
    let inc = harness.start();
    let host = harness.host_net.inventory_now();
    assert!(host.bridge.is_none() && !host.nat, "{host:?}");
    harness.assert_consistent();

    // While a VM is bridged, its bridge stays.
    create(&inc, "web", &[]);
    inc.kill();
    let _inc = harness.start();
    let host = harness.host_net.inventory_now();
    assert!(host.bridge.is_some() && host.nat, "{host:?}");
}

#[test]
fn bad_and_clashing_ports_are_refused_before_anything_is_made() {
    let harness = Harness::new();
    let inc = harness.start();
    for (ports, wanted) in [
        (vec!["80"], "not a port mapping"),
        (vec!["0:80"], "not a port"),
        (vec!["8080:80/sctp"], "not a protocol"),
        (vec!["8080:80", "8080:81"], "published twice"),
    ] {
        let req = CreateVmRequest {
            publish: ports.iter().map(|p| p.to_string()).collect(),
            ..request("bad", true)
        };
        let err = inc
            .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
            .expect_err("refused");
        assert!(err.message.contains(wanted), "{ports:?}: {}", err.message);
        assert_eq!(err.field.as_deref(), Some("publish"));
    }
    assert!(inc.daemon.store().list_vms().unwrap().is_empty());
    // 8080/tcp and 8080/udp are different ports.
    create(&inc, "ok", &["8080:80", "8080:80/udp"]);
    harness.assert_consistent();
}
