//! `make bench`: how much does banger add on top of the boot itself?
//!
//! Interleaves 5 runs each of
//!   * `banger vm run --rm -- true` (CLI → daemon → create, boot, agent ready,
//!     exec, remove), timed as a whole process, and
//!   * a raw QEMU boot of the same kernel, initramfs and disk with the same command
//!     line, timed from spawn to the agent's Ready answer,
//!
//! and prints the medians and their ratio. The goal is a ratio ≤ 1.05: the control
//! plane should be invisible next to the boot.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banger_e2e::direct::{self, ImageFiles};
use banger_e2e::{Env, stderr};
use banger_vmm::QemuDriver;

const RUNS: usize = 5;
/// Both sides boot the same machine size.
const VCPUS: u32 = 1;
const MEMORY_MIB: u64 = 512;

fn main() -> anyhow::Result<()> {
    let env = Env::new()?;
    // Start the daemon and make sure the image is there (not timed).
    let image = env.minimal_image()?;
    let health: serde_json::Value = serde_json::from_str(&env.ok(["daemon", "status", "--json"]))?;
    println!("driver: {} ({})", health["driver"], health["driver_reason"]);
    warm_up(&env)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut banger = Vec::new();
    let mut raw = Vec::new();
    for i in 0..RUNS {
        banger.push(time_banger(&env)?);
        raw.push(runtime.block_on(time_raw_qemu(&env, &image, i))?);
        println!(
            "run {}: banger vm run --rm -- true {:>7.1} ms   raw qemu to agent ready {:>7.1} ms",
            i + 1,
            ms(banger[i]),
            ms(raw[i])
        );
    }
    let (b, r) = (median(&mut banger), median(&mut raw));
    println!();
    println!("median banger vm run --rm -- true : {:>8.1} ms", ms(b));
    println!("median raw QEMU boot to ready     : {:>8.1} ms", ms(r));
    println!(
        "ratio banger / raw                : {:>8.3}   (goal <= 1.05)",
        b.as_secs_f64() / r.as_secs_f64()
    );
    Ok(())
}

fn warm_up(env: &Env) -> anyhow::Result<()> {
    let out = env.run(banger_args());
    if !out.status.success() {
        bail!(
            "warm-up run failed: {}\n{}",
            stderr(&out),
            env.diagnostics()
        );
    }
    Ok(())
}

fn time_banger(env: &Env) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let out = env.run(banger_args());
    let elapsed = t0.elapsed();
    if !out.status.success() {
        bail!(
            "banger vm run failed: {}\n{}",
            stderr(&out),
            env.diagnostics()
        );
    }
    Ok(elapsed)
}

/// Boot the image with the command line banger's QEMU driver renders, but started
/// directly in the foreground, and wait for the agent's Ready.
async fn time_raw_qemu(env: &Env, image: &ImageFiles, run: usize) -> anyhow::Result<Duration> {
    let dir = env.root.path().join(format!("raw{run}"));
    let spec = direct::launch_spec(image, &dir, &format!("raw{run}"), VCPUS, MEMORY_MIB, "8G")?;
    let driver = QemuDriver::new(env.host_qemu_config()?)?;
    let plan = driver.plan(&spec)?;
    let args: Vec<String> = strip_daemonize(plan.args);

    let t0 = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning qemu-system-x86_64")?;
    let socket = plan.paths.agent_socket.clone();
    let ready = async {
        loop {
            if let Ok(stream) = tokio::net::UnixStream::connect(&socket).await {
                return banger_agent_client::AgentClient::handshake(
                    stream,
                    Duration::from_secs(180),
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(180), ready).await;
    let elapsed = t0.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    match result {
        Ok(Ok(_)) => Ok(elapsed),
        Ok(Err(e)) => bail!("raw qemu: agent handshake failed: {e}"),
        Err(_) => bail!("raw qemu: no agent answer within 180 s"),
    }
}

/// The driver's command line daemonizes QEMU; the raw baseline runs it in the foreground.
fn strip_daemonize(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        match arg.as_str() {
            "-daemonize" => {}
            "-pidfile" => skip_next = true,
            _ => out.push(arg),
        }
    }
    out
}

fn banger_args() -> Vec<String> {
    let (vcpu, mem) = (VCPUS.to_string(), MEMORY_MIB.to_string());
    [
        "vm", "run", "--rm", "--vcpu", &vcpu, "--memory", &mem, "--", "true",
    ]
    .map(String::from)
    .to_vec()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
