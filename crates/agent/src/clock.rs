//! Clocks: guest uptime for boot timings, and setting the wall clock.

use std::io;

use crate::util::check;

/// Guest uptime including suspend (CLOCK_BOOTTIME), in microseconds.
pub fn boottime_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every kernel we run.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if ret != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

/// Sets CLOCK_REALTIME to `unix_nanos` nanoseconds after the epoch.
pub fn set_realtime(unix_nanos: i64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: unix_nanos.div_euclid(1_000_000_000),
        tv_nsec: unix_nanos.rem_euclid(1_000_000_000),
    };
    // SAFETY: `ts` is a valid timespec; the kernel validates the value (EINVAL, EPERM).
    check(unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) }).map(drop)
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; all-zero is a valid value for uname to fill.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::from("unknown");
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boottime_advances() {
        let a = boottime_us();
        let b = boottime_us();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn kernel_release_is_what_proc_says() {
        let proc = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(kernel_release(), proc.trim());
    }
}
