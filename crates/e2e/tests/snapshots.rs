//! Snapshots and clones under QEMU with real guests (TCG): a clone resumes its parent's
//! guest as it was at the snapshot, writes nothing its parent or siblings see, and is a
//! machine of its own (hostname, machine-id, RNG, clock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_e2e::{Env, stderr, unix_now as now};

#[test]
fn clones_resume_the_snapshot_and_are_machines_of_their_own() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.write_config("vmm = \"qemu\"\n").unwrap();
    env.ok(["vm", "run", "-d", "--name", "parent"]);
    env.sh("parent", "echo before > /work/before && sync");

    let snap: serde_json::Value =
        serde_json::from_str(&env.ok(["vm", "snapshot", "parent", "--name", "s1", "--json"]))
            .unwrap();
    assert_eq!(snap["source_vm"], "parent");
    assert_eq!(snap["driver"], "qemu");
    // The parent runs on, and what it writes now is its own.
    assert_eq!(env.vm_json("parent")["state"], "running");
    env.sh("parent", "echo after > /work/after-parent && sync");

    env.ok(["vm", "run", "--from", "s1", "-d", "--name", "c1"]);
    assert_eq!(env.ok(["vm", "clone", "s1", "--name", "c2"]).trim(), "c2");
    for clone in ["c1", "c2"] {
        let vm = env.vm_json(clone);
        assert_eq!(vm["state"], "running", "{vm}");
        assert_eq!(vm["origin"]["snapshot"], "s1", "{vm}");
        assert!(vm["origin"]["restored_at"].is_string(), "{vm}");
        // The parent's file from before the snapshot is there; its later one is not.
        assert_eq!(env.sh(clone, "cat /work/before"), "before\n");
        assert_eq!(
            env.sh(clone, "test -e /work/after-parent && echo yes || echo no"),
            "no\n"
        );
    }
    // A clone's writes are its own.
    env.sh("c1", "echo mine > /work/c1-only && sync");
    for other in ["c2", "parent"] {
        assert_eq!(
            env.sh(other, "test -e /work/c1-only && echo yes || echo no"),
            "no\n",
            "{other} sees c1's file"
        );
    }

    // Each clone is a machine of its own.
    let (a, b) = (env.guest_identity("c1"), env.guest_identity("c2"));
    assert_eq!(a[0], "c1");
    assert_eq!(b[0], "c2");
    assert_eq!(a[1].len(), 32, "machine-id {a:?}");
    assert_ne!(a[1], b[1], "the clones share a machine-id");
    assert_ne!(a[2], b[2], "the clones' RNGs gave the same bytes");
    let parent_id = env.sh("parent", "cat /etc/machine-id 2>/dev/null || true");
    assert_ne!(parent_id.trim(), a[1]);

    // The clock was set at restore (it is frozen at snapshot time otherwise).
    let before = now();
    let guest: u64 = env.sh("c2", "date +%s").trim().parse().unwrap();
    let after = now();
    assert!(
        guest + 2 >= before && guest <= after + 2,
        "guest clock {guest}, host {before}..{after}"
    );

    // The snapshot outlives no clone.
    let out = env.run(["snapshot", "rm", "s1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("c1"), "{}", stderr(&out));
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(["snapshot", "inspect", "s1", "--json"])).unwrap();
    assert_eq!(
        listed["clones"],
        serde_json::json!(["c1", "c2"]),
        "{listed}"
    );

    // A warm `vm run --rm` restores, runs and leaves nothing behind.
    assert_eq!(
        env.ok([
            "vm",
            "run",
            "--from",
            "s1",
            "--rm",
            "--",
            "cat",
            "/work/before"
        ]),
        "before\n"
    );
    env.ok(["vm", "rm", "-f", "c1", "c2", "parent"]);
    env.ok(["snapshot", "rm", "s1"]);
    assert_eq!(env.ok(["snapshot", "ls", "-q"]), "");
}

#[test]
fn a_snapshot_qemu_cannot_load_leaves_no_vm_and_says_why() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.write_config("vmm = \"qemu\"\n").unwrap();
    env.ok(["vm", "run", "-d", "--name", "p"]);
    let snap: serde_json::Value =
        serde_json::from_str(&env.ok(["vm", "snapshot", "p", "--stop", "--json"])).unwrap();
    assert_eq!(env.vm_json("p")["state"], "stopped");
    let state = std::path::Path::new(snap["dir"].as_str().unwrap()).join("vmstate");
    std::fs::write(&state, b"not a migration stream").unwrap();

    let name = snap["name"].as_str().unwrap();
    let out = env.run([
        "vm", "run", "--from", name, "--name", "broken", "--", "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot restore the snapshot"),
        "{}",
        stderr(&out)
    );
    let listed = env.ok(["vm", "ls", "-q"]);
    assert!(!listed.contains("broken"), "{listed}");
}
