//! GETs from the archive. Integrity never rests on the transport: every byte fetched is
//! checked against the signed `InRelease` chain, so plain-HTTP mirrors are fine and
//! https mirrors work too.

use std::io::Read;
use std::time::Duration;

use super::DebianError;
use crate::http::{HttpClient, HttpError};

pub(crate) struct Http {
    client: HttpClient,
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
        Self {
            client: HttpClient::new(connect_timeout, read_timeout),
        }
    }

    /// Start a GET; the body is streamed by the returned reader.
    pub(crate) fn get(&self, url: &str) -> Result<Box<dyn Read + Send + Sync>, GetError> {
        match self.client.get(url) {
            Ok(response) => Ok(response.body),
            Err(e) if e.is_not_found() => Err(GetError::NotFound(convert(e))),
            Err(e) => Err(GetError::Other(convert(e))),
        }
    }
}

fn convert(e: HttpError) -> DebianError {
    match e {
        HttpError::UnsupportedUrl { url } => DebianError::UnsupportedUrl { url },
        HttpError::Status {
            url,
            status,
            reason,
        } => DebianError::HttpStatus {
            url,
            status,
            reason,
        },
        HttpError::Transport { url, via, reason } => DebianError::Http {
            url,
            reason: format!("{reason}{via}"),
        },
        HttpError::BadProxy { url, proxy, reason } => DebianError::Http {
            url,
            reason: format!("the proxy {proxy:?} from the environment is not usable: {reason}"),
        },
    }
}
