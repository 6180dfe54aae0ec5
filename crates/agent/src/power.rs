//! Powering the guest off as PID 1: stop every process, sync, unmount, power off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{console, exec, log};

/// Mount point of the work disk, unmounted before power-off.
pub const WORK_DIR: &str = "/work";

const TERM_GRACE: Duration = Duration::from_secs(2);
const KILL_GRACE: Duration = Duration::from_secs(1);

static POWERING_OFF: AtomicBool = AtomicBool::new(false);

/// Stops everything and powers the machine off. Never returns: PID 1 must not exit.
pub fn poweroff() -> ! {
    if POWERING_OFF.swap(true, Ordering::SeqCst) {
        park_forever(); // Another thread is already doing it.
    }
    log!("powering off");
    // SAFETY: kill(-1) signals every process but init and kernel threads; no memory effects.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    if !wait_until_alone(TERM_GRACE) {
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
    console::drain();
    let Err(err) = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    log!("power-off failed: {err}");
    park_forever()
}

/// True once no other process is left. Reaps while waiting: the thread calling this may be
/// the one that normally reaps.
fn wait_until_alone(grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        exec::table().reap();
        // SAFETY: signal 0 only checks for existence.
        let others = unsafe { libc::kill(-1, 0) } == 0;
        if !others {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn park_forever() -> ! {
    loop {
        thread::park();
    }
}
