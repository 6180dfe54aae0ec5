//! The CLI end of an exec stream: local stdin/stdout/stderr, terminal and signals
//! on one side, the daemon's upgraded connection on the other.

use std::io::IsTerminal;
use std::os::fd::AsFd;

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
    spawn_signal_forwarding(tx.clone(), tty)?;
    drop(tx);

    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let status = loop {
        match read_frame(&mut rd)
            .await
            .context("reading command output from the daemon")?
        {
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
    writer.abort();
    Ok(status)
}

/// Forward window-size changes (tty) or termination signals (no tty: in raw mode
/// Ctrl-C is just a byte the guest's terminal turns into SIGINT).
fn spawn_signal_forwarding(tx: mpsc::Sender<StreamFrame>, tty: bool) -> anyhow::Result<()> {
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
    } else {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                let signo = tokio::select! {
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                    _ = hup.recv() => libc::SIGHUP,
                };
                if tx.send(StreamFrame::Signal(signo)).await.is_err() {
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
