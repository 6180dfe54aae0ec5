//! What can go wrong talking to the helper.

use std::path::PathBuf;

use banger_helper_proto::{Failure, FailureKind, FrameError};

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The helper (or the in-process executor) refused or failed the verb; the message
    /// says why and what to do.
    #[error("the root helper refused {verb}: {}", failure.message)]
    Refused {
        verb: &'static str,
        failure: Failure,
    },
    #[error(
        "cannot reach the root helper at {}; is banger-helper.service running? (sudo systemctl status banger-helper.service)",
        path.display()
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the root helper at {} failed", path.display())]
    Protocol {
        path: PathBuf,
        #[source]
        source: FrameError,
    },
    #[error(
        "the root helper answered {verb} with an unexpected reply; are banger and the helper the same version?"
    )]
    Unexpected { verb: &'static str },
}

impl HelperError {
    /// The helper's classification, when it answered.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            HelperError::Refused { failure, .. } => Some(failure.kind),
            _ => None,
        }
    }
}
