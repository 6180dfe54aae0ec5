//! The filesystems init mounts, and the console on stdio.

use std::os::fd::AsRawFd;

use nix::mount::{MsFlags, mount};

use crate::log;

struct Mount {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The kernel's DEVTMPFS_MOUNT is off in the cloud kernels, so `/dev` is ours to mount.
const EARLY: [Mount; 3] = [
    Mount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    Mount {
        fstype: "proc",
        target: "/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    Mount {
        fstype: "sysfs",
        target: "/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
];

const REST: [Mount; 4] = [
    Mount {
        fstype: "devpts",
        target: "/dev/pts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("newinstance,ptmxmode=666,mode=620"),
    },
    Mount {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777"),
    },
    Mount {
        fstype: "tmpfs",
        target: "/tmp",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777"),
    },
    Mount {
        fstype: "tmpfs",
        target: "/run",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=0755"),
    },
];

/// Symlinks programs expect in `/dev` (devtmpfs makes device nodes only).
const DEV_LINKS: [(&str, &str); 5] = [
    ("/dev/ptmx", "pts/ptmx"),
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// `target` is already a mount point (its device differs from its parent's): a root
/// disk's init finds /dev, /proc and /sys moved over from the initramfs.
fn mounted(target: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = std::path::Path::new(target)
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    match (std::fs::metadata(target), std::fs::metadata(parent)) {
        (Ok(t), Ok(p)) => t.dev() != p.dev(),
        _ => false,
    }
}

fn mount_all(mounts: &[Mount]) {
    for m in mounts {
        if mounted(m.target) {
            continue;
        }
        if let Err(err) = std::fs::create_dir_all(m.target) {
            log!("creating {} failed: {err}", m.target);
        }
        match mount(Some(m.fstype), m.target, Some(m.fstype), m.flags, m.data) {
            // EBUSY: already mounted (by the kernel or an earlier agent): fine.
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(err) => log!("mounting {} on {} failed: {err}", m.fstype, m.target),
        }
    }
}

pub fn mount_early() {
    mount_all(&EARLY);
}

pub fn mount_rest() {
    mount_all(&REST);
    for (link, target) in DEV_LINKS {
        // /dev/ptmx exists as a device node for the initial devpts instance; replace it so
        // ptys come from the instance mounted above.
        let _ = std::fs::remove_file(link);
        if let Err(err) = std::os::unix::fs::symlink(target, link) {
            log!("linking {link} -> {target} failed: {err}");
        }
    }
}

/// Points whichever of fds 0, 1 and 2 are closed at `/dev/console`. The kernel opens the
/// console for init itself only when the initramfs has a `/dev/console` node; without one
/// they start closed, and the first file the agent opened would land on them. Open ones are
/// kept (they already are the console, or whatever the agent's starter chose).
pub fn console_on_stdio() {
    // SAFETY: F_GETFD only queries the fd table.
    let closed: Vec<i32> = (0..3)
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } == -1)
        .collect();
    if closed.is_empty() {
        return;
    }
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags_noctty()
        .open("/dev/console")
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
        });
    let Ok(console) = console else {
        return;
    };
    let fd = console.as_raw_fd();
    for target in closed {
        if fd != target {
            // SAFETY: dup2 onto a closed standard fd, which the agent reserves for the console.
            unsafe { libc::dup2(fd, target) };
        }
    }
    if fd <= 2 {
        // The file itself landed on a standard fd: keep it open.
        std::mem::forget(console);
    }
}

trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    /// The console must not become the agent's controlling terminal: a hang-up on it would
    /// then signal init.
    fn custom_flags_noctty(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NOCTTY)
    }
}
