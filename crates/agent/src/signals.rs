//! Signals: the agent blocks the ones it cares about in every thread and handles them on one
//! thread with `sigwait`. As PID 1 the kernel delivers only signals init handles or blocks,
//! and Ctrl-Alt-Del (with reboot-on-CAD disabled) arrives as SIGINT.

use std::io;
use std::thread;

use crate::{exec, log, power};

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
    }
    set
}

/// Blocks the handled signals in the calling thread (and so in every thread it starts later)
/// and ignores SIGPIPE, so a write to a vanished host is an error, not death. Children get a
/// clean mask and default dispositions back from std's spawn.
pub fn block() -> io::Result<()> {
    let set = handled_set();
    // SAFETY: `set` is a valid sigset_t; the old mask is not wanted.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: setting SIGPIPE's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(())
}

/// Starts the thread that reaps children and turns SIGTERM / SIGINT into a power-off (PID 1)
/// or an exit (otherwise).
pub fn start(pid1: bool) -> io::Result<()> {
    thread::Builder::new()
        .name("signals".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let set = handled_set();
            loop {
                let mut signo = 0;
                // SAFETY: `set` and `signo` are valid for the call.
                if unsafe { libc::sigwait(&set, &mut signo) } != 0 {
                    continue;
                }
                match signo {
                    libc::SIGCHLD => exec::table().reap(),
                    _ if pid1 => power::poweroff(),
                    _ => {
                        log!("signal {signo}: killing running execs and exiting");
                        exec::table().kill_all(libc::SIGKILL);
                        std::process::exit(0);
                    }
                }
            }
        })
        .map(drop)
}
