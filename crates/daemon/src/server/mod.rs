//! The daemon's socket: single-instance lock, a 0600 Unix socket, the accept loop.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;

use crate::state::Daemon;

/// Another daemon holds the single-instance lock. Not a failure for a CLI that
/// raced another CLI to start the daemon: that other daemon will answer.
#[derive(Debug, thiserror::Error)]
#[error("another banger daemon is already running (it holds {})", lock.display())]
pub struct AlreadyRunning {
    pub lock: PathBuf,
}

/// Holds the single-instance lock and the socket; removes both files on drop.
pub struct Bound {
    pub listener: UnixListener,
    socket: PathBuf,
    pid_file: PathBuf,
    _lock: Flock<File>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
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
            return Err(AlreadyRunning { lock: lock_path }.into());
        }
        Err((_, e)) => bail!("cannot lock {}: {e}", lock_path.display()),
    };

    // We hold the lock, so any socket file left here belongs to a dead daemon.
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
    std::fs::write(pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", pid_file.display()))?;

    Ok(Bound {
        listener,
        socket: socket.to_path_buf(),
        pid_file: pid_file.to_path_buf(),
        _lock: lock,
    })
}

/// Serve until a shutdown is requested (API call or SIGTERM/SIGINT).
pub async fn serve(daemon: Arc<Daemon>, bound: &Bound) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut shutdown = daemon.shutdown_signal();
    let router = crate::http::router(daemon.clone());
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                    {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!("daemon shutting down; running VMs keep running");
    Ok(())
}
