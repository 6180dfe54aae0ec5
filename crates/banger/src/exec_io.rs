//! The CLI end of an exec stream: local stdin/stdout/stderr, terminal and signals
//! on one side, the daemon's upgraded connection on the other.
//!
//! The CLI returns the moment the command's exit status arrives: the stdin reader is
//! cancelled, not waited for (`terminal::stdin`), and the terminal is restored on every
//! way out (`terminal::RawMode`, plus a panic hook).
//!
//! Signals: the first SIGINT, SIGTERM or SIGHUP is forwarded to the guest command, whose
//! exit status then normally ends the CLI. If it does not end within [`SIGNAL_GRACE`] (a
//! frozen guest, a command that ignores the signal), or a second signal arrives, the CLI
//! gives up and exits 128+signal, as a shell would for a command killed by it. The daemon
//! kills the guest command when the CLI disconnects. In raw mode Ctrl-C is a byte the
//! guest's terminal turns into its own SIGINT.
//!
//! A reader of our stdout that goes away (`banger exec dev -- yes | head -1`) ends the
//! session like SIGPIPE ends a local command: status 141, no error message.
//!
//! `ssh-proxy` is a tunnel, not a command: it ends at once on a signal or when its client
//! stops reading (see [`Ending::Tunnel`]).

use std::time::Duration;

use anyhow::Context;
use banger_api::stream::{StreamFrame, read_frame, write_frame};
use banger_api::{Client, ExecRequest, ExitStatus, TtySize};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::terminal::{self, RawMode};

/// How long the guest command gets to end after a forwarded signal before the CLI gives up.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(10);

/// How a session ends besides its command's exit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    /// `vm exec`, `vm run`: signals are forwarded as the module's documentation says.
    Command,
    /// `ssh-proxy`: the client on our stdio is the only reason to go on. A signal (ssh
    /// sends SIGHUP as it exits) or a reader of our stdout that went away (the client
    /// exited, however it ended) ends the session at once and quietly — the client's
    /// terminal is the user's — and the daemon kills the guest end.
    Tunnel,
}

/// Run `req` in VM `name`, wiring it to this process's stdio; with `tty`, the local
/// terminal (which the caller has checked stdin is) drives a terminal in the guest.
/// Returns how the command ended.
pub async fn run(
    client: &Client,
    name: &str,
    req: ExecRequest,
    tty: bool,
) -> anyhow::Result<ExitStatus> {
    session(client, name, req, tty, Ending::Command).await
}

/// Relay this process's stdio to `req` (a guest tool with stdin) in VM `name`, for as long
/// as the client on our stdio is there (see [`Ending::Tunnel`]).
pub async fn tunnel(client: &Client, name: &str, req: ExecRequest) -> anyhow::Result<ExitStatus> {
    session(client, name, req, false, Ending::Tunnel).await
}

async fn session(
    client: &Client,
    name: &str,
    mut req: ExecRequest,
    tty: bool,
    ending: Ending,
) -> anyhow::Result<ExitStatus> {
    let _raw = if tty {
        req.tty = Some(terminal::size().unwrap_or(TtySize { rows: 24, cols: 80 }));
        Some(RawMode::enable()?)
    } else {
        None
    };
    let io = client.exec(name, &req).await?;
    let (rd, mut wr) = tokio::io::split(io);

    let (tx, mut rx) = mpsc::channel::<StreamFrame>(16);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write_frame(&mut wr, &frame).await.is_err() {
                break;
            }
        }
    });
    let stdin = if req.stdin {
        Some(terminal::stdin::spawn(tx.clone()).context("cannot read stdin")?)
    } else {
        None
    };
    if tty {
        spawn_resize_forwarding(tx.clone())?;
    }
    let mut signals = Signals::new()?;
    let mut reader_gone = match ending {
        Ending::Tunnel => Some(terminal::stdout_gone::watch().context("cannot watch stdout")?),
        Ending::Command => None,
    };
    // The command's output is read and written by a task of its own: a half-read frame
    // must never be abandoned when a signal wins the race below, and a write into a pipe
    // nobody reads must not keep the loop from counting the grace or a second signal.
    let (end_tx, mut end) = oneshot::channel();
    let output = tokio::spawn(async move {
        let _ = end_tx.send(relay_output(rd).await);
    });

    let mut forwarded: Option<(i32, tokio::time::Instant)> = None;
    let outcome = loop {
        let grace_over = async {
            match forwarded {
                Some((_, deadline)) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let gone = async {
            match reader_gone.as_mut() {
                Some(gone) => gone.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = &mut end => {
                break outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("the command's output stopped unexpectedly")));
            }
            signo = signals.next() => {
                if ending == Ending::Tunnel {
                    break Ok(ExitStatus { code: None, signal: Some(signo) });
                }
                if forwarded.is_some() {
                    break Ok(give_up(signo, "a second signal arrived"));
                }
                // Not awaited here: a daemon that reads no more (a frozen guest) would keep
                // the loop from counting the grace.
                let tx = tx.clone();
                tokio::spawn(async move { let _ = tx.send(StreamFrame::Signal(signo)).await; });
                forwarded = Some((signo, tokio::time::Instant::now() + SIGNAL_GRACE));
            }
            () = grace_over => {
                let signo = forwarded.map_or(libc::SIGTERM, |(signo, _)| signo);
                let why = format!("the command did not end within {}s of the signal", SIGNAL_GRACE.as_secs());
                break Ok(give_up(signo, &why));
            }
            () = gone => break Ok(broken_pipe()),
        }
    };
    // Stop reading stdin before anything else: the next key belongs to the shell.
    drop(stdin);
    drop(tx);
    writer.abort();
    output.abort();
    outcome
}

/// Write the command's stdout and stderr here until its exit status (or the end of the
/// stream) arrives, and say how it ended.
async fn relay_output(mut rd: impl tokio::io::AsyncRead + Unpin) -> anyhow::Result<ExitStatus> {
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        let written = match read_frame(&mut rd)
            .await
            .context("reading the command's output from the daemon")?
        {
            Some(StreamFrame::Stdout(data)) => write_all(&mut stdout, &data).await,
            Some(StreamFrame::Stderr(data)) => write_all(&mut stderr, &data).await,
            Some(StreamFrame::Exit(status)) => return Ok(status),
            Some(StreamFrame::Error(message)) => {
                return Err(anyhow::anyhow!(crate::output::safe::text(&message)));
            }
            Some(_) => Ok(()),
            None => return Err(anyhow::anyhow!(CONNECTION_ENDED)),
        };
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(broken_pipe()),
            Err(e) => return Err(e).context("writing the command's output"),
        }
    }
}

/// The stream ended without the command's exit status: the daemon stopped (`daemon stop`
/// ends its sessions; a crash does too) or the VM did. What happened to the command is
/// unknown here, so say where to look.
const CONNECTION_ENDED: &str = "the daemon closed the connection before the command finished \
     (the daemon or the VM stopped): `banger vm ls` shows the VM's state and `banger daemon \
     status` whether the daemon runs";

/// How a session ends whose output nobody reads any more: as SIGPIPE ends a local command.
fn broken_pipe() -> ExitStatus {
    ExitStatus {
        code: None,
        signal: Some(libc::SIGPIPE),
    }
}

async fn write_all(out: &mut (impl AsyncWriteExt + Unpin), data: &[u8]) -> std::io::Result<()> {
    out.write_all(data).await?;
    out.flush().await
}

/// The status of a command the CLI stopped waiting for, after saying why.
fn give_up(signo: i32, why: &str) -> ExitStatus {
    terminal::restore();
    crate::output::warn(&format!(
        "{why}; not waiting for the guest any longer (the command is killed when the guest answers again)"
    ));
    ExitStatus {
        code: None,
        signal: Some(signo),
    }
}

/// SIGINT, SIGTERM and SIGHUP, as they reach the CLI.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

/// Forward the local terminal's size whenever it changes (SIGWINCH).
fn spawn_resize_forwarding(tx: mpsc::Sender<StreamFrame>) -> anyhow::Result<()> {
    let mut winch = signal(SignalKind::window_change())?;
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            if let Some(size) = terminal::size()
                && tx.send(StreamFrame::Resize(size)).await.is_err()
            {
                break;
            }
        }
    });
    Ok(())
}

/// Fail before anything starts when `-t` cannot work.
pub fn check_tty(tty: bool) -> anyhow::Result<()> {
    if tty {
        terminal::require_tty_stdin()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that ends before the exit status says where to look, not only that it ended.
    #[tokio::test]
    async fn a_stream_cut_before_the_exit_status_says_what_to_check() {
        let err = relay_output(tokio::io::empty())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("before the command finished"), "{err}");
        assert!(
            err.contains("banger vm ls") && err.contains("banger daemon status"),
            "{err}"
        );
    }
}
