//! End to end: the default `debian` image on real guests. It boots from its root disk
//! (a copy-on-write clone per VM), sshd listens and accepts the real OpenSSH client, each
//! VM has its own identity, and ten VMs share one image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use banger_e2e::{Env, GUEST_LOOPBACK_SSH, stderr};

fn env() -> Env {
    Env::debian().unwrap_or_else(|e| panic!("cannot set up a debian e2e environment: {e:#}"))
}

#[test]
fn debian_boots_to_sshd_and_the_real_ssh_client_gets_in() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "deb", "--memory", "512"]);
    let os = env.sh("deb", ". /etc/os-release; echo $ID $VERSION_CODENAME");
    assert_eq!(os.trim(), "debian bookworm");
    // The lean init: the agent is PID 1 and started sshd.
    let pid1 = env.sh("deb", "cat /proc/1/comm");
    assert_eq!(pid1.trim(), "banger-agent");
    // sshd is listening, and the real OpenSSH client logs in with a key (inside the
    // guest: the host has no network path to it without the networking work).
    let who = env.sh("deb", GUEST_LOOPBACK_SSH);
    assert_eq!(who.trim(), "root@deb");

    // The root disk is a copy-on-write clone, and inspect says how it was made.
    let vm = env.vm_json("deb");
    let disks = vm["disks"].as_array().expect("disks in vm inspect");
    let root = disks
        .iter()
        .find(|d| d["role"] == "root")
        .expect("a root disk");
    let backend = root["backend"].as_str().unwrap();
    assert!(
        ["reflink", "qcow2", "copy"].contains(&backend),
        "unexpected backend {backend}"
    );
    assert!(root["used_bytes"].as_u64().is_some());
    let work = env.sh("deb", "mount | grep ' /work '");
    assert!(work.contains("/dev/vdb"), "{work}");

    // A restart keeps the identity; only a new VM gets a new one.
    let before = env.sh(
        "deb",
        "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub",
    );
    env.ok(["vm", "stop", "deb"]);
    env.ok(["vm", "start", "deb"]);
    let after = env.sh(
        "deb",
        "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub",
    );
    assert_eq!(before, after, "a restart must keep the VM's identity");
}

#[test]
fn ten_vms_from_one_image_each_with_their_own_identity() {
    let env = env();
    let mut ids = HashSet::new();
    let mut keys = HashSet::new();
    for i in 0..10 {
        let name = format!("d{i}");
        env.ok(["vm", "run", "-d", "--name", &name, "--memory", "256"]);
        let out = env.sh(
            &name,
            "hostname; cat /etc/machine-id; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], name);
        assert_eq!(lines[1].len(), 32, "machine-id {:?}", lines[1]);
        ids.insert(lines[1].to_string());
        keys.insert(lines[2].to_string());
    }
    assert_eq!(ids.len(), 10, "machine-ids are shared: {ids:?}");
    assert_eq!(keys.len(), 10, "SSH host keys are shared: {keys:?}");
    let vms: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(["vm", "ls", "--json"])).unwrap();
    assert_eq!(vms.len(), 10);
    assert!(
        vms.iter()
            .all(|v| v["state"] == "running" && v["image"] == "debian")
    );
    // The image cannot go while they use it, and the refusal names them.
    let out = env.run(["image", "rm", "debian"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("d0") && stderr(&out).contains("d9"),
        "{}",
        stderr(&out)
    );
}

/// Images carry no headroom: each VM's root disk has the VM's `--disk` size and the agent
/// grows the filesystem to fill it at first boot, so a guest writes far beyond what the
/// image holds, and keeps it across a restart.
#[test]
fn the_root_filesystem_fills_the_vm_disk_size_and_keeps_it() {
    let env = env();
    let image: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "inspect", "debian", "--json"])).unwrap();
    let rootfs = image["rootfs_path"].as_str().expect("debian has a rootfs");
    let image_bytes = std::fs::metadata(rootfs).unwrap().len();
    assert!(
        image_bytes < 768 << 20,
        "the debian rootfs is {image_bytes} bytes: images should carry no headroom"
    );
    let disk: u64 = 3 << 30;
    env.ok([
        "vm", "run", "-d", "--name", "big", "--memory", "512", "--disk", "3g",
    ]);
    let vm = env.vm_json("big");
    let root = vm["disks"]
        .as_array()
        .expect("disks in vm inspect")
        .iter()
        .find(|d| d["role"] == "root")
        .expect("a root disk")
        .clone();
    assert_eq!(root["size_bytes"].as_u64(), Some(disk), "{root}");
    let df = |env: &Env| -> (u64, u64) {
        let out = env.sh("big", "df -B1 --output=size,avail / | tail -1");
        let mut nums = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        (nums.next().unwrap(), nums.next().unwrap())
    };
    let (size, avail) = df(&env);
    // ext4's own metadata (inode tables, journal) takes a few percent of the disk.
    assert!(
        size > disk * 9 / 10 && size <= disk,
        "the guest's / is {size} bytes on a {disk}-byte disk: it was not grown"
    );
    assert!(avail > image_bytes + (1 << 30), "only {avail} bytes free");
    // More than the whole image, written past its end.
    let wrote = env.sh(
        "big",
        "head -c 1200M /dev/zero > /big && sync && stat -c %s /big",
    );
    assert_eq!(wrote.trim(), (1200u64 << 20).to_string());
    assert!(1200 << 20 > image_bytes);
    env.ok(["vm", "stop", "big"]);
    env.ok(["vm", "start", "big"]);
    let kept = env.sh("big", "stat -c %s /big && rm /big");
    assert_eq!(kept.trim(), (1200u64 << 20).to_string());
    assert_eq!(df(&env).0, size, "a restart must keep the grown size");
    let console = std::fs::read_to_string(vm["console_log"].as_str().unwrap()).unwrap();
    // What growing cost this boot (for the record; timing is the bench's job).
    if let Some(line) = console
        .lines()
        .find(|l| l.contains("root filesystem grown"))
    {
        eprintln!("{line}");
    }
    assert_eq!(
        console.matches("root filesystem grown").count(),
        1,
        "the first boot grows the filesystem, the second finds it grown:\n{console}"
    );
}
