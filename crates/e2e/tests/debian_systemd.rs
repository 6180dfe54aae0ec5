//! End to end: the debian recipe built with `--init systemd` on a real guest. systemd is
//! PID 1 and runs the agent as a unit; `vm exec` works through it, sshd (Debian's
//! `ssh.service`) accepts the real OpenSSH client, the VM has its own identity, the work
//! disk is mounted, and `vm stop` is a clean systemd power-off (no ACPI button, no kill).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_e2e::{Env, GUEST_LOOPBACK_SSH, stderr, stdout};

#[test]
fn a_systemd_image_boots_serves_exec_and_ssh_and_stops_cleanly() {
    let env = Env::debian_systemd()
        .unwrap_or_else(|e| panic!("cannot set up a debian --init systemd environment: {e:#}"));
    env.ok(["vm", "run", "-d", "--name", "sysd", "--memory", "512"]);

    let pid1 = env.sh("sysd", "cat /proc/1/comm");
    assert_eq!(pid1.trim(), "systemd");
    // The agent is a unit of that systemd, not an orphan of the initramfs.
    let unit = env.sh("sysd", "systemctl is-active banger-agent.service");
    assert_eq!(unit.trim(), "active");

    // Per-VM identity, made by the agent in the initramfs before systemd started.
    let id = env.sh(
        "sysd",
        "hostname; cat /etc/machine-id; cat /etc/banger/identity; \
         ls /etc/ssh | grep '^ssh_host_' | sort | tr '\\n' ' '",
    );
    let lines: Vec<&str> = id.lines().collect();
    assert_eq!(lines.len(), 4, "{id}");
    assert_eq!(lines[0], "sysd");
    assert_eq!(lines[1].len(), 32, "machine-id {:?}", lines[1]);
    assert!(
        lines[1].chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[3].trim(),
        "ssh_host_ed25519_key ssh_host_ed25519_key.pub",
        "only the per-VM ed25519 key, no key shipped in the image"
    );

    // The work disk: under systemd the agent mounts it itself.
    let work = env.sh("sysd", "mount | grep ' /work '");
    assert!(work.contains("/dev/vdb"), "{work}");

    // sshd listens and the real OpenSSH client logs in with a key, checking the host
    // key against the one the agent made.
    let who = env.sh("sysd", GUEST_LOOPBACK_SSH);
    assert_eq!(who.trim(), "root@sysd");

    // `-u`: the agent under systemd runs a command as another user too.
    let nobody = exec_as(&env, "sysd", "nobody", "id -un; echo $HOME");
    assert_eq!(nobody, "nobody\n/nonexistent\n");

    // A clean stop: the agent asks systemd, which stops its units and powers off; the
    // daemon never needs the ACPI button or a kill.
    let out = env.run(["vm", "stop", "sysd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !said.contains("power button") && !said.contains("kill"),
        "the stop was not systemd's clean power-off:\n{said}\n{}",
        env.diagnostics()
    );
    assert_eq!(env.vm_json("sysd")["state"], "stopped");

    // The next boot keeps the identity and finds the root filesystem cleanly unmounted
    // by systemd on the way down (no journal recovery).
    env.ok(["vm", "start", "sysd"]);
    let again = env.sh("sysd", "hostname; cat /etc/machine-id");
    assert_eq!(again.lines().nth(1), Some(lines[1]), "{again}");
    let dmesg = env.sh("sysd", "dmesg | grep -i 'EXT4-fs (vda)' || true");
    assert!(
        !dmesg.contains("recovery"),
        "the root filesystem needed recovery after the stop:\n{dmesg}"
    );
    env.ok(["vm", "stop", "sysd"]);
}

fn exec_as(env: &Env, vm: &str, user: &str, script: &str) -> String {
    let out = env.run(["vm", "exec", "-u", user, vm, "--", "sh", "-c", script]);
    assert!(
        out.status.success(),
        "`{script}` as {user} in {vm} failed ({}): {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}
