//! Plain-HTTP GETs with timeouts. Integrity never rests on the transport: every
//! byte fetched is checked against the signed `InRelease` chain.

use std::io::Read;
use std::time::Duration;

use super::DebianError;

pub(crate) struct Http {
    agent: ureq::Agent,
}

/// A GET that did not produce a body.
pub(crate) enum GetError {
    /// 404: callers may try another URL (by-hash → plain path).
    NotFound(DebianError),
    Other(DebianError),
}

impl GetError {
    pub(crate) fn into_inner(self) -> DebianError {
        match self {
            GetError::NotFound(e) | GetError::Other(e) => e,
        }
    }
}

impl Http {
    pub(crate) fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect_timeout)
            .timeout_read(read_timeout)
            .user_agent(concat!("banger/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { agent }
    }

    /// Start a GET; the body is streamed by the returned reader.
    pub(crate) fn get(&self, url: &str) -> Result<Box<dyn Read + Send + Sync>, GetError> {
        if !url.starts_with("http://") {
            return Err(GetError::Other(DebianError::UnsupportedUrl {
                url: url.to_string(),
            }));
        }
        match self.agent.get(url).call() {
            Ok(response) => Ok(response.into_reader()),
            Err(ureq::Error::Status(status, response)) => {
                let err = DebianError::HttpStatus {
                    url: url.to_string(),
                    status,
                    reason: response.status_text().to_string(),
                };
                Err(if status == 404 {
                    GetError::NotFound(err)
                } else {
                    GetError::Other(err)
                })
            }
            Err(ureq::Error::Transport(transport)) => Err(GetError::Other(DebianError::Http {
                url: url.to_string(),
                reason: transport.to_string(),
            })),
        }
    }
}
