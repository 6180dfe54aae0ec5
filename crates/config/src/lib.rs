//! banger's user configuration: `~/.config/banger/config.toml`.
//!
//! A missing file means "all defaults". Anything else that is wrong — a syntax error, an
//! unknown key, a wrong type, an out-of-range value — is an error naming the file, line,
//! column and key, and saying what is expected. Effective values are resolved here, in one
//! place, each with its [`Provenance`] (`config`, `auto` or `builtin`).
//!
//! The keys are documented in docs/config.md.

mod defaults;
pub mod env;
mod error;
mod images;
pub mod install;
mod logs;
mod network;
mod parse;
mod sandbox;
mod shares;
mod size;

pub use defaults::{
    AUTO_MEMORY_MAX_MIB, AUTO_MEMORY_MIN_MIB, AUTO_MEMORY_STEP_MIB, AUTO_VCPU_MAX,
    BUILTIN_DISK_BYTES, BUILTIN_MEMORY_MIB, BUILTIN_VCPU, Provenance, Resolved, VmDefaults,
    VmDefaultsConfig, resolve_vm_defaults,
};
pub use error::ConfigError;
pub use images::{DEFAULT_STANDBYS, ImagesConfig, MAX_STANDBYS, WarmPolicy};
pub use install::{InstallMeta, InstallMetaError, load_install_meta};
pub use logs::{
    BUILTIN_CONSOLE_MAX_BYTES, BUILTIN_DAEMON_MAX_BYTES, LOG_MAX_RANGE, LogLimits, LogsConfig,
};
pub use network::{
    BUILTIN_DNS, HOST_RESOLV_CONF, MAX_DNS, NetworkConfig, NetworkMode, RESOLVED_UPSTREAM,
    nameservers, usable_resolver,
};
pub use parse::{DISK_MAX_BYTES, DISK_MIN_BYTES, MEMORY_MIB_RANGE, VCPU_RANGE};
pub use sandbox::{
    BUILTIN_VMM_ID_BASE, BUILTIN_VMM_ID_COUNT, SandboxConfig, VMM_ID_BASE_RANGE,
    VMM_ID_COUNT_RANGE, VMM_MEMORY_OVERHEAD_RANGE, VMM_PIDS_MAX_RANGE,
};
pub use shares::{
    BUILTIN_COPY_MAX_BYTES, COPY_MAX_RANGE, ShareFallback, ShareSettings, SharesConfig,
};
pub use size::{MIB, format_size, parse_size, parse_size_with_unit};

use banger_paths::Layout;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Firecracker binary name looked up on PATH when `firecracker_bin` is not set.
pub const BUILTIN_FIRECRACKER_BIN: &str = "firecracker";
/// Where `banger firecracker install` downloads releases from unless
/// `firecracker_release_url` says otherwise: `<base>/vV/firecracker-vV-ARCH.tgz`.
pub const BUILTIN_FIRECRACKER_RELEASE_URL: &str =
    "https://github.com/firecracker-microvm/firecracker/releases/download";
/// Image used when `default_image_name` is not set.
pub const BUILTIN_DEFAULT_IMAGE: &str = "debian";
/// Longest accepted image name (a DNS label).
pub const IMAGE_NAME_MAX_LEN: usize = 63;

/// Which VMM driver the user prefers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmmPreference {
    /// Firecracker when usable, else QEMU (the driver crate decides).
    #[default]
    Auto,
    Qemu,
    Firecracker,
}

impl VmmPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            VmmPreference::Auto => "auto",
            VmmPreference::Qemu => "qemu",
            VmmPreference::Firecracker => "firecracker",
        }
    }
}

impl fmt::Display for VmmPreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VmmPreference {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(VmmPreference::Auto),
            "qemu" => Ok(VmmPreference::Qemu),
            "firecracker" => Ok(VmmPreference::Firecracker),
            other => Err(format!(
                "unknown VMM {other:?}; expected auto, qemu or firecracker"
            )),
        }
    }
}

/// The parsed config file. `None` fields were not set; use the `*_resolved` methods and
/// [`resolve_vm_defaults`] for effective values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub firecracker_bin: Option<PathBuf>,
    /// Already `~/`-expanded.
    pub ssh_key_path: Option<PathBuf>,
    pub default_image_name: Option<String>,
    pub vmm: VmmPreference,
    /// Release download base for `banger firecracker install` (a mirror, or a test server).
    pub firecracker_release_url: Option<String>,
    pub vm_defaults: VmDefaultsConfig,
    pub network: NetworkConfig,
    pub sandbox: SandboxConfig,
    pub logs: LogsConfig,
    pub images: ImagesConfig,
    pub shares: SharesConfig,
    /// The file this was read from; `None` when no file exists (all defaults).
    pub source: Option<PathBuf>,
}

impl Config {
    /// `firecracker_bin` (config) or `firecracker` (builtin, for the caller to look up on PATH).
    pub fn firecracker_bin_resolved(&self) -> Resolved<PathBuf> {
        match &self.firecracker_bin {
            Some(p) => Resolved::new(p.clone(), Provenance::Config),
            None => Resolved::new(PathBuf::from(BUILTIN_FIRECRACKER_BIN), Provenance::Builtin),
        }
    }

    /// `ssh_key_path` (config) or banger's own key under the config dir (builtin).
    pub fn ssh_key_path_resolved(&self, layout: &Layout) -> Resolved<PathBuf> {
        match &self.ssh_key_path {
            Some(p) => Resolved::new(p.clone(), Provenance::Config),
            None => Resolved::new(layout.default_ssh_key(), Provenance::Builtin),
        }
    }

    /// `firecracker_release_url` (config) or the upstream GitHub releases (builtin).
    pub fn firecracker_release_url_resolved(&self) -> Resolved<String> {
        match &self.firecracker_release_url {
            Some(url) => Resolved::new(url.clone(), Provenance::Config),
            None => Resolved::new(
                BUILTIN_FIRECRACKER_RELEASE_URL.to_string(),
                Provenance::Builtin,
            ),
        }
    }

    /// `default_image_name` (config) or `debian` (builtin).
    pub fn default_image_name_resolved(&self) -> Resolved<String> {
        match &self.default_image_name {
            Some(n) => Resolved::new(n.clone(), Provenance::Config),
            None => Resolved::new(BUILTIN_DEFAULT_IMAGE.to_string(), Provenance::Builtin),
        }
    }

    /// How large banger's logs may grow (console logs per VM, the daemon's log).
    pub fn logs_resolved(&self) -> LogLimits {
        self.logs.resolved()
    }

    pub fn shares_resolved(&self) -> ShareSettings {
        self.shares.resolved()
    }

    /// The VM defaults for a host with `host_cpus` CPUs and `host_memory_bytes` of RAM.
    pub fn vm_defaults_resolved(
        &self,
        host_cpus: Option<u32>,
        host_memory_bytes: Option<u64>,
    ) -> VmDefaults {
        resolve_vm_defaults(&self.vm_defaults, host_cpus, host_memory_bytes)
    }
}

/// Read and parse `path`. A missing file is not an error: it yields all defaults with
/// `source: None`. `~/` in paths expands against `$HOME`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parse config text; `path` is only used in error messages and `Config::source`.
/// `~/` in paths expands against `$HOME`.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    parse_with_home(text, path, home.as_deref())
}

/// [`parse`] with an explicit home directory for `~/` expansion (`None`: `~/` is an error).
pub fn parse_with_home(
    text: &str,
    path: &Path,
    home: Option<&Path>,
) -> Result<Config, ConfigError> {
    parse::parse_config(text, path, home)
}

/// Check an image name: `[a-z0-9][a-z0-9._-]*`, at most [`IMAGE_NAME_MAX_LEN`] characters.
/// The error is the rule, without the name: the caller quotes it as it sees fit (the daemon
/// shortens a long one).
pub fn validate_image_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok && name.len() <= IMAGE_NAME_MAX_LEN {
        Ok(())
    } else {
        Err(format!(
            "use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, \
             at most {IMAGE_NAME_MAX_LEN} characters"
        ))
    }
}

#[cfg(test)]
mod tests;
