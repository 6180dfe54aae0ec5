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

/// `[images] standbys` when the file does not say: one VM per warm image kept restored
/// and ready, which makes the next `vm run` of the image a hand-over instead of a restore
/// (its memory is mostly the warm state's RAM file, mapped shared with every VM restored
/// from it; see docs/snapshots.md for the measured cost). One serves the common case of
/// runs one after another; a burst of parallel runs beyond it restores as before.
pub const DEFAULT_STANDBYS: u32 = 1;

/// The most standbys an image may keep: each is a running guest.
pub const MAX_STANDBYS: u32 = 16;

/// `[images]` as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagesConfig {
    pub warm: WarmPolicy,
    /// How many VMs per warm image the daemon keeps restored, waiting for a `vm run` of
    /// the image to take one (0: none; every warm run restores).
    pub standbys: u32,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            warm: WarmPolicy::default(),
            standbys: DEFAULT_STANDBYS,
        }
    }
}
