//! Fetching packages from a Debian archive with apt's chain of trust:
//! `InRelease` (signature checked by `gpgv` against the Debian archive keyring)
//! → SHA-256 of `Packages.xz` → SHA-256 of each `.deb`. Downloads land in a
//! content-addressed cache, so a second build downloads nothing but `InRelease`.

mod cache;
pub mod deb822;
mod http;
mod packages;
mod release;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_system::CommandRunner;
use banger_system::progress::{NoProgress, Progress, ProgressReader, Unit};

pub use cache::Cache;
pub use packages::{Package, PackageIndex};
pub use release::Release;

use crate::fsutil;
use http::{GetError, Http};

/// Overrides [`DebianOptions::mirror`] when the caller applies [`DebianOptions::with_env`].
pub const ENV_MIRROR: &str = "BANGER_DEBIAN_MIRROR";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// `InRelease` files are ~150 KiB; anything beyond this is not one.
const MAX_INRELEASE: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// Not an http:// or https:// URL.
    #[error(
        "cannot fetch {url}: only http:// and https:// mirrors are supported; set {ENV_MIRROR} to one"
    )]
    UnsupportedUrl { url: String },
    /// Connecting or reading failed.
    #[error(
        "cannot fetch {url}: {reason}; check the network or set {ENV_MIRROR} to a reachable mirror"
    )]
    Http { url: String, reason: String },
    /// The server answered with an error status.
    #[error("cannot fetch {url}: the server answered {status} {reason}")]
    HttpStatus {
        url: String,
        status: u16,
        reason: String,
    },
    /// A local file operation failed.
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `gpgv` is not installed.
    #[error(
        "cannot verify the Debian archive signature: {program:?} was not found; install it with `apt-get install gpgv`"
    )]
    GpgvMissing { program: PathBuf },
    /// The archive keyring is not installed.
    #[error(
        "cannot verify the Debian archive signature: keyring {path:?} does not exist; install it with `apt-get install debian-archive-keyring`"
    )]
    KeyringMissing { path: PathBuf },
    /// The signature on `InRelease` does not check out.
    #[error(
        "the signature on {url} is not valid: {reason} (gpgv said: {gpgv_stderr}); the mirror may be compromised or the keyring outdated (`apt-get install debian-archive-keyring`)"
    )]
    BadSignature {
        url: String,
        reason: String,
        gpgv_stderr: String,
    },
    /// `InRelease` is signed but unusable.
    #[error("{url} is not usable: {reason}")]
    Release { url: String, reason: String },
    /// An index file we need is not listed in `InRelease`.
    #[error("{url} does not list {path}; check the suite, component and architecture")]
    NotInRelease { url: String, path: String },
    /// A download's SHA-256 differs from the signed value.
    #[error(
        "checksum mismatch for {what} from {url}: expected sha256 {expected}, got {got}; the mirror served altered or stale data, try again or another mirror"
    )]
    Checksum {
        what: String,
        url: String,
        expected: String,
        got: String,
    },
    /// A download's size differs from the signed value.
    #[error(
        "size mismatch for {what} from {url}: expected {expected} bytes, got {got}; the mirror served altered or stale data, try again or another mirror"
    )]
    SizeMismatch {
        what: String,
        url: String,
        expected: u64,
        got: u64,
    },
    /// `Packages` could not be parsed.
    #[error("the package index {what} is unreadable: {reason}")]
    Packages { what: String, reason: String },
    /// The suite does not have the package.
    #[error("package {name} is not in {suite}/{component} for {arch}")]
    PackageNotFound {
        name: String,
        suite: String,
        component: String,
        arch: String,
    },
    /// A metapackage has no dependency to follow.
    #[error("package {name} is expected to be a metapackage, but it has no Depends to follow")]
    NotMetapackage { name: String },
}

impl DebianError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        DebianError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// SHA-256 and size of a file, as listed in a signed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub sha256: String,
    pub size: u64,
}

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct DebianOptions {
    /// Mirror root, e.g. `http://deb.debian.org/debian`.
    pub mirror: String,
    pub suite: String,
    pub component: String,
    pub arch: String,
    /// OpenPGP keyring `InRelease` must be signed with.
    pub keyring: PathBuf,
    /// The `gpgv` program (a bare name is looked up in `PATH`).
    pub gpgv: PathBuf,
    pub connect_timeout: Duration,
    /// Longest wait for any single read.
    pub read_timeout: Duration,
}

impl Default for DebianOptions {
    fn default() -> Self {
        Self {
            mirror: DEFAULT_MIRROR.to_string(),
            suite: "bookworm".to_string(),
            component: "main".to_string(),
            arch: "amd64".to_string(),
            keyring: PathBuf::from(DEFAULT_KEYRING),
            gpgv: PathBuf::from("gpgv"),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl DebianOptions {
    /// Apply `BANGER_DEBIAN_MIRROR` if set and non-empty.
    pub fn with_env(mut self) -> Self {
        if let Some(mirror) = std::env::var(ENV_MIRROR)
            .ok()
            .filter(|m| !m.trim().is_empty())
        {
            self.mirror = mirror.trim().to_string();
        }
        self
    }

    fn dists_url(&self) -> String {
        format!("{}/dists/{}", self.mirror.trim_end_matches('/'), self.suite)
    }
}

/// A Debian archive reached through a cache. Cheap to create.
pub struct Archive<'a> {
    opts: DebianOptions,
    cache: Cache,
    http: Http,
    runner: &'a dyn CommandRunner,
    progress: &'a dyn Progress,
}

impl<'a> Archive<'a> {
    /// `cache_dir` is shared by all downloads (see [`Cache`]); `runner` runs `gpgv`.
    pub fn new(opts: DebianOptions, cache_dir: &Path, runner: &'a dyn CommandRunner) -> Self {
        let http = Http::new(opts.connect_timeout, opts.read_timeout);
        Self {
            opts,
            cache: Cache::new(cache_dir),
            http,
            runner,
            progress: &NoProgress,
        }
    }

    /// Report downloads (a phase each, with byte counts) and steps through `progress`.
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    pub fn options(&self) -> &DebianOptions {
        &self.opts
    }

    /// Download `InRelease`, verify its signature and check it names our suite.
    pub fn fetch_release(&self) -> Result<Release, DebianError> {
        let url = format!("{}/InRelease", self.opts.dists_url());
        self.progress.note(&format!("fetching {url}"));
        let body = self.http.get(&url).map_err(GetError::into_inner)?;
        let bytes = fsutil::read_limited(body, MAX_INRELEASE).map_err(|e| DebianError::Http {
            url: url.clone(),
            reason: format!("reading the body failed: {e}"),
        })?;
        let work = tempfile::Builder::new()
            .prefix("banger-inrelease-")
            .tempdir()
            .map_err(|e| DebianError::io("create a temp dir in", &std::env::temp_dir(), e))?;
        let signed = work.path().join("InRelease");
        std::fs::write(&signed, &bytes).map_err(|e| DebianError::io("write", &signed, e))?;
        let text = release::verify_clearsigned(
            self.runner,
            &self.opts.gpgv,
            &self.opts.keyring,
            &signed,
            work.path(),
            &url,
        )?;
        let release_err = |reason: String| DebianError::Release {
            url: url.clone(),
            reason,
        };
        let release = Release::parse(&text).map_err(release_err)?;
        release
            .check(
                &self.opts.suite,
                &self.opts.component,
                &self.opts.arch,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(release_err)?;
        Ok(release)
    }

    /// Fetch (or reuse from the cache) and parse `Packages.xz` for our
    /// component and architecture.
    pub fn fetch_packages(&self, release: &Release) -> Result<PackageIndex, DebianError> {
        let dir = format!("{}/binary-{}", self.opts.component, self.opts.arch);
        let rel_path = format!("{dir}/Packages.xz");
        let digest = release
            .file(&rel_path)
            .ok_or_else(|| DebianError::NotInRelease {
                url: format!("{}/InRelease", self.opts.dists_url()),
                path: rel_path.clone(),
            })?;
        let base = self.opts.dists_url();
        let mut urls = Vec::new();
        // by-hash names never change content, so a mirror update between our
        // InRelease and Packages requests cannot mismatch them.
        if release.acquire_by_hash {
            urls.push(format!("{base}/{dir}/by-hash/SHA256/{}", digest.sha256));
        }
        urls.push(format!("{base}/{rel_path}"));
        let path = self.fetch_verified(&urls, digest, &rel_path)?;
        self.progress.phase(&format!("read {rel_path}"), None, None);
        let file = std::fs::File::open(&path).map_err(|e| DebianError::io("open", &path, e))?;
        let reader =
            BufReader::with_capacity(1 << 16, liblzma::read::XzDecoder::new(BufReader::new(file)));
        PackageIndex::parse(reader).map_err(|reason| DebianError::Packages {
            what: rel_path,
            reason,
        })
    }

    /// [`Archive::fetch_release`] then [`Archive::fetch_packages`].
    pub fn fetch_index(&self) -> Result<PackageIndex, DebianError> {
        let release = self.fetch_release()?;
        self.fetch_packages(&release)
    }

    /// Look a package up, failing with a clear error when it is absent.
    pub fn package<'i>(
        &self,
        index: &'i PackageIndex,
        name: &str,
    ) -> Result<&'i Package, DebianError> {
        index.get(name).ok_or_else(|| DebianError::PackageNotFound {
            name: name.to_string(),
            suite: self.opts.suite.clone(),
            component: self.opts.component.clone(),
            arch: self.opts.arch.clone(),
        })
    }

    /// Follow a metapackage's first `Depends` to the package it stands for
    /// (`linux-image-cloud-amd64` → `linux-image-6.1.0-NN-cloud-amd64`).
    pub fn resolve_metapackage<'i>(
        &self,
        index: &'i PackageIndex,
        name: &str,
    ) -> Result<&'i Package, DebianError> {
        let meta = self.package(index, name)?;
        let target = meta
            .first_dependency()
            .ok_or_else(|| DebianError::NotMetapackage {
                name: name.to_string(),
            })?;
        self.package(index, &target)
    }

    /// Download (or reuse from the cache) a package's `.deb`, verified against
    /// the SHA-256 from the signed index. Returns its path in the cache.
    pub fn fetch_deb(&self, package: &Package) -> Result<PathBuf, DebianError> {
        let url = format!(
            "{}/{}",
            self.opts.mirror.trim_end_matches('/'),
            package.filename
        );
        let digest = FileDigest {
            sha256: package.sha256.clone(),
            size: package.size,
        };
        let what = package
            .filename
            .rsplit('/')
            .next()
            .unwrap_or(&package.filename)
            .to_string();
        self.fetch_verified(&[url], &digest, &what)
    }

    /// The cached copy of `digest`, or the first URL that is not a 404.
    fn fetch_verified(
        &self,
        urls: &[String],
        digest: &FileDigest,
        what: &str,
    ) -> Result<PathBuf, DebianError> {
        if let Some(path) = self.cache.lookup(digest)? {
            self.progress.note(&format!("using cached {what}"));
            return Ok(path);
        }
        let mut last_error = None;
        for url in urls {
            self.progress.note(&format!("downloading {url}"));
            match self.http.get(url) {
                Ok(body) => {
                    self.progress.phase(
                        &format!("download {what}"),
                        Some(digest.size),
                        Some(Unit::Bytes),
                    );
                    let body = ProgressReader::new(body, self.progress);
                    return self.cache.store(digest, what, url, body);
                }
                Err(GetError::NotFound(e)) => last_error = Some(e),
                Err(GetError::Other(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| DebianError::NotInRelease {
            url: self.opts.dists_url(),
            path: what.to_string(),
        }))
    }
}
