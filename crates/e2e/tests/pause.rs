//! Pause and resume under QEMU with a real guest: the state survives a daemon restart (the
//! new daemon asks QEMU), a paused guest runs no commands, and a paused VM stops cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use banger_e2e::{Env, stderr};

#[test]
fn pause_resume_survive_a_daemon_restart_and_stop() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.write_config("vmm = \"qemu\"\n").unwrap();
    env.ok(["vm", "run", "-d", "--name", "p"]);
    assert_eq!(env.vm_json("p")["driver"], "qemu");
    env.ok(["vm", "pause", "p"]);
    assert_eq!(env.vm_json("p")["state"], "paused");
    let out = env.run(["vm", "exec", "p", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("banger vm resume p"),
        "{}",
        stderr(&out)
    );

    // A new daemon learns from QEMU that the guest is paused.
    let daemon = env.daemon_pid().expect("daemon pid file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(format!("/proc/{daemon}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "daemon {daemon} did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(env.vm_json("p")["state"], "paused");

    env.ok(["vm", "resume", "p"]);
    assert_eq!(
        env.ok(["vm", "exec", "p", "--", "echo", "awake"]),
        "awake\n"
    );
    // A paused VM is resumed and shut down cleanly by `vm stop`.
    env.ok(["vm", "pause", "p"]);
    env.ok(["vm", "stop", "p"]);
    let vm = env.vm_json("p");
    assert_eq!(vm["state"], "stopped", "{vm}");
    env.ok(["vm", "rm", "p"]);
}
