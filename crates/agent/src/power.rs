//! Powering the guest off: as PID 1, stop every process, sync, unmount, power off; under
//! systemd (`--init systemd` images), ask systemd to do it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{console, exec, log};

/// Mount point of the work disk, unmounted before power-off.
pub const WORK_DIR: &str = "/work";

const TERM_GRACE: Duration = Duration::from_secs(2);
const KILL_GRACE: Duration = Duration::from_secs(1);

static POWERING_OFF: AtomicBool = AtomicBool::new(false);

/// `banger.poweroff=reboot`: end the machine with a reboot instead of a power-off. Under
/// Firecracker a powered-off guest only halts its vCPUs and the VMM keeps running, while a
/// reboot (with `reboot=k`) makes Firecracker exit, which is what "off" means there.
static REBOOT_INSTEAD: AtomicBool = AtomicBool::new(false);

/// Read the power-off mode from the kernel command line (PID 1, or the systemd unit).
pub fn configure(cmdline: &crate::cli::KernelCmdline) {
    let reboot = cmdline.get("banger.poweroff") == Some("reboot");
    REBOOT_INSTEAD.store(reboot, Ordering::SeqCst);
}

/// `SIGRTMIN+4` to systemd starts `poweroff.target`: the same clean shutdown as
/// `systemctl poweroff`, without needing D-Bus or a `systemctl` binary. With
/// `banger.poweroff=reboot` (Firecracker), `SIGRTMIN+5`: `reboot.target`, for the same
/// reason as [`REBOOT_INSTEAD`].
fn systemd_poweroff_signal() -> libc::c_int {
    if REBOOT_INSTEAD.load(Ordering::SeqCst) {
        libc::SIGRTMIN() + 5
    } else {
        libc::SIGRTMIN() + 4
    }
}

/// Whether systemd is this system's init (`sd_booted()`'s test: the directory exists only
/// while systemd runs as PID 1).
pub fn under_systemd() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// Asks the init that runs this agent as a service to power the machine off. Only systemd
/// is supported (the images banger builds use no other); it must be root's request.
pub fn ask_init_to_power_off() -> std::io::Result<()> {
    if !under_systemd() {
        return Err(std::io::Error::other(
            "the agent is not PID 1 and systemd is not the init; power the VM off from the host",
        ));
    }
    // SAFETY: kill has no memory effects; PID 1 is systemd (checked above) and treats
    // SIGRTMIN+4 as "start poweroff.target".
    if unsafe { libc::kill(1, systemd_poweroff_signal()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    log!("asked systemd to power off");
    Ok(())
}

/// Stops everything and powers the machine off. Never returns: PID 1 must not exit.
pub fn poweroff() -> ! {
    if POWERING_OFF.swap(true, Ordering::SeqCst) {
        park_forever(); // Another thread is already doing it.
    }
    log!("powering off");
    // SAFETY: kill(-1) signals every process but init (kernel threads ignore it); no memory
    // effects.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    if !wait_until_alone(TERM_GRACE) {
        log!("processes still run {TERM_GRACE:?} after SIGTERM; killing them");
        // SAFETY: as above.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        wait_until_alone(KILL_GRACE);
    }
    finish()
}

/// Powers off at once, for a fatal error: no grace for other processes.
pub fn emergency_poweroff() -> ! {
    POWERING_OFF.store(true, Ordering::SeqCst);
    finish()
}

fn finish() -> ! {
    // SAFETY: sync has no arguments and no memory effects.
    unsafe { libc::sync() };
    // EINVAL: not a mount point; ENOENT: no /work. Both mean nothing to unmount.
    if let Err(err) = nix::mount::umount2(WORK_DIR, nix::mount::MntFlags::empty())
        && err != nix::errno::Errno::EINVAL
        && err != nix::errno::Errno::ENOENT
    {
        log!("unmounting {WORK_DIR} failed: {err}; detaching it");
        let _ = nix::mount::umount2(WORK_DIR, nix::mount::MntFlags::MNT_DETACH);
        // SAFETY: as above.
        unsafe { libc::sync() };
    }
    // A root disk must be clean when the power goes: remount it read-only (on the
    // initramfs this fails harmlessly).
    let ro = nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY;
    if nix::mount::mount(None::<&str>, "/", None::<&str>, ro, None::<&str>).is_err() {
        // SAFETY: as above.
        unsafe { libc::sync() };
    }
    console::drain();
    let mode = if REBOOT_INSTEAD.load(Ordering::SeqCst) {
        nix::sys::reboot::RebootMode::RB_AUTOBOOT
    } else {
        nix::sys::reboot::RebootMode::RB_POWER_OFF
    };
    let Err(err) = nix::sys::reboot::reboot(mode);
    log!("power-off ({mode:?}) failed: {err}");
    park_forever()
}

/// True once no other user process is left. Reaps while waiting: the thread calling this may
/// be the one that normally reaps.
fn wait_until_alone(grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        exec::table().reap();
        if !user_processes_left() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `/proc` lists a process other than this one that is not a kernel thread. (Not
/// `kill(-1, 0)`: it counts kernel threads too, so it never reports "alone" and every
/// power-off would sit out both graces.) An unreadable `/proc` counts as "others left", which
/// only costs the grace time.
fn user_processes_left() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let me = std::process::id();
    entries.filter_map(Result::ok).any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return false;
        };
        if pid == me {
            return false;
        }
        // Gone since the directory was read: not left. A stat line that does not parse
        // counts as a user process, to be safe.
        std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|stat| is_kernel_thread(&stat) != Some(true))
    })
}

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Reads the flags of a `/proc/PID/stat` line: `pid (comm) state ppid pgrp session tty_nr
/// tpgid flags …`. `comm` may contain spaces and parentheses, so fields count from the last
/// `)`. None when the line does not parse.
fn is_kernel_thread(stat: &str) -> Option<bool> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let flags: u64 = after_comm.split_whitespace().nth(6)?.parse().ok()?;
    Some(flags & PF_KTHREAD != 0)
}

fn park_forever() -> ! {
    loop {
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_threads_are_told_from_user_processes_by_their_stat_flags() {
        // Real lines: kthreadd (flags 2129984 = 0x208040) and a shell (4194560 = 0x400100).
        let kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0";
        let shell = "77 (sh) S 1 77 77 34816 77 4194560 313 0 0 0 0 0 0 0 20 0 1 0 270";
        assert_eq!(is_kernel_thread(kthreadd), Some(true));
        assert_eq!(is_kernel_thread(shell), Some(false));
        // A comm with spaces and a parenthesis does not shift the fields.
        let odd = "9 (a) b (c) S 0 0 0 0 -1 2129984 0 0";
        assert_eq!(is_kernel_thread(odd), Some(true));
        assert_eq!(is_kernel_thread("garbage"), None);
        assert_eq!(is_kernel_thread("5 (x) S 1 2"), None);
    }

    #[test]
    fn this_test_process_is_not_a_kernel_thread() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(is_kernel_thread(&stat), Some(false));
        // Kernel threads hang off kthreadd (pid 2) when the test can see it.
        if let Ok(stat) = std::fs::read_to_string("/proc/2/stat")
            && stat.contains("(kthreadd)")
        {
            assert_eq!(is_kernel_thread(&stat), Some(true));
        }
    }
}
