//! The VMM sandbox with real guests under TCG, as root (CI runs as root): QEMU's
//! `/proc/PID/status` shows seccomp filtering, a non-root uid of the reserved range,
//! `no_new_privs` and no capabilities; its root is a jail, not the host's `/`; two VMs get
//! two uids; the VM still execs, shows its logs, stops, restarts, survives a daemon
//! restart and is removed. `banger doctor` reports the same posture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_e2e::{Env, stderr};
use banger_vmm::sandbox::{IdRange, posture};

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests check the root daemon's uid drop and jail; run them as root (CI does)"
    );
}

fn qemu_pid(env: &Env, name: &str) -> u32 {
    u32::try_from(
        env.vm_json(name)["pid"]
            .as_i64()
            .expect("a running VM has a pid"),
    )
    .unwrap()
}

#[test]
fn a_root_daemons_qemu_is_sandboxed_and_the_vm_still_works() {
    require_root();
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "jailed"]);
    let pid = qemu_pid(&env, "jailed");
    let p = posture::read(pid).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let range = IdRange::default();
    assert!(
        range.is_vm_id(p.uids[0]) && p.uids == [p.uids[0]; 4],
        "QEMU runs as a VM uid of the reserved range:\n{status}"
    );
    assert_eq!(p.seccomp, Some(2), "Seccomp: 2 (filtering)\n{status}");
    assert_eq!(p.no_new_privs, Some(true), "{status}");
    assert_eq!(p.cap_eff, Some(0), "{status}");
    assert_eq!(p.own_root, Some(true), "QEMU's / is not the host's /");
    // The jail holds the VM's directory, not the store or the daemon's log beside it.
    let root = format!("/proc/{pid}/root");
    let state = env.state_dir();
    assert!(!Path::new(&format!("{root}{}", state.join("state.db").display())).exists());
    assert!(!Path::new(&format!("{root}{}", state.join("daemon.log").display())).exists());
    assert!(!Path::new(&format!("{root}/etc/passwd")).exists());
    let vm_dir = state
        .join("vms")
        .join(env.vm_json("jailed")["id"].as_str().unwrap());
    assert!(Path::new(&format!("{root}{}", vm_dir.display())).is_dir());
    assert_eq!(std::fs::metadata(&vm_dir).unwrap().uid(), p.uids[0]);

    // `vm inspect` reports the same posture, read from the same /proc files, and who made
    // its limits.
    let sandbox = &env.vm_json("jailed")["sandbox"];
    assert_eq!(sandbox["started_by"], "sandbox", "{sandbox}");
    assert_eq!(sandbox["uid"], p.uids[1], "{sandbox}");
    assert_eq!(sandbox["seccomp"], true, "{sandbox}");
    assert_eq!(sandbox["no_new_privs"], true, "{sandbox}");
    assert_eq!(sandbox["capabilities"], "0x0", "{sandbox}");
    assert_eq!(sandbox["own_root"], true, "{sandbox}");
    let inspect = env.ok(["vm", "inspect", "jailed"]);
    assert!(
        inspect.contains(&format!(
            "sandbox:     uid {}, seccomp, no_new_privs, no capabilities, own root\n",
            p.uids[1]
        )) && inspect.contains("  started:    by banger's sandbox"),
        "{inspect}"
    );
    if inspect.contains("limits:      memory") {
        assert!(
            inspect.contains("  made by:    this daemon: cgroup v"),
            "{inspect}"
        );
    }

    // The guest works through the sandbox: exec, logs.
    let out = env.run([
        "vm",
        "exec",
        "jailed",
        "--",
        "sh",
        "-c",
        "echo in-jail; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-jail\n");
    let logs = env.ok(["vm", "logs", "jailed"]);
    assert!(logs.contains("Linux version"), "console log: {logs}");

    // A second VM: another uid, so one QEMU cannot signal or ptrace the other.
    env.ok(["vm", "run", "-d", "--name", "neighbour"]);
    let p2 = posture::read(qemu_pid(&env, "neighbour")).unwrap();
    assert!(p2.fully_confined(), "{p2:?}");
    assert_ne!(p.uids[0], p2.uids[0], "two VMs, two uids");

    // doctor sees the same posture, read-only.
    let doctor = env.run(["doctor", "--json"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    let report: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("doctor --json: {e}\n{text}\n{}", stderr(&doctor)));
    let row = |name: &str| -> serde_json::Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no doctor row {name:?}: {report:#}"))
            .clone()
    };
    for vm in ["jailed", "neighbour"] {
        let r = row(&format!("VMM sandbox: {vm}"));
        assert_eq!(r["status"], "pass", "{r:#}");
        assert!(r["summary"].as_str().unwrap().contains("a jail"), "{r:#}");
        assert!(
            r["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == "seccomp filtering"),
            "{r:#}"
        );
    }
    let cgroups = row("VMM cgroup limits");
    assert!(
        cgroups["summary"].as_str().unwrap().contains("cgroup"),
        "doctor says what the host allows: {cgroups:#}"
    );

    // Stop, start again (a fresh uid hand-over), survive a daemon restart, remove.
    env.ok(["vm", "stop", "neighbour"]);
    env.ok(["vm", "rm", "neighbour"]);
    env.ok(["vm", "stop", "jailed"]);
    env.ok(["vm", "start", "jailed"]);
    let pid = qemu_pid(&env, "jailed");
    assert!(posture::read(pid).unwrap().fully_confined());
    let daemon = env.daemon_pid().expect("daemon pid file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(format!("/proc/{daemon}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "daemon {daemon} did not die"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(env.vm_json("jailed")["state"], "running");
    assert_eq!(qemu_pid(&env, "jailed"), pid);
    let out = env.run(["vm", "exec", "jailed", "--", "echo", "still-here"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    env.ok(["vm", "rm", "-f", "jailed"]);
    assert!(!vm_dir.exists(), "rm removed the VM's directory");
}
