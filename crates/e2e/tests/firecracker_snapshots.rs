//! Snapshots and clones through the Firecracker driver: the real `banger` CLI and daemon
//! against the fake Firecracker, which enforces what the real one does on `PUT
//! /snapshot/load` (drives reopened at the recorded paths, memory file mapped read-only, load
//! only before boot) and holds open the files it uses, as the real one does. Its guest's
//! agent plays a guest (`--simulated-guest`): a clone's identity lands in the fake's scratch
//! directory `<vm dir>/fake-guest`, never on the host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use banger_e2e::{Env, stderr};

/// The files process `pid` holds open.
fn open_files(pid: i64) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .collect()
}

fn disk_paths(vm: &serde_json::Value) -> Vec<PathBuf> {
    let disks: Vec<PathBuf> = vm["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| PathBuf::from(d["path"].as_str().unwrap()))
        .collect();
    assert!(!disks.is_empty(), "{vm}");
    disks
}

fn guest_file(vm: &serde_json::Value, file: &str) -> String {
    let path = Path::new(vm["dir"].as_str().unwrap())
        .join("fake-guest")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn clones(version: &str) {
    let env = Env::with_fake_firecracker(version);
    env.ok(["vm", "run", "-d", "--name", "parent"]);
    env.ok(["vm", "snapshot", "parent", "--name", "s"]);
    let out = env.run(["vm", "run", "-d", "--from", "s", "--name", "c1"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    env.ok(["vm", "clone", "s", "--name", "c2", "--no-start"]);
    env.ok(["vm", "start", "c2"]);

    let parent = env.vm_json("parent");
    let parent_disks = disk_paths(&parent);
    for name in ["c1", "c2"] {
        let clone = env.vm_json(name);
        assert_eq!(clone["state"], "running", "{clone}");
        assert_eq!(clone["origin"]["snapshot"], "s", "{clone}");
        // Firecracker reopened the clone's own disks, never its parent's.
        let open = open_files(clone["pid"].as_i64().unwrap());
        for disk in disk_paths(&clone) {
            assert!(open.contains(&disk), "{name}: {disk:?} not in {open:?}");
        }
        for disk in &parent_disks {
            assert!(!open.contains(disk), "{name} opened its parent's {disk:?}");
        }
        // Reidentified before anyone could use it.
        assert_eq!(guest_file(&clone, "etc/hostname").trim(), name);
        assert_eq!(
            env.ok(["vm", "exec", name, "--", "echo", "up"]),
            "up\n",
            "{name}"
        );
    }
    assert_ne!(
        guest_file(&env.vm_json("c1"), "etc/machine-id"),
        guest_file(&env.vm_json("c2"), "etc/machine-id")
    );
    // The parent runs on.
    assert_eq!(env.ok(["vm", "exec", "parent", "--", "echo", "p"]), "p\n");

    // A restored clone survives a daemon restart.
    env.kill_daemon();
    assert_eq!(env.vm_json("c1")["state"], "running");
    assert_eq!(
        env.ok(["vm", "exec", "c1", "--", "echo", "alive"]),
        "alive\n"
    );

    // A load Firecracker refuses (a damaged memory file) leaves no VM and says why.
    let snap: serde_json::Value =
        serde_json::from_str(&env.ok(["snapshot", "inspect", "s", "--json"])).unwrap();
    let memory = Path::new(snap["dir"].as_str().unwrap()).join("memory");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&memory)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let out = env.run(["vm", "run", "-d", "--from", "s", "--name", "bad"]);
    assert!(!out.status.success(), "a damaged snapshot was restored");
    let err = stderr(&out);
    assert!(err.contains("memory"), "{err}");
    let listed = env.ok(["vm", "ls", "--json"]);
    assert!(!listed.contains("\"bad\""), "{listed}");

    for name in ["c1", "c2", "parent"] {
        env.ok(["vm", "rm", "-f", name]);
    }
    env.ok(["snapshot", "rm", "s"]);
}

#[test]
fn clones_restore_their_own_disks_and_identity_on_1_5_0() {
    clones("1.5.0");
}

#[test]
fn clones_restore_their_own_disks_and_identity_on_1_14_1() {
    clones("1.14.1");
}

/// A warm image under Firecracker: `image warm` saves the agent-ready guest and a default
/// `vm run` restores it, with an identity of its own.
#[test]
fn a_warm_image_restores_under_firecracker() {
    let env = Env::with_fake_firecracker("1.14.1");
    let warmed: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "warm", "minimal", "--json"])).unwrap();
    assert_eq!(warmed["warm"]["driver"], "firecracker", "{warmed}");
    // A standby is kept restored under Firecracker too, and handed to the next run.
    banger_e2e::standby::wait_standbys(&env, "minimal", 1);
    let out = env.run(["vm", "run", "--rm", "--timings", "--", "true"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert!(
        stderr(&out).contains("restored from    image minimal's warm state"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("standby taken"), "{}", stderr(&out));
    banger_e2e::standby::wait_standbys(&env, "minimal", 1);
    env.ok(["vm", "run", "-d", "--name", "w1"]);
    let view = env.vm_json("w1");
    assert_eq!(view["origin"]["warm_image"], "minimal", "{view}");
    assert_eq!(guest_file(&view, "etc/hostname").trim(), "w1");
    assert!(view["origin"]["standby_taken_at"].is_string(), "{view}");
    env.ok(["vm", "rm", "-f", "w1"]);
}
