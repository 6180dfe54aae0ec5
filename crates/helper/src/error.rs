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

/// Why the helper cannot start serving: who the owner is, or its socket.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "{} is {kind}, not a regular file; replace it as docs/privileges.md, \"System install\" describes",
        path.display()
    )]
    InstallTomlKind { path: PathBuf, kind: String },
    #[error(
        "{path} (owner uid {uid}, mode {mode:#o}) must be owned by root and writable by nobody else, since it names who the helper serves; run `sudo chown root:root {path} && sudo chmod 0644 {path}`",
        path = path.display()
    )]
    InstallTomlPerms { path: PathBuf, uid: u32, mode: u32 },
    #[error("cannot read {}", path.display())]
    InstallToml {
        path: PathBuf,
        #[source]
        source: banger_config::InstallMetaError,
    },
    #[error("{} disappeared while the helper started", path.display())]
    InstallTomlGone { path: PathBuf },
    #[error("--owner-uid {flag} contradicts {}, which names uid {uid} ({user}); drop the flag", path.display())]
    OwnerContradicted {
        flag: u32,
        path: PathBuf,
        uid: u32,
        user: String,
    },
    #[error("SUDO_UID={0:?} is not a uid; pass --owner-uid")]
    SudoUid(String),
    #[error("another helper is already listening on {}; stop it first", path.display())]
    AlreadyListening { path: PathBuf },
    #[error("{} exists and is {kind}, not a socket; remove it", path.display())]
    NotASocket { path: PathBuf, kind: String },
    #[error("cannot give {} to uid {uid}", path.display())]
    Chown {
        path: PathBuf,
        uid: u32,
        #[source]
        source: std::io::Error,
    },
    /// Any other step on `path` failed: `action` says which ("create", "listen on", …).
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
