//! Every example command in README.md and in every `--help` text runs as written,
//! against a real guest of the default image. Examples the test cannot give what they
//! need are listed in [`NOT_RUN`] with the reason; any other example that fails, or a
//! new one that cannot run, fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "docs_examples/prepare.rs"]
mod prepare;

use banger_e2e::pty::Pty;
use banger_e2e::{Env, stderr, stdout, workspace_root};
use prepare::prepare;

/// Examples not run, by prefix, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "sudo banger helper",
        "runs the root helper in the foreground until it is stopped; crates/helper's tests run it",
    ),
    (
        "banger image build",
        "builds an image from the Debian archive (a download of minutes); the e2e template is built by exactly this command",
    ),
    (
        "banger vm ssh",
        "needs sshd in the guest, and this test's image (minimal) has none; tests/ssh.rs runs ssh, vm ssh, scp and rsync on debian",
    ),
    (
        "banger image import docker://registry.example.com",
        "names a placeholder registry; tests/oci_import.rs imports from a registry it serves on 127.0.0.1",
    ),
    (
        "banger image import oci:./layout",
        "needs an OCI layout the reader has; tests/oci_import.rs imports layouts made by skopeo and umoci",
    ),
    (
        "banger image import docker-archive:app.tar",
        "needs a `docker save` tarball the reader has; tests/oci_import.rs imports one",
    ),
    (
        "banger run --rm --image app",
        "runs the image the placeholder import above would create; tests/oci_import.rs runs imported images' Entrypoint/Cmd",
    ),
    (
        "banger image import-kernel ./vmlinux",
        "needs a kernel file the reader has; crates/images/tests/import_kernel.rs imports kernels",
    ),
    (
        "sudo banger system ",
        "installs or removes systemd units on the host, which no test may do; crates/banger/tests/system_install.rs runs install, status and uninstall under a fake root, scripts/sysinstall-lab under a real systemd in a container",
    ),
    (
        "banger system ",
        "reports on (or renders into DIR, a placeholder) a system install, and this test runs in dev mode; crates/banger/tests/system_install.rs runs status and --dry-run --out against one",
    ),
    (
        "sudo banger firecracker install",
        "downloads a Firecracker release from GitHub, which this test cannot reach; crates/firecracker's install tests serve one locally",
    ),
];

/// Generous: guests boot under TCG emulation on a shared machine.
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Example {
    line: String,
    source: String,
}

/// Whether a shell line runs banger: it starts with it or pipes into it.
fn runs_banger(line: &str) -> bool {
    ["banger ", "sudo banger "]
        .iter()
        .any(|p| line.starts_with(p))
        || ["| banger ", "&& banger ", "<(banger "]
            .iter()
            .any(|p| line.contains(p))
}

/// Command lines in README's code blocks (not config files or other languages).
fn readme_examples() -> Vec<Example> {
    let text = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let mut examples = Vec::new();
    let mut in_block = false;
    let mut shell_block = false;
    for line in text.lines() {
        if let Some(tag) = line.trim_start().strip_prefix("```") {
            in_block = !in_block;
            shell_block = in_block && matches!(tag.trim(), "" | "sh" | "bash" | "console");
            continue;
        }
        let line = line.trim();
        if in_block && shell_block && runs_banger(line) {
            examples.push(Example {
                line: line.to_string(),
                source: "README.md".into(),
            });
        }
    }
    examples
}

/// Example lines of every help text: indented lines that run banger, cut where the
/// explanation column begins (two spaces).
fn help_examples(env: &Env) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let help = env.ok(&args);
        for line in help.lines() {
            let trimmed = line.trim_start();
            if !line.starts_with("  ") || !runs_banger(trimmed) {
                continue;
            }
            let command = trimmed.split("  ").next().unwrap_or(trimmed).trim();
            examples.push(Example {
                line: command.to_string(),
                source: format!("banger {} --help", path.join(" ")),
            });
        }
        // Subcommands, from the "Commands:" section.
        let mut in_commands = false;
        for line in help.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands {
                let Some(name) = line
                    .strip_prefix("  ")
                    .and_then(|l| l.split_whitespace().next())
                else {
                    break;
                };
                if name != "help" && !line.starts_with("   ") {
                    let mut sub = path.clone();
                    sub.push(name.to_string());
                    if seen.insert(sub.clone()) {
                        queue.push(sub);
                    }
                }
            }
        }
    }
    examples
}

/// The words of a banger command line after `banger` (and `vm`).
fn words(line: &str) -> Vec<String> {
    let start = line.find("banger ").map_or(0, |i| i + "banger ".len());
    let mut words: Vec<String> = line[start..]
        .split_whitespace()
        .take_while(|w| !w.starts_with('|') && !w.starts_with('#') && !w.starts_with('>'))
        .map(str::to_string)
        .collect();
    if words.first().is_some_and(|w| w == "vm") {
        words.remove(0);
    }
    words
}

/// `line` with each `-p` host port replaced by a free one: the examples publish fixed ports
/// (8080), which another program on a shared machine, or the other shard of this test
/// running at the same time, may hold — and banger rightly refuses those.
fn with_free_ports(line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut publish_next = false;
    for word in line.split(' ') {
        if !publish_next {
            publish_next = word == "-p" || word == "--publish";
            out.push(word.to_string());
            continue;
        }
        publish_next = false;
        let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
        let parts: Vec<&str> = ports.split(':').collect();
        let host_at = parts.len().saturating_sub(2);
        match parts.get(host_at).and_then(|p| p.parse::<u16>().ok()) {
            Some(port) if parts.len() >= 2 => {
                let free = match proto {
                    "udp" => std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr()),
                    _ => std::net::TcpListener::bind("0.0.0.0:0").and_then(|l| l.local_addr()),
                }
                .map(|a| a.port())
                .unwrap();
                eprintln!("host port {port} of the example runs as {free}");
                let mut parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                parts[host_at] = free.to_string();
                let mapped = parts.join(":");
                out.push(match word.split_once('/') {
                    Some((_, proto)) => format!("{mapped}/{proto}"),
                    None => mapped,
                });
            }
            _ => out.push(word.to_string()),
        }
    }
    out.join(" ")
}

fn run_example(env: &Env, home: &std::path::Path, ex: &Example) -> Result<(), String> {
    let w = words(&ex.line);
    let mut cmd = env.shell(&with_free_ports(&ex.line));
    cmd.current_dir(workspace_root())
        .env("HOME", home)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat");
    let interactive = w.iter().any(|x| x == "-it" || x == "-t");
    let follows = w.first().is_some_and(|v| v == "logs") && w.iter().any(|x| x == "-f");
    if interactive {
        // A terminal session: type `exit` and expect the shell to end it.
        let mut pty = Pty::spawn(cmd, 24, 80).map_err(|e| e.to_string())?;
        pty.write(b"exit\r").map_err(|e| e.to_string())?;
        let status = pty.wait(TIMEOUT).map_err(|e| e.to_string())?;
        return status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{status}: {}", String::from_utf8_lossy(&pty.output)));
    }
    if follows {
        // Follows until the VM stops: see it print, stop the VM, and expect the end.
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut first = [0u8; 1];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .map_err(|e| format!("printed nothing: {e}"))?;
        env.ok(["stop", "dev"]);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return status
                    .success()
                    .then_some(())
                    .ok_or_else(|| format!("{status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("did not end when the VM stopped".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let is_doctor = w.first().is_some_and(|v| v == "doctor");
    // Doctor exits 1 while any check FAILs (a missing Firecracker does on this kind of
    // host); its verdict must still say VMs run here.
    let ok = out.status.success()
        || (is_doctor && out.status.code() == Some(1) && stdout(&out).contains("VMs can run here"));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "{}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        )
    })
}

/// The command of an example line, without its trailing comment: README and help texts
/// show some commands twice with different comments, and each runs once.
fn command_of(line: &str) -> String {
    let command = line.split("  #").next().unwrap_or(line);
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The examples to run, deduplicated, in two shards that run at once (each with its own
/// daemon and guests: the test is the suite's longest, and the examples are independent
/// because `prepare` puts `dev` in the state each one needs). Every example that names the
/// `debian` image goes to shard 0, so only one shard pulls it (a build from the Debian
/// archive: the longest step); the other sources (README, one help text each) stay whole
/// and in order and go to the lighter shard.
fn shards(env: &Env) -> [Vec<Example>; 2] {
    let mut examples = readme_examples();
    assert!(
        examples.len() >= 10,
        "README examples not found: {examples:?}"
    );
    examples.extend(help_examples(env));
    let mut done = BTreeSet::new();
    examples.retain(|ex| done.insert(command_of(&ex.line)));
    let (debian, rest): (Vec<Example>, Vec<Example>) = examples
        .into_iter()
        .partition(|ex| words(&ex.line).iter().any(|w| w == "debian"));
    // The first debian example builds the image (a minute or more), then each costs about
    // a boot of its own; most others reuse a running `dev`.
    const DEBIAN_WEIGHT: usize = 15;
    let mut weight = [debian.len() * DEBIAN_WEIGHT, 0];
    let mut shards: [Vec<Example>; 2] = [debian, Vec::new()];
    let mut groups: Vec<Vec<Example>> = Vec::new();
    for ex in rest {
        match groups.last_mut() {
            Some(group) if group[0].source == ex.source => group.push(ex),
            _ => groups.push(vec![ex]),
        }
    }
    for group in groups {
        let lighter = usize::from(weight[1] < weight[0]);
        weight[lighter] += group.len();
        shards[lighter].extend(group);
    }
    shards
}

/// Runs one shard's examples; returns how many ran.
fn run_shard(shard: usize) -> usize {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let home = tempfile::tempdir().unwrap();
    let examples = std::mem::take(&mut shards(&env)[shard]);
    let (mut ran, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for ex in &examples {
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| ex.line.starts_with(p)) {
            skipped.push(format!("{}  ({}): {why}", ex.line, ex.source));
            continue;
        }
        let started = Instant::now();
        prepare(&env, &ex.line);
        ran += 1;
        let result = run_example(&env, home.path(), ex);
        eprintln!(
            "shard {shard}: {:>6.1} s  {}",
            started.elapsed().as_secs_f64(),
            ex.line
        );
        if let Err(e) = result {
            failures.push(format!("{} ({}):\n{e}", ex.line, ex.source));
        }
    }
    eprintln!(
        "shard {shard} ran {ran} examples; not run, with reasons:\n  {}",
        skipped.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "examples that do not run as written:\n\n{}\n\n{}",
        failures.join("\n\n"),
        env.diagnostics()
    );
    ran
}

#[test]
fn readme_and_help_examples_run_as_written_shard_0() {
    let ran = run_shard(0);
    assert!(
        ran >= 3,
        "only {ran} examples found in shard 0 (the debian ones)"
    );
}

#[test]
fn readme_and_help_examples_run_as_written_shard_1() {
    let ran = run_shard(1);
    assert!(ran >= 25, "only {ran} examples found in shard 1");
}
