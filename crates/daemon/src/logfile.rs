//! The daemon's own log. In dev mode the CLI starts the daemon with stderr appended to
//! `<state>/daemon.log`; the daemon then keeps that file under `[logs] daemon_max` (with
//! `daemon.log.1`, see `banger_system::rotate`) and, on each rotation, points its stderr at
//! the new file so panics and stray prints follow. Under systemd (stderr is the journal) or
//! on a terminal, lines go to stderr as they are: journald has its own limits.
//!
//! Size is the backstop; the sources are bounded too: anything a guest can trigger is
//! counted and summarised rather than logged per event (see `vms/agent.rs`).

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use banger_system::rotate::RotatingFile;

/// Where log lines go.
#[derive(Clone)]
pub struct DaemonLog {
    file: Option<Arc<Mutex<Rotating>>>,
}

struct Rotating {
    log: RotatingFile,
    /// Rotations already applied to stderr.
    applied: u64,
}

impl DaemonLog {
    /// Manage `path` if stderr is that very file; otherwise pass lines through to stderr.
    pub fn for_stderr(path: &Path, max_bytes: u64) -> DaemonLog {
        let stderr_is_log = match (
            fd_identity(io::stderr().as_raw_fd()),
            std::fs::metadata(path),
        ) {
            (Some(ours), Ok(meta)) => ours == (meta.dev(), meta.ino()),
            _ => false,
        };
        if !stderr_is_log {
            return DaemonLog { file: None };
        }
        match RotatingFile::open(path, max_bytes) {
            Ok(log) => {
                let mut rotating = Rotating { log, applied: 0 };
                // It may have rotated right away (an oversized log from before the cap).
                rotating.point_stderr_at_log();
                DaemonLog {
                    file: Some(Arc::new(Mutex::new(rotating))),
                }
            }
            Err(e) => {
                eprintln!(
                    "banger daemon: cannot manage the size of {}: {e}; logging without a cap",
                    path.display()
                );
                DaemonLog { file: None }
            }
        }
    }

    /// A new writer for one log event (tracing's `MakeWriter`).
    pub fn writer(&self) -> LogWriter {
        LogWriter { log: self.clone() }
    }
}

impl Rotating {
    fn point_stderr_at_log(&mut self) {
        // SAFETY: dup2 onto fd 2 with a descriptor the RotatingFile keeps open; it only
        // changes which file fd 2 refers to.
        unsafe { libc::dup2(self.log.file().as_raw_fd(), libc::STDERR_FILENO) };
        self.applied = self.log.rotations();
    }
}

fn fd_identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into the struct we pass; an invalid fd makes it fail.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    ((st.st_mode & libc::S_IFMT) == libc::S_IFREG).then_some((st.st_dev, st.st_ino))
}

/// Writes one formatted event.
pub struct LogWriter {
    log: DaemonLog,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.log.file {
            Some(file) => {
                let mut rotating = file.lock().unwrap_or_else(|p| p.into_inner());
                rotating.log.append(buf);
                if rotating.log.rotations() != rotating.applied {
                    rotating.point_stderr_at_log();
                }
                Ok(buf.len())
            }
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
