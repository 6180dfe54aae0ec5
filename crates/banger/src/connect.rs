//! Reaching the owner daemon, starting it first in dev mode.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banger_api::Client;
use banger_paths::{Layout, Mode};

/// How long a freshly spawned daemon gets to open its socket.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for the daemon, starting one when none runs (dev mode only).
pub async fn connect(layout: &Layout) -> anyhow::Result<Client> {
    let client = Client::new(layout.daemon_socket());
    match client.health().await {
        Ok(_) => return Ok(client),
        Err(e) if e.is_unreachable() => {}
        Err(e) => return Err(e.into()),
    }
    if layout.mode == Mode::SystemInstall {
        bail!(
            "the banger daemon is not running at {}: start it with `sudo systemctl start {}`",
            layout.daemon_socket().display(),
            banger_paths::DAEMON_SERVICE
        );
    }
    start_daemon(layout, &client).await?;
    Ok(client)
}

/// A client for an already running daemon; never starts one.
pub fn existing(layout: &Layout) -> Client {
    Client::new(layout.daemon_socket())
}

async fn start_daemon(layout: &Layout, client: &Client) -> anyhow::Result<()> {
    std::fs::create_dir_all(&layout.state_dir)
        .with_context(|| format!("cannot create state dir {}", layout.state_dir.display()))?;
    let log_path = layout.daemon_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open daemon log {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot locate the banger executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["daemon", "run"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it
    // detaches the daemon from our session so it outlives this terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the banger daemon")?;

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut delay = Duration::from_millis(5);
    loop {
        match client.health().await {
            Ok(_) => return Ok(()),
            Err(e) if !e.is_unreachable() => return Err(e.into()),
            Err(_) => {}
        }
        let exited = child.try_wait()?;
        // A daemon that found another one starting exits with EXIT_ALREADY_RUNNING:
        // keep waiting for that other daemon to open its socket.
        if let Some(status) =
            exited.filter(|s| s.code() != Some(banger_daemon::EXIT_ALREADY_RUNNING))
        {
            bail!(
                "the banger daemon exited at startup ({status}); see {}\n{}",
                log_path.display(),
                tail(&log_path, 10)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the banger daemon did not open {} within {}s; see {}",
                layout.daemon_socket().display(),
                STARTUP_TIMEOUT.as_secs(),
                log_path.display()
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
