//! `sudo banger firecracker install`: fetch an official Firecracker release, verify it, and
//! install `firecracker` and `jailer` root-owned, mode 0755, so doctor's ownership check and
//! the root helper's launch checks pass.
//!
//! The release is the upstream tarball `firecracker-vV-ARCH.tgz` with its published
//! `firecracker-vV-ARCH.tgz.sha256.txt`, under `<base>/vV/`. Nothing is installed unless the
//! download matches its checksum, holds both binaries, and the new `firecracker` reports
//! the requested version. Each binary is written under a temporary name in the target
//! directory, synced, and renamed over the old one: a running Firecracker keeps its own
//! (unlinked) file, and a reader never sees half a binary.

mod download;
mod place;
mod tarball;

use std::path::{Path, PathBuf};

use banger_system::CommandRunner;

use crate::version::{SemVer, VersionError};

/// The directory binaries go to by default (on root's PATH, and where doctor looks).
pub const DEFAULT_BIN_DIR: &str = "/usr/local/bin";

/// Largest download accepted: releases are ~50 MiB.
pub const MAX_TARBALL_BYTES: u64 = 512 << 20;

/// What to install, from where, to where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRequest {
    pub version: SemVer,
    /// Release download base, e.g. `https://github.com/firecracker-microvm/firecracker/releases/download`.
    pub base_url: String,
    pub bin_dir: PathBuf,
    /// `x86_64` or `aarch64`, as release file names spell it.
    pub arch: String,
}

impl InstallRequest {
    /// `firecracker-v1.14.1-x86_64.tgz`
    pub fn tarball_name(&self) -> String {
        format!("firecracker-{}-{}.tgz", self.version, self.arch)
    }

    pub fn tarball_url(&self) -> String {
        format!(
            "{}/{}/{}",
            self.base_url.trim_end_matches('/'),
            self.version,
            self.tarball_name()
        )
    }

    /// The published checksum file beside the tarball.
    pub fn checksum_url(&self) -> String {
        format!("{}.sha256.txt", self.tarball_url())
    }
}

/// What was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: SemVer,
    pub firecracker: PathBuf,
    pub jailer: PathBuf,
    /// The verified SHA-256 of the tarball.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "installing Firecracker needs root (the binaries must be root-owned for banger to \
         launch them); run it with sudo: sudo banger firecracker install"
    )]
    NotRoot,

    #[error("release architecture {0:?} is not one Firecracker publishes; use x86_64 or aarch64")]
    UnsupportedArch(String),

    #[error("base URL {0:?} is not an http:// or https:// URL")]
    BadUrl(String),

    #[error("cannot download {url}; check the version and the release URL")]
    Download {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("downloading {url} stopped after {got} of {expected} bytes; try again")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },

    #[error("{url} is larger than {limit} bytes; that is not a Firecracker release")]
    TooLarge { url: String, limit: u64 },

    #[error("the checksum file {url} does not hold a SHA-256 for {file}: {found:?}")]
    BadChecksumFile {
        url: String,
        file: String,
        found: String,
    },

    #[error(
        "{url} has SHA-256 {actual}, but the published checksum is {expected}; nothing was \
         installed (a corrupted or tampered download)"
    )]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },

    #[error("{tarball} is not a readable gzip'd tar archive")]
    BadTarball {
        tarball: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{tarball} has no {binary}; is it a Firecracker release for {arch}?")]
    MissingBinary {
        tarball: String,
        binary: String,
        arch: String,
    },

    #[error("the downloaded firecracker does not run")]
    BrokenBinary(#[source] VersionError),

    #[error("the downloaded firecracker says it is {found}, not the requested {wanted}")]
    VersionMismatch { wanted: SemVer, found: SemVer },

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InstallError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> InstallError {
        InstallError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Download, verify and install the release `req` names. `say` receives one line per step.
pub fn install(
    req: &InstallRequest,
    runner: &dyn CommandRunner,
    say: &mut dyn FnMut(&str),
) -> Result<Installed, InstallError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(InstallError::NotRoot);
    }
    if !matches!(req.arch.as_str(), "x86_64" | "aarch64") {
        return Err(InstallError::UnsupportedArch(req.arch.clone()));
    }
    if !(req.base_url.starts_with("https://") || req.base_url.starts_with("http://")) {
        return Err(InstallError::BadUrl(req.base_url.clone()));
    }
    let http = download::Http::new();
    let sums_url = req.checksum_url();
    say(&format!("fetching {sums_url}"));
    let expected = download::checksum(&http, &sums_url, &req.tarball_name())?;

    let scratch = tempfile::Builder::new()
        .prefix("banger-firecracker-")
        .tempdir()
        .map_err(|e| InstallError::io("create a scratch directory in", &std::env::temp_dir(), e))?;
    let tarball = scratch.path().join(req.tarball_name());
    let url = req.tarball_url();
    say(&format!("downloading {url}"));
    let actual = download::to_file(&http, &url, &tarball, MAX_TARBALL_BYTES)?;
    if actual != expected {
        return Err(InstallError::ChecksumMismatch {
            url,
            expected,
            actual,
        });
    }
    say(&format!("sha256 {actual} matches the published checksum"));

    let binaries = tarball::extract(&tarball, req, scratch.path())?;
    place::check_version(runner, &binaries.firecracker, &req.version)?;
    let firecracker = place::install_binary(&binaries.firecracker, &req.bin_dir, "firecracker")?;
    let jailer = place::install_binary(&binaries.jailer, &req.bin_dir, "jailer")?;
    say(&format!(
        "installed {} and {} (root:root, 0755)",
        firecracker.display(),
        jailer.display()
    ));
    Ok(Installed {
        version: req.version.clone(),
        firecracker,
        jailer,
        sha256: actual,
    })
}
