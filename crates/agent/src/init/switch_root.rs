//! From the initramfs to the root disk: with `root=DEV` on the kernel command line, the
//! agent running as the initramfs's `/init` loads the modules the disk needs, mounts it,
//! gives the VM its identity ([`super::identity`]) and hands PID 1 over to the disk's init:
//! the agent installed there (the lean init, `banger.init=agent`, the default) or systemd
//! (`banger.init=systemd`).
//!
//! Runs before any thread exists, so `execv` replaces the whole process cleanly.

use std::ffi::CString;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};

use crate::cli::KernelCmdline;
use crate::log;

/// Where the root disk is mounted before it becomes `/`.
const NEW_ROOT: &str = "/newroot";
/// The agent inside the root disk: the lean init, and the unit systemd starts.
pub const ROOT_AGENT: &str = "/usr/lib/banger/banger-agent";
/// How long to wait for the root disk's device node (its driver probes asynchronously).
const ROOT_WAIT: Duration = Duration::from_secs(10);

/// Should this process switch to a root disk? Only the initramfs's PID 1 does: a root
/// disk's own init finds `/` already on a block device.
pub fn wanted(cmdline: &KernelCmdline) -> Option<String> {
    let device = cmdline.get("root")?.to_string();
    initramfs_root().then_some(device)
}

/// `/` is the initramfs (ramfs or tmpfs) rather than a disk.
fn initramfs_root() -> bool {
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    match nix::sys::statfs::statfs("/") {
        Ok(st) => {
            let t = st.filesystem_type().0;
            t == RAMFS_MAGIC || t == TMPFS_MAGIC
        }
        Err(_) => false,
    }
}

/// Mount `device`, set the identity up, and exec the disk's init. Returns only when
/// something failed, with a message; the caller then powers off (a VM without its root
/// disk is of no use, and saying why on the console is all it can do).
pub fn switch(cmdline: &KernelCmdline, device: &str) -> String {
    if let Err(e) = wait_for(device) {
        return e;
    }
    let read_only = cmdline.root_read_only();
    if let Err(e) = fs::create_dir_all(NEW_ROOT) {
        return format!("creating {NEW_ROOT} failed: {e}");
    }
    // Mounted read-write even for `ro`: the identity is written first, then it is
    // remounted as asked.
    let flags = MsFlags::empty();
    if let Err(e) = mount(Some(device), NEW_ROOT, Some("ext4"), flags, None::<&str>) {
        return format!("mounting the root disk {device} (ext4) on {NEW_ROOT} failed: {e}");
    }
    // Before any init or user command: the VM's whole disk, not the image's size.
    super::grow_root::grow(device, NEW_ROOT);
    for fs in ["/dev", "/proc", "/sys"] {
        let target = format!("{NEW_ROOT}{fs}");
        let _ = fs::create_dir_all(&target);
        if let Err(e) = mount(
            Some(fs),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        ) {
            return format!("moving {fs} to the root disk failed: {e}");
        }
    }
    let init = match cmdline.get("banger.init") {
        Some("systemd") => "/sbin/init",
        Some("agent") | None => ROOT_AGENT,
        Some(other) => {
            log!("unknown banger.init={other:?}; starting the agent");
            ROOT_AGENT
        }
    };
    if let Err(e) = enter(NEW_ROOT) {
        return e;
    }
    // Inside the root disk now, with /dev and /proc in place: the image's own ssh-keygen
    // runs as it would on the machine.
    let name = cmdline.get("banger.hostname").unwrap_or("banger");
    let vm_id = cmdline.get("banger.vm").unwrap_or("");
    super::identity::ensure(Path::new("/"), name, vm_id);
    if read_only {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, "/", None::<&str>, flags, None::<&str>) {
            log!("remounting the root disk read-only failed: {e}; it stays read-write");
        }
    }
    let fallback = [init, ROOT_AGENT];
    let mut errors = Vec::new();
    for program in fallback {
        let Ok(path) = CString::new(program) else {
            continue;
        };
        log!("switching to the root disk: starting {program}");
        let argv = [path.clone()];
        // execv returns only on failure.
        let Err(e) = nix::unistd::execv(&path, &argv);
        errors.push(format!("{program}: {e}"));
    }
    format!(
        "the root disk has no init to start ({}); is the banger agent installed in the image?",
        errors.join(", ")
    )
}

fn wait_for(device: &str) -> Result<(), String> {
    let started = Instant::now();
    while !Path::new(device).exists() {
        if started.elapsed() > ROOT_WAIT {
            return Err(format!(
                "the root disk {device} did not appear within {ROOT_WAIT:?}; is its virtio driver in the initramfs?"
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `switch_root`'s core: make `new_root` the root of the mount tree and of this process.
fn enter(new_root: &str) -> Result<(), String> {
    nix::unistd::chdir(new_root).map_err(|e| format!("chdir {new_root} failed: {e}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("moving the root disk onto / failed: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot into the root disk failed: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir / failed: {e}"))
}
