//! End to end: the real `banger` binary, its daemon, QEMU and the guest agent in a
//! real guest kernel. Every test gets its own installation (and daemon).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_e2e::{Env, sha256_hex, stderr, stdout};

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

#[test]
fn run_prints_the_guest_kernel() {
    let env = env();
    let out = env.run(["vm", "run", "--rm", "--timings", "--", "uname", "-a"]);
    assert!(
        out.status.success(),
        "stderr: {}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    let text = stdout(&out);
    assert!(text.starts_with("Linux "), "not a Linux uname: {text}");
    assert!(
        text.contains("cloud-amd64"),
        "not the Debian cloud kernel: {text}"
    );
    assert!(
        stderr(&out).contains("agent ready"),
        "no timings: {}",
        stderr(&out)
    );
    // --rm removed it.
    assert_eq!(env.ok(["vm", "ls", "--json"]).trim(), "[]");
}

#[test]
fn exit_code_passes_through() {
    let env = env();
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
        "stderr: {}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
}

#[test]
fn stdin_is_piped_through() {
    let env = env();
    let input = b"hello from the host\nsecond line\n";
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
        input,
    );
    assert!(
        out.status.success(),
        "stderr: {}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(stdout(&out), "hello from the host\nsecond line\ndone\n");
}

#[test]
fn ten_mib_of_output_arrives_intact() {
    let env = env();
    let script =
        "head -c 10485760 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob";
    let out = env.run(["vm", "run", "--rm", "--", "sh", "-c", script]);
    assert!(
        out.status.success(),
        "stderr: {}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_eq!(out.stdout.len(), 10 * 1024 * 1024);
    let guest_sum = stderr(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        sha256_hex(&out.stdout),
        guest_sum,
        "output corrupted in transit"
    );
}

#[test]
fn lifecycle_stop_start_rm() {
    let env = env();
    assert_eq!(env.ok(["vm", "run", "-d", "--name", "life"]).trim(), "life");
    assert_eq!(env.vm_json("life")["state"], "running");
    let ls = env.ok(["vm", "ls"]);
    assert!(ls.contains("life") && ls.contains("running"), "{ls}");

    // Something written to the work disk survives a stop/start.
    env.ok([
        "vm",
        "exec",
        "life",
        "--",
        "sh",
        "-c",
        "echo kept > /work/note && sync",
    ]);
    assert_eq!(
        env.ok(["vm", "exec", "life", "--", "hostname"]).trim(),
        "life"
    );

    env.ok(["vm", "stop", "life"]);
    assert_eq!(env.vm_json("life")["state"], "stopped");
    let out = env.run(["vm", "exec", "life", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("banger vm start life"),
        "no hint: {}",
        stderr(&out)
    );

    env.ok(["vm", "start", "life"]);
    assert_eq!(env.vm_json("life")["state"], "running");
    assert_eq!(
        env.ok(["vm", "exec", "life", "--", "cat", "/work/note"]),
        "kept\n"
    );
    let logs = env.ok(["vm", "logs", "life"]);
    assert!(
        logs.contains("Linux version"),
        "console log lacks the kernel banner: {logs}"
    );

    let out = env.run(["vm", "rm", "life"]);
    assert!(!out.status.success(), "rm of a running VM must need -f");
    assert!(stderr(&out).contains("rm -f"), "{}", stderr(&out));
    env.ok(["vm", "rm", "-f", "life"]);
    let out = env.run(["vm", "inspect", "life"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no VM named"), "{}", stderr(&out));
}

#[test]
fn two_vms_at_once() {
    let env = env();
    std::thread::scope(|s| {
        let a = s.spawn(|| env.ok(["vm", "run", "-d", "--name", "alpha"]));
        let b = s.spawn(|| env.ok(["vm", "run", "-d", "--name", "beta"]));
        a.join().unwrap();
        b.join().unwrap();
    });
    assert_eq!(
        env.ok(["vm", "exec", "alpha", "--", "hostname"]).trim(),
        "alpha"
    );
    assert_eq!(
        env.ok(["vm", "exec", "beta", "--", "hostname"]).trim(),
        "beta"
    );
    let a_pid = env.vm_json("alpha")["pid"].as_i64().unwrap();
    let b_pid = env.vm_json("beta")["pid"].as_i64().unwrap();
    assert_ne!(a_pid, b_pid);
}

#[test]
fn bad_input_gets_clear_errors() {
    let env = env();
    let out = env.run(["vm", "run", "--name", "Bad_Name", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid VM name"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));

    let out = env.run(["vm", "run", "--image", "no-such-image", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no image named \"no-such-image\""),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("banger image ls"), "{}", stderr(&out));

    let out = env.run(["vm", "run", "--memory", "1", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--memory"), "{}", stderr(&out));

    let out = env.run(["vm", "exec", "ghost", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no VM named \"ghost\""),
        "{}",
        stderr(&out)
    );

    // Nothing half-created was left behind.
    assert_eq!(env.ok(["vm", "ls", "--json"]).trim(), "[]");
}

#[test]
fn duplicate_names_are_refused() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "twin"]);
    let out = env.run(["vm", "run", "-d", "--name", "twin"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(env.vm_json("twin")["state"], "running");
}

#[test]
fn missing_guest_command_reports_exit_127() {
    let env = env();
    let out = env.run(["vm", "run", "--rm", "--", "definitely-not-a-command"]);
    assert_eq!(out.status.code(), Some(127), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("definitely-not-a-command"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_options_tty_workdir_env() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "opts"]);
    // -t without a terminal on banger's side is refused before anything runs, as docker
    // does (tests/terminal.rs gives the command a real terminal through a pty).
    let refused = env.run(["vm", "exec", "-t", "opts", "--", "tty"]);
    assert_eq!(refused.status.code(), Some(125), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not a TTY"),
        "{}",
        stderr(&refused)
    );
    let out = env.ok([
        "vm",
        "exec",
        "-w",
        "/tmp",
        "-e",
        "GREETING=hi there",
        "opts",
        "--",
        "sh",
        "-c",
        "pwd; echo $GREETING",
    ]);
    assert_eq!(out, "/tmp\nhi there\n");
    // The default environment has the built-in UTF-8 locale; -e overrides it.
    let out = env.ok(["vm", "exec", "opts", "--", "sh", "-c", "echo $LANG"]);
    assert_eq!(out, "C.UTF-8\n");
    let out = env.ok([
        "vm",
        "exec",
        "-e",
        "LANG=C",
        "opts",
        "--",
        "sh",
        "-c",
        "echo $LANG",
    ]);
    assert_eq!(out, "C\n");
    // Without -i the command's stdin is empty rather than the caller's.
    let out = env.run_with_stdin(["vm", "exec", "opts", "--", "cat"], b"ignored");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn logs_follow_ends_when_the_vm_stops_and_guest_poweroff_is_noticed() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "watched"]);
    let follower = env
        .cmd(["vm", "logs", "-f", "watched"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The guest powers itself off; the daemon must notice and mark it stopped,
    // which also ends the follower.
    let _ = env.run(["vm", "exec", "watched", "--", "poweroff", "-f"]);
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Linux version"), "{}", stdout(&out));
    assert_eq!(env.vm_json("watched")["state"], "stopped");
}
