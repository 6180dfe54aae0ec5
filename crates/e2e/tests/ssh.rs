//! End to end: SSH into a real Debian guest with the real OpenSSH client, through banger's
//! rendered config — the agent tunnel as ProxyCommand (user-mode networking here: no route
//! to the guest is needed), banger's key injected at boot, the guest's host key pinned and
//! checked. `ssh`, `scp` both ways, `rsync -e ssh`, `banger vm ssh`, and a changed host key
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Output, Stdio};
use std::time::Duration;

use banger_e2e::within::output_within;
use banger_e2e::{Env, stderr, stdout};

fn env() -> Env {
    Env::debian().unwrap_or_else(|e| panic!("cannot set up a debian e2e environment: {e:#}"))
}

/// ssh's own deadlines: a connection that cannot be made, or a guest that stops answering,
/// ends ssh within minutes instead of never.
const SSH_DEADLINES: [&str; 6] = [
    "-o",
    "ConnectTimeout=60",
    "-o",
    "ServerAliveInterval=15",
    "-o",
    "ServerAliveCountMax=8",
];

/// And the test's: a hang (of ssh, or of the ProxyCommand holding its output) fails here.
const TOOL_LIMIT: Duration = Duration::from_secs(300);

fn tool(env: &Env, program: &str, args: &[&str]) -> Output {
    let mut argv: Vec<&str> = Vec::new();
    if program != "rsync" {
        argv.extend(SSH_DEADLINES);
    }
    argv.extend(args);
    output_within(
        env.tool(program, &argv).stdin(Stdio::null()),
        TOOL_LIMIT,
        &format!("{program} {args:?}"),
    )
}

fn tool_ok(env: &Env, program: &str, args: &[&str]) -> String {
    let out = tool(env, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
        out.status,
        stdout(&out),
        stderr(&out),
        env.diagnostics()
    );
    stdout(&out)
}

/// `ssh dev.vm COMMAND` through the rendered config `cfg`; its stdout.
fn ssh_dev(env: &Env, cfg: &str, command: &str) -> String {
    tool_ok(
        env,
        "ssh",
        &["-F", cfg, "-o", "BatchMode=yes", "dev.vm", command],
    )
}

#[test]
fn the_real_ssh_client_scp_and_rsync_reach_the_guest_with_host_keys_checked() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "dev", "--memory", "512"]);
    // `banger vm ssh` renders the config (without touching ~/.ssh/config) and runs ssh.
    let out = env.ok(["vm", "ssh", "dev", "--", "echo", "via-vm-ssh"]);
    assert_eq!(out.trim(), "via-vm-ssh");

    let config = env.config_dir().join("ssh_config");
    let cfg = config.to_str().unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("StrictHostKeyChecking yes"), "{text}");
    let id = env.vm_json("dev")["id"].as_str().unwrap().to_string();
    let known = std::fs::read_to_string(env.config_dir().join("known_hosts")).unwrap();
    assert!(
        known.contains(&format!("banger-{id} ssh-ed25519 ")),
        "{known}"
    );

    assert_eq!(
        tool_ok(
            &env,
            "ssh",
            &["-F", cfg, "-o", "BatchMode=yes", "dev.vm", "true"]
        ),
        ""
    );
    let who = ssh_dev(&env, cfg, "echo $(whoami)@$(hostname)");
    assert_eq!(who.trim(), "root@dev");

    // A client that sends a locale the guest lacks, as Debian's ssh_config makes every
    // client do (`SendEnv LANG LC_*`; here `SetEnv`, so the host's own shell running the
    // ProxyCommand does not see the locale too): the session runs in the guest's
    // C.UTF-8, with no setlocale warning from bash or perl.
    let out = tool(
        &env,
        "ssh",
        &[
            "-F",
            cfg,
            "-o",
            "BatchMode=yes",
            "-o",
            "SetEnv=LANG=de_DE.UTF-8 LC_ALL=de_DE.UTF-8",
            "dev.vm",
            "echo $LANG; perl -e 1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "C.UTF-8");
    assert!(
        !stderr(&out).to_lowercase().contains("locale"),
        "locale warnings: {}",
        stderr(&out)
    );

    // scp both ways.
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&up, &data).unwrap();
    tool_ok(
        &env,
        "scp",
        &[
            "-F",
            cfg,
            "-o",
            "BatchMode=yes",
            up.to_str().unwrap(),
            "dev.vm:/tmp/up.bin",
        ],
    );
    let down = dir.path().join("down.bin");
    tool_ok(
        &env,
        "scp",
        &[
            "-F",
            cfg,
            "-o",
            "BatchMode=yes",
            "dev.vm:/tmp/up.bin",
            down.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&down).unwrap(), data);

    // rsync -e ssh, a directory both ways.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), "rsynced\n").unwrap();
    let rsh = format!("ssh {} -F {cfg} -o BatchMode=yes", SSH_DEADLINES.join(" "));
    tool_ok(
        &env,
        "rsync",
        &[
            "-a",
            "-e",
            &rsh,
            &format!("{}/", tree.display()),
            "dev.vm:/tmp/tree/",
        ],
    );
    let back = dir.path().join("back");
    tool_ok(
        &env,
        "rsync",
        &[
            "-a",
            "-e",
            &rsh,
            "dev.vm:/tmp/tree/",
            &format!("{}/", back.display()),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(back.join("sub/file")).unwrap(),
        "rsynced\n"
    );

    // A guest whose host key changed is refused: checking is really on.
    let pinned = env.config_dir().join("known_hosts");
    let original = std::fs::read_to_string(&pinned).unwrap();
    let forged = original.replace(&format!("banger-{id} ssh-ed25519 "), &format!("banger-{id} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvHwbNOw7S0Ff6qFVhRSGWc+Y7NRIxnR2hUGGjQqK6Z"));
    let forged: String = forged
        .lines()
        .map(|l| match l.strip_prefix(&format!("banger-{id} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvHwbNOw7S0Ff6qFVhRSGWc+Y7NRIxnR2hUGGjQqK6Z")) {
            Some(_) => format!("banger-{id} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvHwbNOw7S0Ff6qFVhRSGWc+Y7NRIxnR2hUGGjQqK6Z\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&pinned, forged).unwrap();
    let out = tool(
        &env,
        "ssh",
        &["-F", cfg, "-o", "BatchMode=yes", "dev.vm", "true"],
    );
    assert!(
        !out.status.success(),
        "ssh accepted a host key that is not the pinned one"
    );
    assert!(
        stderr(&out).contains("IDENTIFICATION HAS CHANGED")
            || stderr(&out).contains("verification failed"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&pinned, original).unwrap();

    // ssh-proxy takes NAME.vm of an existing VM and nothing else.
    for host in ["dev", "dev.vm.example.com", "nope.vm", "DEV.vm"] {
        let out = env.run(["ssh-proxy", host, "22"]);
        assert!(!out.status.success(), "ssh-proxy accepted {host:?}");
    }

    // rm forgets the pinned key.
    env.ok(["vm", "rm", "-f", "dev"]);
    let known = std::fs::read_to_string(&pinned).unwrap();
    assert!(!known.contains(&format!("banger-{id}")), "{known}");
}

/// The pids of the lean init's waiting pre-started sshd (`init/prestart.rs`): an sshd
/// child of PID 1 whose connection is a pair of pipes, not a socket (sshd itself moves its
/// connection off fds 0 and 1), and of sshd zombies.
const WAITING_SSHD: &str = r#"for p in /proc/[0-9]*; do
  read -r pid comm state ppid rest < $p/stat 2>/dev/null || continue
  [ "$comm" = "(sshd)" ] || continue
  if [ "$state" = Z ]; then echo "zombie-$pid"; continue; fi
  [ "$ppid" = 1 ] || continue
  fds=$(ls -l $p/fd 2>/dev/null)
  case "$fds" in *socket:*) continue;; esac
  case "$fds" in *pipe:*) echo "$pid";; esac
done"#;

/// The one waiting pre-started sshd once it is there and is none of `not`; fails on two at
/// once (a pile-up) or a zombie.
fn next_waiting(env: &Env, not: &[String]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let found: Vec<String> = env
            .sh("dev", WAITING_SSHD)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert!(
            found.len() <= 1,
            "more than one pre-started sshd, or a zombie: {found:?}"
        );
        if let Some(pid) = found.first().filter(|p| !not.contains(p)) {
            return pid.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new pre-started sshd within 180 s (still {found:?})\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The scheduling policy of guest process `pid` (`chrt`'s name for it).
fn policy(env: &Env, pid: &str) -> String {
    env.sh("dev", &format!("chrt -p {pid} | sed 's/.*: *//; q'"))
        .trim()
        .to_string()
}

/// `ssh dev.vm` prints how sshd sees its peer: `UNKNOWN` over a pipe (the pre-started
/// instance), an address over TCP (the per-connection listener).
fn ssh_peer(env: &Env, cfg: &str) -> String {
    ssh_dev(env, cfg, "echo ${SSH_CONNECTION%% *}")
        .trim()
        .to_string()
}

#[test]
fn a_pre_started_sshd_serves_each_tunnel_and_is_replaced_without_piling_up() {
    let env = env();
    env.ok(["vm", "run", "-d", "--name", "dev", "--memory", "512"]);
    env.ok(["vm", "ssh", "dev", "--", "true"]);
    let cfg_path = env.config_dir().join("ssh_config");
    let cfg = cfg_path.to_str().unwrap();

    // Two connections in a row, each served by the instance waiting before it.
    let first = next_waiting(&env, &[]);
    // It waits at idle priority; the session it serves runs at the normal one.
    assert_eq!(policy(&env, &first), "SCHED_IDLE");
    assert_eq!(
        ssh_dev(&env, cfg, "chrt -p $$ | sed 's/.*: *//; q'").trim(),
        "SCHED_OTHER"
    );
    let first = next_waiting(&env, std::slice::from_ref(&first));
    assert_eq!(policy(&env, &first), "SCHED_IDLE");
    assert_eq!(ssh_peer(&env, cfg), "UNKNOWN");
    let second = next_waiting(&env, std::slice::from_ref(&first));
    assert_eq!(ssh_peer(&env, cfg), "UNKNOWN");
    let third = next_waiting(&env, &[first, second.clone()]);

    // An unused instance ends at sshd's LoginGraceTime and is replaced, twice, one at a time.
    env.sh(
        "dev",
        &format!("echo 'LoginGraceTime 4' > /etc/ssh/sshd_config.d/zz-test.conf && kill {third}"),
    );
    let short = next_waiting(&env, &[second, third.clone()]);
    let after_grace = next_waiting(&env, &[third, short.clone()]);
    let again = next_waiting(&env, &[short, after_grace.clone()]);
    env.sh(
        "dev",
        &format!("rm /etc/ssh/sshd_config.d/zz-test.conf && kill {again}"),
    );
    let current = next_waiting(&env, &[after_grace, again]);

    // Without sshd nothing answers (fail closed), and with it back ssh works again.
    env.sh(
        "dev",
        &format!("mv /usr/sbin/sshd /usr/sbin/sshd.away && kill {current}"),
    );
    let out = tool(
        &env,
        "ssh",
        &["-F", cfg, "-o", "BatchMode=yes", "dev.vm", "true"],
    );
    assert!(!out.status.success(), "ssh succeeded without sshd");
    env.sh("dev", "mv /usr/sbin/sshd.away /usr/sbin/sshd");
    next_waiting(&env, &[current]);
    assert_eq!(ssh_peer(&env, cfg), "UNKNOWN");
    env.ok(["vm", "rm", "-f", "dev"]);
}
