//! Warm images under QEMU with real guests (TCG): `image warm` keeps an agent-ready guest,
//! `vm run` of the image with the same resources restores it (and each VM is a machine of
//! its own), anything else boots cold and `vm inspect` says why; the warm state survives a
//! daemon restart and goes with `image rm`. A standby kept restored from it is handed to
//! the next `vm run` (fresh identity, never twice, refilled), hidden from `vm ls`, and gone
//! with the daemon or the state it was made from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_e2e::standby::{processes_under, wait_daemon_gone, wait_standbys, without_standbys};
use banger_e2e::{Env, stderr, unix_now as now};

fn image_json(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(["image", "inspect", "minimal", "--json"])).unwrap()
}

#[test]
fn a_warm_image_restores_with_fresh_identities_and_boots_cold_when_it_does_not_match() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.write_config("vmm = \"qemu\"\n").unwrap();

    // Not warm yet: VMs boot cold, with nothing to explain.
    env.ok(["vm", "run", "-d", "--name", "cold0"]);
    let cold0 = env.vm_json("cold0");
    assert!(cold0.get("origin").is_none(), "{cold0}");
    assert!(cold0.get("cold_reason").is_none(), "{cold0}");
    env.ok(["vm", "rm", "-f", "cold0"]);

    let warmed: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "warm", "minimal", "--json"])).unwrap();
    let warm = &without_standbys(&warmed["warm"]);
    assert_eq!(warm["driver"], "qemu", "{warmed}");
    assert_eq!(warm["network"], "user", "{warmed}");
    assert!(warm["size_bytes"].as_u64().unwrap() > 0, "{warmed}");
    assert_eq!(without_standbys(&image_json(&env)["warm"]), *warm);
    // The VM booted to make it is gone; its snapshot is not a user snapshot; the standby
    // the daemon keeps restored from it is no user VM either.
    wait_standbys(&env, "minimal", 1);
    assert_eq!(env.ok(["vm", "ls", "-q"]), "");
    assert_eq!(env.ok(["snapshot", "ls", "-q"]), "");
    let vms_dir = env.state_dir().join("vms");
    assert_eq!(processes_under(&vms_dir).len(), 1, "one standby VMM runs");

    // A warm `vm run --rm -- true` is handed the standby (the VM is gone afterwards: its
    // timings say so), and the pool is refilled.
    let out = env.run(["vm", "run", "--rm", "--timings", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restored from    image minimal's warm state"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("standby taken"), "{}", stderr(&out));
    assert_eq!(env.ok(["vm", "ls", "-q"]), "");
    wait_standbys(&env, "minimal", 1);

    // One VM is handed the standby, the next (once it is refilled) another one: each a
    // machine of its own under its name (checked below with w2).
    env.ok(["vm", "run", "-d", "--name", "w1"]);
    let w1 = env.vm_json("w1");
    assert!(w1["origin"]["standby_taken_at"].is_string(), "{w1}");
    assert_eq!(env.sh("w1", "cat /etc/hostname; hostname"), "w1\nw1\n");
    wait_standbys(&env, "minimal", 1);
    env.ok(["vm", "run", "-d", "--name", "w2"]);
    let w2 = env.vm_json("w2");
    assert!(w2["origin"]["standby_taken_at"].is_string(), "{w2}");
    assert_ne!(w1["id"], w2["id"]);
    assert!(
        env.ok(["vm", "inspect", "w2"])
            .contains("a standby handed over"),
        "{}",
        env.ok(["vm", "inspect", "w2"])
    );

    // Two VMs from the warm image: restored, and machines of their own.
    for vm in ["w1", "w2"] {
        let view = env.vm_json(vm);
        assert_eq!(view["origin"]["warm_image"], "minimal", "{view}");
        assert!(view["origin"]["restored_at"].is_string(), "{view}");
        assert!(view.get("cold_reason").is_none(), "{view}");
        let text = env.ok(["vm", "inspect", vm]);
        assert!(
            text.contains("warm start:  image minimal's warm state"),
            "{text}"
        );
    }
    let (a, b) = (env.guest_identity("w1"), env.guest_identity("w2"));
    assert_eq!(a[0], "w1");
    assert_eq!(b[0], "w2");
    assert_eq!(a[1].len(), 32, "machine-id {a:?}");
    assert_ne!(a[1], b[1], "two warm VMs share a machine-id");
    assert_ne!(a[2], b[2], "two warm VMs' RNGs gave the same bytes");
    // The clock was set at restore (it is frozen at the warm-up otherwise).
    let before = now();
    let guest: u64 = env.sh("w2", "date +%s").trim().parse().unwrap();
    let after = now();
    assert!(
        guest + 2 >= before && guest <= after + 2,
        "guest clock {guest}, host {before}..{after}"
    );
    // Five VMs of the warm state at once map its one RAM copy privately: the same sealed
    // memfd in every QEMU (not the state's file itself, which a sandboxed QEMU could write);
    // what one writes, no other sees.
    let clones = ["w1", "w2", "w3", "w4", "w5"];
    for vm in &clones[2..] {
        env.ok(["vm", "run", "-d", "--name", vm]);
    }
    let mut ram = Vec::new();
    for vm in clones {
        let pid = env.vm_json(vm)["pid"].as_i64().unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let mapped: Vec<(String, String)> = maps
            .lines()
            .filter(|l| l.contains("/memfd:banger-guest-ram"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].to_string(), f[4].to_string())
            })
            .collect();
        assert!(
            !mapped.is_empty(),
            "{vm}'s QEMU does not map the shared RAM:\n{maps}"
        );
        assert!(
            mapped.iter().all(|(perms, _)| perms.ends_with('p')),
            "{vm} maps the shared RAM shared: {mapped:?}"
        );
        assert!(
            !maps.contains("/snapshots/"),
            "{vm}'s QEMU maps a snapshot file itself:\n{maps}"
        );
        ram.push(mapped[0].1.clone());
    }
    assert!(
        ram.iter().all(|ino| *ino == ram[0]),
        "the clones map different copies: {ram:?}"
    );
    env.sh("w1", "echo mine > /root/only-w1 && sync");
    for vm in &clones[1..] {
        assert_eq!(
            env.sh(vm, "ls /root/only-w1 2>/dev/null || echo absent")
                .trim(),
            "absent"
        );
    }
    // A snapshot of a restored VM keeps its RAM in the stream, and its clones load it.
    env.ok(["vm", "snapshot", "w1", "--name", "of-warm"]);
    let out = env.ok([
        "vm",
        "run",
        "--from",
        "of-warm",
        "--rm",
        "--",
        "cat",
        "/root/only-w1",
    ]);
    assert_eq!(out.trim(), "mine");
    env.ok(["snapshot", "rm", "of-warm"]);
    // The image cannot go while VMs are built on its warm state.
    let out = env.run(["image", "rm", "minimal"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("w1"), "{}", stderr(&out));
    env.ok(["vm", "rm", "-f", "w1", "w2", "w3", "w4", "w5"]);

    // Other resources boot cold, and say why; the warm state stays.
    let memory = warm["memory_mib"].as_u64().unwrap();
    let bigger = format!("{}m", memory + 128);
    env.ok(["vm", "run", "-d", "--name", "big", "--memory", &bigger]);
    let big = env.vm_json("big");
    assert!(big.get("origin").is_none(), "{big}");
    assert!(
        big["cold_reason"]
            .as_str()
            .unwrap()
            .contains("memory_mib differs"),
        "{big}"
    );
    assert!(
        env.ok(["vm", "inspect", "big"])
            .contains("cold boot:   memory_mib differs")
    );
    // --cold forces a cold boot.
    env.ok(["vm", "run", "-d", "--cold", "--name", "forced"]);
    let forced = env.vm_json("forced");
    assert!(forced.get("origin").is_none(), "{forced}");
    assert!(
        forced["cold_reason"].as_str().unwrap().contains("--cold"),
        "{forced}"
    );
    env.ok(["vm", "rm", "-f", "big", "forced"]);
    assert_eq!(without_standbys(&image_json(&env)["warm"]), *warm);

    // A daemon restart keeps it; its standbys go with the daemon (no VMM left behind),
    // and the next daemon makes new ones.
    wait_standbys(&env, "minimal", 1);
    let daemon = env.daemon_pid().expect("daemon pid");
    env.ok(["daemon", "stop"]);
    wait_daemon_gone(&env, daemon);
    assert_eq!(
        processes_under(&vms_dir),
        Vec::<i32>::new(),
        "a VMM outlived the daemon"
    );
    assert_eq!(without_standbys(&image_json(&env)["warm"]), *warm);
    env.ok(["vm", "run", "-d", "--name", "after"]);
    assert_eq!(env.vm_json("after")["origin"]["warm_image"], "minimal");
    assert_eq!(env.sh("after", "hostname"), "after\n");
    env.ok(["vm", "rm", "-f", "after"]);

    // Warming again replaces it, and the replaced one's files go (no VM is built on it:
    // its standby went first); the new state gets a standby of its own.
    wait_standbys(&env, "minimal", 1);
    let state_dir = env.state_dir().join("snapshots");
    assert_eq!(std::fs::read_dir(&state_dir).unwrap().count(), 1);
    let again: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "warm", "minimal", "--json"])).unwrap();
    assert_ne!(again["warm"]["snapshot"], warm["snapshot"]);
    assert_eq!(std::fs::read_dir(&state_dir).unwrap().count(), 1);
    wait_standbys(&env, "minimal", 1);
    assert_eq!(processes_under(&vms_dir).len(), 1, "one standby VMM runs");
    // (`image rm` is not run here: this installation shares the template's image files.)
}

#[test]
fn warming_an_unknown_image_is_refused() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.write_config("vmm = \"qemu\"\n").unwrap();
    let out = env.run(["image", "warm", "no-such-image"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-image"), "{}", stderr(&out));
    assert_eq!(env.ok(["vm", "ls", "-q"]), "");
}
