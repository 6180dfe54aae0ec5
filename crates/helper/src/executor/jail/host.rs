//! What the jail verbs read from and write to the host besides the chroot: the v1 cgroup
//! hierarchies, the owner's group, the jailer's pid file and the jailed process.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_helper_proto::{Failure, FailureKind, JailId, JailLimits};

use super::{fail, system};

/// How long the jailed child may take to drop to the owner's ids after the jailer's fork.
pub(super) const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// The v1 memory and pids hierarchies' mount points, when this host has both.
pub(in crate::executor) fn v1_mounts() -> Option<(PathBuf, PathBuf)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let find = |controller: &str| {
        mounts.lines().find_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            (f.get(2) == Some(&"cgroup")
                && f.get(3)
                    .is_some_and(|o| o.split(',').any(|o| o == controller)))
            .then(|| PathBuf::from(f[1]))
        })
    };
    Some((find("memory")?, find("pids")?))
}

/// The parent group of the owner's jailed VMMs in each v1 hierarchy.
pub fn jail_parent_cgroup(owner_uid: u32) -> String {
    format!("banger-{owner_uid}")
}

pub(in crate::executor) fn v1_dirs(owner_uid: u32, id: &JailId) -> Option<[PathBuf; 2]> {
    let (memory, pids) = v1_mounts()?;
    let parent = jail_parent_cgroup(owner_uid);
    Some([
        memory.join(&parent).join(id.as_str()),
        pids.join(&parent).join(id.as_str()),
    ])
}

/// Remove VM `id`'s v1 groups, each parent group with its last child; a group that still
/// has tasks is refused as a conflict, in the words `busy` gives for that group.
pub(in crate::executor) fn remove_v1_dirs(
    owner_uid: u32,
    id: &JailId,
    busy: impl Fn(&Path) -> String,
) -> Result<(), Failure> {
    for dir in v1_dirs(owner_uid, id).into_iter().flatten() {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(fail(FailureKind::Conflict, busy(&dir)));
            }
            Err(e) => return Err(system(format!("cannot remove {}", dir.display()), e)),
        }
        // The owner's parent group goes with its last VM (busy while others exist).
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// The jailer's cgroup arguments for `limits`, and the groups it will make; none on a host
/// without the v1 memory and pids hierarchies (a v2 host's limits are not set this way).
pub(super) fn cgroup_args(
    owner_uid: u32,
    id: &JailId,
    limits: JailLimits,
    argv: &mut Vec<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let Some(dirs) = v1_dirs(owner_uid, id) else {
        return Vec::new();
    };
    for arg in [
        "--cgroup-version".to_owned(),
        "1".to_owned(),
        "--parent-cgroup".to_owned(),
        jail_parent_cgroup(owner_uid),
        "--cgroup".to_owned(),
        format!("memory.limit_in_bytes={}", limits.memory_bytes()),
        "--cgroup".to_owned(),
        format!("pids.max={}", limits.pids_max()),
    ] {
        argv.push(arg.into());
    }
    dirs.to_vec()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_v1_jailer_arguments_below_the_owners_parent() {
        let mut argv = Vec::new();
        let id = JailId::new("abc").unwrap();
        let dirs = cgroup_args(
            1000,
            &id,
            JailLimits::new(512 << 20, 256).unwrap(),
            &mut argv,
        );
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if v1_mounts().is_some() {
            assert_eq!(dirs.len(), 2);
            assert!(dirs.iter().all(|d| d.ends_with("banger-1000/abc")));
            assert!(
                argv.windows(2)
                    .any(|w| w == ["--parent-cgroup", "banger-1000"])
            );
            assert!(argv.contains(&format!("memory.limit_in_bytes={}", 512u64 << 20)));
            assert!(argv.contains(&"pids.max=256".to_owned()));
        } else {
            assert!(dirs.is_empty() && argv.is_empty());
        }
    }
}
