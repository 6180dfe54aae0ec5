//! Reliability under floods, frozen guests, full disks and hostile directories (issue 7),
//! with the real binaries and real guests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_e2e::hostile::HeldConnections;
use banger_e2e::{Env, stderr, stdout};

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

/// Run `banger ARGS`, killing it if it has not finished within `limit` (a hang is a failure,
/// reported with what it had printed).
fn run_within(env: &Env, args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = env
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "banger {args:?} still ran after {limit:?}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                env.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// 20,000 idle connections held open (any process of the owner can open them): `vm ls`
/// still answers, and the daemon's log stays small.
#[test]
fn twenty_thousand_idle_connections_do_not_lock_out_the_cli() {
    let env = env();
    env.ok(["vm", "ls"]);
    let socket = env.runtime_dir().join("bangerd.sock");
    let opened = Instant::now();
    // Helpers of 4,000 each: more than one process's open-file limit may allow.
    let flood = HeldConnections::open(&socket, 20_000, 4_000).unwrap();
    eprintln!("20,000 connections opened in {:?}", opened.elapsed());
    let asked = Instant::now();
    let out = run_within(&env, &["vm", "ls"], Duration::from_secs(60));
    eprintln!("`vm ls` answered in {:?} under the flood", asked.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    drop(flood);
    let log = env.daemon_log_bytes();
    assert!(
        log < 256 * 1024,
        "daemon.log grew to {log} bytes during the flood"
    );
    env.ok(["vm", "ls"]);
}

/// A minimal QMP exchange on a VM's monitor socket.
fn qmp(socket: &std::path::Path, command: &str) {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // greeting
    for cmd in ["qmp_capabilities", command] {
        writeln!(writer, "{{\"execute\":\"{cmd}\"}}").unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.contains("\"return\"") || line.contains("\"error\"") {
                assert!(line.contains("\"return\""), "{cmd}: {line}");
                break;
            }
        }
    }
}

/// A guest paused by QEMU (as on a full host disk, `io-error`): exec fails within its
/// deadline instead of hanging, and `vm stop` ends within its timeout plus the kill.
#[test]
fn a_paused_guest_is_stopped_within_the_timeout() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "frozen"]);
    let dir = std::path::PathBuf::from(env.vm_json("frozen")["dir"].as_str().unwrap());
    let pid = env.vm_json("frozen")["pid"].as_i64().unwrap();
    qmp(&dir.join("qmp.sock"), "stop");

    let out = run_within(
        &env,
        &["vm", "exec", "frozen", "--", "echo", "hi"],
        Duration::from_secs(90),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did not start the command"),
        "{}",
        stderr(&out)
    );

    let started = Instant::now();
    let out = run_within(
        &env,
        &["vm", "stop", "--timeout", "3", "frozen"],
        Duration::from_secs(90),
    );
    eprintln!("stop of a paused guest took {:?}", started.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.vm_json("frozen")["state"], "stopped");
    let gone = match banger_vmm::process::read_stat(pid as u32) {
        Ok(None) => true,
        Ok(Some(stat)) => banger_vmm::process::process_exited(pid as u32, &stat),
        Err(_) => false,
    };
    assert!(gone, "QEMU {pid} still runs");
}

/// `timeout`-style SIGTERM to `vm exec` of a command that ignores it: the CLI gives up
/// after its grace (143); a second signal ends it at once (130).
#[test]
fn vm_exec_gives_up_after_a_forwarded_signal() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "stubborn"]);
    for (second, code) in [(None, 143), (Some(libc::SIGINT), 130)] {
        let marker = format!("/tmp/started-{code}");
        let script = format!("trap '' TERM INT; touch {marker}; sleep 300");
        let mut cli = env
            .cmd(["vm", "exec", "stubborn", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        env.ok_within(
            &["vm", "exec", "stubborn", "--", "test", "-e", &marker],
            Duration::from_secs(60),
        );
        let pid = nix::unistd::Pid::from_raw(cli.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        if let Some(signo) = second {
            std::thread::sleep(Duration::from_millis(300));
            let signal = nix::sys::signal::Signal::try_from(signo).unwrap();
            nix::sys::signal::kill(pid, signal).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = cli.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "vm exec ignored the signals");
            std::thread::sleep(Duration::from_millis(100));
        };
        let err = cli.wait_with_output().unwrap();
        assert_eq!(status.code(), Some(code), "{}", stderr(&err));
    }
    // The guest command was killed when the CLI left; the VM answers.
    assert_eq!(
        stdout(&env.run(["vm", "exec", "stubborn", "--", "echo", "ok"])),
        "ok\n"
    );
}

/// The state directory on a full (tmpfs) disk, in a mount namespace of the test's own: the
/// failure says "no space left", not a network or query error, and nothing is left behind.
#[test]
fn a_full_state_disk_says_no_space_left() {
    let env = env();
    let state = env.state_dir();
    let bin = env.bin.clone();
    let root = env.root.path().to_path_buf();
    // Mount a 3 MiB tmpfs over the state dir (keeping the store) and fill it but for 256 KiB
    // (SQLite can still open its store; a 64 MiB work disk cannot be formatted), create a VM.
    let script = format!(
        "set -e
         cp -a {state}/. {root}/state-copy
         mount -t tmpfs -o size=3m,mode=0700 tmpfs {state}
         cp -a {root}/state-copy/. {state}/
         dd if=/dev/zero of={state}/filler.small bs=64k count=4 2>/dev/null
         dd if=/dev/zero of={state}/filler bs=64k 2>/dev/null || true
         rm -f {state}/filler.small
         exec \"$@\"",
        state = state.display(),
        root = root.display()
    );
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(&bin)
        .args(["vm", "run", "-d", "--name", "nospace", "--disk", "64M"])
        .env("BANGER_STATE_DIR", &state)
        .env("BANGER_RUNTIME_DIR", env.runtime_dir())
        .env("BANGER_CONFIG_DIR", root.join("config"))
        .env("BANGER_ETC_DIR", root.join("etc"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux) runs");
    let text = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
    // The daemon started inside the namespace keeps its tmpfs; stop it from there too.
    let _ = env.run(["daemon", "stop"]);
    eprintln!("on a full disk: {}", text.trim());
    assert!(
        !out.status.success(),
        "a VM was created on a full disk: {text}"
    );
    assert!(
        text.contains("no space left"),
        "the error does not say the disk is full:\n{text}"
    );
    assert!(!text.contains("network"), "{text}");
}

/// A state directory owned by another user is refused, not adopted.
#[test]
fn another_users_state_directory_is_refused() {
    let env = env();
    let state = env.state_dir();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = env.run(["vm", "ls"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("owned by uid 65534"),
        "{}",
        stderr(&out)
    );
    std::os::unix::fs::chown(&state, Some(0), Some(0)).unwrap();
}

/// Wait for `child` within `limit`; a hang fails naming `what`.
fn exit_within(child: &mut std::process::Child, limit: Duration, what: &str) -> (i32, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut err).unwrap();
    }
    (status.code().unwrap_or(-1), err)
}

/// `ssh-proxy` (ssh's ProxyCommand) ends as soon as its client is gone — the client's pipes
/// closed (ssh exited, even by SIGKILL, which sends no SIGHUP), or SIGHUP (what ssh sends
/// as it exits) while the guest is frozen — without a word on the client's terminal, even
/// when the guest's server neither answers nor closes the connection.
#[test]
fn ssh_proxy_ends_when_its_client_goes_away() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "tun"]);
    // Each connection gets a `sleep`: it never answers and never closes.
    let mut server = env
        .cmd([
            "vm", "exec", "tun", "--", "busybox", "nc", "-ll", "-p", "7000", "-e", "sleep", "1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let connected = |count: usize| {
        let check = format!("test $(pidof sleep | wc -w) -ge {count}");
        env.ok_within(
            &["vm", "exec", "tun", "--", "sh", "-c", &check],
            Duration::from_secs(90),
        );
    };
    let proxy = || {
        env.cmd(["ssh-proxy", "tun.vm", "7000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let mut first = proxy();
    connected(1);
    drop(first.stdin.take());
    drop(first.stdout.take());
    let (code, err) = exit_within(
        &mut first,
        Duration::from_secs(30),
        "ssh-proxy after its client closed both pipes",
    );
    assert_eq!(code, 141, "ends as SIGPIPE ends a relay: {err}");
    assert_eq!(err, "", "nothing on the client's terminal");

    let mut second = proxy();
    connected(2);
    env.ok(["vm", "pause", "tun"]);
    let pid = nix::unistd::Pid::from_raw(second.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let (code, err) = exit_within(
        &mut second,
        Duration::from_secs(30),
        "ssh-proxy after SIGHUP with the guest frozen",
    );
    assert_eq!(code, 129, "{err}");
    assert_eq!(err, "", "nothing on the client's terminal");

    env.ok(["vm", "resume", "tun"]);
    let _ = server.kill();
    let _ = server.wait();
    env.ok(["vm", "rm", "-f", "tun"]);
}
