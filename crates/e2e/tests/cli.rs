//! The CLI as docker and lima users type it, end to end against real guests: exit
//! statuses, commands without `--`, shortcuts, formats, id prefixes, several VMs at
//! once, size units, `logs --tail/-f`, a closed pipe, and completion through the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_e2e::{Env, stderr, stdout};

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

fn code(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.run(args);
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn exit_statuses_pass_through_and_banger_failures_are_125() {
    let env = env();
    env.ok(["run", "-d", "--name", "dev"]);

    let (status, _, _) = code(&env, &["exec", "dev", "--", "sh", "-c", "exit 42"]);
    assert_eq!(status, Some(42));
    // Not found: 127; cannot be invoked: 126 (as a shell says).
    let (status, _, err) = code(&env, &["exec", "dev", "/no/such/program"]);
    assert_eq!(status, Some(127), "{err}");
    assert!(err.contains("/no/such/program"), "{err}");
    env.ok([
        "exec",
        "dev",
        "--",
        "sh",
        "-c",
        "echo data > /tmp/not-a-program",
    ]);
    let (status, _, err) = code(&env, &["exec", "dev", "/tmp/not-a-program"]);
    assert_eq!(status, Some(126), "{err}");
    // Killed by a signal: 128+N.
    let (status, _, _) = code(&env, &["exec", "dev", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(status, Some(137));
    // banger's own failures before the command runs: 125.
    let (status, _, err) = code(&env, &["exec", "nosuchvm", "true"]);
    assert_eq!(status, Some(125), "{err}");
    assert!(err.contains("no VM named \"nosuchvm\""), "{err}");
    let (status, _, _) = code(&env, &["run", "--rm", "--memory", "1", "true"]);
    assert_eq!(status, Some(125));
    // More memory than the host has: refused before anything is made, in the units typed.
    let (status, _, err) = code(&env, &["run", "--rm", "--memory", "1T", "true"]);
    assert_eq!(status, Some(125), "{err}");
    assert!(
        err.contains("--memory 1T is more than this host has"),
        "{err}"
    );
    // The command may follow the name without `--`.
    let (status, out, err) = code(&env, &["exec", "dev", "uname", "-a"]);
    assert_eq!(status, Some(0), "{err}");
    assert!(out.starts_with("Linux "), "{out}");
    let (status, out, _) = code(&env, &["vm", "run", "--rm", "echo", "-n", "hi"]);
    assert_eq!((status, out.as_str()), (Some(0), "hi"));

    env.ok(["stop", "dev"]);
    let (status, _, err) = code(&env, &["exec", "dev", "true"]);
    assert_eq!(status, Some(125), "{err}");
    assert!(
        err.contains("not running") && err.contains("banger vm start dev"),
        "{err}"
    );
}

#[test]
fn listing_formats_prefixes_sizes_and_several_vms() {
    let env = env();
    env.ok([
        "run", "-d", "--name", "one", "--memory", "512m", "--disk", "1g",
    ]);
    env.ok(["vm", "run", "-d", "--name", "two", "--memory", "384"]);

    let one = env.vm_json("one");
    assert_eq!(one["memory_mib"], 512);
    assert_eq!(one["disk_bytes"], 1u64 << 30);
    assert_eq!(env.vm_json("two")["memory_mib"], 384);

    assert_eq!(env.ok(["ps", "-q"]), "one\ntwo\n");
    assert_eq!(env.ok(["vm", "list", "-q"]), "one\ntwo\n");
    assert_eq!(
        env.ok(["ps", "--format", "{{.name}}={{.state}}"]),
        "one=running\ntwo=running\n"
    );
    let table = env.ok(["vm", "ps", "--format", "table {{.name}}\\t{{.memory_mib}}"]);
    assert_eq!(table.lines().next(), Some("NAME  MEMORY_MIB"), "{table}");
    let lines: Vec<serde_json::Value> = env
        .ok(["ps", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        env.ok(["inspect", "one", "--format", "{{.state}}"]),
        "running\n"
    );
    let (status, _, err) = code(&env, &["ps", "--format", "{{.nmae}}"]);
    assert_eq!(status, Some(1));
    assert!(err.contains(".nmae") && err.contains("name"), "{err}");
    assert!(env.ok(["images", "-q"]).lines().any(|l| l == "minimal"));

    // A unique prefix of the id works wherever a name does.
    let id = one["id"].as_str().unwrap();
    let two_id = env.vm_json("two")["id"].as_str().unwrap().to_string();
    let prefix_len = (1..=id.len())
        .find(|n| !two_id.starts_with(&id[..*n]))
        .unwrap();
    assert_eq!(
        env.ok(["inspect", &id[..prefix_len], "--format", "{{.name}}"]),
        "one\n"
    );

    // Several VMs per command; one that fails does not stop the others.
    let out = env.run(["stop", "one", "nosuch", "two"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "one stopped\ntwo stopped\n");
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
    let started: serde_json::Value =
        serde_json::from_str(&env.ok(["start", "one", "two", "--json"])).unwrap();
    assert_eq!(started.as_array().unwrap().len(), 2);
    assert_eq!(
        env.ok(["ps", "--format", "{{.state}}"]),
        "running\nrunning\n"
    );
    assert_eq!(
        env.ok(["rm", "-f", "one", "two"]),
        "removed one\nremoved two\n"
    );
    assert_eq!(env.ok(["ps", "-q"]), "");
}

#[test]
fn logs_tail_follow_closed_pipes_and_name_completion() {
    let env = env();
    env.ok(["run", "-d", "--name", "logs"]);
    // About 150 KB on the console: more than a pipe holds.
    env.ok([
        "exec",
        "logs",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo console-line-$i-padding-padding-padding; i=$((i+1)); done > /dev/console",
    ]);
    // The guest's write to /dev/console returns once the bytes are in its tty buffer; the
    // serial port drains them to the host after that, so the last lines may arrive a moment
    // after `exec` returns: wait for them (a deadline, not a sleep).
    let want =
        "console-line-2998-padding-padding-padding\nconsole-line-2999-padding-padding-padding\n";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tail = env.ok(["logs", "--tail", "2", "logs"]).replace('\r', "");
        if tail == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the console's last two lines never arrived; the tail is {tail:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A reader that goes away ends banger quietly: `banger logs logs | head -c 100`.
    let mut child = env
        .cmd(["logs", "logs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a closed pipe is not an error");
    // The same for a guest command's output: 141, as a shell reports SIGPIPE.
    let mut child = env
        .cmd(["exec", "logs", "--", "sh", "-c", "while :; do echo y; done"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // -f keeps printing what the guest writes next.
    let mut follow = env
        .cmd(["logs", "-f", "--tail", "0", "logs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = follow.stdout.take().unwrap();
    env.ok([
        "exec",
        "logs",
        "--",
        "sh",
        "-c",
        "echo followed-line > /dev/console",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("followed-line") {
        assert!(Instant::now() < deadline, "-f never showed the new line");
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "-f ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("console-line-2999"));
    let _ = follow.kill();
    let _ = follow.wait();

    // Completion asks the daemon for VM names.
    let out = env
        .cmd(["--", "banger", "exec", "lo"])
        .env("BANGER_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l == "logs"),
        "{}",
        stdout(&out)
    );
    let out = env
        .cmd(["--", "banger", "run", "--image", "min"])
        .env("BANGER_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "3")
        .output()
        .unwrap();
    assert!(
        stdout(&out).lines().any(|l| l == "minimal"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn image_prune_says_what_it_frees_and_keeps_the_default_image() {
    let env = env();
    let cache = env.state_dir().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("old-kernel.deb"), vec![1u8; 300_000]).unwrap();
    let plan = env.ok(["image", "prune", "--dry-run"]);
    assert!(plan.contains("old-kernel.deb"), "{plan}");
    assert!(plan.contains("kept minimal"), "{plan}");
    assert!(plan.contains("can be reclaimed"), "{plan}");
    // Without a terminal to ask on, removing needs --force.
    let out = env.run(["image", "prune"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let done = env.ok(["image", "prune", "--force"]);
    assert!(
        done.contains("removed cache") && done.contains("reclaimed"),
        "{done}"
    );
    assert!(!cache.join("old-kernel.deb").exists());
    let report: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "prune", "--force", "--json"])).unwrap();
    assert_eq!(report["reclaimable_bytes"], 0);
    assert!(env.ok(["images", "-q"]).contains("minimal"));
}

#[test]
fn a_bad_boot_timeout_in_the_environment_stops_the_daemon_by_name() {
    // Read once when the daemon starts (it inherits the starting command's environment);
    // a value banger cannot use is an error naming it, never the default in silence.
    let env = env();
    let ls = |timeout: &str| {
        env.cmd(["vm", "ls"])
            .env("BANGER_BOOT_TIMEOUT", timeout)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = ls("3 minutes");
    let said = stderr(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(r#"BANGER_BOOT_TIMEOUT="3 minutes" is not accepted"#)
            && said.contains("from 10 to 3600"),
        "{said}"
    );
    // A value it can use is taken: the daemon starts.
    let out = ls("600");
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(["daemon", "stop"]);
}
