//! A system install's VM cgroups on this host's REAL cgroup v1 hierarchies: the owner's
//! daemon (unprivileged: this test binary re-run as `nobody`) gets each VM's groups from the
//! root helper (this test process, serving its socket to the owner) through the daemon's
//! delegate, places a process in them before `exec` as a VMM's child does, cannot raise its
//! limits, and has them removed through the helper on release. A helper that is not there
//! fails the start, naming its service.
//!
//! Needs root (CI runs as root) and the v1 memory and pids hierarchies; every group the test
//! makes is removed when it ends, failed or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_daemon::vms::helper_cgroup::HelperCgroups;
use banger_helper::{Executor, server};
use banger_system::RealRunner;
use banger_vmm::sandbox::cgroup::{self, CgroupPolicy, Delegate, Limits, Overhead};

/// The owner: `nobody`, an unprivileged user every Debian host has.
const OWNER: u32 = 65534;
const SOCKET_ENV: &str = "BANGER_TEST_CGROUP_HELPER";
const VM_ENV: &str = "BANGER_TEST_CGROUP_VM";

fn policy(socket: &Path) -> CgroupPolicy {
    CgroupPolicy::Delegated {
        delegate: Delegate(Arc::new(HelperCgroups::new(socket.to_path_buf()))),
        overhead: Overhead {
            memory_mib: 100,
            pids_max: 64,
        },
    }
}

/// Run as the owner by the test below: get the groups, place a process, release.
#[test]
fn owner_child() {
    let (Ok(socket), Ok(vm)) = (std::env::var(SOCKET_ENV), std::env::var(VM_ENV)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // No helper: the start is refused, saying where to look.
        let err = policy(Path::new("/nonexistent/helper.sock"))
            .make(&vm, 128, false)
            .await
            .unwrap_err();
        let text = banger_system::error_chain(&err);
        assert!(text.contains("banger-helper.service"), "{text}");

        let policy = policy(Path::new(&socket));
        let made = policy.make(&vm, 128, false).await.unwrap().unwrap();
        println!("DIRS {:?}", made.dirs);
        let mut command = tokio::process::Command::new("sleep");
        command.arg("300");
        cgroup::detach_into(&mut command, Some(&made.placement));
        let mut child = command.spawn().unwrap();
        let pid = child.id().unwrap();
        let seen = cgroup::read::of_process(pid).unwrap();
        println!("SEEN {}", seen.summary());
        let want = Limits::for_vm(
            128,
            false,
            Overhead {
                memory_mib: 100,
                pids_max: 64,
            },
        );
        assert_eq!(seen.memory_max, Some(want.memory_max));
        assert_eq!(seen.pids_max, Some(64));
        assert_eq!(seen.memory_dir.as_ref(), Some(&made.dirs[0]));
        // The limit files stay root's: the owner cannot raise them.
        let raise = std::fs::write(made.dirs[0].join("memory.limit_in_bytes"), "-1");
        assert!(raise.is_err(), "the owner raised its memory limit");
        println!("PLACED {pid}");
        child.kill().await.unwrap();
        child.wait().await.unwrap();
        policy.discard(&vm).await;
        println!(
            "REMOVED {}",
            made.dirs.iter().all(|d: &PathBuf| !d.exists())
        );
    });
}

/// The groups of VM `vm`, removed on drop whatever happened (tasks killed first).
struct Groups(Vec<PathBuf>);

impl Drop for Groups {
    fn drop(&mut self) {
        for dir in &self.0 {
            for pid in cgroup::read::tasks(dir) {
                // SAFETY: kill has no memory effects; the pid is in this test's own group.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = std::fs::remove_dir(dir);
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

#[test]
fn an_unprivileged_daemon_gets_its_vm_groups_from_the_root_helper() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test runs the root helper: run it as root (CI does)"
    );
    assert!(
        cgroup::delegate::v1_host(),
        "this test needs the cgroup v1 memory and pids hierarchies (a v1 or hybrid host, like CI's)"
    );
    let vm = format!("{:012x}", std::process::id() as u64 * 7919 + 0x5eed);
    let _groups = Groups(
        ["memory", "pids"]
            .iter()
            .map(|h| {
                Path::new("/sys/fs/cgroup")
                    .join(h)
                    .join(format!("banger-{OWNER}"))
                    .join(&vm)
            })
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    // The owner must reach its socket.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let socket = dir.path().join("helper.sock");
    let listener = server::bind(&socket, OWNER).unwrap();
    let executor = Arc::new(Executor::new(OWNER, Arc::new(RealRunner), None));
    std::thread::spawn(move || server::serve(listener, executor));

    let text = banger_system::testkit::rerun_test_as(
        &banger_system::testkit::test_name(module_path!(), "owner_child"),
        OWNER,
        &[(SOCKET_ENV, &socket), (VM_ENV, &vm)],
    );
    assert!(text.contains("PLACED "), "{text}");
    assert!(text.contains(&format!("banger-{OWNER}/{vm}")), "{text}");
    assert!(text.contains("REMOVED true"), "{text}");
}
