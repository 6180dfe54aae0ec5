//! The helper's per-VM v1 cgroups on this host's real hierarchies (CI hosts are hybrid, as
//! root): limits written, the group handed to the owner through `cgroup.procs`/`tasks`
//! only, the owner's process moving itself in, removal refused while it runs and complete
//! after. Every group made is removed, even when an assertion fails.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use banger_helper::Executor;
use banger_helper_proto::{FailureKind, JailId, JailLimits, Reply, Verb};
use banger_system::RealRunner;

const OWNER: u32 = 65534;

struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

#[test]
fn a_vms_v1_groups_are_made_handed_to_the_owner_and_removed() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the helper runs as root: run this test as root (CI does)"
    );
    assert!(
        Path::new("/sys/fs/cgroup/memory/tasks").exists()
            && Path::new("/sys/fs/cgroup/pids/tasks").exists(),
        "this test needs the cgroup v1 memory and pids hierarchies (CI's hybrid hosts have them)"
    );
    let executor = Executor::new(OWNER, Arc::new(RealRunner), None);
    let id = JailId::new(&format!("cgtest{}", std::process::id())).unwrap();
    let limits = JailLimits::new(96 << 20, 33).unwrap();
    let dirs = match executor.execute(Verb::EnsureVmCgroup {
        id: id.clone(),
        limits,
    }) {
        Ok(Reply::VmCgroup { dirs }) => dirs,
        other => panic!("{other:?}"),
    };
    let _cleanup = Cleanup(dirs.clone());
    assert_eq!(dirs.len(), 2);
    let memory = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/memory"))
        .unwrap();
    let pids = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .unwrap();
    assert!(memory.ends_with(format!("banger-{OWNER}/{}", id.as_str())));
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_owned();
    assert_eq!(
        read(memory.join("memory.limit_in_bytes")),
        (96u64 << 20).to_string()
    );
    assert_eq!(read(pids.join("pids.max")), "33");
    for dir in &dirs {
        for name in ["cgroup.procs", "tasks"] {
            assert_eq!(
                std::fs::metadata(dir.join(name)).unwrap().uid(),
                OWNER,
                "{name}"
            );
        }
        // The limits stay root's: the owner cannot raise them.
        let limit = if dir == memory {
            "memory.limit_in_bytes"
        } else {
            "pids.max"
        };
        assert_eq!(std::fs::metadata(dir.join(limit)).unwrap().uid(), 0);
    }
    // Asking again is not an error (idempotent).
    assert!(
        executor
            .execute(Verb::EnsureVmCgroup {
                id: id.clone(),
                limits
            })
            .is_ok()
    );

    // The owner's process moves itself in, as a VMM's child does before exec.
    let script = format!(
        "echo $$ > {m}/cgroup.procs && echo $$ > {p}/cgroup.procs && cat /proc/self/cgroup",
        m = memory.display(),
        p = pids.display()
    );
    let mut child = Command::new("setpriv")
        .args([
            "--reuid",
            &OWNER.to_string(),
            "--regid",
            &OWNER.to_string(),
            "--clear-groups",
        ])
        .args(["sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap_or(0);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the owner could not move itself in: {out}"
    );
    let group = format!("banger-{OWNER}/{}", id.as_str());
    assert!(
        out.lines()
            .any(|l| l.contains(":memory:") && l.contains(&group)),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(":pids:") && l.contains(&group)),
        "{out}"
    );

    // Busy: a process of the owner's inside.
    let mut sleeper = Command::new("setpriv")
        .args([
            "--reuid",
            &OWNER.to_string(),
            "--regid",
            &OWNER.to_string(),
            "--clear-groups",
        ])
        .args([
            "sh",
            "-c",
            &format!("echo $$ > {}/cgroup.procs && exec sleep 30", pids.display()),
        ])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read(pids.join("cgroup.procs")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sleeper never joined"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let busy = executor
        .execute(Verb::RemoveVmCgroup { id: id.clone() })
        .unwrap_err();
    assert_eq!(busy.kind, FailureKind::Conflict, "{busy}");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match executor.execute(Verb::RemoveVmCgroup { id: id.clone() }) {
            Ok(_) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(dirs.iter().all(|d| !d.exists()));
    // Removing what is gone is not an error.
    assert!(executor.execute(Verb::RemoveVmCgroup { id }).is_ok());
}
