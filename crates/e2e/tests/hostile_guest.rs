//! The guest is hostile (issue 14): root inside it attacks what the host takes from it — the
//! agent's port, the console, exec output — and the host's memory, disk and log stay bounded
//! while the daemon keeps answering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_e2e::hostile::guest_tool;
use banger_e2e::{Env, stdout};

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

fn console_files_bytes(env: &Env, name: &str) -> u64 {
    let dir = std::path::PathBuf::from(env.vm_json(name)["dir"].as_str().unwrap().to_string());
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    size(dir.join("console.log")) + size(dir.join("console.log.1"))
}

/// Root in the guest duplicates the agent's port fd and writes junk for 20 s: the daemon
/// keeps answering, its log stays far under its cap with no line forged by the guest, and
/// the VM's agent is usable again once the junk stops.
#[test]
fn junk_on_the_agent_port_is_counted_not_logged() {
    let tool = guest_tool("banger-junk").unwrap();
    let env = env();
    env.write_config("[logs]\ndaemon_max = \"1M\"\n").unwrap();
    env.ok(["vm", "run", "-d", "--name", "target"]);
    env.upload("target", &tool, "/tmp/junk").unwrap();
    // In a session of its own: it must outlive the agent session the host cuts off.
    env.ok([
        "vm",
        "exec",
        "target",
        "--",
        "sh",
        "-c",
        "setsid /tmp/junk 20 </dev/null >/tmp/junk.out 2>&1 &",
    ]);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(25) {
        let t = Instant::now();
        env.ok_within(&["vm", "ls"], Duration::from_secs(10));
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("slowest `vm ls` during the junk: {slowest:?}");
    let bytes = env.daemon_log_bytes();
    let log = std::fs::read_to_string(env.state_dir().join("daemon.log")).unwrap_or_default();
    eprintln!("daemon.log: {bytes} bytes after the junk");
    assert!(
        bytes <= 1 << 20,
        "daemon.log + .1 hold {bytes} bytes, over the 1 MiB cap"
    );
    assert!(
        log.contains("the guest agent sent frames that were dropped")
            || log.contains("keeps sending malformed frames"),
        "the junk never reached the host?\n{}",
        env.diagnostics()
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2030-01-01")),
        "a guest forged a daemon.log line"
    );
    assert!(
        !log.contains('\x1b'),
        "a guest put an escape sequence in daemon.log"
    );
    // After the back-off the agent is reachable again.
    let out = env.ok_within(
        &["vm", "exec", "target", "--", "cat", "/tmp/junk.out"],
        Duration::from_secs(180),
    );
    eprintln!("guest: {}", out.trim());
    assert!(out.contains("banger-junk: writing junk"), "{out}");
}

/// `yes > /dev/ttyS0` for 10 s with a 256 KiB console cap.
#[test]
fn a_console_flood_stays_under_its_cap() {
    let env = env();
    env.write_config("[logs]\nconsole_max = \"256K\"\n")
        .unwrap();
    env.ok(["vm", "run", "-d", "--name", "flood"]);
    env.ok([
        "vm",
        "exec",
        "flood",
        "--",
        "sh",
        "-c",
        "yes console-flood-line > /dev/ttyS0 & sleep 10; kill $!; echo flood-over > /dev/ttyS0",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let logs = loop {
        let logs = env.ok(["vm", "logs", "flood"]);
        if logs.contains("flood-over") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let bytes = console_files_bytes(&env, "flood");
    eprintln!("console files: {bytes} bytes after the flood");
    assert!(
        bytes <= 256 * 1024,
        "console files hold {bytes} bytes over the 256 KiB cap"
    );
    assert!(logs.len() <= 256 * 1024);
    assert!(logs.contains("console-flood-line") && logs.contains("flood-over"));
}

/// A console log of 2 GiB (as an older banger could leave): `vm logs`, twice at once, reads
/// only its end; the daemon's peak memory barely moves.
#[test]
fn vm_logs_of_a_huge_log_reads_only_its_end() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "big"]);
    env.ok(["vm", "stop", "big"]);
    let dir = std::path::PathBuf::from(env.vm_json("big")["dir"].as_str().unwrap().to_string());
    let log = dir.join("console.log");
    {
        let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        file.set_len(2 << 30).unwrap();
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"THE END\n"))
        .unwrap();
    let (_, peak_before) = env.daemon_memory_kib().unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            env.cmd(["vm", "logs", "big"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for reader in readers {
        let out = reader.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(
            out.stdout.len() <= 8 << 20,
            "{} bytes sent",
            out.stdout.len()
        );
        assert!(out.stdout.ends_with(b"THE END\n"));
    }
    let (_, peak_after) = env.daemon_memory_kib().unwrap();
    eprintln!("daemon peak RSS {peak_before} KiB -> {peak_after} KiB");
    assert!(
        peak_after < peak_before + 64 * 1024,
        "the daemon's peak RSS grew from {peak_before} to {peak_after} KiB"
    );
}

/// `vm exec VM -- cat /dev/zero` whose output nobody reads: the daemon's memory stays flat
/// (flow control stalls `cat` in the guest), and the VM stays usable.
#[test]
fn unread_exec_output_does_not_grow_the_daemon() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "zero"]);
    let (rss_before, _) = env.daemon_memory_kib().unwrap();
    // stdout is a pipe nobody reads: the CLI blocks, then the daemon, then the guest.
    let mut cli = env
        .cmd(["vm", "exec", "zero", "--", "cat", "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut highest = rss_before;
    for _ in 0..15 {
        std::thread::sleep(Duration::from_secs(1));
        highest = highest.max(env.daemon_memory_kib().unwrap().0);
    }
    eprintln!("daemon RSS {rss_before} KiB, highest {highest} KiB with unread output");
    assert!(
        highest < rss_before + 64 * 1024,
        "the daemon grew from {rss_before} to {highest} KiB holding unread output"
    );
    cli.kill().unwrap();
    cli.wait().unwrap();
    let out = env.run(["vm", "exec", "zero", "--", "echo", "still-here"]);
    assert_eq!(stdout(&out), "still-here\n");
}
