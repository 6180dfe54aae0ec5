//! End to end through the Firecracker driver: the real `banger` CLI and daemon with
//! `vmm = "firecracker"`, against the fake Firecracker (the real API contract; its guest is
//! the release `banger-agent` run on the host) in both observed personalities, 1.5.0 and
//! 1.14.1. Guest commands therefore run on the host: they only touch their own working
//! directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use banger_e2e::{Env, sha256_hex, stderr, stdout};

fn env(version: &str) -> Env {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.use_fake_firecracker(version)
        .unwrap_or_else(|e| panic!("cannot set up the fake Firecracker: {e:#}"));
    env
}

fn run_commands(version: &str) {
    let env = env(version);
    // `vm run --rm -- echo hi`
    let out = env.run(["vm", "run", "--rm", "--", "echo", "hi"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(env.ok(["vm", "ls", "--json"]).trim(), "[]");

    // The exit code passes through; stdout and stderr stay apart.
    let out = env.run([
        "vm",
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    // stdin.
    let out = env.run_with_stdin(
        [
            "vm",
            "run",
            "--rm",
            "-i",
            "--",
            "sh",
            "-c",
            "cat; echo done",
        ],
        b"from the host\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from the host\ndone\n");

    // 10 MiB of output arrives intact.
    let out = env.run([
        "vm",
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        "yes 0123456789abcdef | head -c 10485760",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(10 << 20)
        .collect();
    assert_eq!(out.stdout.len(), want.len());
    assert_eq!(sha256_hex(&out.stdout), sha256_hex(&want));
}

#[test]
fn run_exit_codes_stdin_and_output_on_1_5_0() {
    run_commands("1.5.0");
}

#[test]
fn run_exit_codes_stdin_and_output_on_1_14_1() {
    run_commands("1.14.1");
}

fn lifecycle(version: &str) {
    let env = env(version);
    env.ok([
        "vm", "create", "--name", "fc", "--vcpu", "2", "--memory", "256",
    ]);
    let vm = env.vm_json("fc");
    assert_eq!(vm["state"], "created", "{vm}");
    assert_eq!(vm["driver"], "firecracker", "{vm}");
    assert!(
        vm["driver_reason"]
            .as_str()
            .unwrap()
            .contains("vmm = firecracker"),
        "{vm}"
    );
    env.ok(["vm", "start", "fc"]);
    let vm = env.vm_json("fc");
    assert_eq!(vm["state"], "running", "{vm}");
    let pid = vm["pid"].as_i64().unwrap();
    let inspect = env.ok(["vm", "inspect", "fc"]);
    assert!(
        inspect.contains("driver:      firecracker (kvm)"),
        "{inspect}"
    );

    // Pause: exec is refused with the way out; resume: it answers again.
    assert!(env.ok(["vm", "pause", "fc"]).contains("paused"));
    assert_eq!(env.vm_json("fc")["state"], "paused");
    assert!(env.ok(["vm", "ls"]).contains("paused"));
    let out = env.run(["vm", "exec", "fc", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("banger vm resume fc"),
        "{}",
        stderr(&out)
    );
    env.ok(["vm", "resume", "fc"]);
    assert_eq!(env.ok(["vm", "exec", "fc", "--", "echo", "back"]), "back\n");

    // Stop (graceful: agent poweroff; Firecracker exits on the guest's reboot) and start.
    env.ok(["vm", "stop", "fc"]);
    assert_eq!(env.vm_json("fc")["state"], "stopped");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Firecracker {pid} lives on"
    );
    env.ok(["vm", "start", "fc"]);
    assert_eq!(
        env.ok(["vm", "exec", "fc", "--", "echo", "again"]),
        "again\n"
    );
    // A paused VM stops too.
    env.ok(["vm", "pause", "fc"]);
    env.ok(["vm", "stop", "fc"]);
    assert_eq!(env.vm_json("fc")["state"], "stopped");

    // The console log holds both boots.
    let logs = env.ok(["vm", "logs", "fc"]);
    assert_eq!(logs.matches("Command line:").count(), 2, "{logs}");
    env.ok(["vm", "start", "fc"]);
    let pid = env.vm_json("fc")["pid"].as_i64().unwrap();
    env.ok(["vm", "rm", "-f", "fc"]);
    assert_eq!(env.ok(["vm", "ls", "--json"]).trim(), "[]");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Firecracker {pid} lives on"
    );
}

#[test]
fn create_start_pause_resume_stop_rm_on_1_5_0() {
    lifecycle("1.5.0");
}

#[test]
fn create_start_pause_resume_stop_rm_on_1_14_1() {
    lifecycle("1.14.1");
}

fn kill_daemon(env: &Env) {
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
}

fn daemon_restart(version: &str) {
    let env = env(version);
    env.ok(["vm", "run", "-d", "--name", "survivor"]);
    env.ok(["vm", "run", "-d", "--name", "sleeper"]);
    env.ok(["vm", "pause", "sleeper"]);
    let pid = env.vm_json("survivor")["pid"].as_i64().unwrap();
    kill_daemon(&env);
    // A new daemon finds both through their records and Firecracker's `GET /`.
    let vm = env.vm_json("survivor");
    assert_eq!(vm["state"], "running", "{vm}");
    assert_eq!(vm["pid"].as_i64().unwrap(), pid);
    assert_eq!(env.vm_json("sleeper")["state"], "paused");
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
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(stdout(&out), "alive\n");
    env.ok(["vm", "resume", "sleeper"]);
    assert_eq!(
        env.ok(["vm", "exec", "sleeper", "--", "echo", "awake"]),
        "awake\n"
    );
    env.ok(["vm", "stop", "survivor"]);
    assert_eq!(env.vm_json("survivor")["state"], "stopped");
}

#[test]
fn vms_survive_a_daemon_sigkill_on_1_5_0() {
    daemon_restart("1.5.0");
}

#[test]
fn vms_survive_a_daemon_sigkill_on_1_14_1() {
    daemon_restart("1.14.1");
}

#[test]
fn a_binary_below_the_floor_is_refused_before_launch() {
    let env = env("1.4.1");
    let out = env.run(["vm", "run", "--rm", "--", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("older than the supported minimum v1.5.0"),
        "{err}"
    );
    assert!(err.contains("sudo banger firecracker install"), "{err}");
    assert_eq!(env.ok(["vm", "ls", "--json"]).trim(), "[]");

    // A VM created under a good binary that was later replaced by an old one is refused
    // at boot, before any process starts.
    let env = env_with_vm_then_downgrade();
    let out = env.run(["vm", "start", "fc"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("older than the supported minimum v1.5.0"),
        "{}",
        stderr(&out)
    );
    let vm = env.vm_json("fc");
    assert_eq!(vm["state"], "failed", "{vm}");
    let dir = std::path::PathBuf::from(vm["dir"].as_str().unwrap());
    assert!(
        !dir.join("firecracker.sock").exists(),
        "Firecracker was launched"
    );
}

fn env_with_vm_then_downgrade() -> Env {
    let env = env("1.14.1");
    env.ok(["vm", "create", "--name", "fc"]);
    env.use_fake_firecracker("1.4.1").unwrap();
    env
}

#[test]
fn doctor_reports_a_group_writable_or_symlinked_binary() {
    use std::os::unix::fs::PermissionsExt;
    let env = env("1.14.1");
    let wrapper = env.root.path().join("fc/firecracker");
    let check = |env: &Env| -> serde_json::Value {
        let out = env.run(["doctor", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", stdout(&out)));
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "firecracker binary")
            .cloned()
            .unwrap_or_else(|| panic!("no firecracker binary check: {report}"))
    };
    let c = check(&env);
    assert_eq!(c["status"], "pass", "{c}");

    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o775)).unwrap();
    let c = check(&env);
    assert_eq!(c["status"], "warn", "{c}");
    assert!(c.to_string().contains("writable by group or others"), "{c}");

    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let real = env.root.path().join("fc/firecracker-real");
    std::fs::rename(&wrapper, &real).unwrap();
    std::os::unix::fs::symlink(&real, &wrapper).unwrap();
    let c = check(&env);
    assert_eq!(c["status"], "warn", "{c}");
    assert!(c.to_string().contains("symbolic link"), "{c}");
}
