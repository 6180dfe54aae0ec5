//! Who is on the other end of a connection: SO_PEERCRED. The socket's mode (0600, in a 0700
//! directory) already keeps other users out; this is the second lock, as the root helper
//! has: only the daemon's own uid and root may talk to it, whatever the file modes say (a
//! socket fd passed to another process, a directory made too open by hand).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// A refused uid is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Decides on peers and remembers whom it refused, so a retrying client fills no log.
#[derive(Default)]
pub struct PeerCheck {
    logged: HashMap<u32, Instant>,
}

/// The uids allowed: this process's effective uid, and root.
pub fn allowed(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

impl PeerCheck {
    /// `Some(stream)` to serve; `None` when the peer was refused (it got a 403 and the
    /// connection is closed).
    pub async fn admit(&mut self, stream: UnixStream) -> Option<UnixStream> {
        let uid = match stream.peer_cred() {
            Ok(cred) => cred.uid(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the credentials of a connection; closing it");
                return None;
            }
        };
        if allowed(uid) {
            return Some(stream);
        }
        let now = Instant::now();
        let recent = self
            .logged
            .get(&uid)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY);
        if !recent {
            tracing::warn!(uid, "refused a connection from another user");
            self.logged.insert(uid, now);
            self.logged
                .retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        }
        refuse(stream, uid).await;
        None
    }
}

/// Tell a refused client why, briefly, without reading its request.
async fn refuse(mut stream: UnixStream, uid: u32) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let body = format!(
        "{{\"kind\":\"forbidden\",\"message\":\"uid {uid} may not use this banger daemon: it serves uid {me} (and root)\",\"hint\":\"run banger as the user who owns it\"}}"
    );
    let response = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}
