//! Time to agent-ready and to sshd's banner (through the tunnel `ssh NAME.vm` uses): the
//! `debian` image (lean init) against
//! `minimal`, and against a systemd-init Debian image when one is registered as
//! `debian-systemd` (`banger image build debian --init systemd --name debian-systemd`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Env, stderr};

pub const RUNS: usize = 3;

/// How long after `vm run -d` returned sshd's banner (`SSH-…`) reaches a client through
/// the tunnel `ssh NAME.vm` uses (`banger ssh-proxy NAME.vm 22`, its ProxyCommand): the
/// moment the user's ssh can start its key exchange. It includes what the user's side
/// pays (starting the proxy, the daemon's lookup, the agent's tunnel) and, whatever the
/// guest does — sshd listening under systemd, socket-activated per connection, or
/// pre-started by the lean init — the rest of sshd's own start.
pub fn banner_after_run(env: &Env, name: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut proxy = env
        .cmd(["ssh-proxy", &format!("{name}.vm"), "22"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting banger ssh-proxy")?;
    let mut line = String::new();
    let read = proxy
        .stdout
        .take()
        .context("ssh-proxy's stdout")
        .and_then(|out| Ok(BufReader::new(out).read_line(&mut line)?));
    let took = started.elapsed();
    drop(proxy.stdin.take());
    let _ = proxy.kill();
    let out = proxy.wait_with_output()?;
    read?;
    if !line.starts_with("SSH-") {
        bail!(
            "no SSH banner through the tunnel to {name}: got {line:?}; ssh-proxy said: {}",
            stderr(&out)
        );
    }
    Ok(took)
}

/// One boot's figures, in ms since the start request.
#[derive(Debug, Clone, Copy)]
pub struct Boot {
    pub agent_ready_ms: f64,
    pub sshd_ms: Option<f64>,
}

/// Boot `image` as a new VM, read its timings, wait for sshd when it has one, remove it.
pub fn boot(env: &Env, image: &str, name: &str, sshd: bool) -> anyhow::Result<Boot> {
    let out = env.run([
        "vm", "run", "-d", "--image", image, "--name", name, "--vcpu", "1", "--memory", "512",
    ]);
    if !out.status.success() {
        bail!(
            "booting {image} failed: {}\n{}",
            stderr(&out),
            env.diagnostics()
        );
    }
    let vm = env.vm_json(name);
    let boot = &vm["boot"];
    let agent_ready_ms = boot["agent_ready_ms"]
        .as_f64()
        .context("no agent_ready_ms")?;
    let sshd_ms = if sshd {
        // `vm run -d` returns once the agent is ready: the banner's wait comes on top.
        Some(agent_ready_ms + ms(banner_after_run(env, name)?))
    } else {
        None
    };
    let _ = env.run(["vm", "rm", "-f", name]);
    Ok(Boot {
        agent_ready_ms,
        sshd_ms,
    })
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
