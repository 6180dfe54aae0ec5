//! `make bench`: the figures banger promises, printed with their goals.
//!
//! **boot** — how much does banger add on top of the boot itself?
//! Interleaves 5 runs each of
//!   * `banger vm run --rm -- true` (CLI → daemon → create, boot, agent ready,
//!     exec, remove), timed as a whole process, and
//!   * a raw QEMU boot of the same kernel, initramfs and disk with the same command
//!     line, timed from spawn to the agent's Ready answer,
//!
//! and prints the medians and their ratio. The goal is a ratio ≤ 1.05: the control
//! plane should be invisible next to the boot.
//!
//! **disks** (P2) — copy-on-write root disks against full copies, on ext4 and on a
//! loop-mounted xfs (see `bench/disks.rs`).
//!
//! **oci** (P3) — OCI import against `umoci unpack` + `mkfs.ext4 -d`, and re-import on a
//! shared base: 3 interleaved samples of each side, medians and their ratio
//! (`BANGER_BENCH_OCI_SAMPLES=N` for N samples; see `bench/oci.rs`).
//!
//! **guests** — time to agent-ready and to sshd's banner, debian (lean init) against
//! minimal, and the same Debian with systemd as init (`--init systemd`).
//!
//! **sandbox** — what the VMM sandbox costs: launch to agent-ready and QEMU's RSS with
//! the sandbox off against a root daemon's full sandbox (see `bench/sandbox.rs`).
//!
//! **ssh** — `vm run -d` + `ssh NAME.vm true` against `vm run --rm -- true` (goal ≤ 1.2×):
//! 5 interleaved pairs (`BANGER_BENCH_SSH_RUNS=N` for N), the medians, their ratio and the
//! median of the pairs' ratios; `BANGER_BENCH_SSH_VCPUS=N` gives both sides N vCPUs (default:
//! the daemon's, sized from the host);
//! **net** — TCP throughput host → guest over the bridge (see `bench/net.rs`).
//!
//! **snapshots** (P6) — `vm run --from SNAP --rm -- true` against a cold `vm run --rm --
//! true`, and 10 clones against 10 cold boots: time and QEMU memory (see
//! `bench/snapshots.rs`).
//!
//! **warm** (P6 from a warm image) — `vm run --rm -- true` restoring `image warm`'s state vs
//! `vm run --cold --rm -- true`, medians of 5, the warm run split into phases, and 5 VMs of
//! the warm state at once against 5 cold boots at once: time, QEMU RSS and PSS (the warm
//! ones share the state's RAM), disk (`bench/warm.rs`).
//!
//! **shares** — a virtio-fs shared directory and a copy-in share against the guest's disk:
//! `find | wc -l` over 10,000 small files and a 256 MiB sequential read (see `bench/shares.rs`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banger_e2e::bench::{disks, guests, net, oci, sandbox, shares, snapshots, warm};
use banger_e2e::direct::{self, ImageFiles};
use banger_e2e::{Env, stderr};
use banger_vmm::QemuDriver;

const RUNS: usize = 5;
/// Both sides boot the same machine size.
const VCPUS: u32 = 1;
const MEMORY_MIB: u64 = 512;

/// `banger-bench [boot] [disks] [oci] [guests] [sandbox] [ssh] [net] [snapshots] [warm] [shares]` (all by default). `disks-xfs DIR` is the
/// xfs half of `disks`, re-run inside a private mount namespace.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("disks-xfs") {
        let dir = args.get(1).context("disks-xfs DIR")?;
        disks::xfs_inner(std::path::Path::new(dir))?.print();
        return Ok(());
    }
    let all = args.is_empty();
    let want = |s: &str| all || args.iter().any(|a| a == s);
    if want("boot") {
        println!("== boot: banger vm run vs raw QEMU ==");
        bench_boot()?;
    }
    if want("disks") {
        println!(
            "\n== P2: {} VM root disks from a 2 GiB image (512 MiB of data) ==",
            20
        );
        bench_disks()?;
    }
    if want("oci") {
        let samples = oci::samples_from_env()?;
        println!(
            "\n== P3: OCI import vs umoci unpack + mkfs.ext4 -d; re-import on a shared base =="
        );
        let env = Env::new()?;
        let image = env.minimal_image()?;
        let kernel_dir = image.kernel.parent().context("kernel dir")?.to_path_buf();
        let agent = env.bin.with_file_name("banger-agent");
        oci::measure(&oci::work_dir(), &kernel_dir, &agent, samples)?.print();
    }
    if want("guests") {
        println!("\n== time to agent-ready and to sshd: debian (lean init) vs minimal ==");
        bench_guests()?;
    }
    if want("sandbox") {
        println!("\n== VMM sandbox: off vs a root daemon's full sandbox ==");
        sandbox::measure(&Env::new()?, RUNS)?.print();
    }
    if want("ssh") {
        println!("\n== ssh: vm run -d + ssh NAME.vm true vs vm run --rm -- true (debian) ==");
        net::ssh()?;
    }
    if want("net") {
        println!("\n== net: TCP throughput host -> guest over the bridge ==");
        net::throughput()?;
    }
    if want("snapshots") {
        println!("\n== P6: restore from a snapshot vs cold boot; 10 clones vs 10 cold boots ==");
        snapshots::measure(&Env::new()?, RUNS, 10, MEMORY_MIB)?.print();
    }
    if want("warm") {
        println!("\n== P6 (warm image): vm run --rm -- true restored vs cold; its phases ==");
        warm::measure(&Env::new()?, RUNS, 5)?.print();
    }
    if want("shares") {
        println!("\n== shares: virtio-fs and copy-in vs the guest's own disk (minimal, TCG) ==");
        shares::measure()?;
    }
    Ok(())
}

fn bench_disks() -> anyhow::Result<()> {
    let work = disks::work_dir();
    disks::measure(
        "ext4 (this machine), QEMU",
        &work.join("ext4"),
        true,
        false,
        disks::CLONES,
    )?
    .print();
    // Sparse copies really copy: three show the per-VM cost.
    disks::measure(
        "ext4 (this machine), raw (Firecracker)",
        &work.join("ext4-raw"),
        false,
        false,
        3,
    )?
    .print();
    disks::xfs(&std::env::current_exe()?, &work.join("xfs"))?;
    Ok(())
}

fn bench_guests() -> anyhow::Result<()> {
    let env = Env::debian()?;
    // The same recipe with systemd as init, in its own installation (built once per
    // machine, like the e2e tests'): the comparison that picked the default init.
    let sd_env = Env::debian_systemd()?;
    let mut minimal = Vec::new();
    let mut debian = Vec::new();
    let mut debian_sshd = Vec::new();
    let mut sd = Vec::new();
    let mut sd_sshd = Vec::new();
    for i in 0..guests::RUNS {
        minimal.push(guests::boot(&env, "minimal", &format!("m{i}"), false)?.agent_ready_ms);
        let d = guests::boot(&env, "debian", &format!("d{i}"), true)?;
        debian.push(d.agent_ready_ms);
        debian_sshd.push(d.sshd_ms.unwrap_or(f64::NAN));
        let mut line = format!(
            "run {}: minimal agent ready {:>7.0} ms   debian agent ready {:>7.0} ms, sshd {:>7.0} ms",
            i + 1,
            minimal[i],
            debian[i],
            debian_sshd[i]
        );
        let s = guests::boot(&sd_env, "debian-systemd", &format!("s{i}"), true)?;
        sd.push(s.agent_ready_ms);
        sd_sshd.push(s.sshd_ms.unwrap_or(f64::NAN));
        line.push_str(&format!(
            "   systemd agent ready {:>7.0} ms, sshd {:>7.0} ms",
            s.agent_ready_ms,
            s.sshd_ms.unwrap_or(f64::NAN)
        ));
        println!("{line}");
    }
    let (m, d, ds) = (
        guests::median(&mut minimal),
        guests::median(&mut debian),
        guests::median(&mut debian_sshd),
    );
    println!("median minimal agent ready        : {m:>8.0} ms");
    println!(
        "median debian agent ready         : {d:>8.0} ms   ratio {:.2} (goal <= 1.3)",
        d / m
    );
    println!(
        "median debian sshd banner         : {ds:>8.0} ms   ratio {:.2} (goal <= 1.3)",
        ds / m
    );
    let (s, ss) = (guests::median(&mut sd), guests::median(&mut sd_sshd));
    println!(
        "median systemd agent ready        : {s:>8.0} ms   ratio {:.2}",
        s / m
    );
    println!(
        "median systemd sshd banner        : {ss:>8.0} ms   ratio {:.2}",
        ss / m
    );
    Ok(())
}

fn bench_boot() -> anyhow::Result<()> {
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
