//! Networking and SSH figures:
//!
//! * **ssh** — `vm run -d` + `ssh NAME.vm true` (the real client, through the agent
//!   tunnel, host key checked) against `vm run --rm -- true`, on the debian image: SSH
//!   should be ready within 1.2× the time the agent is.
//! * **throughput** — TCP host → guest over the bridge (iperf3 on both ends), in a network
//!   namespace of the bench's own.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::guests::median;
use crate::netlab::NetLab;
use crate::{Env, stderr, stdout};

pub const RUNS: usize = 3;

fn timed(env: &Env, args: &[&str]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = env.run(args);
    if !out.status.success() {
        bail!("banger {args:?} failed: {}", stderr(&out));
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

pub fn ssh() -> anyhow::Result<()> {
    let env = Env::debian()?;
    // The daemon up, the config rendered and the key made (not timed).
    env.ok(["vm", "run", "--rm", "--", "true"]);
    let config = env.config_dir().join("ssh_config");
    let mut plain = Vec::new();
    let mut with_ssh = Vec::new();
    for i in 0..RUNS {
        plain.push(timed(&env, &["vm", "run", "--rm", "--", "true"])?);
        let name = format!("s{i}");
        let started = Instant::now();
        timed(&env, &["vm", "run", "-d", "--name", &name])?;
        if i == 0 {
            // `vm ssh` writes the rendered config the first time.
            env.ok(["vm", "ssh", &name, "--", "true"]);
        } else {
            let out = env
                .tool(
                    "ssh",
                    [
                        "-F",
                        config.to_str().context("config path")?,
                        "-o",
                        "BatchMode=yes",
                        &format!("{name}.vm"),
                        "true",
                    ],
                )
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                bail!("ssh {name}.vm true failed: {}", stderr(&out));
            }
        }
        with_ssh.push(started.elapsed().as_secs_f64() * 1000.0);
        env.ok(["vm", "rm", "-f", &name]);
        println!(
            "run {}: vm run --rm -- true {:>7.0} ms   vm run -d + ssh {name}.vm true {:>7.0} ms",
            i + 1,
            plain[i],
            with_ssh[i]
        );
    }
    let (p, s) = (median(&mut plain), median(&mut with_ssh));
    println!("median vm run --rm -- true          : {p:>8.0} ms");
    println!(
        "median vm run -d + ssh NAME.vm true : {s:>8.0} ms   ratio {:.2} (goal <= 1.2)",
        s / p
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
