//! VMM sandbox: what the host allows, and the confinement each running VMM really has.
//!
//! Read-only and usable as an ordinary user: the running VMMs come from the store (opened
//! read-only) and their posture from `/proc/PID/status` and `/proc/PID/root` (fields the
//! caller may not read are reported as unknown, never guessed). See docs/security.md.

use banger_store::{VmRecord, VmState};
use banger_vmm::process::{ProcessIdentity, is_running};
use banger_vmm::sandbox::cgroup::read::{self as cgroup_read, ProcessCgroups};
use banger_vmm::sandbox::cgroup::{self, Layout};
use banger_vmm::sandbox::posture::{self, ProcessPosture, StartedBy};
use banger_vmm::sandbox::{IdRange, QEMU_SANDBOX};
use banger_vmm::{DriverKind, VmRuntime};

use crate::context::{DoctorContext, StoreState};
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

pub struct VmmSandbox;

impl CapabilityCheck for VmmSandbox {
    fn name(&self) -> &'static str {
        "vmm sandbox"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let (base, count) = ctx.config.sandbox.id_range();
        let range = IdRange::new(base, count).ok();
        // A system install whose helper jails Firecracker (install.toml says so).
        let jailer = banger_config::load_install_meta(&ctx.install_toml)
            .ok()
            .flatten()
            .and_then(|meta| meta.jailer);
        let mut checks = vec![
            host_row(ctx.euid, range, jailer.as_deref()),
            cgroup_row(
                &cgroup::detect_this_process(),
                cgroup::delegate::helper_makes_groups(ctx.layout.mode.is_system_install()),
            ),
        ];
        if let StoreState::Open(store) = ctx.store()
            && let Ok(vms) = store.list_vms()
        {
            checks.extend(vms.iter().filter_map(running_vmm).map(|(vm, rt)| {
                let seen = observe(&rt);
                let limits = seen
                    .as_ref()
                    .and_then(|_| cgroup_read::of_process(rt.pid).ok());
                vm_row(&vm.name, &rt, seen, limits, range)
            }));
        }
        checks
    }
}

/// The sandbox this daemon gives its VMMs, and what the host allows beyond it.
pub fn host_row(euid: u32, range: Option<IdRange>, jailer: Option<&std::path::Path>) -> Check {
    let summary = if euid == 0 {
        match range {
            Some(r) => format!(
                "each VMM runs with no_new_privs (QEMU also with its seccomp sandbox), as a uid \
                 of its own ({}–{}) with no capabilities, in a mount-namespace jail holding only \
                 its VM's files",
                r.base() + 1,
                r.base() + r.count() - 1
            ),
            None => "[sandbox] in config.toml is invalid: no VMM will start".to_owned(),
        }
    } else {
        match posture::user_namespaces() {
            Ok(()) => "each VMM runs as you with no_new_privs (QEMU also with seccomp), in a jail \
                       built in a user namespace; a uid of its own per VM needs a root daemon"
                .to_owned(),
            Err(_) => "each VMM runs as you with no_new_privs (QEMU also with seccomp), without a \
                       jail (no unprivileged user namespaces here); a uid of its own per VM \
                       needs a root daemon"
                .to_owned(),
        }
    };
    let mut check = Check::pass(groups::SECURITY, "VMM sandbox", summary)
        .detail(format!("QEMU -sandbox {QEMU_SANDBOX}"))
        .detail(match posture::user_namespaces() {
            Ok(()) => {
                "unprivileged user namespaces: allowed (an ordinary user's QEMU is jailed in one)"
                    .to_owned()
            }
            Err(why) => format!("unprivileged user namespaces: not allowed ({why})"),
        })
        .detail(match jailer {
            Some(jailer) => format!(
                "Firecracker VMs: started by the root helper through Firecracker's jailer {} \
                 (its chroot, a pid namespace of its own, your uid, v1 cgroup limits) with \
                 Firecracker's own seccomp filters",
                jailer.display()
            ),
            None => "Firecracker VMs: the same sandbox as QEMU's (uid, jail, no_new_privs, \
                     cgroup) around Firecracker's own seccomp filters; not through \
                     Firecracker's jailer"
                .to_owned(),
        });
    if range.is_none() && euid == 0 {
        check = Check::fail(groups::SECURITY, "VMM sandbox", check.summary.clone())
            .details(check.details.clone())
            .hint("fix [sandbox] vmm_id_base / vmm_id_count in config.toml (banger doctor names the problem under config)");
    }
    check
}

/// Per-VM cgroup limits as a daemon running like this doctor would have them; say plainly
/// when the host cannot have them. (Each running VM's row shows what its VMM really has.)
pub fn cgroup_row(support: &Result<Layout, String>, helper_makes: bool) -> Check {
    const ROW: &str = "VMM cgroup limits";
    let how = "each VM's VMM (and its virtiofsd) runs in a cgroup of its own, its memory \
               bounded by the VM's RAM plus [sandbox] vmm_memory_overhead_mib and its tasks by \
               vmm_pids_max";
    match support {
        Ok(Layout::V2 { group, .. }) => Check::pass(
            groups::SECURITY,
            ROW,
            format!("{how} (cgroup v2, delegated group {})", group.display()),
        ),
        Ok(Layout::V1 { memory, pids }) => Check::pass(
            groups::SECURITY,
            ROW,
            format!(
                "{how} (cgroup v1, below {} and {})",
                memory.display(),
                pids.display()
            ),
        ),
        Err(_) if helper_makes => Check::pass(
            groups::SECURITY,
            ROW,
            format!(
                "{how} (cgroup v1: the root helper makes each VM's groups, below banger-<owner \
                 uid> in the memory and pids hierarchies, and a VM does not start without them)"
            ),
        ),
        Err(reason) => Check::warn(
            groups::SECURITY,
            ROW,
            format!(
                "a daemon running as you sets no memory or tasks limits per VM (VMs still \
                 run): {reason}"
            ),
        )
        .hint(
            "run banger as root or from its system install, or on a host with cgroup v2 delegation",
        ),
    }
}

/// A VM whose VMM should be running, with its runtime record.
fn running_vmm(vm: &VmRecord) -> Option<(&VmRecord, VmRuntime)> {
    if !matches!(vm.state, VmState::Running | VmState::Paused) {
        return None;
    }
    let rt: VmRuntime = serde_json::from_str(vm.runtime_json.as_deref()?).ok()?;
    Some((vm, rt))
}

/// `None` when the recorded process is gone (or its pid was reused).
fn observe(rt: &VmRuntime) -> Option<Result<ProcessPosture, String>> {
    let id = ProcessIdentity {
        pid: rt.pid,
        start_time: rt.pid_start_time,
    };
    if !is_running(id) {
        return None;
    }
    Some(posture::read(rt.pid).map_err(|e| e.to_string()))
}

/// One running VM's VMM: PASS when it has every layer its daemon's mode gives.
pub fn vm_row(
    name: &str,
    rt: &VmRuntime,
    seen: Option<Result<ProcessPosture, String>>,
    limits: Option<ProcessCgroups>,
    range: Option<IdRange>,
) -> Check {
    let row = format!("VMM sandbox: {name}");
    let p = match seen {
        None => {
            return Check::warn(
                groups::SECURITY,
                &row,
                format!("its {} process {} is not running", rt.driver, rt.pid),
            )
            .hint("`banger vm ls` reconciles the VM's state");
        }
        Some(Err(e)) => {
            return Check::warn(
                groups::SECURITY,
                &row,
                format!("cannot read /proc/{}/status: {e}", rt.pid),
            );
        }
        Some(Ok(p)) => p,
    };
    let uid = p.uids[1];
    let dropped = range.is_some_and(|r| r.is_vm_id(uid));
    let root = match p.own_root {
        Some(true) => "a jail (its / is not the host's)",
        Some(false) => "the host's /",
        None => "unknown (another user's process: run doctor as root to see)",
    };
    let limited = limits.as_ref().is_some_and(ProcessCgroups::limited);
    let cgroup = match &limits {
        Some(l) if l.limited() => format!(
            "cgroup {} {}: {}",
            l.version.unwrap_or("?"),
            l.memory_dir
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string()),
            l.summary()
        ),
        Some(l) => format!("cgroup: no per-VM limits ({})", l.summary()),
        None => "cgroup: unknown (cannot read its /proc/PID/cgroup)".to_owned(),
    };
    let mut details = vec![
        format!("pid {}, {}", rt.pid, rt.driver),
        cgroup,
        format!("uid {uid}{}", if dropped { " (its own)" } else { "" }),
        format!(
            "seccomp {}",
            match p.seccomp {
                Some(2) => "filtering".to_owned(),
                Some(n) => format!("mode {n}"),
                None => "unknown".to_owned(),
            }
        ),
        format!(
            "no_new_privs {}",
            p.no_new_privs
                .map_or("unknown", |b| if b { "on" } else { "off" })
        ),
        format!(
            "effective capabilities {}",
            p.cap_eff
                .map_or("unknown".to_owned(), |c| format!("{c:#x}"))
        ),
        format!("root: {root}"),
    ];
    // Which way it was started (the same fact `vm inspect` shows).
    details.push(format!("started by: {}", StartedBy::of(rt, &p).describe()));
    let restart =
        format!("restart it to sandbox it: `banger vm stop {name} && banger vm start {name}`");
    let mut problems = Vec::new();
    if !p.unprivileged() {
        problems.push("runs as root");
    }
    if p.cap_eff.is_some_and(|c| c != 0) {
        problems.push("holds capabilities");
    }
    if rt.driver == DriverKind::Qemu && p.seccomp != Some(2) {
        problems.push("has no seccomp filter");
    }
    if dropped && p.own_root == Some(false) {
        problems.push("sees the host's whole filesystem");
    }
    if !problems.is_empty() {
        return Check::fail(
            groups::SECURITY,
            &row,
            format!("its VMM {}", problems.join(", ")),
        )
        .details(details)
        .hint(restart);
    }
    let limits_note = if limited {
        "; memory and tasks limited by its cgroup"
    } else {
        "; no cgroup limits"
    };
    let summary = match (dropped, p.own_root) {
        (true, _) => "seccomp, no_new_privs, no capabilities, a uid of its own, a jail",
        (false, Some(true)) => {
            "seccomp, no_new_privs, no capabilities, as the owner, in a jail (user namespace)"
        }
        (false, _) => {
            "seccomp, no_new_privs, no capabilities, as the owner, without a jail (this host \
             does not allow unprivileged user namespaces)"
        }
    }
    .to_owned()
        + limits_note;
    Check::pass(groups::SECURITY, &row, summary).details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn rt(driver: DriverKind) -> VmRuntime {
        serde_json::from_value(serde_json::json!({
            "vm_id": "abc", "vm_dir": "/s/vms/abc", "driver": driver, "accel": "tcg",
            "machine": "microvm", "pid": 4242, "pid_start_time": 1, "boot_id": "b",
            "control_socket": "/s/vms/abc/qmp.sock",
            "agent": {"kind": "virtio_serial", "socket": "/s/vms/abc/agent.sock"},
            "console_log": "/s/vms/abc/console.log", "vmm_version": null
        }))
        .unwrap()
    }

    fn confined(uid: u32) -> ProcessPosture {
        ProcessPosture {
            uids: [uid; 4],
            gids: [uid; 4],
            seccomp: Some(2),
            no_new_privs: Some(true),
            cap_eff: Some(0),
            cap_bnd: Some(0),
            own_root: Some(true),
            own_mount_ns: Some(true),
        }
    }

    #[test]
    fn a_confined_qemu_passes_and_each_missing_layer_fails() {
        let range = Some(IdRange::default());
        let uid = IdRange::default().base() + 7;
        let c = vm_row(
            "dev",
            &rt(DriverKind::Qemu),
            Some(Ok(confined(uid))),
            None,
            range,
        );
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.summary.contains("a jail"));

        let mut root = confined(0);
        root.cap_eff = Some(0x1ff_ffff_ffff);
        root.seccomp = Some(0);
        let c = vm_row("dev", &rt(DriverKind::Qemu), Some(Ok(root)), None, range);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.summary.contains("runs as root")
                && c.summary.contains("capabilities")
                && c.summary.contains("seccomp"),
            "{}",
            c.summary
        );
        assert!(c.hint.unwrap().contains("vm stop dev"));

        let mut unjailed = confined(uid);
        unjailed.own_root = Some(false);
        let c = vm_row(
            "dev",
            &rt(DriverKind::Qemu),
            Some(Ok(unjailed)),
            None,
            range,
        );
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("whole filesystem"));
    }

    #[test]
    fn an_owners_qemu_and_unknowns_are_reported_honestly() {
        let mut owner = confined(1000);
        owner.own_root = None;
        let c = vm_row(
            "dev",
            &rt(DriverKind::Qemu),
            Some(Ok(owner)),
            None,
            Some(IdRange::default()),
        );
        assert_eq!(c.status, Status::Pass);
        assert!(c.summary.contains("as the owner") && c.summary.contains("without a jail"));
        assert!(c.details.iter().any(|d| d.contains("root: unknown")));

        let c = vm_row("dev", &rt(DriverKind::Qemu), None, None, None);
        assert_eq!(c.status, Status::Warn);
        let c = vm_row(
            "fc",
            &rt(DriverKind::Firecracker),
            Some(Ok(confined(1000))),
            None,
            None,
        );
        assert_eq!(c.status, Status::Pass);
        assert!(c.details.iter().any(|d| d.contains("banger's sandbox")));
        let c = vm_row(
            "fc",
            &rt(DriverKind::Firecracker),
            Some(Ok(confined(0))),
            None,
            None,
        );
        assert_eq!(c.status, Status::Fail, "a root Firecracker fails");
        let mut jailed = rt(DriverKind::Firecracker);
        jailed.control_socket =
            "/var/lib/banger-jail/1000/firecracker/abc/root/run/firecracker.socket".into();
        let c = vm_row("fc", &jailed, Some(Ok(confined(1000))), None, None);
        assert!(
            c.details
                .iter()
                .any(|d| d.contains("through Firecracker's jailer")
                    && d.contains("/var/lib/banger-jail/1000/firecracker/abc/root")),
            "{:?}",
            c.details
        );
    }

    /// A VMM's cgroup shows in its row: limited, or plainly not.
    #[test]
    fn a_vmms_cgroup_limits_are_reported() {
        let uid = IdRange::default().base() + 7;
        let limits = ProcessCgroups {
            version: Some("v1"),
            memory_dir: Some("/sys/fs/cgroup/memory/banger-x/abc".into()),
            pids_dir: Some("/sys/fs/cgroup/pids/banger-x/abc".into()),
            memory_max: Some(1792 << 20),
            memory_current: Some(100 << 20),
            pids_max: Some(512),
            pids_current: Some(9),
        };
        let range = Some(IdRange::default());
        let c = vm_row(
            "dev",
            &rt(DriverKind::Qemu),
            Some(Ok(confined(uid))),
            Some(limits),
            range,
        );
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.summary
                .ends_with("memory and tasks limited by its cgroup"),
            "{}",
            c.summary
        );
        assert!(
            c.details.iter().any(|d| d
                == "cgroup v1 /sys/fs/cgroup/memory/banger-x/abc: memory ≤ 1792 MiB (100 MiB used), tasks ≤ 512 (9)"),
            "{:?}",
            c.details
        );
        let c = vm_row(
            "dev",
            &rt(DriverKind::Qemu),
            Some(Ok(confined(uid))),
            Some(ProcessCgroups::default()),
            range,
        );
        assert!(c.summary.ends_with("no cgroup limits"), "{}", c.summary);
        assert!(
            c.details
                .iter()
                .any(|d| d.starts_with("cgroup: no per-VM limits"))
        );
    }

    #[test]
    fn host_rows() {
        let c = host_row(0, Some(IdRange::default()), None);
        assert!(c.details.iter().any(|d| d.contains("not through")));
        let jailed = host_row(
            1000,
            None,
            Some(std::path::Path::new("/usr/local/bin/jailer")),
        );
        assert!(
            jailed
                .details
                .iter()
                .any(|d| d.contains("through Firecracker's jailer /usr/local/bin/jailer"))
        );
        assert_eq!(c.status, Status::Pass);
        assert!(c.summary.contains("1900000001"), "{}", c.summary);
        assert_eq!(host_row(0, None, None).status, Status::Fail);
        assert!(
            host_row(1000, None, None)
                .summary
                .contains("needs a root daemon")
        );
        let c = cgroup_row(
            &Err("cgroup v1: /sys/fs/cgroup/memory is not writable".into()),
            false,
        );
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.summary.contains("no memory or tasks limits") && c.summary.contains("not writable")
        );
        let c = cgroup_row(
            &Ok(Layout::V1 {
                memory: "/sys/fs/cgroup/memory/x".into(),
                pids: "/sys/fs/cgroup/pids".into(),
            }),
            false,
        );
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.summary
                .contains("cgroup v1, below /sys/fs/cgroup/memory/x"),
            "{}",
            c.summary
        );
        // A system install's daemon on a v1 host: the helper makes the groups.
        let c = cgroup_row(&Err("not writable".into()), true);
        assert_eq!(c.status, Status::Pass);
        assert!(c.summary.contains("the root helper makes"), "{}", c.summary);
    }

    /// The real thing: this test process, read as doctor reads a VMM.
    #[test]
    fn observing_a_live_process() {
        let mut r = rt(DriverKind::Qemu);
        r.pid = std::process::id();
        r.pid_start_time = banger_vmm::process::read_stat(r.pid)
            .unwrap()
            .unwrap()
            .start_time;
        let seen = observe(&r).expect("we are running").unwrap();
        assert_eq!(seen.own_root, Some(false));
        r.pid_start_time += 1;
        assert!(observe(&r).is_none(), "a reused pid is not our VMM");
    }
}
