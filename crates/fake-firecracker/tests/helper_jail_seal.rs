//! The root helper seals what a jailed Firecracker only reads: the kernel, the initrd and a
//! snapshot's state and memory become root's and read-only (the same inode the owner's path
//! names, linked into the chroot), so the Firecracker, which runs as the owner, cannot write
//! what later VMs boot or restore from; the drives stay the owner's and writable. A sealed
//! file is taken again as it is; a root-owned file others may write, or a root-owned drive,
//! is refused with its reason. As root on this host, against the fake jailer.

use crate::jail_lab;

use jail_lab::{Lab, OWNER};

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use banger_helper::Executor;
use banger_helper_proto::{
    CleanPath, FailureKind, JAIL_INITRD, JAIL_KERNEL, JAIL_READ_ONLY_FILES, JAIL_SNAPSHOT_MEMORY,
    JAIL_SNAPSHOT_STATE, JailFile, JailFileName, JailId, JailLaunch, Jailed, Reply, Verb,
};

fn file(name: &str, source: &Path) -> JailFile {
    JailFile {
        name: JailFileName::new(name).unwrap(),
        source: CleanPath::new(source).unwrap(),
    }
}

fn launch(id: &str, files: Vec<JailFile>) -> JailLaunch {
    JailLaunch::new(JailId::new(id).unwrap(), files, None, None).unwrap()
}

/// Kills the jailed Firecracker and releases its jail, whatever the test did.
struct Running<'a> {
    executor: &'a Executor,
    id: JailId,
    jailed: Jailed,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // SAFETY: kill with the pid the helper returned and a signal number.
        unsafe { libc::kill(self.jailed.pid as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .executor
            .execute(Verb::ReleaseJail {
                id: self.id.clone(),
            })
            .is_err()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start<'a>(executor: &'a Executor, l: JailLaunch) -> Running<'a> {
    let id = l.id.clone();
    match executor.execute(Verb::LaunchJailed { launch: l }) {
        Ok(Reply::Jailed(jailed)) => Running {
            executor,
            id,
            jailed,
        },
        other => panic!("{other:?}"),
    }
}

/// `setpriv` running what follows as the owner (uid and gid `nobody`, no other groups).
fn as_owner() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        &OWNER.to_string(),
        "--regid",
        &OWNER.to_string(),
        "--clear-groups",
        "--",
    ]);
    cmd
}

/// Whether the owner may open `path` for writing: a real open by a process running as the
/// owner, the path passed as an argument, never in the script.
fn owner_can_write(path: &Path) -> bool {
    as_owner()
        .args(["sh", "-c", ": >> \"$1\"", "sh"])
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("setpriv (util-linux)")
        .success()
}

#[test]
fn what_firecracker_only_reads_is_sealed_and_its_drives_stay_the_owners() {
    let lab = Lab::new();
    let executor = lab.executor();
    let kernel = lab.owned("vmlinux");
    let initrd = lab.owned("initrd.cpio");
    let state = lab.owned("vmstate");
    let memory = lab.owned("memory");
    let drive = lab.owned("work.ext4");
    for path in [&kernel, &state, &drive] {
        assert!(
            owner_can_write(path),
            "{}: the lab's files start writable",
            path.display()
        );
    }
    let files = || {
        vec![
            file(JAIL_KERNEL, &kernel),
            file(JAIL_INITRD, &initrd),
            file(JAIL_SNAPSHOT_STATE, &state),
            file(JAIL_SNAPSHOT_MEMORY, &memory),
            file("fc-drives/work", &drive),
        ]
    };
    let id = format!("seal{}", std::process::id());
    let first = start(&executor, launch(&id, files()));
    let root = &first.jailed.root;
    for (name, host) in [
        (JAIL_KERNEL, &kernel),
        (JAIL_INITRD, &initrd),
        (JAIL_SNAPSHOT_STATE, &state),
        (JAIL_SNAPSHOT_MEMORY, &memory),
    ] {
        let meta = std::fs::metadata(host).unwrap();
        assert_eq!(meta.uid(), 0, "{name} is root's");
        assert_eq!(meta.mode() & 0o7777, 0o444, "{name} is read-only");
        assert_eq!(
            std::fs::metadata(root.join(name)).unwrap().ino(),
            meta.ino(),
            "{name}: the chroot's file is the owner's path's inode"
        );
        assert!(
            !owner_can_write(host),
            "{name}: the owner can no longer write it"
        );
        assert_eq!(std::fs::read(host).unwrap(), b"kernel", "{name}: unchanged");
    }
    let meta = std::fs::metadata(&drive).unwrap();
    assert_eq!(meta.uid(), OWNER, "the drive stays the owner's");
    assert!(owner_can_write(&drive), "and writable");
    drop(first);

    // A second VM of the same kernel and snapshot: the sealed files are taken as they are.
    let second = start(&executor, launch(&format!("{id}b"), files()));
    assert_eq!(
        std::fs::metadata(second.jailed.root.join(JAIL_KERNEL))
            .unwrap()
            .ino(),
        std::fs::metadata(&kernel).unwrap().ino()
    );
    drop(second);
    // The owner may still remove a sealed file (its directory is the owner's).
    assert!(
        as_owner()
            .args(["rm", "-f"])
            .arg(&state)
            .status()
            .unwrap()
            .success()
    );
    assert!(!state.exists());
}

#[test]
fn root_files_others_may_write_and_root_owned_drives_are_refused() {
    let lab = Lab::new();
    let executor = lab.executor();
    let loose = lab.setup.state_dir.join("loose");
    std::fs::write(&loose, b"x").unwrap();
    std::fs::set_permissions(&loose, PermissionsExt::from_mode(0o666)).unwrap();
    let e = executor
        .execute(Verb::LaunchJailed {
            launch: launch("loose", vec![file(JAIL_KERNEL, &loose)]),
        })
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::NotPermitted, "{e}");
    assert!(e.message.contains("others may write"), "{e}");
    // Root's with a set-id bit is no sealed file.
    std::fs::set_permissions(&loose, PermissionsExt::from_mode(0o4444)).unwrap();
    let e = executor
        .execute(Verb::LaunchJailed {
            launch: launch("setid", vec![file(JAIL_KERNEL, &loose)]),
        })
        .unwrap_err();
    assert!(e.message.contains("not a plain file"), "{e}");
    // Root's and read-only is what a seal leaves, but a drive must be the owner's.
    std::fs::set_permissions(&loose, PermissionsExt::from_mode(0o444)).unwrap();
    let e = executor
        .execute(Verb::LaunchJailed {
            launch: launch("rootdrive", vec![file("fc-drives/work", &loose)]),
        })
        .unwrap_err();
    assert!(e.message.contains("belongs to uid 0"), "{e}");
    // Another user's file is not sealed for the owner.
    let theirs = lab.setup.state_dir.join("theirs");
    std::fs::write(&theirs, b"x").unwrap();
    std::os::unix::fs::chown(&theirs, Some(OWNER - 1), Some(OWNER - 1)).unwrap();
    let e = executor
        .execute(Verb::LaunchJailed {
            launch: launch("theirs", vec![file(JAIL_SNAPSHOT_MEMORY, &theirs)]),
        })
        .unwrap_err();
    assert!(e.message.contains("not to the owner"), "{e}");
    assert_eq!(
        std::fs::metadata(&theirs).unwrap().uid(),
        OWNER - 1,
        "left as it was"
    );
    // Every name the protocol calls read-only is one the helper seals.
    for name in JAIL_READ_ONLY_FILES {
        assert!(JailFileName::new(name).unwrap().read_only(), "{name}");
    }
    assert!(!JailFileName::new("fc-drives/kernel").unwrap().read_only());
}
