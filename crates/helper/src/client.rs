//! [`HelperClient`]: the daemon's side of the helper socket.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_helper_proto::{Reply, Request, Response, Verb, read_frame, write_frame};

use crate::{HelperError, Privileged};

/// Verbs finish in milliseconds; a helper that does not answer in this long is stuck.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Talks to `banger helper` over its socket, one connection per verb (verbs are rare,
/// and a fresh connection never inherits a half-read frame).
#[derive(Debug, Clone)]
pub struct HelperClient {
    socket: PathBuf,
}

impl HelperClient {
    pub fn new(socket: &Path) -> HelperClient {
        HelperClient {
            socket: socket.to_path_buf(),
        }
    }
}

impl Privileged for HelperClient {
    fn call(&self, verb: Verb) -> Result<Reply, HelperError> {
        let name = verb.name();
        let connect = |source| HelperError::Connect {
            path: self.socket.clone(),
            source,
        };
        let protocol = |source| HelperError::Protocol {
            path: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(connect)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(connect)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(connect)?;
        let sent = write_frame(&mut stream, &Request::new(verb));
        // A helper that refuses the caller answers before reading the request and closes,
        // so the write can fail; its answer is still there to read.
        let response: Response = match (sent, read_frame(&mut stream)) {
            (_, Ok(response)) => response,
            (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(protocol(e)),
        };
        Result::<Reply, _>::from(response).map_err(|failure| HelperError::Refused {
            verb: name,
            failure,
        })
    }
}
