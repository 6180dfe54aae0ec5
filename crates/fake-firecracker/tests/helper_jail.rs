//! The root helper's `launch_jailed` and `release_jail` verbs against the fake jailer, as
//! root on this host: binaries and files validated with every failure's reason, the
//! chroot (with its `fc-drives/` for the drives' relocatable names) and v1 cgroups made, the fake Firecracker running as the owner in its chroot with
//! its API answering at the path the helper hands back, and the one release path removing
//! it all. Over the wire, a uid other than the owner is refused.

use crate::jail_lab;
use crate::support;

use jail_lab::{Lab, OWNER};

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banger_helper::{Executor, HelperClient, Privileged, server};
use banger_helper_proto::{
    CleanPath, ConsoleOn, Failure, FailureKind, JailFile, JailFileName, JailId, JailLaunch,
    JailLimits, Reply, Verb,
};
use banger_system::RealRunner;

fn file(name: &str, source: &Path) -> JailFile {
    JailFile {
        name: JailFileName::new(name).unwrap(),
        source: CleanPath::new(source).unwrap(),
    }
}

fn launch(id: &str, files: Vec<JailFile>, limits: Option<JailLimits>) -> JailLaunch {
    JailLaunch::new(JailId::new(id).unwrap(), files, None, limits).unwrap()
}

fn release(executor: &Executor, id: &JailId) -> Result<(), Failure> {
    executor
        .execute(Verb::ReleaseJail { id: id.clone() })
        .map(|_| ())
}

fn refused(executor: &Executor, l: JailLaunch) -> Failure {
    executor
        .execute(Verb::LaunchJailed { launch: l })
        .unwrap_err()
}

#[test]
fn a_jailed_firecracker_runs_as_the_owner_and_is_released_whole() {
    let lab = Lab::new();
    let executor = lab.executor();
    let kernel = lab.owned("vmlinux");
    let disk = lab.owned("work.ext4");
    let state = lab.owned("snapshot.vmstate");
    let console = lab.fifo("console.fifo");
    let id = format!("t{}", std::process::id());
    let l = JailLaunch::new(
        JailId::new(&id).unwrap(),
        vec![
            file("vmlinux", &kernel),
            file("console.fifo", &console),
            file("fc-drives/work", &disk),
            file("snapshot.vmstate", &state),
        ],
        Some((JailFileName::new("console.fifo").unwrap(), ConsoleOn::Stdin)),
        Some(JailLimits::new(256 << 20, 128).unwrap()),
    )
    .unwrap();
    let jailed = match executor.execute(Verb::LaunchJailed { launch: l.clone() }) {
        Ok(Reply::Jailed(j)) => j,
        other => panic!("{other:?}"),
    };
    // Whatever happens below, nothing is left behind.
    struct Release<'a>(&'a Executor, JailId, u32);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            // SAFETY: kill with a pid this test started and a signal number.
            unsafe { libc::kill(self.2 as i32, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while release(self.0, &self.1).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let guard = Release(&executor, l.id.clone(), jailed.pid);

    let expected_root = lab
        .setup
        .jail_root
        .join(OWNER.to_string())
        .join("firecracker")
        .join(&id)
        .join("root");
    assert_eq!(jailed.root, expected_root);
    assert_eq!(
        jailed.api_socket,
        expected_root.join("run/firecracker.socket")
    );
    // Connectable, not merely present: the file exists between the fake's bind and listen.
    support::wait_listening(&jailed.api_socket);
    let (code, body) = support::call(&jailed.api_socket, "GET", "/", "");
    assert_eq!(code, 200, "{body}");
    // The kernel the daemon names by its jail path is the owner's file, linked.
    assert_eq!(
        std::fs::metadata(expected_root.join("vmlinux"))
            .unwrap()
            .ino(),
        std::fs::metadata(&kernel).unwrap().ino()
    );
    // A drive at its relocatable name, in the helper's own `fc-drives` (root's, 0755), and
    // a snapshot's state at the top: each the owner's file, linked.
    let drives = std::fs::symlink_metadata(expected_root.join("fc-drives")).unwrap();
    assert!(drives.is_dir() && drives.uid() == 0 && drives.mode() & 0o7777 == 0o755);
    for (inside, host) in [("fc-drives/work", &disk), ("snapshot.vmstate", &state)] {
        assert_eq!(
            std::fs::metadata(expected_root.join(inside)).unwrap().ino(),
            std::fs::metadata(host).unwrap().ino(),
            "{inside}"
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", jailed.pid)).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uids.split_whitespace()
            .skip(1)
            .all(|u| u == OWNER.to_string()),
        "{uids}"
    );
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.trim_end().ends_with("\t1"), "{nspid}");
    // Found by its chroot, as stray detection finds it (it names no host path, and its
    // binary is the jail's copy).
    let rooted = banger_vmm::process::find_rooted_at(&jailed.root).unwrap();
    assert!(
        rooted.iter().any(|p| p.pid == jailed.pid),
        "{rooted:?} lacks {}",
        jailed.pid
    );
    // Its limits, in the owner's v1 groups.
    if jailed.cgroups.is_empty() {
        panic!("this host has the v1 memory and pids hierarchies; the jail got no cgroups");
    }
    for dir in &jailed.cgroups {
        assert!(
            dir.to_str()
                .unwrap()
                .contains(&format!("banger-{OWNER}/{id}")),
            "{dir:?}"
        );
        let tasks = std::fs::read_to_string(dir.join("tasks")).unwrap();
        assert!(
            tasks.lines().any(|t| t == jailed.pid.to_string()),
            "{tasks}"
        );
    }
    let pids = jailed
        .cgroups
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "128"
    );

    // The same id twice is a conflict; releasing a running jail is refused.
    assert_eq!(refused(&executor, l.clone()).kind, FailureKind::Conflict);
    let busy = release(&executor, &l.id).unwrap_err();
    assert!(busy.to_string().contains("still runs"), "{busy}");

    // The owner (the daemon) stops it by pid; the one release path removes everything.
    // SAFETY: kill with the pid the helper returned and a signal number.
    unsafe { libc::kill(jailed.pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match release(&executor, &l.id) {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!expected_root.parent().unwrap().exists());
    assert!(jailed.cgroups.iter().all(|d| !d.exists()));
    assert!(kernel.exists(), "the owner's own file stays");
    drop(guard);
}

#[test]
fn binaries_and_files_that_fail_the_rules_are_refused_with_their_reason() {
    let lab = Lab::new();
    let kernel = lab.owned("vmlinux");
    let good = || launch("refusals", vec![file("vmlinux", &kernel)], None);

    // Each binary failure, for the jailer and for Firecracker.
    for which in ["jailer", "firecracker"] {
        let path = lab.dir.path().join("bin").join(which);
        let executor = lab.executor();
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o775)).unwrap();
        let e = refused(&executor, good());
        assert_eq!(e.kind, FailureKind::NotPermitted, "{e}");
        assert!(e.message.contains("writable"), "{which}: {e}");
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o755)).unwrap();

        std::os::unix::fs::chown(&path, Some(OWNER), None).unwrap();
        let e = refused(&executor, good());
        assert!(
            e.message.contains("owned by uid") || e.message.contains("root"),
            "{which}: {e}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();

        let real = path.with_extension("real");
        std::fs::rename(&path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let e = refused(&executor, good());
        assert!(e.message.contains("link"), "{which}: {e}");
        std::fs::remove_file(&path).unwrap();
        let e = refused(&executor, good());
        assert!(e.message.contains("cannot inspect"), "{which}: {e}");
        std::fs::rename(&real, &path).unwrap();

        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o644)).unwrap();
        let e = refused(&executor, good());
        assert!(e.message.contains("executable"), "{which}: {e}");
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o755)).unwrap();
    }
    let executor = lab.executor();
    // Files: outside the state, another uid's, a link, a directory.
    let outside = lab.dir.path().join("outside");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::chown(&outside, Some(OWNER), Some(OWNER)).unwrap();
    let e = refused(&executor, launch("f1", vec![file("x", &outside)], None));
    assert!(e.message.contains("not below banger's state"), "{e}");
    let roots = lab.setup.state_dir.join("roots");
    std::fs::write(&roots, b"x").unwrap();
    let e = refused(&executor, launch("f2", vec![file("x", &roots)], None));
    assert!(e.message.contains("belongs to uid 0"), "{e}");
    let link = lab.setup.state_dir.join("link");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let e = refused(&executor, launch("f3", vec![file("x", &link)], None));
    assert!(
        e.message.contains("cannot open") || e.message.contains("link"),
        "{e}"
    );
    let e = refused(
        &executor,
        launch("f4", vec![file("x", &lab.setup.state_dir)], None),
    );
    assert!(e.message.contains("not a regular file"), "{e}");
    // A drive name that is a link, in the drive directory, is refused like any other.
    let e = refused(
        &executor,
        launch("f5", vec![file("fc-drives/x", &link)], None),
    );
    assert!(
        e.message.contains("cannot open") || e.message.contains("link"),
        "{e}"
    );
    // Nothing of a refused launch stays.
    let jails = lab
        .setup
        .jail_root
        .join(OWNER.to_string())
        .join("firecracker");
    let left = std::fs::read_dir(&jails).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "refused launches left jails behind");
    // A helper without a jailer refuses the verb.
    let plain = Executor::new(OWNER, Arc::new(RealRunner), None);
    assert_eq!(refused(&plain, good()).kind, FailureKind::Unsupported);
}

#[test]
fn over_the_wire_another_uid_is_refused() {
    let lab = Lab::new();
    let socket = lab.dir.path().join("helper.sock");
    let listener = server::bind(&socket, OWNER).unwrap();
    let executor = Arc::new(lab.executor());
    std::thread::spawn(move || server::serve(listener, executor));
    let kernel = lab.owned("vmlinux");
    // Root is not the owner: refused before the verb runs.
    let err = HelperClient::new(&socket)
        .launch_jailed(&launch("wire", vec![file("vmlinux", &kernel)], None))
        .unwrap_err();
    assert_eq!(err.kind(), Some(FailureKind::NotPermitted), "{err}");
    assert!(!lab.setup.jail_root.exists(), "nothing was made");
}
