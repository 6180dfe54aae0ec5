//! Every example command in README.md and in every `--help` text runs as written,
//! against a real guest of the default image. Examples the test cannot give what they
//! need are listed in [`NOT_RUN`] with the reason; any other example that fails, or a
//! new one that cannot run, fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_e2e::pty::Pty;
use banger_e2e::{Env, stderr, stdout, workspace_root};

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

fn state_of(env: &Env, vm: &str) -> Option<String> {
    let out = env.run(["inspect", vm, "--format", "{{.state}}"]);
    out.status
        .success()
        .then(|| stdout(&out).trim().to_string())
}

/// The value after `flag` in `w`.
fn flag_value<'a>(w: &'a [String], flag: &str) -> Option<&'a str> {
    w.iter()
        .skip_while(|x| *x != flag)
        .nth(1)
        .map(String::as_str)
}

/// Remove snapshot `name` and the VMs cloned from it, if there are any.
fn drop_snapshot(env: &Env, name: &str) {
    let out = env.run(["snapshot", "inspect", name, "--json"]);
    if !out.status.success() {
        return;
    }
    let snap: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    for clone in snap["clones"].as_array().into_iter().flatten() {
        let _ = env.run(["rm", "-f", clone.as_str().unwrap_or_default()]);
    }
    let _ = env.run(["snapshot", "rm", name]);
}

/// Take snapshot `name` of a running `dev` unless it exists.
fn ensure_snapshot(env: &Env, name: &str) {
    if env.run(["snapshot", "inspect", name]).status.success() {
        return;
    }
    prepare(env, "banger inspect dev");
    env.ok(["vm", "snapshot", "dev", "--name", name]);
}

/// Snapshots the example names: a name it takes is free, one it uses exists.
fn prepare_snapshots(env: &Env, w: &[String]) {
    let verb = w.first().map(String::as_str).unwrap_or("");
    let sub = w.get(1).map(String::as_str).unwrap_or("");
    if verb == "snapshot" && !matches!(sub, "ls" | "list" | "inspect" | "rm") {
        if let Some(name) = flag_value(w, "--name") {
            drop_snapshot(env, name);
        }
    } else if verb == "snapshot" && matches!(sub, "inspect" | "rm") {
        for name in w.iter().skip(2).filter(|x| !x.starts_with('-')) {
            ensure_snapshot(env, name);
            if sub == "rm" {
                let out = env.run(["snapshot", "inspect", name, "--json"]);
                let snap: serde_json::Value =
                    serde_json::from_str(&stdout(&out)).unwrap_or_default();
                for clone in snap["clones"].as_array().into_iter().flatten() {
                    let _ = env.run(["rm", "-f", clone.as_str().unwrap_or_default()]);
                }
            }
        }
    }
    let from = flag_value(w, "--from").or((verb == "clone").then_some(sub));
    if let Some(snapshot) = from {
        ensure_snapshot(env, snapshot);
        if let Some(name) = flag_value(w, "--name") {
            let _ = env.run(["rm", "-f", name]);
        }
    }
}

/// VM `dev` running with a read-write copy-in share at /src holding /src/build, as the
/// `vm sync` examples expect.
fn prepare_sync(env: &Env) {
    let out = env.run(["vm", "inspect", "dev", "--json"]);
    let vm: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    let ready = vm["state"] == "running"
        && vm["shares"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["guest"] == "/src" && s["mode"] == "copy")
        });
    if ready {
        return;
    }
    let src = env.state_dir().with_file_name("sync-src");
    std::fs::create_dir_all(&src).unwrap();
    let _ = env.run(["rm", "-f", "dev"]);
    let share = format!("{}:/src:copy", src.display());
    env.ok(["run", "-d", "--name", "dev", "-v", &share]);
    env.ok(["exec", "dev", "--", "mkdir", "-p", "/src/build"]);
}

/// Put VM `dev` in the state the example expects.
fn prepare(env: &Env, line: &str) {
    let w = words(line);
    prepare_snapshots(env, &w);
    let verb = w.first().map(String::as_str).unwrap_or("");
    // `dev`, or `dev:PATH` as vm cp names a path in it.
    let names_dev = w.iter().any(|x| x == "dev" || x.starts_with("dev:"));
    if verb != "sync" && names_dev {
        // The `vm sync` examples' `dev` has a share, which other examples (snapshots) refuse.
        let out = env.run(["vm", "inspect", "dev", "--json"]);
        let vm: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
        if vm["shares"].as_array().is_some_and(|s| !s.is_empty()) {
            env.ok(["rm", "-f", "dev"]);
        }
    }
    if verb == "create" {
        // A VM of the example's name must not exist yet.
        let name = w
            .iter()
            .skip_while(|x| *x != "--name")
            .nth(1)
            .map_or("dev", String::as_str);
        let _ = env.run(["rm", "-f", name]);
    } else if verb == "run" && names_dev {
        let _ = env.run(["rm", "-f", "dev"]);
    } else if verb == "sync" && names_dev {
        prepare_sync(env);
    } else if verb == "start" && names_dev {
        match state_of(env, "dev").as_deref() {
            None => {
                env.ok(["run", "-d", "--name", "dev"]);
                env.ok(["stop", "dev"]);
            }
            Some("running" | "paused") => {
                env.ok(["stop", "dev"]);
            }
            Some(_) => {}
        }
    } else if verb == "resume" && names_dev {
        match state_of(env, "dev").as_deref() {
            Some("paused") => {}
            None => {
                env.ok(["run", "-d", "--name", "dev"]);
                env.ok(["vm", "pause", "dev"]);
            }
            Some("running") => {
                env.ok(["vm", "pause", "dev"]);
            }
            Some(_) => {
                env.ok(["start", "dev"]);
                env.ok(["vm", "pause", "dev"]);
            }
        }
    } else if names_dev {
        match state_of(env, "dev").as_deref() {
            None => {
                env.ok(["run", "-d", "--name", "dev"]);
            }
            Some("running") => {}
            Some("paused") => {
                env.ok(["vm", "resume", "dev"]);
            }
            Some(_) => {
                env.ok(["start", "dev"]);
            }
        }
    }
}

/// `line` with each `-p` host port that is busy on this host replaced by a free one: the
/// examples publish fixed ports (8080), which another program on a shared machine may hold,
/// and banger rightly refuses those.
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
        let busy = |port: u16| match proto {
            "udp" => std::net::UdpSocket::bind(("0.0.0.0", port)).is_err(),
            _ => std::net::TcpListener::bind(("0.0.0.0", port)).is_err(),
        };
        match parts.get(host_at).and_then(|p| p.parse::<u16>().ok()) {
            Some(port) if parts.len() >= 2 && busy(port) => {
                let free = std::net::TcpListener::bind("0.0.0.0:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .unwrap();
                eprintln!("host port {port} is busy here: the example runs with {free}");
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

#[test]
fn every_readme_and_help_example_runs_as_written() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let home = tempfile::tempdir().unwrap();
    let mut examples = readme_examples();
    assert!(
        examples.len() >= 10,
        "README examples not found: {examples:?}"
    );
    examples.extend(help_examples(&env));
    let mut done = BTreeSet::new();
    let (mut ran, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for ex in &examples {
        if !done.insert(ex.line.clone()) {
            continue;
        }
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| ex.line.starts_with(p)) {
            skipped.push(format!("{}  ({}): {why}", ex.line, ex.source));
            continue;
        }
        prepare(&env, &ex.line);
        ran += 1;
        if let Err(e) = run_example(&env, home.path(), ex) {
            failures.push(format!("{} ({}):\n{e}", ex.line, ex.source));
        }
    }
    eprintln!(
        "ran {ran} examples; not run, with reasons:\n  {}",
        skipped.join("\n  ")
    );
    assert!(ran >= 25, "only {ran} examples found");
    assert!(
        failures.is_empty(),
        "examples that do not run as written:\n\n{}\n\n{}",
        failures.join("\n\n"),
        env.diagnostics()
    );
}
