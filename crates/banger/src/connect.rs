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
    let mut attempts = 0;
    loop {
        match client.health().await {
            Ok(health) => {
                warn_on_mismatch(&health, layout);
                return Ok(client);
            }
            Err(e) if e.is_unreachable() => break,
            // A daemon that is exiting can still accept a connection and then drop it;
            // look again shortly, by when its socket refuses (or a new one answers).
            Err(e) if e.is_connection_lost() && attempts < 5 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
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

fn warn_on_mismatch(health: &banger_api::Health, layout: &Layout) {
    if let Some(warning) = crate::version_check::mismatch(health, layout) {
        crate::output::warn(&warning);
    }
}

/// A client for an already running daemon; never starts one.
pub fn existing(layout: &Layout) -> Client {
    Client::new(layout.daemon_socket())
}

/// How long a lock-holding daemon that is not answering gets before we try again:
/// the holder may have been a daemon that was dying as ours started.
const LOST_RACE_GRACE: Duration = Duration::from_secs(1);
const MAX_RESPAWNS: u32 = 5;

async fn start_daemon(layout: &Layout, client: &Client) -> anyhow::Result<()> {
    std::fs::create_dir_all(&layout.state_dir)
        .with_context(|| format!("cannot create state dir {}", layout.state_dir.display()))?;
    let log_path = layout.daemon_log();
    // Where this start's lines begin: an error shows those, not an older daemon's.
    let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let mut child = spawn_daemon(&log_path)?;
    let mut lost_race_at: Option<Instant> = None;
    let mut respawns = 0;

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut delay = Duration::from_millis(5);
    loop {
        match client.health().await {
            Ok(_) => return Ok(()),
            // Refused or dropped: not (or no longer) serving; the exit check below
            // tells a daemon that died from one still starting.
            Err(e) if e.is_unreachable() || e.is_connection_lost() => {}
            Err(e) => return Err(e.into()),
        }
        match child.try_wait()? {
            // Another daemon held the lock: normally a racing CLI's, which will answer
            // soon. If nobody answers, the holder was dying; start ours again.
            Some(status) if status.code() == Some(banger_daemon::EXIT_ALREADY_RUNNING) => {
                let since = *lost_race_at.get_or_insert_with(Instant::now);
                if since.elapsed() > LOST_RACE_GRACE && respawns < MAX_RESPAWNS {
                    child = spawn_daemon(&log_path)?;
                    lost_race_at = None;
                    respawns += 1;
                }
            }
            Some(status) => bail!(
                "the banger daemon exited at startup ({status}); see {}\n{}",
                log_path.display(),
                lines_since(&log_path, log_start, 10).join("\n")
            ),
            None => {}
        }
        if Instant::now() > deadline {
            let holder = std::fs::read_to_string(layout.daemon_pid_file())
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .map(|pid| format!(" (a daemon with pid {pid} holds its lock; `kill {pid}` stops it, VMs keep running)"))
                .unwrap_or_default();
            bail!(
                "the banger daemon did not answer on {} within {}s{holder}; see {}",
                layout.daemon_socket().display(),
                STARTUP_TIMEOUT.as_secs(),
                log_path.display()
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// The last `n` lines written to `path` after byte `start` (all of them if the log was
/// rotated since), read from the file's end only.
fn lines_since(path: &std::path::Path, start: u64, n: usize) -> Vec<String> {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    let written = if len >= start { len - start } else { len };
    let lines = banger_system::tail::tail_lines(path, n);
    // Keep only what fits in the bytes written since `start`.
    let mut budget = written as usize;
    let mut kept: Vec<String> = Vec::new();
    for line in lines.into_iter().rev() {
        if line.len() + 1 > budget {
            break;
        }
        budget -= line.len() + 1;
        kept.push(line);
    }
    kept.reverse();
    kept
}

/// Start `banger daemon run` detached from this terminal, logging to `log_path`.
fn spawn_daemon(log_path: &std::path::Path) -> anyhow::Result<std::process::Child> {
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_path)
        .with_context(|| format!("cannot open daemon log {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot locate the banger executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["daemon", "run"])
        // A CLI run inside some service manager's unit must not hand its readiness socket
        // to the dev daemon, which would report itself ready to a manager not its own.
        .env_remove(banger_system::notify::NOTIFY_SOCKET)
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
    cmd.spawn().context("cannot start the banger daemon")
}
