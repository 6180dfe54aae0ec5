//! Where a Firecracker release sits relative to banger's supported window, and the one
//! wording every caller (doctor, driver selection, the driver itself) uses for a release
//! below the floor.

use std::path::PathBuf;

use crate::version::{KNOWN_TESTED, MIN_SUPPORTED, SemVer, must_parse};

/// The command that installs the tested release; named by every "missing or too old" hint.
pub const INSTALL_COMMAND: &str = "sudo banger firecracker install";

/// A release's place in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Below [`MIN_SUPPORTED`]: banger refuses to launch it.
    TooOld,
    /// In `[MIN_SUPPORTED, KNOWN_TESTED]`.
    Tested,
    /// Above [`KNOWN_TESTED`]: usually works, but outside what banger's tests have seen.
    Newer,
}

/// Classify `version`.
pub fn support(version: &SemVer) -> Support {
    if *version < must_parse(MIN_SUPPORTED) {
        Support::TooOld
    } else if *version > must_parse(KNOWN_TESTED) {
        Support::Newer
    } else {
        Support::Tested
    }
}

/// A Firecracker binary below the supported floor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Firecracker {version} at {} is older than the supported minimum v{MIN_SUPPORTED}; \
     install a supported release with `{INSTALL_COMMAND}`",
    path.display()
)]
pub struct TooOld {
    pub version: SemVer,
    pub path: PathBuf,
}

/// `Err(TooOld)` when `version` is below the floor.
pub fn require_supported(version: &SemVer, path: impl Into<PathBuf>) -> Result<(), TooOld> {
    match support(version) {
        Support::TooOld => Err(TooOld {
            version: version.clone(),
            path: path.into(),
        }),
        Support::Tested | Support::Newer => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges() {
        let v = |s: &str| SemVer::parse(s).unwrap();
        assert_eq!(support(&v("1.4.9")), Support::TooOld);
        assert_eq!(support(&v("1.5.0-rc.1")), Support::TooOld);
        assert_eq!(support(&v("1.5.0")), Support::Tested);
        assert_eq!(support(&v("1.14.1")), Support::Tested);
        assert_eq!(support(&v("1.14.2")), Support::Newer);
        assert_eq!(support(&v("2.0.0")), Support::Newer);
    }

    #[test]
    fn too_old_names_the_binary_the_floor_and_the_fix() {
        let err = require_supported(&SemVer::parse("1.4.1").unwrap(), "/usr/bin/firecracker")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Firecracker v1.4.1 at /usr/bin/firecracker is older than the supported minimum \
             v1.5.0; install a supported release with `sudo banger firecracker install`"
        );
        assert!(require_supported(&SemVer::parse("1.5.0").unwrap(), "/x").is_ok());
    }
}
