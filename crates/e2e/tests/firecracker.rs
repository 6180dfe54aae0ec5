//! End to end through the Firecracker driver: the real `banger` CLI and daemon with
//! `vmm = "firecracker"`, against the fake Firecracker (the real API contract; its guest is
//! the release `banger-agent` run on the host) in both observed personalities, 1.5.0 and
//! 1.14.1. Guest commands therefore run on the host: they only touch their own working
//! directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use banger_e2e::{Env, sha256_hex, stderr, stdout};

fn run_commands(version: &str) {
    let env = Env::with_fake_firecracker(version);
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
    let env = Env::with_fake_firecracker(version);
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

fn daemon_restart(version: &str) {
    let env = Env::with_fake_firecracker(version);
    env.ok(["vm", "run", "-d", "--name", "survivor"]);
    env.ok(["vm", "run", "-d", "--name", "sleeper"]);
    env.ok(["vm", "pause", "sleeper"]);
    let pid = env.vm_json("survivor")["pid"].as_i64().unwrap();
    env.kill_daemon();
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
    let env = Env::with_fake_firecracker("1.4.1");
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
    let env = Env::with_fake_firecracker("1.14.1");
    env.ok(["vm", "create", "--name", "fc"]);
    env.use_fake_firecracker("1.4.1").unwrap();
    env
}

#[test]
fn doctor_reports_a_group_writable_or_symlinked_binary() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_fake_firecracker("1.14.1");
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

/// The console files of VM `name` (`console.log` + `console.log.1`) and Firecracker's own
/// log files, in bytes.
fn console_and_log_bytes(env: &Env, name: &str) -> (u64, u64) {
    let dir = std::path::PathBuf::from(env.vm_json(name)["dir"].as_str().unwrap().to_string());
    let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
    (
        size("console.log") + size("console.log.1"),
        size("firecracker.log") + size("firecracker.log.1"),
    )
}

/// Wait until `vm logs` shows `needle`; what it showed last.
fn wait_for_log(env: &Env, name: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = env.ok(["vm", "logs", name]);
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "`vm logs {name}` never showed {needle:?}; its end: {:?}\n{}",
            &logs[logs.len().saturating_sub(300)..],
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The guest writes `bytes` to its serial port (the fake's `ttyS0`, paced like a UART).
fn write_serial(env: &Env, name: &str, script: &str) {
    let dir = env.vm_json(name)["dir"].as_str().unwrap().to_string();
    let tty = format!("{dir}/fake-guest/ttyS0");
    env.ok([
        "vm",
        "exec",
        name,
        "--",
        "sh",
        "-c",
        &format!("{{ {script}; }} > \"$0\""),
        &tty,
    ]);
}

/// Firecracker's serial console reaches `vm logs` through the console pipe, a flood stays
/// under `[logs] console_max` (and Firecracker's own log under its cap), and after a daemon
/// SIGKILL the new daemon goes on draining the same pipe.
fn console_capture(version: &str) {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let wrapper = env
        .use_fake_firecracker(version)
        .unwrap_or_else(|e| panic!("cannot set up the fake Firecracker: {e:#}"));
    env.write_config(&format!(
        "vmm = \"firecracker\"\nfirecracker_bin = \"{}\"\n\n[logs]\nconsole_max = \"64K\"\n",
        wrapper.display()
    ))
    .unwrap();
    env.ok(["vm", "run", "-d", "--name", "fc"]);
    // The boot lines the guest writes to its serial.
    wait_for_log(&env, "fc", "Command line:");

    // 2 MiB through a 64 KiB cap (at the UART's ~1 MiB/s).
    write_serial(
        &env,
        "fc",
        "head -c 2097152 /dev/zero | tr '\\0' y; echo; echo flood-done",
    );
    let logs = wait_for_log(&env, "fc", "flood-done");
    let ys = logs.matches('y').count();
    assert!(
        logs.contains(&"y".repeat(1000)),
        "{ys} y in {} bytes: {}",
        logs.len(),
        &logs[logs.len().saturating_sub(2000)..]
    );
    let (console, fc_log) = console_and_log_bytes(&env, "fc");
    eprintln!(
        "{version}: after a 2 MiB flood: console files {console} B, firecracker.log {fc_log} B"
    );
    assert!(
        console <= 64 * 1024,
        "console files hold {console} bytes, over the 64 KiB cap"
    );
    assert!(
        fc_log <= 1 << 20,
        "firecracker.log holds {fc_log} bytes, over its 1 MiB cap"
    );

    // No daemon: the guest floods on; what the pipe cannot hold is lost, the disk untouched.
    // (The flood is written into the guest's ttyS0 from the host side: any `banger` command
    // would start a daemon.)
    let dir = std::path::PathBuf::from(env.vm_json("fc")["dir"].as_str().unwrap().to_string());
    let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
    let files = [
        "console.log",
        "console.log.1",
        "firecracker.log",
        "firecracker.log.1",
    ];
    env.kill_daemon();
    let before: Vec<u64> = files.iter().map(|f| size(f)).collect();
    std::fs::write(dir.join("fake-guest/ttyS0"), vec![b'z'; 512 * 1024]).unwrap();
    let after: Vec<u64> = files.iter().map(|f| size(f)).collect();
    assert_eq!(before, after, "{files:?} grew with no daemon running");

    // A new daemon adopts the VM and drains the same pipe again.
    write_serial(&env, "fc", "echo after-the-restart");
    wait_for_log(&env, "fc", "after-the-restart");
    let (console, fc_log) = console_and_log_bytes(&env, "fc");
    assert!(console <= 64 * 1024, "console files hold {console} bytes");
    assert!(fc_log <= 1 << 20, "firecracker.log holds {fc_log} bytes");
    env.ok(["vm", "rm", "-f", "fc"]);
}

#[test]
fn console_is_captured_capped_and_resumed_on_1_5_0() {
    console_capture("1.5.0");
}

#[test]
fn console_is_captured_capped_and_resumed_on_1_14_1() {
    console_capture("1.14.1");
}
