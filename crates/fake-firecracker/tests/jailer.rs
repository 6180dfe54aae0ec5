//! The fake jailer end to end, as root: it builds the chroot layout, makes and enters the
//! v1 cgroup it is given (and v2 groups on a stand-in hierarchy, by the real jailer's rules), runs the fake Firecracker inside as the dropped uid in a new pid
//! namespace, and writes that process's host pid where the real jailer does.

use crate::support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const JAILER: &str = env!("CARGO_BIN_EXE_fake-jailer");
const UID: u32 = 2_000_000_101;

/// Removes the cgroups the jailer made, even when the test fails.
struct Groups(Vec<PathBuf>);

impl Drop for Groups {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn it_jails_the_fake_as_the_real_one_would() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the jailer runs as root: run this test as root (CI does)"
    );
    let pids_v1 = Path::new("/sys/fs/cgroup/pids");
    assert!(
        pids_v1.join("tasks").exists(),
        "this test makes a group in the cgroup v1 pids hierarchy, which this host lacks"
    );
    let setup = Setup::new("t");
    let (id, base) = (&setup.id, &setup.base);
    let parent = format!("banger-fakejail-{}", std::process::id());
    let _groups = Groups(vec![pids_v1.join(&parent).join(id), pids_v1.join(&parent)]);
    let chroot = base.join("firecracker").join(id).join("root");
    let out = setup.jail(
        &[
            "--cgroup-version",
            "1",
            "--cgroup",
            "pids.max=77",
            "--parent-cgroup",
            &parent,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "the jailer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pid_file = chroot.join("firecracker.pid");
    wait_for(&pid_file);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let socket = chroot.join("run/firecracker.socket");
    // Listening, not only bound: the file appears at bind(2), before listen(2).
    support::wait_listening(&socket);
    let (code, body) = support::call(&socket, "GET", "/", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("\"id\":\"{id}\"")), "{body}");

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == UID.to_string()),
        "{uid_line}"
    );
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        nspid.trim_end().ends_with("\t1"),
        "pid 1 of a new pid namespace: {nspid}"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains("UNRELATED"));
    // Its root is the chroot, and the chroot, /dev/kvm and /dev/net/tun are the uid's.
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, Path::new("/"), "seen from its own mount namespace");
    assert_eq!(std::fs::metadata(&chroot).unwrap().uid(), UID);
    for node in ["dev/kvm", "dev/net/tun"] {
        let meta = std::fs::metadata(chroot.join(node)).unwrap();
        assert_eq!((meta.uid(), meta.rdev() != 0), (UID, true), "{node}");
    }
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(!mountinfo.contains(" /tmp "), "{mountinfo}");
    let group = pids_v1.join(&parent).join(id);
    assert_eq!(
        std::fs::read_to_string(group.join("pids.max"))
            .unwrap()
            .trim(),
        "77"
    );
    let tasks = std::fs::read_to_string(group.join("tasks")).unwrap();
    assert!(tasks.lines().any(|t| t == pid.to_string()), "{tasks}");

    // SAFETY: kill with a pid this test started and a signal number.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(group.join("tasks")).is_ok_and(|t| !t.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the jailed process never exited");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Not root: refused before anything is made.
#[test]
fn as_an_ordinary_user_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            JAILER,
        ])
        .args([
            "--id",
            "x",
            "--exec-file",
            "/bin/firecracker",
            "--uid",
            "1",
            "--gid",
            "1",
        ])
        .arg("--chroot-base-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A jail set up for `jail_with`: the base, the exec file, the chroot with its `run/`.
struct Setup {
    dir: tempfile::TempDir,
    base: PathBuf,
    exec: PathBuf,
    id: String,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("fakejail")
            .tempdir_in("/tmp")
            .unwrap();
        let base = dir.path().join("jail");
        std::fs::create_dir(&base).unwrap();
        // The exec file: the fake itself under a name with `firecracker` in it. cp(1) in a
        // child, not std::fs::copy: a write descriptor held by this multi-threaded process
        // could be inherited by another test's fork, and exec'ing the copy would then fail
        // with ETXTBSY.
        let exec = dir.path().join("firecracker");
        assert!(
            Command::new("cp")
                .arg(support::FAKE)
                .arg(&exec)
                .status()
                .unwrap()
                .success()
        );
        let id = format!("{tag}{}", std::process::id());
        // What the helper does before running it: the API socket's directory, the owner's.
        let chroot = base.join("firecracker").join(&id).join("root");
        std::fs::create_dir_all(chroot.join("run")).unwrap();
        std::os::unix::fs::chown(chroot.join("run"), Some(UID), Some(UID)).unwrap();
        Setup {
            dir,
            base,
            exec,
            id,
        }
    }

    /// Run the jailer with `cgroup_args`, the mount table `mounts` when given.
    fn jail(&self, cgroup_args: &[&str], mounts: Option<&Path>) -> std::process::Output {
        let mut command = Command::new(JAILER);
        command
            .args(["--id", &self.id, "--exec-file"])
            .arg(&self.exec)
            .args(["--uid", &UID.to_string(), "--gid", &UID.to_string()])
            .arg("--chroot-base-dir")
            .arg(&self.base)
            .args(cgroup_args)
            .args(["--new-pid-ns", "--daemonize"])
            .env("FAKE_FIRECRACKER_AGENT", support::agent_binary())
            .env("UNRELATED", "dropped");
        if let Some(mounts) = mounts {
            command.env(banger_fake_firecracker::jailer::MOUNTS_ENV, mounts);
        }
        command.output().unwrap()
    }

    fn pid(&self) -> u32 {
        let pid_file = self
            .base
            .join("firecracker")
            .join(&self.id)
            .join("root/firecracker.pid");
        wait_for(&pid_file);
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

/// The v2 contract on a stand-in hierarchy (this host's memory and pids are on v1): the
/// controllers are checked in the mount's `cgroup.controllers`, enabled in the
/// `cgroup.subtree_control` of the root and of the parent, the values and the pid written.
#[test]
fn on_a_v2_hierarchy_it_enables_the_controllers_down_to_the_parent() {
    let setup = Setup::new("v2");
    let unified = setup.dir.path().join("unified");
    let parent = unified.join("banger-7");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::write(unified.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
    // What the kernel shows in every group; the stand-in has them where the test made them.
    for d in [&unified, &parent] {
        std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
    }
    let mounts = setup.dir.path().join("mounts");
    std::fs::write(
        &mounts,
        format!(
            "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
             cgroup2 {} cgroup2 rw,nsdelegate 0 0\n",
            unified.display()
        ),
    )
    .unwrap();
    let out = setup.jail(
        &[
            "--cgroup-version",
            "2",
            "--parent-cgroup",
            "banger-7",
            "--cgroup",
            "memory.max=1048576",
            "--cgroup",
            "pids.max=64",
        ],
        Some(&mounts),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = setup.pid();
    // SAFETY: kill with a pid this test started and a signal number.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let group = parent.join(&setup.id);
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_owned();
    assert_eq!(read(group.join("memory.max")), "1048576");
    assert_eq!(read(group.join("pids.max")), "64");
    // The stand-in holds the last value written: the jailer's own pid, entering the group
    // (the kernel's file would list the jailed child after the fork).
    assert!(read(group.join("cgroup.procs")).parse::<u32>().is_ok());
    for d in [&unified, &parent] {
        assert_eq!(read(d.join("cgroup.subtree_control")), "+pids", "{d:?}");
    }
    assert!(!group.join("cgroup.subtree_control").exists());
}

/// A controller the v2 hierarchy does not offer is refused before any group is made; so
/// is a v2 request on a host table without a cgroup2 mount.
#[test]
fn on_a_v2_hierarchy_without_the_controller_it_refuses() {
    let setup = Setup::new("v2no");
    let unified = setup.dir.path().join("unified");
    std::fs::create_dir_all(&unified).unwrap();
    std::fs::write(unified.join("cgroup.controllers"), "hugetlb\n").unwrap();
    let mounts = setup.dir.path().join("mounts");
    std::fs::write(
        &mounts,
        format!("cgroup2 {} cgroup2 rw 0 0\n", unified.display()),
    )
    .unwrap();
    let args = [
        "--cgroup-version",
        "2",
        "--parent-cgroup",
        "banger-7",
        "--cgroup",
        "pids.max=64",
        "--cgroup",
        "memory.max=1048576",
    ];
    let out = setup.jail(&args, Some(&mounts));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("controller pids is unavailable"),
        "{stderr}"
    );
    assert!(!unified.join("banger-7").exists());
    std::fs::write(&mounts, "proc /proc proc rw 0 0\n").unwrap();
    let out = setup.jail(&args, Some(&mounts));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No hierarchy found"), "{stderr}");
}
