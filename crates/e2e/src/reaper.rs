//! Clean-up after test processes that died without running [`crate::Env`]'s `Drop`: a
//! killed `cargo test` (Ctrl-C, a timeout, an OOM kill) leaves each of its installations'
//! daemon, VMMs and virtiofsds running, holding memory and CPU for good.
//!
//! Each installation's root holds `owner.lock`, flocked by the test process for the
//! installation's life (the lock goes with the process, however it ends). A new
//! installation first sweeps its siblings: a root whose lock it can take belongs to a dead
//! test process, so every process started for it is killed and the root removed. Roots
//! without a lock file (made before this existed, or by something else) are left alone.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const LOCK: &str = "owner.lock";

/// The lock that marks `root` as owned by this process while it is held.
pub(crate) struct OwnerLock(#[allow(dead_code)] Flock<File>);

impl OwnerLock {
    /// Takes the lock on a fresh root. The file is locked under a temporary name and then
    /// renamed into place, so a sweeper never sees an unlocked lock file of a live root.
    pub(crate) fn take(root: &Path) -> anyhow::Result<OwnerLock> {
        let tmp = root.join(format!("{LOCK}.tmp"));
        let file = File::create(&tmp)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| anyhow::anyhow!("cannot lock {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, root.join(LOCK))?;
        Ok(OwnerLock(lock))
    }
}

/// Reaps every root under `parent` named `prefix*` whose owner process is gone.
pub(crate) fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let root = entry.path();
        let Ok(file) = File::open(root.join(LOCK)) else {
            continue;
        };
        // Held: its test process is alive. Taken: it died; the lock keeps a second sweeper
        // away while this one reaps.
        let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        reap(&root);
    }
}

/// Kills what was started for `root` (its daemon, and every process whose command line or
/// environment names a path inside it: VMMs, virtiofsds, fakes), then removes the root.
fn reap(root: &Path) {
    let mut needle = root.as_os_str().as_bytes().to_vec();
    needle.push(b'/');
    let mut victims = processes_naming(&needle);
    if let Some(daemon) = daemon_pid(root)
        && names(&format!("/proc/{daemon}/environ"), &needle)
    {
        victims.push(daemon);
    }
    victims.sort_unstable();
    victims.dedup();
    for pid in &victims {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while victims.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "e2e: reaped {} left by a test process that died: {} process(es) killed",
        root.display(),
        victims.len()
    );
    drop(crate::CgroupParents(root.join("state")));
    let _ = std::fs::remove_dir_all(root);
}

fn daemon_pid(root: &Path) -> Option<i32> {
    std::fs::read_to_string(root.join("run/bangerd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn processes_naming(needle: &[u8]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            names(&format!("/proc/{pid}/cmdline"), needle)
                || names(&format!("/proc/{pid}/environ"), needle)
        })
        .collect()
}

fn names(file: &str, needle: &[u8]) -> bool {
    std::fs::read(file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

/// Running (a zombie counts as gone: its parent, not us, must reap it).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    fn sleeper(root: &Path, by_argv: bool) -> Child {
        let mut cmd = Command::new("sh");
        if by_argv {
            // $0 names a path inside the root, as a VMM's drive arguments do.
            cmd.args(["-c", "sleep 600"]).arg(root.join("state/vm.img"));
        } else {
            cmd.args(["-c", "sleep 600"])
                .env("BANGER_STATE_DIR", root.join("state"));
        }
        cmd.spawn().unwrap()
    }

    fn gone(child: &mut Child) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_dead_owners_processes_are_killed_and_its_root_removed_a_live_one_is_untouched() {
        let parent = tempfile::tempdir().unwrap();
        let dead = parent.path().join("bgdead");
        let live = parent.path().join("bglive");
        let foreign = parent.path().join("bgforeign");
        for root in [&dead, &live, &foreign] {
            std::fs::create_dir_all(root.join("run")).unwrap();
        }
        // The dead owner: its lock file exists, nobody holds it.
        drop(OwnerLock::take(&dead).unwrap());
        let _held = OwnerLock::take(&live).unwrap();
        let mut vmm = sleeper(&dead, true);
        let mut daemon = sleeper(&dead, false);
        std::fs::write(dead.join("run/bangerd.pid"), daemon.id().to_string()).unwrap();
        let mut live_vmm = sleeper(&live, true);
        let mut foreign_vmm = sleeper(&foreign, true);

        sweep(parent.path(), "bg");

        assert!(gone(&mut vmm), "a process naming the dead root survived");
        assert!(gone(&mut daemon), "the dead root's daemon survived");
        assert!(!dead.exists(), "the dead root was not removed");
        assert!(
            live_vmm.try_wait().unwrap().is_none(),
            "a live root was reaped"
        );
        assert!(live.join(LOCK).exists());
        assert!(
            foreign_vmm.try_wait().unwrap().is_none() && foreign.exists(),
            "a root without a lock file was reaped"
        );
        for mut child in [live_vmm, foreign_vmm] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}
