//! Snapshots and clones of a bridged VM on real guests (minimal image, QEMU under TCG), the
//! daemon in a network namespace of the test's own and the "outside" in another: each clone
//! comes up with a MAC and address of its own (leased at its start, applied by its agent
//! during Reidentify), different from its parent's and its sibling's, and reaches the
//! outside; the parent keeps working; `vm rm` leaves no TAP, lease or rule behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use banger_e2e::bridgelab::BridgeLab;
use banger_e2e::netlab::OUTSIDE;
use banger_e2e::{stderr, stdout};

const PATIENCE: Duration = Duration::from_secs(60);

/// The guest's own view of its first Ethernet interface: `MAC ADDRESS/PREFIX`.
fn guest_link(lab: &BridgeLab, vm: &str) -> String {
    let script = "for d in /sys/class/net/*; do n=${d##*/}; [ \"$n\" = lo ] && continue; \
                  mac=$(cat $d/address); \
                  set -- $(busybox ip -4 -o addr show dev $n); \
                  while [ $# -gt 0 ] && [ \"$1\" != inet ]; do shift; done; \
                  echo \"$mac $2\"; break; done";
    lab.ok(&["vm", "exec", vm, "--", "sh", "-c", script])
        .trim()
        .to_string()
}

/// Fetch the outside's page from inside `vm`, retrying while its ARP settles.
fn fetch(lab: &BridgeLab, vm: &str) -> String {
    let request =
        format!("printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {OUTSIDE} 8000");
    let started = Instant::now();
    loop {
        let out = lab.run(&["vm", "exec", vm, "--", "sh", "-c", &request]);
        let text = stdout(&out);
        if out.status.success() && text.contains("200 OK") {
            return text;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{vm} never reached the outside: {text}{}\n{}",
            stderr(&out),
            lab.env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bridged_clones_get_their_own_mac_and_address_and_leave_nothing() {
    let lab = BridgeLab::new("vmm = \"qemu\"\n");
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hello.txt"), "hello from outside\n").unwrap();
    let mut server = lab.net.serve_http(site.path());

    lab.ok(&["vm", "run", "-d", "--name", "parent"]);
    let parent_link = guest_link(&lab, "parent");
    lab.ok(&["vm", "snapshot", "parent", "--name", "s"]);
    lab.ok(&["vm", "run", "-d", "--from", "s", "--name", "c1"]);
    lab.ok(&["vm", "run", "-d", "--from", "s", "--name", "c2"]);

    let mut links = vec![parent_link.clone()];
    for vm in ["c1", "c2"] {
        let view = lab.inspect(vm);
        assert_eq!(view["network"]["mode"], "bridge", "{view}");
        let leased = view["network"]["address"].as_str().unwrap().to_string();
        let link = guest_link(&lab, vm);
        // The guest runs with the address this start leased, not its parent's.
        assert!(
            link.ends_with(&format!(" {leased}")),
            "{vm}: {link} vs {leased}"
        );
        links.push(link);
    }
    let macs: Vec<&str> = links.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let addrs: Vec<&str> = links.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    for i in 0..3 {
        for j in i + 1..3 {
            assert_ne!(macs[i], macs[j], "{links:?}");
            assert_ne!(addrs[i], addrs[j], "{links:?}");
        }
    }
    assert_eq!(lab.taps().len(), 3, "{:?}", lab.taps());

    // Every clone, and the parent, reach the outside.
    for vm in ["c1", "c2", "parent"] {
        assert!(fetch(&lab, vm).ends_with("hello from outside\n"));
    }
    assert_eq!(guest_link(&lab, "parent"), parent_link);

    // Removing them gives everything back.
    for vm in ["c1", "c2", "parent"] {
        lab.ok(&["vm", "rm", "-f", vm]);
    }
    lab.ok(&["snapshot", "rm", "s"]);
    lab.assert_clean();
    lab.ok(&["daemon", "stop"]);
    let _ = server.kill();
    let _ = server.wait();
}
