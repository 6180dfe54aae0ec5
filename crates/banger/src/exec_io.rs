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

use std::time::Duration;

use anyhow::Context;
use banger_api::stream::{StreamFrame, read_frame, write_frame};
use banger_api::{Client, ExecRequest, ExitStatus, TtySize};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::terminal::{self, RawMode};

/// How long the guest command gets to end after a forwarded signal before the CLI gives up.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(10);

/// Run `req` in VM `name`, wiring it to this process's stdio; with `tty`, the local
/// terminal (which the caller has checked stdin is) drives a terminal in the guest.
/// Returns how the command ended.
pub async fn run(
    client: &Client,
    name: &str,
    mut req: ExecRequest,
    tty: bool,
) -> anyhow::Result<ExitStatus> {
    let _raw = if tty {
        req.tty = Some(terminal::size().unwrap_or(TtySize { rows: 24, cols: 80 }));
        Some(RawMode::enable()?)
    } else {
        None
    };
    let io = client.exec(name, &req).await?;
    let (mut rd, mut wr) = tokio::io::split(io);

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
    // Frames are read by a task of their own: a half-read frame must never be abandoned
    // when a signal wins the race below.
    let (frames_tx, mut frames) = mpsc::channel(16);
    let reader = tokio::spawn(async move {
        loop {
            let frame = read_frame(&mut rd).await;
            let last = !matches!(frame, Ok(Some(_)));
            if frames_tx.send(frame).await.is_err() || last {
                break;
            }
        }
    });

    let mut forwarded: Option<(i32, tokio::time::Instant)> = None;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let outcome = loop {
        let grace_over = async {
            match forwarded {
                Some((_, deadline)) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            frame = frames.recv() => frame.unwrap_or(Ok(None)),
            signo = signals.next() => {
                if forwarded.is_some() {
                    break Ok(give_up(signo, "a second signal arrived"));
                }
                let _ = tx.send(StreamFrame::Signal(signo)).await;
                forwarded = Some((signo, tokio::time::Instant::now() + SIGNAL_GRACE));
                continue;
            }
            () = grace_over => {
                let signo = forwarded.map_or(libc::SIGTERM, |(signo, _)| signo);
                let why = format!("the command did not end within {}s of the signal", SIGNAL_GRACE.as_secs());
                break Ok(give_up(signo, &why));
            }
        };
        let written = match frame.context("reading the command's output from the daemon") {
            Err(e) => break Err(e),
            Ok(Some(StreamFrame::Stdout(data))) => write_all(&mut stdout, &data).await,
            Ok(Some(StreamFrame::Stderr(data))) => write_all(&mut stderr, &data).await,
            Ok(Some(StreamFrame::Exit(status))) => break Ok(status),
            Ok(Some(StreamFrame::Error(message))) => {
                break Err(anyhow::anyhow!(crate::output::safe::text(&message)));
            }
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                break Err(anyhow::anyhow!(
                    "the daemon closed the connection before the command finished"
                ));
            }
        };
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                break Ok(ExitStatus {
                    code: None,
                    signal: Some(libc::SIGPIPE),
                });
            }
            Err(e) => break Err(e).context("writing the command's output"),
        }
    };
    // Stop reading stdin before anything else: the next key belongs to the shell.
    drop(stdin);
    drop(tx);
    writer.abort();
    reader.abort();
    outcome
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
