//! The helper's Unix-socket server.
//!
//! The socket is created mode 0600 and owned by the owner, and every connection is
//! checked again with `SO_PEERCRED`: filesystem permissions are one lock, the peer's
//! kernel-verified uid is the other. A caller that is not the owner gets one refusal and
//! the connection is closed before any request is read.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use banger_helper_proto::{
    Failure, FailureKind, FrameError, PROTOCOL_VERSION, Request, Response, read_frame, write_frame,
};
use banger_system::fsperm::{FileFacts, FileKind};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use crate::Executor;
use crate::error::StartError;

/// At most this many connections are served at once; more are refused.
const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(60);

/// Create the listening socket at `path`: mode 0600 from the start, owned by `owner_uid`.
/// A stale socket file is replaced; a live one (another helper answers) or any other kind
/// of file is an error.
pub fn bind(path: &Path, owner_uid: u32) -> Result<UnixListener, StartError> {
    let io = |action: &'static str, at: &Path| {
        let path = at.to_path_buf();
        move |source| StartError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    match FileFacts::lstat(path) {
        Ok(facts) if facts.kind == FileKind::Socket => {
            if UnixStream::connect(path).is_ok() {
                return Err(StartError::AlreadyListening {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io("remove the stale socket", path))?;
        }
        Ok(facts) => {
            return Err(StartError::NotASocket {
                path: path.to_path_buf(),
                kind: facts.kind.to_string(),
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect", path)(e)),
    }
    // SAFETY: umask only swaps the process's file-creation mask; nothing else runs yet
    // in this process that creates files concurrently.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(io("listen on", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("chmod 0600", path))?;
    std::os::unix::fs::chown(path, Some(owner_uid), None).map_err(|source| StartError::Chown {
        path: path.to_path_buf(),
        uid: owner_uid,
        source,
    })?;
    Ok(listener)
}

/// Serve `executor` on `listener` until accepting fails; each connection gets a thread.
pub fn serve(listener: UnixListener, executor: Arc<Executor>) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, _) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            refuse(
                stream,
                FailureKind::Conflict,
                format!("the helper is serving {MAX_CONNECTIONS} connections already; retry"),
            );
            continue;
        }
        let executor = Arc::clone(&executor);
        let active = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("helper-conn".into())
            .spawn(move || {
                handle(stream, &executor);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a connection thread: {e}");
        }
    }
}

fn refuse(mut stream: UnixStream, kind: FailureKind, message: String) {
    let _ = stream.set_write_timeout(Some(IDLE));
    let _ = write_frame(&mut stream, &Response::Error(Failure::new(kind, message)));
}

/// Serve one connection: check the peer, then answer requests until it closes.
pub fn handle(mut stream: UnixStream, executor: &Executor) {
    let owner = executor.owner_uid();
    let peer = match getsockopt(&stream, PeerCredentials) {
        Ok(cred) => cred,
        Err(e) => {
            tracing::warn!("refused a connection: cannot read its credentials: {e}");
            return;
        }
    };
    if peer.uid() != owner {
        tracing::warn!(
            pid = peer.pid(),
            uid = peer.uid(),
            "refused a connection from a uid that is not the owner"
        );
        refuse(
            stream,
            FailureKind::NotPermitted,
            format!(
                "uid {} may not use this helper; it serves only uid {owner}",
                peer.uid()
            ),
        );
        return;
    }
    if stream.set_read_timeout(Some(IDLE)).is_err() || stream.set_write_timeout(Some(IDLE)).is_err()
    {
        return;
    }
    loop {
        let request: Request = match read_frame(&mut stream) {
            Ok(req) => req,
            Err(FrameError::Closed) => return,
            Err(FrameError::Json(e)) => {
                // A frame that is not one of the verbs (unknown verb, bad argument): say so,
                // and close — the stream is still in sync, but the client is confused.
                refuse(
                    stream,
                    FailureKind::BadRequest,
                    format!("not a valid helper request: {e}"),
                );
                return;
            }
            Err(e) => {
                tracing::info!("closing a connection: {}", banger_system::error_chain(&e));
                refuse(
                    stream,
                    FailureKind::BadRequest,
                    banger_system::error_chain(&e),
                );
                return;
            }
        };
        let response = if request.version != PROTOCOL_VERSION {
            Response::Error(Failure::new(
                FailureKind::VersionMismatch,
                format!(
                    "the client speaks helper protocol {}, this helper {PROTOCOL_VERSION}; restart the helper after upgrading banger",
                    request.version
                ),
            ))
        } else {
            let verb = request.verb.name();
            let result = executor.execute(request.verb);
            match &result {
                Ok(_) => tracing::info!(verb, "done"),
                Err(f) => tracing::warn!(verb, kind = ?f.kind, "refused: {}", f.message),
            }
            result.into()
        };
        if write_frame(&mut stream, &response).is_err() {
            return;
        }
    }
}
