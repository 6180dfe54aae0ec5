//! The executor and server against the real kernel: every test runs in a network
//! namespace of its own (created by `unshare` on a test thread, gone when the thread ends),
//! with real netlink, real TUN ioctls and the real `nft`. Needs root.

use crate::support;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use banger_helper::{Executor, InProcess, Privileged};
use banger_helper_proto::{FailureKind, Publish, Subnet, TapName, bridge_name, nft_table_name};
use banger_net::netlink::{LinkKind, Netlink};
use banger_system::RealRunner;
use support::require_root;

/// Run `f` on a thread inside a fresh network namespace.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    require_root();
    std::thread::spawn(move || {
        // SAFETY: unshare only moves this thread into a new network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap()
}

fn priv_for(owner: u32, nft: Option<PathBuf>) -> InProcess {
    InProcess::new(Arc::new(Executor::new(owner, Arc::new(RealRunner), nft)))
}

fn subnet(s: &str) -> Subnet {
    s.parse().unwrap()
}

fn nft_tables() -> String {
    nft(&["list", "tables"])
}

fn nft(args: &[&str]) -> String {
    let out = std::process::Command::new("nft")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn nft_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    serde_json::from_str(&nft(&all)).unwrap()
}

fn publish(spec: &str, guest: Ipv4Addr) -> Publish {
    Publish {
        mapping: spec.parse().unwrap(),
        guest_addr: guest,
    }
}

#[test]
fn every_verb_works_and_leaves_nothing_behind() {
    in_netns(|| {
        let p = priv_for(0, None);
        let nl = Netlink::open().unwrap();
        let before: Vec<String> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
        // A new namespace copies the host's ip_forward; start from "off" to see the helper
        // turn it on, and back off once nothing needs it.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").unwrap();

        assert_eq!(p.hello().unwrap(), 0);
        let info = p.ensure_bridge(subnet("10.213.0.0/24")).unwrap();
        assert_eq!(info.name, bridge_name(0));
        assert_eq!(info.gateway, Ipv4Addr::new(10, 213, 0, 1));
        // Idempotent, and a different subnet on the same bridge is a conflict.
        assert_eq!(p.ensure_bridge(subnet("10.213.0.0/24")).unwrap(), info);
        let err = p.ensure_bridge(subnet("10.213.1.0/24")).unwrap_err();
        assert_eq!(err.kind(), Some(FailureKind::Conflict), "{err}");

        // TAPs need NAT? No: they need the bridge only.
        let tap = TapName::for_vm("0123456789ab").unwrap();
        let made = p.create_tap(&tap).unwrap();
        assert_eq!(made.owner_uid, 0);
        p.create_tap(&tap).unwrap();
        let link = nl.link(tap.as_str()).unwrap().unwrap();
        let bridge = nl.link(&info.name).unwrap().unwrap();
        assert_eq!(link.kind, LinkKind::Tap { owner: Some(0) });
        assert_eq!(
            link.controller,
            Some(bridge.index),
            "the TAP is on the bridge"
        );
        assert!(link.up && bridge.up);

        p.ensure_nat().unwrap();
        p.ensure_nat().unwrap();
        assert!(nft_tables().contains(&nft_table_name(0)));
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "1"
        );

        let guest = Ipv4Addr::new(10, 213, 0, 2);
        let web = publish("8080:80", guest);
        p.add_publish(web).unwrap();
        p.add_publish(web).unwrap();
        p.add_publish(publish("8080:80/udp", guest)).unwrap();
        let err = p
            .add_publish(publish("127.0.0.1:8080:81", guest))
            .unwrap_err();
        assert_eq!(err.kind(), Some(FailureKind::Conflict), "{err}");
        let err = p
            .add_publish(publish("9090:80", Ipv4Addr::new(10, 9, 9, 9)))
            .unwrap_err();
        assert_eq!(err.kind(), Some(FailureKind::BadRequest), "{err}");

        let inv = p.inventory().unwrap();
        assert_eq!(inv.bridge.as_ref().unwrap().subnet, subnet("10.213.0.0/24"));
        assert_eq!(inv.taps, vec![tap.clone()]);
        assert!(inv.nat);
        assert_eq!(inv.publishes.len(), 2);

        let fw = p.firewall().unwrap();
        assert!(fw.ip_forward && fw.nat_table);
        assert!(fw.forward_drop.is_empty());
        assert_eq!(
            fw.nat_problems,
            Vec::<String>::new(),
            "as nft prints it, the table is intact"
        );

        // Damage the table behind banger's back: the report names it, ensure_nat repairs it.
        nft(&["flush", "chain", "ip", &nft_table_name(0), "forward"]);
        nft(&[
            "add",
            "rule",
            "ip",
            &nft_table_name(0),
            "publish",
            "counter",
        ]);
        let problems = p.firewall().unwrap().nat_problems;
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(
            problems.iter().any(
                |m| m.contains("\"nothing else reaches guests\" is missing from chain forward")
            )
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("chain publish has a rule banger did not add"))
        );
        p.ensure_nat().unwrap();
        let problems = p.firewall().unwrap().nat_problems;
        assert_eq!(
            problems.len(),
            1,
            "the foreign publish rule stays: {problems:#?}"
        );
        let listing = nft_json(&["list", "chain", "ip", &nft_table_name(0), "publish"]);
        let handle = listing["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i.get("rule"))
            .find(|r| r.get("comment").is_none())
            .and_then(|r| r["handle"].as_u64())
            .unwrap();
        nft(&[
            "delete",
            "rule",
            "ip",
            &nft_table_name(0),
            "publish",
            "handle",
            &handle.to_string(),
        ]);
        let problems = p.firewall().unwrap().nat_problems;
        assert!(problems.is_empty(), "{problems:#?}");

        p.remove_publish(web).unwrap();
        p.remove_publish(web).unwrap();
        assert_eq!(p.inventory().unwrap().publishes.len(), 1);
        p.delete_tap(&tap).unwrap();
        p.delete_tap(&tap).unwrap();
        p.remove_nat().unwrap();
        p.remove_nat().unwrap();
        p.remove_bridge().unwrap();
        p.remove_bridge().unwrap();

        let after: Vec<String> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(after, before, "every device is gone");
        assert!(
            !nft_tables().contains("banger"),
            "the table and the marker are gone"
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "0",
            "banger turned forwarding on, and off again when nothing needed it"
        );
        assert_eq!(p.inventory().unwrap(), Default::default());
    });
}

#[test]
fn verbs_refuse_what_the_owner_may_not_touch() {
    in_netns(|| {
        let owner = 4242;
        let p = priv_for(owner, None);
        let tap = TapName::new("bgtabc").unwrap();
        let err = p.create_tap(&tap).unwrap_err();
        assert_eq!(
            err.kind(),
            Some(FailureKind::NotFound),
            "no bridge yet: {err}"
        );
        let err = p.ensure_nat().unwrap_err();
        assert_eq!(err.kind(), Some(FailureKind::NotFound), "{err}");

        // A subnet the host already routes is refused, naming the route.
        let nl = Netlink::open().unwrap();
        nl.create_bridge("other0").unwrap();
        let other = nl.link("other0").unwrap().unwrap();
        nl.add_ipv4_address(&other, Ipv4Addr::new(10, 50, 0, 1), 24)
            .unwrap();
        nl.attach_and_up(&other, None).unwrap();
        let err = p.ensure_bridge(subnet("10.50.0.0/16")).unwrap_err();
        assert_eq!(err.kind(), Some(FailureKind::Conflict));
        assert!(err.to_string().contains("10.50.0.0/24"), "{err}");

        let info = p.ensure_bridge(subnet("10.51.0.0/24")).unwrap();
        p.ensure_nat().unwrap();
        // The TAP is owned by the owner, not by root.
        p.create_tap(&tap).unwrap();
        assert_eq!(
            nl.link(tap.as_str()).unwrap().unwrap().kind,
            LinkKind::Tap { owner: Some(owner) }
        );

        // Another owner's TAP, and a device banger did not make, are refused.
        banger_net::tap::create_persistent("bgt0ff", 777).unwrap();
        let theirs = TapName::new("bgt0ff").unwrap();
        for err in [
            p.delete_tap(&theirs).unwrap_err(),
            p.create_tap(&theirs).unwrap_err(),
        ] {
            assert_eq!(err.kind(), Some(FailureKind::NotPermitted), "{err}");
            assert!(err.to_string().contains("uid 777"), "{err}");
        }
        assert!(nl.link("bgt0ff").unwrap().is_some(), "untouched");

        // A host port a host service listens on is not taken over.
        let lo = nl.link("lo").unwrap().unwrap();
        nl.attach_and_up(&lo, None).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:8181").unwrap();
        let udp = std::net::UdpSocket::bind("0.0.0.0:8182").unwrap();
        let guest = Ipv4Addr::new(10, 51, 0, 5);
        for (spec, held) in [
            ("8181:80", "127.0.0.1:8181"),
            ("127.0.0.1:8181:80", "127.0.0.1:8181"),
            ("8182:53/udp", "0.0.0.0:8182"),
            ("10.51.0.1:8182:53/udp", "0.0.0.0:8182"),
        ] {
            let err = p.add_publish(publish(spec, guest)).unwrap_err();
            assert_eq!(err.kind(), Some(FailureKind::Conflict), "{spec}: {err}");
            assert!(err.to_string().contains(held), "{spec}: {err}");
        }
        // Another address than the one the service holds is fine; so is the other protocol.
        p.add_publish(publish("10.51.0.1:8181:80", guest)).unwrap();
        p.add_publish(publish("8181:80/udp", guest)).unwrap();
        drop((tcp, udp));

        // A host port the owner could not bind is refused for a non-root owner.
        let err = p
            .add_publish(publish("80:80", Ipv4Addr::new(10, 51, 0, 5)))
            .unwrap_err();
        assert_eq!(err.kind(), Some(FailureKind::NotPermitted), "{err}");
        assert!(err.to_string().contains("below 1024"), "{err}");

        p.remove_nat().unwrap();
        p.remove_bridge().unwrap();
        assert!(nl.link(&info.name).unwrap().is_none());
    });
}

#[test]
fn an_nft_binary_that_fails_the_ownership_rule_is_refused_with_its_reason() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let real =
        banger_system::runner::lookup_executable("nft").expect("nft is installed (nftables)");
    let copy = |name: &str, mode: u32| {
        let path = dir.path().join(name);
        // cp(1) in a child, not std::fs::copy: a write descriptor held by this multi-threaded
        // process could be inherited by another test's fork, and exec'ing the copy would then
        // fail with ETXTBSY.
        assert!(
            std::process::Command::new("cp")
                .arg(&real)
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let foreign = copy("foreign", 0o755);
    std::os::unix::fs::chown(&foreign, Some(1000), None).unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (link, "symbolic link"),
        (copy("writable", 0o775), "writable by group or others"),
        (copy("noexec", 0o644), "not executable"),
        (foreign, "owned by uid 1000"),
        (dir.path().to_path_buf(), "not a regular file"),
        (dir.path().join("missing"), "cannot inspect"),
    ];
    let good = copy("good", 0o755);
    in_netns(move || {
        let setup = priv_for(0, Some(good));
        setup.ensure_bridge(subnet("10.213.0.0/24")).unwrap();
        setup.ensure_nat().unwrap();
        for (path, reason) in cases {
            let err = priv_for(0, Some(path.clone())).ensure_nat().unwrap_err();
            let text = banger_system::error_chain(&err);
            assert_eq!(err.kind(), Some(FailureKind::System), "{text}");
            assert!(text.contains(reason), "{}: {text}", path.display());
        }
        setup.remove_nat().unwrap();
        setup.remove_bridge().unwrap();
    });
}
