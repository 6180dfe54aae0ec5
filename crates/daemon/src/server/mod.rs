//! The daemon's socket: single-instance lock, a 0600 Unix socket, and the accept loop with
//! its bounds — peer credentials, a connection limit, header timeouts, back-off when accept
//! fails, and a socket that comes back if someone deletes it.

mod conns;
mod peer;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};

use crate::state::Daemon;
use conns::{Conns, Pressure};

/// The accept loop's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once (see `conns.rs`).
    pub max_connections: usize,
    /// A request's headers must arrive within this time of the connection (or of the
    /// previous response): a half-sent request, or an idle keep-alive connection, holds a
    /// connection no longer.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: conns::MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
        }
    }
}
/// How often the socket file is checked, and re-created if it was deleted or replaced.
const SOCKET_CHECK: Duration = Duration::from_secs(2);
/// Back-off bounds after a failed accept (out of file descriptors, memory, …).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Another daemon holds the single-instance lock. Not a failure for a CLI that
/// raced another CLI to start the daemon: that other daemon will answer.
#[derive(Debug, thiserror::Error)]
#[error("another banger daemon{} is already running (it holds {})", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), lock.display())]
pub struct AlreadyRunning {
    pub lock: PathBuf,
    /// From the daemon's pid file, when it could be read.
    pub pid: Option<u32>,
}

/// Holds the single-instance lock and the socket; removes both files on drop.
pub struct Bound {
    pub listener: UnixListener,
    socket: PathBuf,
    /// Device and inode of the socket file we bound, to notice it being replaced.
    identity: (u64, u64),
    pid_file: PathBuf,
    _lock: Flock<File>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        // Only our own socket: a replacement someone else bound is theirs.
        if socket_identity(&self.socket) == Some(self.identity) {
            let _ = std::fs::remove_file(&self.socket);
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Take the daemon lock and bind the socket with mode 0600.
pub fn bind(runtime_dir: &Path, socket: &Path, pid_file: &Path) -> anyhow::Result<Bound> {
    banger_system::fsperm::create_private_dir(runtime_dir)?;
    let lock_path = runtime_dir.join("bangerd.lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("cannot open daemon lock {}", lock_path.display()))?;
    let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            return Err(AlreadyRunning {
                lock: lock_path,
                pid,
            }
            .into());
        }
        Err((_, e)) => bail!("cannot lock {}: {e}", lock_path.display()),
    };

    let (listener, identity) = bind_socket(socket)?;
    write_pid_file(pid_file)?;
    Ok(Bound {
        listener,
        socket: socket.to_path_buf(),
        identity,
        pid_file: pid_file.to_path_buf(),
        _lock: lock,
    })
}

/// Bind `socket` (replacing a stale one: we hold the lock, so no live daemon owns it),
/// reachable only by its owner from the first instant.
fn bind_socket(socket: &Path) -> anyhow::Result<(UnixListener, (u64, u64))> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove stale socket {}", socket.display()));
        }
    }
    // Bind under a restrictive umask so the socket is never briefly reachable by others.
    // SAFETY: umask only swaps the process file-mode mask; it cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(socket);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener =
        bound.with_context(|| format!("cannot bind daemon socket {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod {}", socket.display()))?;
    let identity = socket_identity(socket)
        .with_context(|| format!("cannot inspect the new socket {}", socket.display()))?;
    Ok((listener, identity))
}

fn socket_identity(socket: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(socket)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn write_pid_file(pid_file: &Path) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(pid_file)
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    writeln!(file, "{}", std::process::id())
        .with_context(|| format!("cannot write {}", pid_file.display()))
}

/// Raise the soft limit on open files to the hard one: each connection, VM console and agent
/// connection is a descriptor, and the connection limit should bind long before the fd limit.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Serve until a shutdown is requested (API call or SIGTERM/SIGINT).
pub async fn serve(daemon: Arc<Daemon>, bound: &mut Bound, limits: Limits) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut shutdown = daemon.shutdown_signal();
    let conns = Conns::new(limits.max_connections);
    let router = crate::http::router(daemon.clone());
    let mut peers = peer::PeerCheck::default();
    let mut socket_check = tokio::time::interval(SOCKET_CHECK);
    socket_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u64 = 0;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: the pending connection stays queued, so
                        // retrying at once spins. Back off, and say so once per episode.
                        if failures == 0 {
                            tracing::warn!(error = %e, open = conns.open(), "accepting connections fails; backing off until it works again");
                        }
                        failures += 1;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        continue;
                    }
                };
                if failures > 0 {
                    tracing::info!(failures, "accepting connections works again");
                    failures = 0;
                    backoff = ACCEPT_BACKOFF_MIN;
                }
                let Some(stream) = peers.admit(stream).await else {
                    continue;
                };
                let (ticket, pressure) = conns.admit();
                if pressure == Pressure::Began {
                    tracing::warn!(limit = limits.max_connections, "connection limit reached: closing idle connections to make room");
                }
                match ticket {
                    Some((ticket, evicted)) => spawn_connection(router.clone(), stream, ticket, evicted, limits.header_timeout),
                    None => drop(stream),
                }
            }
            _ = socket_check.tick() => {
                if let Some((evicted, refused)) = conns.relieved() {
                    tracing::info!(evicted, refused, "back under the connection limit");
                }
                if socket_identity(&bound.socket) != Some(bound.identity) {
                    tracing::warn!(socket = %bound.socket.display(), "the daemon socket was deleted or replaced; binding it again");
                    match bind_socket(&bound.socket) {
                        Ok((listener, identity)) => {
                            bound.listener = listener;
                            bound.identity = identity;
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot bind the daemon socket again"),
                    }
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!("daemon shutting down; running VMs keep running");
    Ok(())
}

/// Serve one connection until it ends or is evicted.
fn spawn_connection(
    router: axum::Router,
    stream: UnixStream,
    ticket: Arc<conns::Ticket>,
    mut evicted: tokio::sync::oneshot::Receiver<()>,
    header_timeout: Duration,
) {
    tokio::spawn(async move {
        let service = service_fn(move |req| {
            let router = router.clone();
            // Busy until the response body has been sent (or dropped).
            let busy = ticket.busy();
            async move {
                let response = tower::ServiceExt::oneshot(router, req).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _ = &busy;
                        frame
                    }))
                }))
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::select! {
            result = connection => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            _ = &mut evicted => {}
        }
    });
}
