//! Per-VM cgroups through the real daemon and real guests under TCG, as root on this
//! host's cgroup v1 hierarchies (CI's kind of host): the VM's QEMU is in its own group with
//! the limits `[sandbox]` and the VM's memory call for, `vm inspect` and `banger doctor`
//! report them, and the group is gone after QEMU is killed (the exit watcher's release),
//! after a daemon restart that finds the VM dead (reconcile's release, and an empty
//! leftover swept), after `vm rm`, and the daemon's parent groups after it stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use banger_e2e::Env;
use banger_vmm::sandbox::cgroup::instance_name;
use banger_vmm::sandbox::cgroup::read::of_process;

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

fn pid(env: &Env, name: &str) -> u32 {
    u32::try_from(
        env.vm_json(name)["pid"]
            .as_i64()
            .expect("a running VM has a pid"),
    )
    .unwrap()
}

/// The VM's memory and pids group directories, from its QEMU's `/proc/PID/cgroup`.
fn groups(pid: u32) -> Vec<PathBuf> {
    let seen = of_process(pid).unwrap();
    vec![seen.memory_dir.unwrap(), seen.pids_dir.unwrap()]
}

fn wait_gone(dirs: &[PathBuf], what: &str, env: &Env) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while dirs.iter().any(|d| d.exists()) {
        assert!(
            Instant::now() < deadline,
            "{what}: the VM's cgroup is still there: {dirs:?}\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[test]
fn a_vms_qemu_is_limited_by_its_own_cgroup_which_goes_with_the_vm() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "per-VM cgroups on a v1 host need a root daemon; run these tests as root (CI does)"
    );
    let env = env();
    env.write_config("[sandbox]\nvmm_memory_overhead_mib = 200\nvmm_pids_max = 300\n")
        .unwrap();
    env.ok(["vm", "run", "-d", "--name", "lim"]);
    let vm = env.vm_json("lim");
    let id = vm["id"].as_str().unwrap().to_owned();
    let qemu = pid(&env, "lim");

    // QEMU is in banger-<instance>/<vm-id> in both hierarchies, with the limits.
    let dirs = groups(qemu);
    for d in &dirs {
        assert!(d.ends_with(&id), "{d:?}");
        // banger-<instance>, the daemon's state directory hashed (what Env's cleanup uses).
        let parent = d.parent().unwrap().file_name().unwrap().to_string_lossy();
        assert_eq!(
            parent,
            format!("banger-{}", instance_name(&env.state_dir())),
            "{d:?}"
        );
    }
    let text = std::fs::read_to_string(format!("/proc/{qemu}/cgroup")).unwrap();
    assert!(
        text.lines()
            .filter(|l| l.ends_with(&format!("/{id}")))
            .count()
            >= 2,
        "memory and pids lines name the VM's group:\n{text}"
    );
    let seen = of_process(qemu).unwrap();
    let tcg = vm["accel"] == "tcg";
    let mib = vm["memory_mib"].as_u64().unwrap() + 200 + if tcg { 1024 } else { 0 };
    assert_eq!(seen.memory_max, Some(mib << 20), "{seen:?}");
    assert_eq!(seen.pids_max, Some(300));
    let limits = &vm["limits"];
    assert_eq!(limits["cgroup"], "v1", "{vm}");
    assert_eq!(limits["memory_max_bytes"].as_u64(), Some(mib << 20));
    assert_eq!(limits["tasks_max"].as_u64(), Some(300));
    assert!(limits["tasks"].as_u64().unwrap() >= 3, "{limits}");
    let inspect = env.ok(["vm", "inspect", "lim"]);
    assert!(inspect.contains("limits:      memory ≤"), "{inspect}");
    let doctor = env.run(["doctor"]);
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor.contains("memory and tasks limited by its cgroup"),
        "{doctor}"
    );

    // QEMU killed: the exit watcher's release removes the group.
    kill9(qemu);
    wait_gone(&dirs, "after kill -9 of QEMU", &env);

    // A daemon killed while the VM runs: the next one adopts the VM and keeps its group.
    env.ok(["vm", "start", "lim"]);
    let qemu = pid(&env, "lim");
    let dirs = groups(qemu);
    env.kill_daemon();
    assert_eq!(env.vm_json("lim")["state"], "running");
    assert_eq!(pid(&env, "lim"), qemu);
    assert!(
        dirs.iter().all(|d| d.exists()),
        "an adopted VM keeps its group"
    );
    assert_eq!(groups(qemu), dirs);

    // QEMU killed while no daemon runs: the next daemon's reconcile releases it, and an
    // empty leftover group of an unknown VM is swept.
    let leftovers: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.parent().unwrap().join("0000deadbeef"))
        .collect();
    for l in &leftovers {
        std::fs::create_dir(l).unwrap();
    }
    env.kill_daemon();
    kill9(qemu);
    assert_eq!(env.vm_json("lim")["state"], "stopped");
    wait_gone(&dirs, "after a daemon restart", &env);
    wait_gone(&leftovers, "leftover after a daemon restart", &env);

    // vm rm of a running VM.
    env.ok(["vm", "start", "lim"]);
    let dirs = groups(pid(&env, "lim"));
    assert!(dirs.iter().all(|d| d.exists()));
    env.ok(["vm", "rm", "-f", "lim"]);
    wait_gone(&dirs, "after vm rm", &env);

    // The daemon's parent groups go when it stops with no VM left.
    let parents: Vec<PathBuf> = dirs.iter().map(|d| d.parent().unwrap().into()).collect();
    env.ok(["daemon", "stop"]);
    wait_gone(&parents, "the daemon's parents after daemon stop", &env);
}
