//! P6 from a warm image: `vm run --rm -- true` of the image against `vm run --cold --rm --
//! true` of the same image and resources (interleaved, medians, their ratio), by both paths
//! a warm run can take: handed a **standby** the daemon kept restored (`[images] standbys`,
//! the default; each warm run waits until one is ready, and each cold run until the refill
//! is done, so neither pays for the other) and a **restore** of the warm state (`standbys =
//! 0`). Each path's warm run is split phase by phase: `vm run -d` (with the daemon's own
//! VMM-spawned and agent-ready marks), `vm exec true`, `vm rm -f`. Then what one standby
//! costs the host while it waits, and N VMs of the warm state at once (restored) against N
//! cold boots at once: time until all answer, their QEMUs' RSS and PSS (the warm ones map
//! one copy of the state's RAM), and the disk their directories take.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::snapshots::kib_field;
use crate::standby::{processes_under, wait_daemon_gone, wait_standbys};
use crate::{Env, stderr};

/// One path's figures.
#[derive(Debug, Clone)]
pub struct PathFigures {
    pub warm: Duration,
    pub cold: Duration,
    pub run_d: Duration,
    pub vmm_spawned_ms: f64,
    pub agent_ready_ms: f64,
    pub exec: Duration,
    pub rm: Duration,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub runs: usize,
    pub standby: PathFigures,
    pub restore: PathFigures,
    /// What the waiting standby's QEMU holds: RSS and PSS, KiB.
    pub standby_rss_kib: u64,
    pub standby_pss_kib: u64,
    pub warm_bytes: u64,
    /// N VMs of the warm state at once (restored), and N cold boots at once.
    pub count: usize,
    pub warm_fleet: super::snapshots::Fleet,
    pub cold_fleet: super::snapshots::Fleet,
}

impl PathFigures {
    fn print(&self, path: &str, runs: usize) {
        println!(
            "[{path}] median vm run --rm -- true (warm image): {:>8.1} ms",
            ms(self.warm)
        );
        println!(
            "[{path}] median vm run --cold --rm -- true      : {:>8.1} ms",
            ms(self.cold)
        );
        println!(
            "[{path}] P6 ratio warm/cold: {:.3} over {runs} runs each (goal <= 0.05; raw QEMU restore floor 0.026-0.045)",
            ms(self.warm) / ms(self.cold),
        );
        println!("[{path}] a warm run split in phases (medians):");
        println!(
            "  vm run -d (CLI -> daemon -> VM running, own identity): {:>8.1} ms",
            ms(self.run_d)
        );
        println!(
            "    of which: daemon start request -> VMM spawned       {:>8.1} ms",
            self.vmm_spawned_ms
        );
        println!(
            "              -> running with its own identity           {:>8.1} ms",
            self.agent_ready_ms - self.vmm_spawned_ms
        );
        println!(
            "  vm exec true                                         : {:>8.1} ms",
            ms(self.exec)
        );
        println!(
            "  vm rm -f (teardown)                                  : {:>8.1} ms",
            ms(self.rm)
        );
    }
}

impl Report {
    pub fn print(&self) {
        self.standby.print("standby", self.runs);
        self.restore.print("restore", self.runs);
        println!(
            "a waiting standby holds QEMU RSS {} KiB, PSS {} KiB (its RAM pages shared with the warm state's other VMs count 1/N in PSS)",
            self.standby_rss_kib, self.standby_pss_kib
        );
        println!(
            "the warm state takes {} KiB on disk",
            self.warm_bytes / 1024
        );
        self.warm_fleet.print(self.count, "warm VMs (restore)");
        self.cold_fleet.print(self.count, "cold boots");
        println!(
            "ratio warm/cold for {} VMs: time {:.3}, PSS {:.3}, RSS {:.3}, disk {:.3}",
            self.count,
            ms(self.warm_fleet.all_ready) / ms(self.cold_fleet.all_ready),
            self.warm_fleet.pss_kib as f64 / self.cold_fleet.pss_kib.max(1) as f64,
            self.warm_fleet.rss_kib as f64 / self.cold_fleet.rss_kib.max(1) as f64,
            self.warm_fleet.disk_kib as f64 / self.cold_fleet.disk_kib.max(1) as f64,
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn measure(env: &Env, runs: usize, count: usize) -> anyhow::Result<Report> {
    env.write_config("vmm = \"qemu\"\n")?;
    let image: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "warm", "minimal", "--json"]))?;
    let warm_bytes = image["warm"]["size_bytes"].as_u64().unwrap_or(0);

    // The standby path (the default): each warm run finds a standby ready.
    wait_standbys(env, "minimal", 1);
    let (standby_rss_kib, standby_pss_kib) = standby_memory(env)?;
    let standby = path(env, runs, Some("standby taken"))?;

    // The restore path: no standbys (the configuration is read at daemon start).
    restart_daemon(env, "vmm = \"qemu\"\n[images]\nstandbys = 0\n")?;
    let restore = path(env, runs, None)?;

    let run_d_args = |prefix: &'static str, cold: bool| {
        move |i: usize| {
            let mut args: Vec<String> = vec!["vm".into(), "run".into(), "-d".into()];
            if cold {
                args.push("--cold".into());
            }
            args.extend(["--name".into(), format!("{prefix}-{i}")]);
            args
        }
    };
    let warm_fleet = super::snapshots::fleet(env, count, run_d_args("warm-fleet", false))?;
    let cold_fleet = super::snapshots::fleet(env, count, run_d_args("cold-fleet", true))?;
    Ok(Report {
        runs,
        count,
        standby,
        restore,
        standby_rss_kib,
        standby_pss_kib,
        warm_fleet,
        cold_fleet,
        warm_bytes,
    })
}

/// P6 and the phase split along one path; `marker` is what `--timings` prints for a warm
/// run that took it (`None`: a restore, which must not print the standby's).
fn path(env: &Env, runs: usize, marker: Option<&str>) -> anyhow::Result<PathFigures> {
    let standby = marker.is_some();
    let ready = || {
        if standby {
            wait_standbys(env, "minimal", 1);
        }
    };
    let timed = |args: &[&str]| -> anyhow::Result<(Duration, String)> {
        let t0 = Instant::now();
        let out = env.run(args);
        if !out.status.success() {
            bail!("banger {args:?} failed: {}", stderr(&out));
        }
        Ok((t0.elapsed(), stderr(&out)))
    };
    let took_path = |err: &str| -> anyhow::Result<()> {
        if !err.contains("warm state") {
            bail!("a warm run did not restore: {err}");
        }
        if err.contains("standby taken") != standby {
            bail!("a warm run did not take the path measured (standby: {standby}): {err}");
        }
        Ok(())
    };
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    for _ in 0..runs {
        ready();
        let (t, err) = timed(&["vm", "run", "--rm", "--timings", "--", "true"])?;
        took_path(&err)?;
        warm.push(t);
        ready();
        cold.push(timed(&["vm", "run", "--cold", "--rm", "--", "true"])?.0);
    }

    let (mut run_d, mut spawned, mut agent_ready, mut exec, mut rm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        ready();
        let name = format!("warm-bench-{i}");
        let (t, err) = timed(&["vm", "run", "-d", "--timings", "--name", &name])?;
        took_path(&err)?;
        run_d.push(t);
        let vm = env.vm_json(&name);
        if vm["origin"]["warm_image"] != "minimal" {
            bail!("VM {name} was not restored from the warm state: {vm}");
        }
        let boot = &vm["boot"];
        spawned.push(boot["vmm_spawned_ms"].as_f64().context("vmm_spawned_ms")?);
        agent_ready.push(boot["agent_ready_ms"].as_f64().context("agent_ready_ms")?);
        exec.push(timed(&["vm", "exec", &name, "--", "true"])?.0);
        rm.push(timed(&["vm", "rm", "-f", &name])?.0);
    }
    Ok(PathFigures {
        warm: median(&mut warm),
        cold: median(&mut cold),
        run_d: median(&mut run_d),
        vmm_spawned_ms: median_f(&mut spawned),
        agent_ready_ms: median_f(&mut agent_ready),
        exec: median(&mut exec),
        rm: median(&mut rm),
    })
}

/// RSS and PSS (KiB) of the one VMM running while no user VM exists: the standby's.
fn standby_memory(env: &Env) -> anyhow::Result<(u64, u64)> {
    let pids = processes_under(&env.state_dir().join("vms"));
    let [pid] = pids[..] else {
        bail!("expected one standby VMM, found {pids:?}");
    };
    Ok((
        kib_field(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0),
        kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0),
    ))
}

/// Stop the daemon (its standbys go with it) and write `config` for the next one, which
/// the next command starts.
fn restart_daemon(env: &Env, config: &str) -> anyhow::Result<()> {
    let pid = env.daemon_pid().context("daemon pid")?;
    env.ok(["daemon", "stop"]);
    wait_daemon_gone(env, pid);
    env.write_config(config)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
