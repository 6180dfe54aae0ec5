//! What the jail verbs read from and write to the host besides the chroot and the cgroups
//! (`cgroups.rs`): the owner's group, the jailer's pid file and the jailed process.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use banger_helper_proto::{Failure, FailureKind};

use super::{fail, system};

/// How long the jailed child may take to drop to the owner's ids after the jailer's fork.
pub(super) const DROP_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn owner_gid(uid: u32) -> Result<u32, Failure> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => Ok(user.gid.as_raw()),
        Ok(None) => Err(fail(
            FailureKind::NotFound,
            format!("uid {uid} has no passwd entry: the jailer needs the owner's group"),
        )),
        Err(e) => Err(fail(
            FailureKind::System,
            format!("cannot look up uid {uid}: {e}"),
        )),
    }
}

pub(super) fn clear_nonblock(file: &File) -> Result<(), Failure> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an open descriptor with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1 {
        return Err(system(
            "cannot set up the console pipe".into(),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The pid the jailer wrote, read without following a link.
pub(super) fn read_pid(path: &Path) -> Result<u32, Failure> {
    let mut text = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.by_ref().take(32).read_to_string(&mut text))
        .map_err(|e| {
            system(
                format!("cannot read the jailer's pid file {}", path.display()),
                e,
            )
        })?;
    text.trim().parse().map_err(|_| {
        fail(
            FailureKind::System,
            format!(
                "the jailer's pid file {} holds {text:?}, not a pid",
                path.display()
            ),
        )
    })
}

/// Its start time, once it is known to run as the owner and nobody else. The jailer writes
/// the pid right after its fork, before the child drops to the owner's ids and execs: a
/// root process is expected for a moment, not after [`DROP_TIMEOUT`].
pub(super) fn check_owner_process(pid: u32, owner: u32) -> Result<u64, Failure> {
    let deadline = Instant::now() + DROP_TIMEOUT;
    let uids = loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| system(format!("the jailed Firecracker {pid} is gone"), e))?;
        let uids = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .unwrap_or_default()
            .to_owned();
        let dropped = uids.split_whitespace().all(|u| u == owner.to_string());
        if dropped || Instant::now() >= deadline {
            break uids;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if uids.split_whitespace().any(|u| u != owner.to_string()) {
        // SAFETY: kill with a pid and a signal number.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        return Err(fail(
            FailureKind::System,
            format!(
                "the jailed process {pid} runs as uids {uids:?}, not the owner's {owner}; it was killed"
            ),
        ));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| system(format!("cannot read /proc/{pid}/stat"), e))?;
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            fail(
                FailureKind::System,
                format!("cannot parse /proc/{pid}/stat"),
            )
        })
}

/// The last line of a small file, for an error.
pub(super) fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(2048)..]).into_owned();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing on stderr)")
        .chars()
        .take(512)
        .collect()
}
