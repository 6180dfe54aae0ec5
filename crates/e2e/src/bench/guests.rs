//! Time to agent-ready and to sshd's banner: the `debian` image (lean init) against
//! `minimal`, and against a systemd-init Debian image when one is registered as
//! `debian-systemd` (`banger image build debian --init systemd --name debian-systemd`).

use std::time::Duration;

use anyhow::{Context, bail};

use crate::{Env, stderr};

pub const RUNS: usize = 3;

/// Prints the guest's uptime once sshd answers on port 22 with its banner (`SSH-…`): the
/// moment a client can start, whether sshd listens itself or is socket-activated (then
/// the first connection pays sshd's start). Bash builtins only, so the probe takes next
/// to no CPU from the single vCPU sshd is starting on (a `grep`/`sleep` loop forks twice
/// per round, which under TCG slows the very thing it measures): `read -t` on a pipe
/// nobody writes to is the pause.
pub const SSHD_PROBE: &str = r#"exec 4<> <(:)
while :; do
  if { exec 3<>/dev/tcp/127.0.0.1/22; } 2>/dev/null && read -r -t 60 banner <&3 && [[ $banner == SSH-* ]]; then
    read -r up _ < /proc/uptime; echo "$up"; exit 0
  fi
  exec 3<&-
  read -r -t 0.01 -u 4 _
done"#;

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
        let kernel = boot["kernel_started_ms"]
            .as_f64()
            .context("no kernel_started_ms")?;
        let out = env.run(["vm", "exec", name, "--", "bash", "-c", SSHD_PROBE]);
        if !out.status.success() {
            bail!("waiting for sshd in {image} failed: {}", stderr(&out));
        }
        let uptime: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        Some(kernel + uptime * 1000.0)
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
