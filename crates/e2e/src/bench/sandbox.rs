//! What the VMM sandbox costs: launch to the agent's Ready, and QEMU's resident memory once
//! ready, for the same guest with the sandbox off and with a root daemon's full sandbox
//! (seccomp, the per-VM uid hand-over, the jail, the per-VM cgroup where the host allows
//! one). Interleaved runs; medians and ratios, and what the VM's cgroup charged against its
//! limit once the guest was ready.

use std::time::{Duration, Instant};

use anyhow::Context;
use banger_vmm::sandbox::cgroup::read::of_process;
use banger_vmm::sandbox::cgroup::{CgroupPolicy, Overhead};
use banger_vmm::sandbox::{IdRange, SandboxPolicy};
use banger_vmm::{AgentEndpoint, QemuDriver, VmmDriver};

use crate::Env;
use crate::direct;

/// One policy's figures.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub ready: Duration,
    pub rss_kib: u64,
    /// The VM's cgroup: memory charged once ready, and its limit (sandboxed runs where the
    /// host allows cgroups).
    pub cgroup: Option<(u64, u64)>,
}

/// Medians for the unsandboxed and the sandboxed launches.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub off: Figures,
    pub on: Figures,
    pub runs: usize,
}

impl Report {
    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "median launch to agent ready, sandbox off : {:>8.1} ms  (QEMU RSS {:>7} KiB)",
            ms(self.off.ready),
            self.off.rss_kib
        );
        println!(
            "median launch to agent ready, sandboxed   : {:>8.1} ms  (QEMU RSS {:>7} KiB)",
            ms(self.on.ready),
            self.on.rss_kib
        );
        println!(
            "ratio sandboxed/off: time {:.3}, memory {:.3} over {} runs each (goal: time <= 1.05)",
            ms(self.on.ready) / ms(self.off.ready),
            self.on.rss_kib as f64 / self.off.rss_kib.max(1) as f64,
            self.runs
        );
        match self.on.cgroup {
            Some((used, max)) => println!(
                "VM cgroup once ready (512 MiB guest): {} MiB charged of a {} MiB limit ({:.1}%)",
                used >> 20,
                max >> 20,
                100.0 * used as f64 / max.max(1) as f64
            ),
            None => println!("VM cgroup: none (this host gives this process no cgroup backend)"),
        }
    }
}

/// Measure `runs` interleaved launches per policy. Needs root (the full sandbox drops from
/// root); says so otherwise.
pub fn measure(env: &Env, runs: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "the sandbox benchmark compares a root daemon's full sandbox with none: run it as root"
    );
    let image = env.minimal_image()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cgroups = CgroupPolicy::for_this_process(
        &format!("bench{}", std::process::id()),
        Overhead::default(),
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for sandboxed in [false, true] {
            let mut config = env.host_qemu_config()?;
            config.sandbox = if sandboxed {
                SandboxPolicy::DropFromRoot(IdRange::default())
            } else {
                SandboxPolicy::Off
            };
            if sandboxed {
                config.cgroups = cgroups.clone();
            }
            let driver = QemuDriver::new(config)?;
            let name = format!("sbx{run}{}", if sandboxed { "on" } else { "off" });
            let dir = env.root.path().join(&name);
            let spec = direct::launch_spec(&image, &dir, &name, 1, 512, "1G")?;
            let figures = rt.block_on(async {
                let t0 = Instant::now();
                let vm = driver.launch(&spec).await?;
                let result = async {
                    let AgentEndpoint::VirtioSerial { socket } = &vm.agent else {
                        anyhow::bail!("a QEMU VM has a virtio-serial agent");
                    };
                    loop {
                        if let Ok(stream) = tokio::net::UnixStream::connect(socket).await
                            && banger_agent_client::AgentClient::handshake(
                                stream,
                                Duration::from_secs(180),
                            )
                            .await
                            .is_ok()
                        {
                            break;
                        }
                        anyhow::ensure!(t0.elapsed() < Duration::from_secs(180), "no agent");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let ready = t0.elapsed();
                    let charged = of_process(vm.pid).ok().filter(|c| c.limited());
                    Ok(Figures {
                        ready,
                        rss_kib: rss_kib(vm.pid).context("QEMU's VmRSS")?,
                        cgroup: charged.and_then(|c| Some((c.memory_current?, c.memory_max?))),
                    })
                }
                .await;
                driver.kill(&vm).await?;
                if let CgroupPolicy::Limit { cgroups, .. } = &cgroups {
                    cgroups.remove(&spec.vm_id).await?;
                }
                result
            })?;
            if sandboxed { &mut on } else { &mut off }.push(figures);
        }
    }
    if let CgroupPolicy::Limit { cgroups, .. } = &cgroups {
        cgroups.retire();
    }
    Ok(Report {
        off: median(&mut off),
        on: median(&mut on),
        runs,
    })
}

fn median(v: &mut [Figures]) -> Figures {
    v.sort_by_key(|f| f.ready);
    let ready = v[v.len() / 2].ready;
    v.sort_by_key(|f| f.rss_kib);
    let rss_kib = v[v.len() / 2].rss_kib;
    v.sort_by_key(|f| f.cgroup.map(|c| c.0));
    Figures {
        ready,
        rss_kib,
        cgroup: v[v.len() / 2].cgroup,
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
