//! Noticing that nobody reads our stdout any more, without writing to it.
//!
//! A relay (`ssh-proxy`) learns that its client exited only when it next writes, and a
//! guest end with nothing to say would then keep it running forever. poll(2) reports
//! POLLERR on a pipe whose reading end is closed and POLLHUP on a socket whose peer is
//! gone, even when no event is asked for; a terminal reports POLLHUP when it hangs up, and
//! a file or `/dev/null` never reports either.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::sync::oneshot;

/// A watch on stdout; dropping it stops the watching thread.
#[derive(Debug)]
pub struct Gone {
    rx: Option<oneshot::Receiver<()>>,
    _cancel: OwnedFd,
}

/// Start watching stdout.
pub fn watch() -> std::io::Result<Gone> {
    let (cancel_rx, cancel_tx) = nix::unistd::pipe()?;
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("stdout-gone".into())
        .spawn(move || {
            if reader_left(cancel_rx.as_fd()) {
                let _ = tx.send(());
            }
        })?;
    Ok(Gone {
        rx: Some(rx),
        _cancel: cancel_tx,
    })
}

impl Gone {
    /// Resolves once the reader of stdout is gone; never, when that cannot be known.
    pub async fn wait(&mut self) {
        if let Some(rx) = self.rx.as_mut()
            && rx.await.is_ok()
        {
            return;
        }
        // A receiver is not polled again once it answered.
        self.rx = None;
        std::future::pending().await
    }
}

/// Wait until stdout's reader is gone (`true`) or the watch is dropped (`false`).
fn reader_left(cancel: BorrowedFd<'_>) -> bool {
    // SAFETY: fd 1 stays open for the life of the process; the borrow is local.
    let stdout = unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
    loop {
        let mut fds = [
            PollFd::new(stdout, PollFlags::empty()),
            PollFd::new(cancel, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return false;
        }
        let out = fds[0].revents().unwrap_or(PollFlags::empty());
        if out.contains(PollFlags::POLLNVAL) {
            return false;
        }
        if out.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
            return true;
        }
    }
}
