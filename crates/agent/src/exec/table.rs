//! Every process the agent spawned for an exec, by pid, and the reaper.
//!
//! As PID 1 the agent must reap every zombie (orphans reparent to it), yet the exit status of
//! its own execs must reach their sessions. The reaper peeks at a waitable child with
//! `waitid(WNOWAIT)`, then takes the table lock before reaping it. Spawns hold the same lock,
//! so a child that dies at once is registered before it is reaped, and std's own `waitpid` on
//! a child whose `exec` failed (inside `spawn`) never races with the reaper.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use banger_agent_proto::Exited;

use crate::util::lock;

/// One spawned exec process.
pub struct ExecEntry {
    pub pid: i32,
    status: Mutex<Option<Exited>>,
    /// Write end of the pipe the exec's output pump polls: dropped once the process is reaped.
    done: Mutex<Option<OwnedFd>>,
}

impl ExecEntry {
    /// How the process ended, once reaped.
    pub fn status(&self) -> Option<Exited> {
        *lock(&self.status)
    }
}

pub struct ExecTable {
    map: Mutex<HashMap<i32, Arc<ExecEntry>>>,
    reaped: Condvar,
}

/// The agent's one table (the reaper is process-wide, so the table is too).
pub fn table() -> &'static ExecTable {
    static TABLE: OnceLock<ExecTable> = OnceLock::new();
    TABLE.get_or_init(|| ExecTable {
        map: Mutex::new(HashMap::new()),
        reaped: Condvar::new(),
    })
}

impl ExecTable {
    /// Runs `spawn` (which returns the new child's pid) with the table locked and registers
    /// the child. Returns its entry and the read end of its "reaped" pipe.
    pub fn spawn_registered<T>(
        &self,
        spawn: impl FnOnce() -> io::Result<(i32, T)>,
    ) -> io::Result<(Arc<ExecEntry>, OwnedFd, T)> {
        let (done_rx, done_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let mut map = lock(&self.map);
        let (pid, spawned) = spawn()?;
        let entry = Arc::new(ExecEntry {
            pid,
            status: Mutex::new(None),
            done: Mutex::new(Some(done_tx)),
        });
        map.insert(pid, Arc::clone(&entry));
        Ok((entry, done_rx, spawned))
    }

    /// Runs `spawn` with the table locked, without registering the child: for processes
    /// whose status nobody collects (services). std's `spawn` waits for a child whose
    /// `exec` failed (a missing program) and panics if that child is gone; the reaper takes
    /// this lock before it reaps, so it cannot take that child first.
    pub fn spawn_guarded<T>(&self, spawn: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let _map = lock(&self.map);
        spawn()
    }

    /// Reaps every child that has exited, recording the status of registered execs.
    pub fn reap(&self) {
        loop {
            // SAFETY: siginfo_t is plain old data; all-zero is valid for waitid to fill.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            // SAFETY: `info` is a valid, writable siginfo_t.
            let ret = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) };
            if ret == -1 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return; // ECHILD: no children at all.
            }
            // SAFETY: waitid succeeded, so `info` holds a SIGCHLD siginfo (or zero si_pid).
            let pid = unsafe { info.si_pid() };
            if pid == 0 {
                return;
            }
            let mut map = lock(&self.map);
            let mut status = 0;
            // SAFETY: `status` is a valid, writable int.
            let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if reaped != pid {
                continue; // Reaped by std inside a failed spawn while we waited for the lock.
            }
            if let Some(entry) = map.remove(&pid) {
                *lock(&entry.status) = Some(decode_status(status));
                lock(&entry.done).take();
                self.reaped.notify_all();
            }
        }
    }

    /// Sends `signo` to the process group and the process of every registered exec.
    pub fn kill_all(&self, signo: i32) {
        let pids: Vec<i32> = lock(&self.map).keys().copied().collect();
        for pid in pids {
            let _ = kill_group(pid, signo);
        }
    }

    /// Waits until none of `pids` is registered any more (all reaped), or `timeout` passes.
    pub fn wait_reaped(&self, pids: &[i32], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut map = lock(&self.map);
        while pids.iter().any(|pid| map.contains_key(pid)) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            map = self
                .reaped
                .wait_timeout(map, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poison| poison.into_inner().0);
        }
        true
    }
}

/// Signals the process group led by `pid` (execs lead their own group), and `pid` itself in
/// case it left the group. Returns the error of the group kill when neither worked.
pub fn kill_group(pid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: kill has no memory effects; bad pids or signals come back as errors.
    let group = unsafe { libc::kill(-pid, signo) };
    let group_err = io::Error::last_os_error();
    // SAFETY: as above.
    let single = unsafe { libc::kill(pid, signo) };
    if group == 0 || single == 0 {
        Ok(())
    } else {
        Err(group_err)
    }
}

fn decode_status(status: i32) -> Exited {
    if libc::WIFEXITED(status) {
        Exited {
            code: Some(libc::WEXITSTATUS(status)),
            signal: None,
        }
    } else if libc::WIFSIGNALED(status) {
        Exited {
            code: None,
            signal: Some(libc::WTERMSIG(status)),
        }
    } else {
        Exited {
            code: None,
            signal: None,
        }
    }
}
