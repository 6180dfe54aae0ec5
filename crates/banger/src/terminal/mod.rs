//! The local terminal during an interactive exec: raw mode that is undone on every way
//! out (return, error, signal, panic), the window size, and a stdin reader that stops
//! the moment the session ends instead of waiting for one more key.

pub mod stdin;
pub mod stdout_gone;

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use anyhow::{Context, bail};
use banger_api::TtySize;
use nix::sys::termios::{self, SetArg, Termios};

/// The settings to put back, for the panic hook (a panic on another thread does not
/// unwind through the [`RawMode`] guard).
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Refuse `-t` unless stdin is a terminal, as docker does: raw mode and a guest
/// terminal make no sense for a pipe, and `echo x | banger exec -it` would hang.
pub fn require_tty_stdin() -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "the input device is not a TTY: -t needs stdin to be a terminal; drop -t \
             (keep -i to pipe input into the command)"
        );
    }
    Ok(())
}

/// The terminal's size, from stdin (the terminal being typed at) or else stdout.
pub fn size() -> Option<TtySize> {
    [libc::STDIN_FILENO, libc::STDOUT_FILENO]
        .into_iter()
        .find_map(size_of)
}

fn size_of(fd: libc::c_int) -> Option<TtySize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a winsize into the struct we pass; on an fd that
    // is not a terminal the call fails and nothing is written.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(TtySize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// The local terminal in raw mode (every key goes to the guest's terminal, which does
/// its own echo and line editing); restored when dropped.
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    pub fn enable() -> anyhow::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).context("reading terminal settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        *lock() = Some(saved);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .context("switching the terminal to raw mode")?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Put the terminal back as it was, if banger changed it. Idempotent.
pub fn restore() {
    if let Some(saved) = lock().take() {
        // SAFETY: fd 0 stays open for the life of the process; the borrow ends with
        // this call.
        let stdin = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
        let _ = termios::tcsetattr(stdin, SetArg::TCSANOW, &saved);
    }
}

/// Make a panic restore the terminal before its message is printed (in raw mode the
/// message would be garbled and the shell left unusable).
pub fn restore_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

fn lock() -> std::sync::MutexGuard<'static, Option<Termios>> {
    // A panic while holding this lock cannot leave the Option half-written.
    SAVED.lock().unwrap_or_else(|p| p.into_inner())
}
