//! Forwarding stdin to an exec, stoppable at once.
//!
//! A plain blocking read (or tokio's stdin, which is one on a helper thread) stays in
//! `read(2)` after the remote command has ended: the CLI then waits for one more key and
//! swallows it, so after `exit` in `banger exec -it dev sh` the shell needed an extra
//! Enter. This reader waits in `poll(2)` on stdin *and* a cancel pipe, and reads only
//! when input is there: dropping the [`Pump`] ends it without consuming anything.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;

use banger_api::stream::StreamFrame;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::sync::mpsc;

const CHUNK: usize = 32 * 1024;

/// The running reader. Dropping it stops the thread (it may finish handing over input
/// it had already read).
#[derive(Debug)]
pub struct Pump {
    cancel: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

/// Start reading stdin, sending `Stdin` frames and a final `StdinEof` into `tx`.
pub fn spawn(tx: mpsc::Sender<StreamFrame>) -> std::io::Result<Pump> {
    let (cancel_rx, cancel_tx) = nix::unistd::pipe()?;
    let thread = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || pump(&cancel_rx, &tx))?;
    Ok(Pump {
        cancel: Some(cancel_tx),
        thread: Some(thread),
    })
}

impl Drop for Pump {
    fn drop(&mut self) {
        // Closing the write end wakes the poll (POLLHUP on the read end).
        drop(self.cancel.take());
        // The thread exits promptly: it is in poll, or in a send that fails once the
        // session's receiver is gone. Not joined: a send blocked on a full channel
        // that someone still holds must not hang the CLI's exit.
        drop(self.thread.take());
    }
}

fn pump(cancel: &OwnedFd, tx: &mpsc::Sender<StreamFrame>) {
    // SAFETY: fd 0 stays open for the life of the process; the borrow is local.
    let stdin = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match wait_readable(stdin, cancel.as_fd()) {
            Readiness::Cancelled => return,
            Readiness::Input => {}
            Readiness::Failed => {
                let _ = tx.blocking_send(StreamFrame::StdinEof);
                return;
            }
        }
        match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
            Ok(0) => {
                let _ = tx.blocking_send(StreamFrame::StdinEof);
                return;
            }
            Ok(n) => {
                if tx
                    .blocking_send(StreamFrame::Stdin(buf[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => {
                let _ = tx.blocking_send(StreamFrame::StdinEof);
                return;
            }
        }
    }
}

enum Readiness {
    Input,
    Cancelled,
    /// stdin is closed or unusable: treat it as the end of input.
    Failed,
}

fn wait_readable(stdin: BorrowedFd<'_>, cancel: BorrowedFd<'_>) -> Readiness {
    loop {
        let mut fds = [
            PollFd::new(stdin, PollFlags::POLLIN),
            PollFd::new(cancel, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Readiness::Failed,
        }
        let cancel = fds[1].revents().unwrap_or(PollFlags::empty());
        if !cancel.is_empty() {
            return Readiness::Cancelled;
        }
        let input = fds[0].revents().unwrap_or(PollFlags::empty());
        if input.contains(PollFlags::POLLNVAL) {
            return Readiness::Failed;
        }
        // POLLHUP/POLLERR: the read that follows returns the end of input or the error.
        if input.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            return Readiness::Input;
        }
    }
}
