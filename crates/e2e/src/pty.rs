//! A real pseudo-terminal for testing the CLI as people use it: the command runs in its
//! own session with the pty as its controlling terminal and stdio, the test types into
//! the master side, reads what a terminal would show, resizes the window (the kernel
//! sends SIGWINCH), and afterwards inspects the terminal's settings and its input queue.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{OpenptyResult, Winsize, openpty};
use nix::sys::termios::{Termios, tcgetattr};

pub struct Pty {
    master: File,
    /// The test's own handle on the terminal: its settings and input queue outlive the
    /// command.
    slave: OwnedFd,
    child: Child,
    /// Everything the terminal has shown so far.
    pub output: Vec<u8>,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Pty {
    /// Start `cmd` on a new `rows`×`cols` terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> anyhow::Result<Pty> {
        let OpenptyResult { master, slave } =
            openpty(Some(&winsize(rows, cols)), None).context("openpty")?;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: setsid and ioctl are async-signal-safe and touch only this child's
        // session and its fd 0 (the pty slave set above).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawning the command on the pty")?;
        Ok(Pty {
            master: File::from(master),
            slave,
            child,
            output: Vec::new(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Type `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.master.write_all(bytes)?;
        Ok(())
    }

    /// Resize the window; the kernel signals the terminal's foreground process group.
    pub fn resize(&self, rows: u16, cols: u16) -> anyhow::Result<()> {
        let ws = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads the winsize we pass; the master fd is open.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            bail!("TIOCSWINSZ: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Read what the terminal shows until `needle` appears (after `from` bytes of
    /// output) or `timeout` passes.
    pub fn expect(
        &mut self,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = find(
                &self.output[from.min(self.output.len())..],
                needle.as_bytes(),
            ) {
                return Ok(from + at + needle.len());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "the terminal did not show {needle:?} within {timeout:?}; it shows:\n{}",
                    String::from_utf8_lossy(&self.output)
                );
            }
            if self.read_some(left)? == Got::Closed {
                bail!(
                    "the terminal closed before showing {needle:?}; it showed:\n{}",
                    String::from_utf8_lossy(&self.output)
                );
            }
        }
    }

    /// Wait for the command to exit, reading its output meanwhile (a full pty would
    /// block it). Sends nothing.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Collect what is still buffered.
                while self.read_some(Duration::from_millis(50))? == Got::Data {}
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "the command did not exit within {timeout:?}; the terminal shows:\n{}",
                    String::from_utf8_lossy(&self.output)
                );
            }
            self.read_some(Duration::from_millis(100))?;
        }
    }

    /// The terminal's current settings.
    pub fn termios(&self) -> anyhow::Result<Termios> {
        Ok(tcgetattr(self.slave.as_fd())?)
    }

    /// Bytes waiting in the terminal's input queue (what the next program reading the
    /// terminal would get), waiting up to `timeout` for a line.
    pub fn pending_input(&self, timeout: Duration) -> anyhow::Result<Vec<u8>> {
        let mut fds = [PollFd::new(self.slave.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(self.slave.as_raw_fd(), &mut buf)?;
        Ok(buf[..n].to_vec())
    }

    /// Read once if output arrives within `timeout`.
    fn read_some(&mut self, timeout: Duration) -> anyhow::Result<Got> {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            return Ok(Got::Nothing);
        }
        let mut buf = [0u8; 8192];
        match self.master.read(&mut buf) {
            Ok(0) => Ok(Got::Closed),
            Ok(n) => {
                self.output.extend_from_slice(&buf[..n]);
                Ok(Got::Data)
            }
            // EIO: no process has the slave open any more — but we do, so this is rare.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(Got::Closed),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one read of the terminal found.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Data,
    /// Nothing within the timeout.
    Nothing,
    Closed,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
