//! The fake jailer end to end, as root: it builds the chroot layout, makes and enters the
//! v1 cgroup it is given, runs the fake Firecracker inside as the dropped uid in a new pid
//! namespace, and writes that process's host pid where the real jailer does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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
    let dir = tempfile::Builder::new()
        .prefix("fakejail")
        .tempdir_in("/tmp")
        .unwrap();
    let base = dir.path().join("jail");
    std::fs::create_dir(&base).unwrap();
    // The exec file: the fake itself under a name with `firecracker` in it.
    let exec = dir.path().join("firecracker");
    // cp(1) in a child, not std::fs::copy: a write descriptor held by this multi-threaded
    // process could be inherited by another test's fork, and exec'ing the copy would then
    // fail with ETXTBSY.
    assert!(
        std::process::Command::new("cp")
            .arg(support::FAKE)
            .arg(&exec)
            .status()
            .unwrap()
            .success()
    );
    let id = format!("t{}", std::process::id());
    let parent = format!("banger-fakejail-{}", std::process::id());
    let _groups = Groups(vec![pids_v1.join(&parent).join(&id), pids_v1.join(&parent)]);
    let chroot = base.join("firecracker").join(&id).join("root");
    // What the helper does before running it: the API socket's directory, the owner's.
    std::fs::create_dir_all(chroot.join("run")).unwrap();
    std::os::unix::fs::chown(chroot.join("run"), Some(UID), Some(UID)).unwrap();

    let status = Command::new(JAILER)
        .args(["--id", &id, "--exec-file"])
        .arg(&exec)
        .args([
            "--uid",
            &UID.to_string(),
            "--gid",
            &UID.to_string(),
            "--chroot-base-dir",
        ])
        .arg(&base)
        .args([
            "--cgroup-version",
            "1",
            "--cgroup",
            "pids.max=77",
            "--parent-cgroup",
            &parent,
        ])
        .args(["--new-pid-ns", "--daemonize"])
        .env("FAKE_FIRECRACKER_AGENT", support::agent_binary())
        .env("UNRELATED", "dropped")
        .status()
        .unwrap();
    assert!(status.success(), "the jailer failed: {status}");

    let pid_file = chroot.join("firecracker.pid");
    wait_for(&pid_file);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let socket = chroot.join("run/firecracker.socket");
    wait_for(&socket);
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
    let group = pids_v1.join(&parent).join(&id);
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
