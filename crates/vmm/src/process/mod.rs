//! VMM processes that are not our children: identify, watch and signal them safely.
//!
//! A VMM outlives the daemon that launched it, so the daemon cannot `waitpid` it and a bare
//! pid may be reused by an unrelated process after the VM exits. A process is therefore named
//! by its pid *and* its start time (field 22 of `/proc/<pid>/stat`); every check and every
//! signal goes through a pidfd opened *before* the identity is re-checked, so the check and
//! the action refer to the same process.
//!
//! Finding such processes without a record (by binary and directory, or by root) is in
//! `find.rs`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

mod find;

pub use find::{Marks, find_marked, find_rooted_at, find_using_dir};

/// A process, identified so that pid reuse cannot fool us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot when the process started.
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of a child just spawned (`pid` from `Child::id`, 0 when it has already
    /// been reaped): its start time read now, 0 when it cannot be read.
    pub fn of_child(pid: u32) -> ProcessIdentity {
        let start_time = read_stat(pid)
            .ok()
            .flatten()
            .map(|s| s.start_time)
            .unwrap_or(0);
        ProcessIdentity { pid, start_time }
    }
}

/// The fields of `/proc/<pid>/stat` banger uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: char,
    /// Field 22.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether the thread this line describes has exited (a zombie its parent has not
    /// collected yet). For `/proc/<pid>/stat` that is the *main* thread only: a process whose
    /// main thread has ended runs on while any other thread does, holding its files and their
    /// locks. Whether the process is gone is [`process_exited`].
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Whether process `pid`, whose `/proc/<pid>/stat` read `stat`, has exited as a whole: its
/// main thread is a zombie *and* no other thread is left. A VMM's main thread can end first
/// (QEMU's or any multi-threaded process's, when SIGKILL tears its threads down one by one,
/// or when it calls `pthread_exit`); until its last thread is gone its files stay open, so
/// its pid file stays locked and its sockets stay bound. Declaring it gone earlier lets the
/// next launch find the pid file locked.
pub fn process_exited(pid: u32, stat: &ProcStat) -> bool {
    process_exited_at(Path::new("/proc"), pid, stat)
}

fn process_exited_at(proc_root: &Path, pid: u32, stat: &ProcStat) -> bool {
    stat.has_exited() && !has_other_threads(proc_root, pid)
}

/// Whether `/proc/<pid>/task` lists a thread other than the main one. A thread is listed until
/// it is released, which is after it has closed its share of the files: none listed means none
/// holds anything.
fn has_other_threads(proc_root: &Path, pid: u32) -> bool {
    let main = pid.to_string();
    match std::fs::read_dir(proc_root.join(&main).join("task")) {
        Ok(entries) => entries
            .flatten()
            .any(|entry| entry.file_name().to_str() != Some(main.as_str())),
        // The process vanished (reaped) meanwhile: no thread is left.
        Err(_) => false,
    }
}

/// Parse the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself contain spaces and `)`, so fields are counted from the *last* `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `state` was field 3; field 22 is 19 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Read `/proc/<pid>/stat`; `Ok(None)` when no such process exists.
pub fn read_stat(pid: u32) -> io::Result<Option<ProcStat>> {
    read_stat_at(Path::new("/proc"), pid)
}

fn read_stat_at(proc_root: &Path, pid: u32) -> io::Result<Option<ProcStat>> {
    let path = proc_root.join(pid.to_string()).join("stat");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unparsable {}", path.display()),
            )
        }),
        // ESRCH: the process vanished between opening and reading.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The kernel's boot id: start times are only comparable within one boot.
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// Whether the identified process still runs: it exists with the same start time, and has a
/// thread that has not exited (see [`process_exited`]).
pub fn is_running(id: ProcessIdentity) -> bool {
    matches!(read_stat(id.pid), Ok(Some(st)) if st.start_time == id.start_time && !process_exited(id.pid, &st))
}

/// A pidfd for a process whose identity was verified after the fd was opened.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    id: ProcessIdentity,
}

impl PidFd {
    /// Open a pidfd for `id`. `Ok(None)` when that process no longer runs (exited, or the pid
    /// now belongs to someone else). Fails with `Unsupported` on kernels without pidfd (< 5.3).
    pub fn open(id: ProcessIdentity) -> io::Result<Option<PidFd>> {
        let Ok(pid) = libc::pid_t::try_from(id.pid) else {
            return Ok(None);
        };
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
        // passed.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                Some(libc::ENOSYS) => Err(io::Error::new(io::ErrorKind::Unsupported, err)),
                _ => Err(err),
            };
        }
        // The syscall returned a non-negative int-sized fd.
        let raw = raw as libc::c_int;
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Checked after opening: if the pid was reused before the open, the start time differs;
        // if the process exits after this check, the pidfd still refers to it and not to a
        // successor, so signals cannot hit a stranger.
        Ok(is_running(id).then_some(PidFd { fd, id }))
    }

    pub fn identity(&self) -> ProcessIdentity {
        self.id
    }

    /// Send `signal` to the process (a no-op error `ESRCH` once it has exited).
    pub fn send_signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, a null siginfo (the
        // kernel fills it as for kill(2)) and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Wait until the process exits. A pidfd becomes readable when the process has
    /// terminated — its main thread a zombie and every other thread gone, so its files are
    /// closed and their locks released — whether or not its parent has reaped it. `Ok(false)`
    /// on timeout.
    pub async fn wait(self, timeout: Duration) -> io::Result<bool> {
        // SAFETY: `self.fd` is an open OwnedFd moved into the AsyncFd, which owns it (and so
        // keeps the same descriptor open) until it is dropped.
        let afd = unsafe { AsyncFd::register_with_interest(self.fd, Interest::READABLE) }?;
        match tokio::time::timeout(timeout, afd.readable()).await {
            Ok(ready) => {
                // A pidfd stays readable once the process has exited: nothing to clear.
                let _exited = ready?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }
}

/// Wait until `id` has exited; `Ok(false)` if it still runs after `timeout`.
///
/// Uses a pidfd; on kernels without one, polls `/proc` every 20 ms.
pub async fn wait_exit(id: ProcessIdentity, timeout: Duration) -> io::Result<bool> {
    match PidFd::open(id) {
        Ok(None) => Ok(true),
        Ok(Some(pidfd)) => pidfd.wait(timeout).await,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => poll_exit(id, timeout).await,
        Err(e) => Err(e),
    }
}

async fn poll_exit(id: ProcessIdentity, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_running(id) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Send `signal` to `id` if it still runs. `Ok(false)` when it had already gone.
pub fn signal(id: ProcessIdentity, signal: libc::c_int) -> io::Result<bool> {
    match PidFd::open(id) {
        Ok(None) => Ok(false),
        Ok(Some(pidfd)) => match pidfd.send_signal(signal) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            // No pidfd: check, then kill. A pid reused in between is the residual risk.
            if !is_running(id) {
                return Ok(false);
            }
            let pid = libc::pid_t::try_from(id.pid)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
            // SAFETY: kill(2) takes plain integers.
            if unsafe { libc::kill(pid, signal) } < 0 {
                let err = io::Error::last_os_error();
                return if err.raw_os_error() == Some(libc::ESRCH) {
                    Ok(false)
                } else {
                    Err(err)
                };
            }
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let tail = fields[1..].join(" ");
        let text = format!("4242 (qemu) (x y)) S {tail}\n");
        let st = parse_stat(&text).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 22);
        assert!(!st.has_exited());
        let zombie = format!("1 (a) Z {tail}");
        assert!(parse_stat(&zombie).unwrap().has_exited());
        assert_eq!(parse_stat("1 (a) S 1 2"), None);
        assert_eq!(parse_stat("no parens"), None);
    }

    #[test]
    fn reads_own_stat_and_rejects_wrong_start_time() {
        let me = std::process::id();
        let st = read_stat(me).unwrap().unwrap();
        assert!(is_running(ProcessIdentity {
            pid: me,
            start_time: st.start_time
        }));
        assert!(!is_running(ProcessIdentity {
            pid: me,
            start_time: st.start_time + 1
        }));
        assert!(
            PidFd::open(ProcessIdentity {
                pid: me,
                start_time: st.start_time + 1
            })
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn a_zombie_main_thread_with_threads_left_is_still_running() {
        let proc_root = tempfile::tempdir().unwrap();
        let tasks = proc_root.path().join("4242/task");
        std::fs::create_dir_all(tasks.join("4242")).unwrap();
        let zombie = ProcStat {
            state: 'Z',
            start_time: 7,
        };
        let running = ProcStat {
            state: 'S',
            start_time: 7,
        };
        assert!(process_exited_at(proc_root.path(), 4242, &zombie));
        assert!(!process_exited_at(proc_root.path(), 4242, &running));
        std::fs::create_dir(tasks.join("4243")).unwrap();
        assert!(!process_exited_at(proc_root.path(), 4242, &zombie));
        // Reaped meanwhile: its task directory is gone with it.
        assert!(process_exited_at(proc_root.path(), 1, &zombie));
    }

    #[test]
    fn missing_process_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_stat_at(dir.path(), 12345).unwrap(), None);
    }

    #[tokio::test]
    async fn waits_for_a_process_to_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let st = read_stat(pid).unwrap().unwrap();
        let id = ProcessIdentity {
            pid,
            start_time: st.start_time,
        };
        assert!(!wait_exit(id, Duration::from_millis(50)).await.unwrap());
        assert!(signal(id, libc::SIGTERM).unwrap());
        // The child stays a zombie until reaped: the pidfd must report the exit anyway.
        assert!(wait_exit(id, Duration::from_secs(10)).await.unwrap());
        assert!(!is_running(id));
        child.wait().unwrap();
        assert!(!signal(id, libc::SIGTERM).unwrap());
    }
}
