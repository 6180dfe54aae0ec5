//! A clone of a Debian VM (root disk, sshd): its root disk is its own, and the real ssh
//! client reaches it with strict host-key checking against a host key made for the clone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_e2e::Env;

#[test]
fn a_debian_clone_has_its_own_root_disk_and_ssh_host_key() {
    let env =
        Env::debian().unwrap_or_else(|e| panic!("cannot set up a debian e2e environment: {e:#}"));
    env.write_config("vmm = \"qemu\"\n").unwrap();
    env.ok(["vm", "run", "-d", "--name", "deb"]);
    env.ok([
        "vm",
        "exec",
        "deb",
        "--",
        "sh",
        "-c",
        "echo base > /etc/snap-base && sync",
    ]);
    env.ok(["vm", "snapshot", "deb", "--name", "deb-s"]);
    env.ok(["vm", "clone", "deb-s", "--name", "deb-c"]);

    let root_of = |vm: &str| {
        env.vm_json(vm)["disks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["role"] == "root")
            .map(|d| d["path"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(root_of("deb-c").starts_with(env.vm_json("deb-c")["dir"].as_str().unwrap()));
    assert_eq!(
        env.ok(["vm", "exec", "deb-c", "--", "cat", "/etc/snap-base"]),
        "base\n"
    );
    env.ok([
        "vm",
        "exec",
        "deb-c",
        "--",
        "sh",
        "-c",
        "echo clone > /etc/snap-clone && sync",
    ]);
    let seen = env.ok([
        "vm",
        "exec",
        "deb",
        "--",
        "sh",
        "-c",
        "test -e /etc/snap-clone && echo yes || echo no",
    ]);
    assert_eq!(seen, "no\n", "the parent sees the clone's root-disk write");

    // The real ssh client, strict host-key checking: the clone answers with a key of its
    // own, pinned under its id.
    assert_eq!(
        env.ok(["vm", "ssh", "deb-c", "--", "hostname"]).trim(),
        "deb-c"
    );
    let known = std::fs::read_to_string(env.config_dir().join("known_hosts")).unwrap();
    let key_of = |vm: &str| {
        let id = env.vm_json(vm)["id"].as_str().unwrap().to_string();
        known
            .lines()
            .find(|l| l.starts_with(&format!("banger-{id} ")))
            .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no pinned key for {vm} in:\n{known}"))
    };
    assert_ne!(
        key_of("deb"),
        key_of("deb-c"),
        "the clone kept its parent's host key"
    );
    env.ok(["vm", "rm", "-f", "deb-c", "deb"]);
    env.ok(["snapshot", "rm", "deb-s"]);
}
