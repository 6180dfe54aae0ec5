//! `[images]`: what banger does with images by itself.

use serde::{Deserialize, Serialize};

/// `[images] warm`: when an image gets a warm state (a saved agent-ready guest that
/// `vm run` of the image restores instead of booting) without `banger image warm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WarmPolicy {
    /// Only `banger image warm` makes one.
    #[default]
    Off,
    /// The first VM of an image booted cold with default resources makes one in the
    /// background (one extra guest boot, never delaying that VM).
    OnFirstUse,
}

impl WarmPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            WarmPolicy::Off => "off",
            WarmPolicy::OnFirstUse => "on-first-use",
        }
    }
}

impl std::str::FromStr for WarmPolicy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "off" => Ok(WarmPolicy::Off),
            "on-first-use" => Ok(WarmPolicy::OnFirstUse),
            _ => Err(()),
        }
    }
}

/// `[images]` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagesConfig {
    pub warm: WarmPolicy,
}
