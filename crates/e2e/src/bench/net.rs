//! Networking and SSH figures:
//!
//! * **ssh** — `vm run -d` + `ssh NAME.vm true` (the real client, through the agent
//!   tunnel, host key checked) against `vm run --rm -- true`, on the debian image: SSH
//!   should be ready within 1.2× the time the agent is.
//! * **throughput** — TCP host → guest over the bridge (iperf3 on both ends), in a network
//!   namespace of the bench's own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::guests::median;
use crate::netlab::NetLab;
use crate::{Env, stderr, stdout};

/// Interleaved pairs of runs when `BANGER_BENCH_SSH_RUNS` is unset. Single boots under
/// emulation vary by ±20 % on a shared host: five pairs and the median of their ratios say
/// more than three.
pub const RUNS: usize = 5;
/// The environment variable that changes [`RUNS`].
pub const RUNS_VAR: &str = "BANGER_BENCH_SSH_RUNS";
/// The environment variable that gives both sides `--vcpu N` (unset: the daemon's default,
/// sized from the host: one vCPU on a 2-CPU host, two on a 4-CPU one, docs/config.md).
pub const VCPUS_VAR: &str = "BANGER_BENCH_SSH_VCPUS";

fn timed(env: &Env, args: &[String]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = env.run(args);
    if !out.status.success() {
        bail!("banger {args:?} failed: {}", stderr(&out));
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// One `ssh -F CONFIG NAME.vm true` (the real client, host key checked): when sshd's
/// banner reached the client (`ssh -v` says `Remote protocol version` as it arrives: SSH
/// is ready) and when the command's exit status did, both in ms since the client started.
struct SshRun {
    banner_ms: f64,
    done_ms: f64,
}

fn ssh_true(env: &Env, config: &Path, name: &str) -> anyhow::Result<SshRun> {
    let started = Instant::now();
    let mut child = env
        .tool(
            "ssh",
            [
                "-v",
                "-F",
                config.to_str().context("config path")?,
                "-o",
                "BatchMode=yes",
                &format!("{name}.vm"),
                "true",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ssh (apt install openssh-client)")?;
    let mut banner_ms = None;
    let mut said = Vec::new();
    let stderr = child.stderr.take().context("ssh's stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if banner_ms.is_none() && line.contains("Remote protocol version") {
            banner_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        if !line.starts_with("debug1:") {
            said.push(line);
        }
    }
    let status = child.wait()?;
    let done_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!("ssh {name}.vm true failed ({status}): {}", said.join("\n"));
    }
    let banner_ms = banner_ms.context("ssh -v never reported the server's banner")?;
    Ok(SshRun { banner_ms, done_ms })
}

pub fn ssh() -> anyhow::Result<()> {
    let runs = super::samples_from_env(RUNS_VAR, RUNS)?;
    let env = Env::debian()?;
    // Not timed: the daemon up, the key made and the config rendered (`vm ssh` renders
    // it), so every timed run is the same plain `ssh -F`, as after `ssh-config --install`.
    env.ok(["vm", "run", "-d", "--name", "warmup"]);
    env.ok(["vm", "ssh", "warmup", "--", "true"]);
    env.ok(["vm", "rm", "-f", "warmup"]);
    let config = env.config_dir().join("ssh_config");
    let vcpus = match std::env::var(VCPUS_VAR) {
        Ok(v) => {
            let n: u32 = v
                .parse()
                .ok()
                .filter(|n| (1..=32).contains(n))
                .with_context(|| format!("{VCPUS_VAR}={v:?}: want a vCPU count from 1 to 32"))?;
            Some(n.to_string())
        }
        Err(_) => None,
    };
    let sized = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if let Some(n) = &vcpus {
            // After `run` and its flags, before `--`.
            let at = all.iter().position(|a| a == "--").unwrap_or(all.len());
            all.splice(at..at, ["--vcpu".to_owned(), n.clone()]);
        }
        all
    };
    let (mut plain, mut with_ssh, mut ready, mut ratios, mut added) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let p = timed(&env, &sized(&["vm", "run", "--rm", "--", "true"]))?;
        let name = format!("s{i}");
        let run = timed(&env, &sized(&["vm", "run", "-d", "--name", &name]))?;
        let ssh = ssh_true(&env, &config, &name)?;
        env.ok(["vm", "rm", "-f", &name]);
        let total = run + ssh.done_ms;
        println!(
            "run {}: vm run --rm -- true {p:>6.0} ms   vm run -d {run:>6.0} ms + ssh {name}.vm true {:>5.0} ms \
             (banner at {:>4.0}) = {total:>6.0} ms   ratio {:.2}",
            i + 1,
            ssh.done_ms,
            ssh.banner_ms,
            total / p
        );
        plain.push(p);
        with_ssh.push(total);
        ready.push(run + ssh.banner_ms);
        ratios.push(total / p);
        added.push(ssh.done_ms);
    }
    let (p, s, r) = (
        median(&mut plain),
        median(&mut with_ssh),
        median(&mut ready),
    );
    println!(
        "{runs} interleaved pairs ({RUNS_VAR}=N for N), {} ({VCPUS_VAR}=N for N)",
        vcpus
            .as_ref()
            .map_or("the default vCPUs".to_owned(), |n| format!("{n} vCPUs"))
    );
    println!("median vm run --rm -- true            : {p:>7.0} ms");
    println!(
        "median vm run -d + ssh NAME.vm true   : {s:>7.0} ms   ratio {:.2} (goal <= 1.2); \
         median of the pairs' ratios {:.2}",
        s / p,
        median(&mut ratios)
    );
    println!(
        "median vm run -d + sshd's banner      : {r:>7.0} ms   ratio {:.2} (SSH ready)",
        r / p
    );
    println!(
        "median ssh NAME.vm true after vm run -d: {:>6.0} ms",
        median(&mut added)
    );
    Ok(())
}

pub fn throughput() -> anyhow::Result<()> {
    let env = Env::debian()?;
    env.write_config("[network]\nmode = \"bridge\"\n")?;
    let lab = NetLab::new()?;
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = env
            .cmd_in_netns(&lab.inside, args)
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "banger {args:?} failed: {}\n{}",
                stderr(&out),
                env.diagnostics()
            );
        }
        Ok(stdout(&out))
    };
    run(&[
        "vm", "run", "-d", "--name", "perf", "--vcpu", "2", "--memory", "1g",
    ])?;
    let vm: serde_json::Value = serde_json::from_str(&run(&["vm", "inspect", "perf", "--json"])?)?;
    let address = vm["network"]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .context("the VM has no address")?
        .to_string();
    run(&["vm", "exec", "perf", "--", "iperf3", "-s", "-D", "-1"])?;
    let report = iperf_client(&lab.inside, &address)?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no throughput in iperf3's report: {report}"))?;
    println!(
        "TCP host -> guest over the bridge (iperf3, 5 s, {}): {:.2} Gbit/s",
        vm["accel"].as_str().unwrap_or("?"),
        bps / 1e9
    );
    let _ = run(&["vm", "rm", "-f", "perf"]);
    let _ = run(&["daemon", "stop"]);
    Ok(())
}

/// iperf3's 5 s test from namespace `ns` to the server in the guest at `address`, its JSON
/// report. `iperf3 -s -D` daemonizes before it listens, so a refused connection is tried
/// again (every 50 ms, for at most 30 s) instead of guessing how long the server needs.
fn iperf_client(ns: &str, address: &str) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = NetLab::cmd(ns, "iperf3", &["-c", address, "-t", "5", "-J"])
            .stdin(Stdio::null())
            .output()
            .context("iperf3 on the host (apt install iperf3)")?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("iperf3 said: {}", stderr(&out)))?;
        // iperf3 -J exits 0 and reports a failed connect in its `error` field.
        let refused = report["error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused"));
        if !refused {
            return Ok(report);
        }
        if Instant::now() >= deadline {
            bail!(
                "iperf3's server in the guest at {address} refused connections for 30 s: {}",
                report["error"]
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
