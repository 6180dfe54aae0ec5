//! A VM outlives its daemon: SIGKILL the daemon, start a new one, and the VM is
//! still listed as running and still answers `exec`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_e2e::{Env, stderr};

#[test]
fn vm_survives_daemon_sigkill() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.ok(["vm", "run", "-d", "--name", "survivor"]);
    let qemu_pid = env.vm_json("survivor")["pid"].as_i64().unwrap();

    let daemon = env.daemon_pid().expect("daemon pid file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Wait for the old daemon to be gone for real (it is not our child: poll /proc).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{daemon}")).exists()
        && std::fs::read_to_string(format!("/proc/{daemon}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "daemon {daemon} did not die"
        );
        std::thread::yield_now();
    }

    // The next command starts a fresh daemon, which must find the VM.
    let vm = env.vm_json("survivor");
    assert_eq!(vm["state"], "running", "{vm}");
    assert_eq!(vm["pid"].as_i64().unwrap(), qemu_pid);
    assert_ne!(env.daemon_pid(), Some(daemon));

    let out = env.run([
        "vm",
        "exec",
        "survivor",
        "--",
        "sh",
        "-c",
        "echo alive; exit 7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stderr: {}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n");

    env.ok(["vm", "stop", "survivor"]);
    assert_eq!(env.vm_json("survivor")["state"], "stopped");
}
