//! P6 from a warm image: `vm run --rm -- true` restoring the image's warm state against
//! `vm run --cold --rm -- true` of the same image and resources (interleaved, medians,
//! their ratio); then where a warm run's time goes, phase by phase: `vm run -d` (create +
//! restore + reidentify, with the daemon's own VMM-spawned and agent-ready marks), `vm exec
//! true`, and `vm rm -f`; then N VMs of the warm state at once against N cold boots at
//! once: time until all answer, their QEMUs' RSS and PSS (the warm ones map one copy of the
//! state's RAM), and the disk their directories take.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Env, stderr};

#[derive(Debug, Clone)]
pub struct Report {
    pub runs: usize,
    pub warm: Duration,
    pub cold: Duration,
    /// Medians of the split warm run.
    pub run_d: Duration,
    pub vmm_spawned_ms: f64,
    pub agent_ready_ms: f64,
    pub exec: Duration,
    pub rm: Duration,
    pub warm_bytes: u64,
    /// N VMs of the warm state at once, and N cold boots at once.
    pub count: usize,
    pub warm_fleet: super::snapshots::Fleet,
    pub cold_fleet: super::snapshots::Fleet,
}

impl Report {
    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "median vm run --rm -- true (warm image)  : {:>8.1} ms",
            ms(self.warm)
        );
        println!(
            "median vm run --cold --rm -- true        : {:>8.1} ms",
            ms(self.cold)
        );
        println!(
            "ratio warm/cold: {:.3} over {} runs each (goal <= 0.05; raw QEMU floor 0.026-0.045)",
            ms(self.warm) / ms(self.cold),
            self.runs
        );
        println!("a warm run split in phases (medians):");
        println!(
            "  vm run -d (CLI -> daemon -> restored, reidentified): {:>8.1} ms",
            ms(self.run_d)
        );
        println!(
            "    of which: daemon start request -> VMM spawned     {:>8.1} ms",
            self.vmm_spawned_ms
        );
        println!(
            "              -> resumed, agent reconnected, reidentified {:>6.1} ms",
            self.agent_ready_ms - self.vmm_spawned_ms
        );
        println!(
            "  vm exec true                                       : {:>8.1} ms",
            ms(self.exec)
        );
        println!(
            "  vm rm -f (teardown)                                : {:>8.1} ms",
            ms(self.rm)
        );
        println!(
            "the warm state takes {} KiB on disk",
            self.warm_bytes / 1024
        );
        self.warm_fleet.print(self.count, "warm VMs");
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

pub fn measure(env: &Env, runs: usize, count: usize) -> anyhow::Result<Report> {
    env.write_config("vmm = \"qemu\"\n")?;
    let image: serde_json::Value =
        serde_json::from_str(&env.ok(["image", "warm", "minimal", "--json"]))?;
    let warm_bytes = image["warm"]["size_bytes"].as_u64().unwrap_or(0);

    let timed = |args: &[&str]| -> anyhow::Result<(Duration, String)> {
        let t0 = Instant::now();
        let out = env.run(args);
        if !out.status.success() {
            bail!("banger {args:?} failed: {}", stderr(&out));
        }
        Ok((t0.elapsed(), stderr(&out)))
    };
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    for _ in 0..runs {
        let (t, err) = timed(&["vm", "run", "--rm", "--timings", "--", "true"])?;
        if !err.contains("warm state") {
            bail!("a warm run did not restore: {err}");
        }
        warm.push(t);
        cold.push(timed(&["vm", "run", "--cold", "--rm", "--", "true"])?.0);
    }

    let (mut run_d, mut spawned, mut ready, mut exec, mut rm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("warm-bench-{i}");
        run_d.push(timed(&["vm", "run", "-d", "--name", &name])?.0);
        let vm = env.vm_json(&name);
        if vm["origin"]["warm_image"] != "minimal" {
            bail!("VM {name} was not restored from the warm state: {vm}");
        }
        let boot = &vm["boot"];
        spawned.push(boot["vmm_spawned_ms"].as_f64().context("vmm_spawned_ms")?);
        ready.push(boot["agent_ready_ms"].as_f64().context("agent_ready_ms")?);
        exec.push(timed(&["vm", "exec", &name, "--", "true"])?.0);
        rm.push(timed(&["vm", "rm", "-f", &name])?.0);
    }
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
        warm_fleet,
        cold_fleet,
        warm: median(&mut warm),
        cold: median(&mut cold),
        run_d: median(&mut run_d),
        vmm_spawned_ms: median_f(&mut spawned),
        agent_ready_ms: median_f(&mut ready),
        exec: median(&mut exec),
        rm: median(&mut rm),
        warm_bytes,
    })
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
