//! Which Firecracker releases banger accepts, and reading `firecracker --version`.
//!
//! Two constants define the window:
//!
//! * [`MIN_SUPPORTED`] — the floor. banger refuses to launch anything older; raising it
//!   is a deliberate decision tied to a feature that needs the newer API.
//! * [`KNOWN_TESTED`] — the newest release banger's test suite has been run against.
//!   Newer releases usually work (the API is stable within a major version) but are
//!   outside what we have seen.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use banger_system::CommandRunner;

/// Oldest Firecracker release banger supports.
pub const MIN_SUPPORTED: &str = "1.5.0";

/// Newest Firecracker release banger has been tested against.
pub const KNOWN_TESTED: &str = "1.14.1";

/// The marker that starts the version line of `firecracker --version`.
const VERSION_LINE_PREFIX: &str = "Firecracker v";

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The text is not `MAJOR.MINOR.PATCH[-PRE]`.
    #[error("{input:?} is not a version of the form MAJOR.MINOR.PATCH[-PRERELEASE]")]
    Malformed { input: String },

    /// `--version` printed something without a `Firecracker vX.Y.Z` line.
    #[error(
        "the --version output has no \"Firecracker vX.Y.Z\" line (it starts with {first_line:?}); is this really a Firecracker binary?"
    )]
    NoVersionLine { first_line: String },

    /// The binary could not be started at all.
    #[error("could not run `{} --version`; check that the path is an executable file", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The binary ran but reported failure.
    #[error("`{} --version` {status}: {stderr}; reinstall Firecracker", bin.display())]
    Exited {
        bin: PathBuf,
        status: String,
        stderr: String,
    },

    /// The binary ran and succeeded, but its output could not be understood.
    #[error("`{} --version` printed an unrecognised version", bin.display())]
    Unrecognised {
        bin: PathBuf,
        #[source]
        source: Box<VersionError>,
    },
}

/// A semantic version as Firecracker prints it: `1.14.1`, `1.15.0-dev`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SemVer {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release tag without the leading `-` (`dev`, `rc.1`).
    pub pre: Option<String>,
}

impl SemVer {
    /// Parse `MAJOR.MINOR.PATCH[-PRE][+BUILD]` (semver 2.0, through the `semver` crate),
    /// with an optional leading `v`. Build metadata is accepted and dropped: it never
    /// affects ordering.
    pub fn parse(input: &str) -> Result<SemVer, VersionError> {
        let text = input.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let parsed = semver::Version::parse(text).map_err(|_| VersionError::Malformed {
            input: input.to_string(),
        })?;
        Ok(SemVer {
            major: parsed.major,
            minor: parsed.minor,
            patch: parsed.patch,
            pre: (!parsed.pre.is_empty()).then(|| parsed.pre.as_str().to_string()),
        })
    }

    /// Three-way comparison; same as [`Ord::cmp`].
    pub fn compare(&self, other: &SemVer) -> Ordering {
        self.cmp(other)
    }

    /// The pre-release tag in semver's own type, whose ordering is the spec's.
    fn prerelease(&self) -> semver::Prerelease {
        match &self.pre {
            None => semver::Prerelease::EMPTY,
            // Only a hand-built value can hold a tag that does not parse; it ranks like a
            // release, and the text tie-break in `cmp` keeps the order total.
            Some(pre) => semver::Prerelease::new(pre).unwrap_or(semver::Prerelease::EMPTY),
        }
    }
}

/// Parse a version constant. Panics on malformed input, so use it only on literals
/// that the tests of this crate exercise (like [`MIN_SUPPORTED`]).
pub fn must_parse(input: &str) -> SemVer {
    match SemVer::parse(input) {
        Ok(version) => version,
        Err(err) => panic!("invalid version constant: {err}"),
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            // semver's Prerelease orders an empty tag (a release) after every
            // pre-release of the same version, numbers numerically, as the spec says.
            .then_with(|| self.prerelease().cmp(&other.prerelease()))
            .then_with(|| self.pre.cmp(&other.pre))
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// Find the `Firecracker vX.Y.Z` line in `firecracker --version` output.
///
/// Everything else is ignored on purpose: releases append different trailers (1.5.0
/// lists snapshot format versions, 1.14.1 logs "exiting successfully").
pub fn parse_version_output(stdout: &str) -> Result<SemVer, VersionError> {
    for line in stdout.lines() {
        if let Some(rest) = line.trim_start().strip_prefix(VERSION_LINE_PREFIX) {
            let token = rest.split_whitespace().next().unwrap_or("");
            return SemVer::parse(token);
        }
    }
    let first_line = stdout
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(80)
        .collect();
    Err(VersionError::NoVersionLine { first_line })
}

/// Run `<bin> --version` and parse what it prints.
pub fn query_version(runner: &dyn CommandRunner, bin: &Path) -> Result<SemVer, VersionError> {
    let output = runner
        .run(bin, &[OsStr::new("--version")])
        .map_err(|source| VersionError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    if !output.success() {
        let status = match output.code {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_string(),
        };
        let stderr = output.stderr_str().trim().to_string();
        let stderr = if stderr.is_empty() {
            "(no error output)".to_string()
        } else {
            stderr
        };
        return Err(VersionError::Exited {
            bin: bin.to_path_buf(),
            status,
            stderr,
        });
    }
    parse_version_output(&output.stdout_str()).map_err(|source| VersionError::Unrecognised {
        bin: bin.to_path_buf(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests;
