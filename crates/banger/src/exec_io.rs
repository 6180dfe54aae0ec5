//! The CLI end of an exec stream: local stdin/stdout/stderr, terminal and signals
//! on one side, the daemon's upgraded connection on the other.
//!
//! Signals: the first SIGINT, SIGTERM or SIGHUP is forwarded to the guest command, whose
//! exit status then normally ends the CLI. If it does not end within [`SIGNAL_GRACE`] (a
//! frozen guest, a command that ignores the signal), or a second signal arrives, the CLI
//! gives up and exits 128+signal, as a shell would for a command killed by it: `timeout 60
//! banger vm exec …` ends in about 60 s whatever the guest does. The daemon kills the guest
//! command when the CLI disconnects. A guest that dies ends the stream from the daemon side.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, bail};
use banger_api::stream::{StreamFrame, read_frame, write_frame};
use banger_api::{Client, ExecRequest, ExitStatus, TtySize};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Run `req` in VM `name`, wiring it to this process's stdio. Returns how it ended.
pub async fn run(
    client: &Client,
    name: &str,
    mut req: ExecRequest,
    tty: bool,
) -> anyhow::Result<ExitStatus> {
    let _raw = if tty {
        req.tty = Some(terminal_size().unwrap_or(TtySize { rows: 24, cols: 80 }));
        RawMode::enable()?
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

    if req.stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(StreamFrame::StdinEof).await;
                        break;
                    }
                    Ok(n) => {
                        if tx
                            .send(StreamFrame::Stdin(buf[..n].to_vec()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
    }
    spawn_resize_forwarding(tx.clone(), tty)?;
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
    let status = loop {
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
                    break give_up(signo, "a second signal arrived");
                }
                // In raw mode Ctrl-C is just a byte the guest's terminal turns into SIGINT;
                // a signal to the CLI itself (SIGTERM from `timeout`, SIGHUP from a closed
                // terminal) is forwarded either way.
                let _ = tx.send(StreamFrame::Signal(signo)).await;
                forwarded = Some((signo, tokio::time::Instant::now() + SIGNAL_GRACE));
                continue;
            }
            () = grace_over => {
                let signo = forwarded.map_or(libc::SIGTERM, |(signo, _)| signo);
                break give_up(signo, &format!("the command did not end within {}s of the signal", SIGNAL_GRACE.as_secs()));
            }
        };
        match frame.context("reading command output from the daemon")? {
            Some(StreamFrame::Stdout(data)) => {
                stdout.write_all(&data).await?;
                stdout.flush().await?;
            }
            Some(StreamFrame::Stderr(data)) => {
                stderr.write_all(&data).await?;
                stderr.flush().await?;
            }
            Some(StreamFrame::Exit(status)) => break status,
            Some(StreamFrame::Error(message)) => bail!("{message}"),
            Some(_) => {}
            None => bail!("the daemon closed the connection before the command finished"),
        }
    };
    drop(tx);
    writer.abort();
    reader.abort();
    Ok(status)
}

/// How long the guest command gets to end after a forwarded signal before the CLI gives up.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(10);

/// The status of a command the CLI stopped waiting for, after saying why.
fn give_up(signo: i32, why: &str) -> ExitStatus {
    eprintln!(
        "banger: {why}; not waiting for the guest any longer (the command is killed when the guest answers again)"
    );
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

/// On a terminal, forward window-size changes.
fn spawn_resize_forwarding(tx: mpsc::Sender<StreamFrame>, tty: bool) -> anyhow::Result<()> {
    if tty {
        let mut winch = signal(SignalKind::window_change())?;
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                if let Some(size) = terminal_size()
                    && tx.send(StreamFrame::Resize(size)).await.is_err()
                {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn terminal_size() -> Option<TtySize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass; fd 1 may not be a
    // terminal, in which case the call fails and we return None.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some(TtySize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Puts the local terminal in raw mode; restores it on drop.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enable() -> anyhow::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin.as_fd()).context("reading terminal settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .context("switching the terminal to raw mode")?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
