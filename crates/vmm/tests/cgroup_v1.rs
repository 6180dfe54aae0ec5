//! Per-VM cgroups on this host's REAL cgroup v1 hierarchies (memory and pids), as root, as
//! CI runs. The v2 backend cannot run on these hosts; its logic is tested on directory
//! trees (`src/sandbox/cgroup/tests.rs`).
//!
//! Every group a test makes is removed when it ends, failed or not ([`Scratch`]).

use crate::support;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banger_vmm::sandbox::cgroup::{
    self, CgroupPolicy, Cgroups, Layout, Limits, Overhead, read::of_process,
};
use banger_vmm::{MachinePreference, VmmDriver};
use support::{KillOnDrop, spec};

/// This test's cgroups (a fresh instance each), torn down on drop: tasks killed, VM
/// groups and parents removed.
struct Scratch {
    cgroups: Cgroups,
    vms: Vec<String>,
}

impl Scratch {
    fn new() -> Scratch {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "per-VM cgroups on v1 hierarchies need root; run these tests as root (CI does)"
        );
        let instance = format!("test{:08x}", std::process::id() ^ rand_u32());
        let cgroups = Cgroups::detect_and_setup(&instance).unwrap_or_else(|why| {
            panic!("this host offers no usable cgroup backend to root: {why}")
        });
        assert!(
            matches!(cgroups.layout(), Layout::V1 { .. }),
            "these tests exercise the v1 backend (a hybrid host like CI's); this host gave \
             {:?}",
            cgroups.layout()
        );
        Scratch {
            cgroups,
            vms: Vec::new(),
        }
    }

    fn vm(&mut self, limits: Limits) -> (String, cgroup::VmCgroup) {
        let id = format!(
            "{:012x}",
            u64::from(rand_u32()) << 16 | self.vms.len() as u64
        );
        self.vms.push(id.clone());
        let made = self.cgroups.create(&id, limits).unwrap();
        (id, made)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for id in &self.vms {
            for dir in self.cgroups.dirs(id) {
                let deadline = Instant::now() + Duration::from_secs(10);
                while dir.exists() && Instant::now() < deadline {
                    for pid in cgroup::read::tasks(&dir) {
                        // SAFETY: kill has no memory effects; the pid is in our test group.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                    let _ = std::fs::remove_dir(&dir);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        self.cgroups.retire();
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom(&mut b);
    u32::from_ne_bytes(b)
}

fn getrandom(buf: &mut [u8]) {
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n, buf.len() as isize);
}

/// Run `sh -c script` placed in `vm`'s group the way a VMM is (its child enters before
/// exec).
fn spawn_in(vm: &cgroup::VmCgroup, script: &str) -> std::process::Child {
    let placement = vm.placement.clone();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: Placement::enter is async-signal-safe (open/write/close on prepared paths).
    unsafe { cmd.pre_exec(move || placement.enter()) };
    cmd.spawn().expect("sh")
}

fn proc_cgroup(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

fn dir_line(text: &str, controller: &str) -> String {
    text.lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|x| x == controller))
        })
        .unwrap_or_else(|| panic!("no {controller} line in {text}"))
        .to_owned()
}

#[tokio::test]
async fn a_process_placed_before_exec_is_in_its_vm_group_with_its_limits() {
    let mut s = Scratch::new();
    let limits = Limits {
        memory_max: 96 << 20,
        pids_max: 40,
    };
    let t0 = Instant::now();
    let (id, vm) = s.vm(limits);
    eprintln!(
        "making a VM's groups with their limits took {:?}",
        t0.elapsed()
    );
    let mut child = spawn_in(&vm, "exec sleep 60");
    let pid = child.id();
    let text = proc_cgroup(pid);
    for controller in ["memory", "pids"] {
        let line = dir_line(&text, controller);
        assert!(
            line.ends_with(&format!("/banger-{}/{id}", instance_of(&vm.dirs[0]))),
            "{line}\n{text}"
        );
    }
    let seen = of_process(pid).unwrap();
    assert_eq!(seen.version, Some("v1"));
    assert_eq!(seen.memory_max, Some(96 << 20));
    assert_eq!(seen.pids_max, Some(40));
    assert_eq!(seen.pids_current, Some(1));
    assert!(seen.limited());
    assert_eq!(seen.memory_dir.as_deref(), Some(vm.dirs[0].as_path()));
    assert_eq!(seen.pids_dir.as_deref(), Some(vm.dirs[1].as_path()));

    // Removal kills what is left in the group (after its grace) and removes every dir.
    let started = Instant::now();
    s.cgroups.remove(&id).await.unwrap();
    assert!(vm.dirs.iter().all(|d| !d.exists()));
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    eprintln!("removal with a live task took {:?}", started.elapsed());
    // Removing it again is fine.
    s.cgroups.remove(&id).await.unwrap();
}

fn instance_of(dir: &Path) -> String {
    dir.parent()
        .and_then(Path::file_name)
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("banger-")
        .to_owned()
}

/// A fork bomb in a VM's group stops at its tasks limit (QEMU itself may not fork under
/// its seccomp filter; this is what bounds its threads, and anything else in the group).
#[tokio::test]
async fn a_fork_bomb_stops_at_the_tasks_limit() {
    let mut s = Scratch::new();
    let (id, vm) = s.vm(Limits {
        memory_max: 256 << 20,
        pids_max: 32,
    });
    let child = spawn_in(
        &vm,
        "i=0; while [ $i -lt 300 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done; echo all-forked",
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("all-forked"),
        "300 forks succeeded: {stdout}"
    );
    assert!(stderr.to_lowercase().contains("fork"), "{stderr}");
    let tasks = cgroup::read::tasks(&vm.dirs[1]).len();
    assert!(
        (1..=32).contains(&tasks),
        "{tasks} tasks in a group limited to 32"
    );
    let events = std::fs::read_to_string(vm.dirs[1].join("pids.events")).unwrap_or_default();
    eprintln!(
        "fork bomb stopped at {tasks} tasks; pids.events: {}",
        events.trim()
    );
    s.cgroups.remove(&id).await.unwrap();
    assert!(vm.dirs.iter().all(|d| !d.exists()));
}

/// A process in a VM's group that tries to take far more memory than the group allows is
/// killed by the kernel's OOM killer in that group; the host is untouched.
#[tokio::test]
async fn a_memory_balloon_is_stopped_at_the_memory_limit() {
    let mut s = Scratch::new();
    let (id, vm) = s.vm(Limits {
        memory_max: 64 << 20,
        pids_max: 64,
    });
    // 400 MB held in the shell's memory (a command substitution is buffered whole).
    let child = spawn_in(
        &vm,
        "x=$(head -c 400000000 /dev/zero | tr '\\000' a); echo ${#x}",
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "the balloon was OOM-killed: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let oom = std::fs::read_to_string(vm.dirs[0].join("memory.oom_control")).unwrap();
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(kills >= 1, "memory.oom_control: {oom}");
    let peak: u64 = std::fs::read_to_string(vm.dirs[0].join("memory.max_usage_in_bytes"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(peak <= 64 << 20, "peak {peak} over the 64 MiB limit");
    eprintln!(
        "balloon OOM-killed at a peak of {} MiB (limit 64 MiB)",
        peak >> 20
    );
    s.cgroups.remove(&id).await.unwrap();
}

/// The QEMU driver places a sandboxed QEMU in the VM's group before it runs, with limits
/// from the VM's memory and the overhead; a launch that fails leaves no group.
#[tokio::test]
async fn the_qemu_driver_places_qemu_in_the_vms_group() {
    let s = Scratch::new();
    let cgroups = Arc::new(s.cgroups.clone());
    let mut config = support::config(MachinePreference::Auto);
    let overhead = Overhead {
        memory_mib: 200,
        pids_max: 300,
    };
    config.cgroups = CgroupPolicy::Limit {
        cgroups: cgroups.clone(),
        overhead,
    };
    let driver = banger_vmm::QemuDriver::new(config).unwrap();
    let (_tmp, mut spec) = spec("vm");
    spec.vm_id = format!("{:012x}", rand_u32());
    let mut s = s;
    s.vms.push(spec.vm_id.clone());
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    let dirs = cgroups.dirs(&spec.vm_id);
    assert_eq!(rt.cgroup, dirs, "the runtime records the VM's groups");
    let seen = of_process(rt.pid).unwrap();
    let expect = Limits::for_vm(spec.memory_mib, true, overhead);
    assert_eq!(seen.memory_max, Some(expect.memory_max));
    assert_eq!(seen.pids_max, Some(300));
    assert_eq!(seen.memory_dir.as_ref(), Some(&dirs[0]));
    assert!(
        cgroup::read::tasks(&dirs[0]).contains(&rt.pid),
        "QEMU is listed in its group"
    );
    eprintln!("QEMU in its group: {}", seen.summary());
    driver.kill(&rt).await.unwrap();
    cgroups.remove(&spec.vm_id).await.unwrap();
    assert!(dirs.iter().all(|d| !d.exists()));

    // A launch QEMU refuses (a kernel that is not one) leaves no group behind.
    std::fs::write(&spec.kernel, b"not a kernel").unwrap();
    assert!(driver.launch(&spec).await.is_err());
    assert!(
        dirs.iter().all(|d| !d.exists()),
        "a failed launch removed its group"
    );
}
