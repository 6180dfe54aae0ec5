//! Diagnostics. As PID 1 stderr is `/dev/console` (see `init::early`), otherwise whatever the
//! agent was started with.

use std::fmt;
use std::io::Write;

/// Writes one `banger-agent: ...` line to stderr, ignoring failures (nowhere else to report).
pub fn write_line(args: fmt::Arguments<'_>) {
    let line = format!("banger-agent: {args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs a line to the console / stderr.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::console::write_line(format_args!($($arg)*))
    };
}

/// Waits until everything written to the console has left it, so the last lines before a
/// poweroff are not lost.
pub fn drain() {
    // SAFETY: tcdrain only reads the fd number; a non-tty fd makes it fail harmlessly.
    unsafe {
        libc::tcdrain(libc::STDERR_FILENO);
    }
}
