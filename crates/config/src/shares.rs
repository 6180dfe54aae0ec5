//! `[shares]`: how host directories reach guests when they cannot be shared live
//! (docs/shares.md): whether `-v` may fall back to a copy, and how much a copy may hold.

use serde::{Deserialize, Serialize};

use crate::{Provenance, Resolved};

/// Default cap of what one copy-in share copies into its VM at boot.
pub const BUILTIN_COPY_MAX_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Accepted range for `copy_max`.
pub const COPY_MAX_RANGE: (u64, u64) = (1024 * 1024, 256 * 1024 * 1024 * 1024);

/// What `-v` without a mode gets where live sharing is impossible (Firecracker, or QEMU
/// without virtiofsd).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareFallback {
    /// A copy, and `vm create`/`vm run` say so.
    #[default]
    Copy,
    /// An error saying why live sharing is impossible.
    Refuse,
}

impl ShareFallback {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareFallback::Copy => "copy",
            ShareFallback::Refuse => "refuse",
        }
    }
}

impl std::str::FromStr for ShareFallback {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy" => Ok(ShareFallback::Copy),
            "refuse" => Ok(ShareFallback::Refuse),
            _ => Err(()),
        }
    }
}

/// `[shares]` as written in the file (unset fields are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharesConfig {
    pub fallback: Option<ShareFallback>,
    pub copy_max_bytes: Option<u64>,
}

/// The effective share settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSettings {
    pub fallback: Resolved<ShareFallback>,
    pub copy_max_bytes: Resolved<u64>,
}

impl SharesConfig {
    pub fn resolved(&self) -> ShareSettings {
        ShareSettings {
            fallback: match self.fallback {
                Some(f) => Resolved::new(f, Provenance::Config),
                None => Resolved::new(ShareFallback::default(), Provenance::Builtin),
            },
            copy_max_bytes: match self.copy_max_bytes {
                Some(b) => Resolved::new(b, Provenance::Config),
                None => Resolved::new(BUILTIN_COPY_MAX_BYTES, Provenance::Builtin),
            },
        }
    }
}
