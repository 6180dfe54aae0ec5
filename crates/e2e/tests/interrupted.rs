//! A client that disappears mid-request must not leave half-done state: the daemon
//! finishes the operation it accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_e2e::{Env, stderr};

#[test]
fn killing_the_cli_during_boot_leaves_a_running_vm() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.ok(["vm", "ls"]); // start the daemon outside the timed part
    let mut cli = env
        .cmd(["vm", "run", "-d", "--name", "orphan"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until the daemon has registered the VM and is booting it, then kill the CLI.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.run(["vm", "ls", "--json"]);
        let vms: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(vm) = vms.iter().find(|vm| vm["name"] == "orphan") {
            assert!(
                vm["state"] == "starting" || vm["state"] == "created" || vm["state"] == "running",
                "{vm}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the VM never appeared\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cli.kill().unwrap();
    cli.wait().unwrap();

    // The boot completes without its client.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let state = env.vm_json("orphan")["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state == "running" {
            break;
        }
        assert!(
            matches!(state.as_str(), "starting" | "created"),
            "unexpected state {state}\n{}",
            env.diagnostics()
        );
        assert!(
            Instant::now() < deadline,
            "still {state} after 240 s\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = env.run(["vm", "exec", "orphan", "--", "echo", "fine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");
}

#[test]
fn ctrl_c_during_boot_with_rm_leaves_nothing_behind() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.ok(["vm", "ls"]);
    let cli = env
        .cmd(["vm", "run", "--rm", "--name", "fleeting", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.ok(["vm", "ls"]).contains("fleeting") {
        assert!(
            Instant::now() < deadline,
            "the VM never appeared\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cli.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = cli.wait_with_output().unwrap();
    // Either the interrupt landed during the boot (130, VM removed by the handler) or
    // the command had already finished (0, VM removed by --rm); never a leftover.
    assert!(matches!(out.status.code(), Some(130) | Some(0)), "{out:?}");
    assert_eq!(
        env.ok(["vm", "ls", "--json"]).trim(),
        "[]",
        "{}",
        env.diagnostics()
    );
}
