//! P6: what snapshots buy. `vm run --from SNAP --rm -- true` against a cold `vm run --rm --
//! true` of the same image and size (interleaved, medians, their ratio); then N clones of
//! one snapshot started at once against N cold boots started at once: time until every one
//! answers, and the host memory their QEMUs hold (RSS) once all are up.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Env, stderr};

/// One side of the N-VM comparison.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub all_ready: Duration,
    /// Sum of the QEMUs' resident memory: pages they share counted once per QEMU.
    pub rss_kib: u64,
    /// Sum of their proportional set sizes: a page shared by N counted 1/N each, so this
    /// is what the N VMs cost the host together.
    pub pss_kib: u64,
    /// Host disk the VMs' directories took (allocated bytes under `state/vms`).
    pub disk_kib: u64,
}

impl Fleet {
    /// One line of figures for `count` VMs started by `what`.
    pub fn print(&self, count: usize, what: &str) {
        println!(
            "{count} {what} at once: all agent-ready in {:>8.1} ms, QEMU RSS {:>8} KiB, PSS {:>8} KiB, disk {:>7} KiB",
            self.all_ready.as_secs_f64() * 1000.0,
            self.rss_kib,
            self.pss_kib,
            self.disk_kib
        );
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub runs: usize,
    pub restore: Duration,
    pub cold: Duration,
    pub count: usize,
    pub clones: Fleet,
    pub cold_fleet: Fleet,
    pub snapshot_bytes: u64,
}

impl Report {
    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "median vm run --from SNAP --rm -- true : {:>8.1} ms",
            ms(self.restore)
        );
        println!(
            "median vm run --rm -- true (cold)      : {:>8.1} ms",
            ms(self.cold)
        );
        println!(
            "ratio restore/cold: {:.3} over {} runs each (goal <= 0.05; raw QEMU floor 0.026-0.045)",
            ms(self.restore) / ms(self.cold),
            self.runs
        );
        self.clones.print(self.count, "clones");
        self.cold_fleet.print(self.count, "cold boots");
        println!(
            "ratio clones/cold: time {:.3}, memory {:.3}; the snapshot takes {} KiB on disk",
            ms(self.clones.all_ready) / ms(self.cold_fleet.all_ready),
            self.clones.rss_kib as f64 / self.cold_fleet.rss_kib.max(1) as f64,
            self.snapshot_bytes / 1024
        );
    }
}

pub fn measure(env: &Env, runs: usize, count: usize, memory_mib: u64) -> anyhow::Result<Report> {
    env.write_config("vmm = \"qemu\"\n")?;
    let memory = memory_mib.to_string();
    env.ok([
        "vm",
        "run",
        "-d",
        "--name",
        "bench-src",
        "--memory",
        &memory,
    ]);
    let snap: serde_json::Value = serde_json::from_str(&env.ok([
        "vm",
        "snapshot",
        "bench-src",
        "--name",
        "bench",
        "--stop",
        "--json",
    ]))?;
    let snapshot_bytes = snap["size_bytes"].as_u64().unwrap_or(0);

    let timed = |args: &[&str]| -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let out = env.run(args);
        if !out.status.success() {
            bail!("banger {args:?} failed: {}", stderr(&out));
        }
        Ok(t0.elapsed())
    };
    let mut restore = Vec::new();
    let mut cold = Vec::new();
    for _ in 0..runs {
        restore.push(timed(&[
            "vm", "run", "--from", "bench", "--rm", "--", "true",
        ])?);
        cold.push(timed(&[
            "vm", "run", "--memory", &memory, "--rm", "--", "true",
        ])?);
    }

    let clones = fleet(env, count, |i| {
        vec![
            "vm".into(),
            "clone".into(),
            "bench".into(),
            "--name".into(),
            format!("clone-{i}"),
        ]
    })?;
    let cold_fleet = fleet(env, count, |i| {
        vec![
            "vm".into(),
            "run".into(),
            "-d".into(),
            "--memory".into(),
            memory.clone(),
            "--name".into(),
            format!("cold-{i}"),
        ]
    })?;
    env.ok(["vm", "rm", "-f", "bench-src"]);
    env.ok(["snapshot", "rm", "bench"]);
    Ok(Report {
        runs,
        restore: median(&mut restore),
        cold: median(&mut cold),
        count,
        clones,
        cold_fleet,
        snapshot_bytes,
    })
}

/// Start `count` VMs at once with the commands `args(i)`; wait for every one; measure their
/// QEMUs' memory and their directories' disk; remove them.
pub(crate) fn fleet(
    env: &Env,
    count: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Fleet> {
    let vms_dir = env.state_dir().join("vms");
    let disk_before = allocated_kib(&vms_dir);
    let t0 = Instant::now();
    let children: Vec<_> = (0..count)
        .map(|i| {
            let mut cmd: Command = env.cmd(args(i));
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("spawn banger")
        })
        .collect::<anyhow::Result<_>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("starting a VM failed: {}", stderr(&out));
        }
    }
    let all_ready = t0.elapsed();
    let disk_kib = allocated_kib(&vms_dir).saturating_sub(disk_before);
    let vms: Vec<serde_json::Value> = serde_json::from_str(&env.ok(["vm", "ls", "--json"]))?;
    let (mut rss_kib, mut pss_kib) = (0, 0);
    let mut names = Vec::new();
    for vm in vms.iter().filter(|vm| vm["state"] == "running") {
        names.push(vm["name"].as_str().unwrap_or_default().to_string());
        if let Some(pid) = vm["pid"].as_i64() {
            rss_kib += kib_field(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0);
            pss_kib += kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0);
        }
    }
    let mut rm = vec!["vm".to_string(), "rm".into(), "-f".into()];
    rm.extend(names);
    env.ok(rm);
    Ok(Fleet {
        all_ready,
        rss_kib,
        pss_kib,
        disk_kib,
    })
}

/// A `NAME:   123 kB` line of a /proc file.
pub(crate) fn kib_field(path: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// KiB allocated to the files under `dir`.
fn allocated_kib(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_kib(&e.path()),
            Ok(m) => m.blocks() / 2,
            Err(_) => 0,
        })
        .sum()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
