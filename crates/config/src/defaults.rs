//! The one place VM sizing defaults are resolved, each with its provenance.
//!
//! A field set in `[vm_defaults]` always wins (`config`). Otherwise vCPUs and memory are
//! sized from the host when its resources are known (`auto`), else a fixed value is used
//! (`builtin`). The disk is never sized from the host: a work disk is sparse, so host
//! RAM or CPU count says nothing useful about it.
//!
//! The `auto` rules (also in docs/config.md):
//!
//! * vcpu   = clamp(host_cpus / 2, 1, 4) — leave half the host for the host, and more
//!   than 4 vCPUs rarely helps a dev VM boot or build faster.
//! * memory = clamp(host_memory / 8, rounded down to a multiple of 256 MiB, 512 MiB, 4096 MiB)
//!   — an eighth leaves room for several VMs plus the host's own work.

use serde::{Deserialize, Serialize};
use std::fmt;

/// vCPUs when the host CPU count is unknown.
pub const BUILTIN_VCPU: u32 = 2;
/// Memory (MiB) when the host memory size is unknown.
pub const BUILTIN_MEMORY_MIB: u64 = 1024;
/// Work disk size: 8 GiB, sparse.
pub const BUILTIN_DISK_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// Upper bound of the `auto` vCPU rule.
pub const AUTO_VCPU_MAX: u32 = 4;
/// Bounds and granularity of the `auto` memory rule, in MiB.
pub const AUTO_MEMORY_MIN_MIB: u64 = 512;
pub const AUTO_MEMORY_MAX_MIB: u64 = 4096;
pub const AUTO_MEMORY_STEP_MIB: u64 = 256;

const MIB: u64 = 1024 * 1024;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// Set in config.toml.
    Config,
    /// Sized from the host's CPUs or memory.
    Auto,
    /// banger's fixed fallback.
    Builtin,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Config => "config",
            Provenance::Auto => "auto",
            Provenance::Builtin => "builtin",
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An effective value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved<T> {
    pub value: T,
    pub source: Provenance,
}

impl<T> Resolved<T> {
    pub fn new(value: T, source: Provenance) -> Self {
        Resolved { value, source }
    }
}

/// The `[vm_defaults]` table as written by the user: `None` means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDefaultsConfig {
    pub vcpu: Option<u32>,
    pub memory_mib: Option<u64>,
    pub disk_bytes: Option<u64>,
}

/// The sizing `vm create` / `vm run` apply when the user passes no flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDefaults {
    pub vcpu: Resolved<u32>,
    pub memory_mib: Resolved<u64>,
    pub disk_bytes: Resolved<u64>,
}

/// Resolve every VM default. `host_cpus` / `host_memory_bytes` are `None` (or 0) when the
/// host could not be inspected; the field then falls back to its builtin value.
pub fn resolve_vm_defaults(
    cfg: &VmDefaultsConfig,
    host_cpus: Option<u32>,
    host_memory_bytes: Option<u64>,
) -> VmDefaults {
    let vcpu = match (cfg.vcpu, host_cpus) {
        (Some(v), _) => Resolved::new(v, Provenance::Config),
        (None, Some(cpus)) if cpus > 0 => {
            Resolved::new((cpus / 2).clamp(1, AUTO_VCPU_MAX), Provenance::Auto)
        }
        (None, _) => Resolved::new(BUILTIN_VCPU, Provenance::Builtin),
    };
    let memory_mib = match (cfg.memory_mib, host_memory_bytes) {
        (Some(m), _) => Resolved::new(m, Provenance::Config),
        (None, Some(bytes)) if bytes > 0 => {
            let eighth_mib = bytes / 8 / MIB;
            let stepped = eighth_mib - eighth_mib % AUTO_MEMORY_STEP_MIB;
            Resolved::new(
                stepped.clamp(AUTO_MEMORY_MIN_MIB, AUTO_MEMORY_MAX_MIB),
                Provenance::Auto,
            )
        }
        (None, _) => Resolved::new(BUILTIN_MEMORY_MIB, Provenance::Builtin),
    };
    let disk_bytes = match cfg.disk_bytes {
        Some(d) => Resolved::new(d, Provenance::Config),
        None => Resolved::new(BUILTIN_DISK_BYTES, Provenance::Builtin),
    };
    VmDefaults {
        vcpu,
        memory_mib,
        disk_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;

    #[test]
    fn config_wins_over_host_and_builtin() {
        let cfg = VmDefaultsConfig {
            vcpu: Some(7),
            memory_mib: Some(3000),
            disk_bytes: Some(20 * GIB),
        };
        for host in [(Some(64), Some(256 * GIB)), (None, None)] {
            let d = resolve_vm_defaults(&cfg, host.0, host.1);
            assert_eq!(d.vcpu, Resolved::new(7, Provenance::Config));
            assert_eq!(d.memory_mib, Resolved::new(3000, Provenance::Config));
            assert_eq!(d.disk_bytes, Resolved::new(20 * GIB, Provenance::Config));
        }
    }

    #[test]
    fn auto_sizes_from_the_host() {
        let d = resolve_vm_defaults(&VmDefaultsConfig::default(), Some(8), Some(16 * GIB));
        assert_eq!(d.vcpu, Resolved::new(4, Provenance::Auto));
        assert_eq!(d.memory_mib, Resolved::new(2048, Provenance::Auto));
        // The disk is never host-sized.
        assert_eq!(
            d.disk_bytes,
            Resolved::new(BUILTIN_DISK_BYTES, Provenance::Builtin)
        );
    }

    #[test]
    fn auto_clamps_and_rounds() {
        let cases = [
            // (cpus, memory, expected vcpu, expected MiB)
            (1, GIB, 1, 512),                 // tiny host: floors
            (2, 2 * GIB, 1, 512),             // this kind of CI box
            (6, 12 * GIB, 3, 1536),           // 1536 is a multiple of 256
            (128, 1024 * GIB, 4, 4096),       // big host: ceilings
            (3, 10 * GIB + 5 * MIB, 1, 1280), // 1280.6 MiB rounds down to 1280
            (4, 9 * GIB, 2, 1024),            // 1152 MiB rounds down to 1024
        ];
        for (cpus, mem, vcpu, mib) in cases {
            let d = resolve_vm_defaults(&VmDefaultsConfig::default(), Some(cpus), Some(mem));
            assert_eq!(d.vcpu, Resolved::new(vcpu, Provenance::Auto), "cpus={cpus}");
            assert_eq!(
                d.memory_mib,
                Resolved::new(mib, Provenance::Auto),
                "mem={mem}"
            );
        }
    }

    #[test]
    fn unknown_host_falls_back_to_builtin() {
        for host in [(None, None), (Some(0), Some(0))] {
            let d = resolve_vm_defaults(&VmDefaultsConfig::default(), host.0, host.1);
            assert_eq!(d.vcpu, Resolved::new(BUILTIN_VCPU, Provenance::Builtin));
            assert_eq!(
                d.memory_mib,
                Resolved::new(BUILTIN_MEMORY_MIB, Provenance::Builtin)
            );
            assert_eq!(
                d.disk_bytes,
                Resolved::new(BUILTIN_DISK_BYTES, Provenance::Builtin)
            );
        }
    }

    #[test]
    fn each_field_resolves_independently() {
        let cfg = VmDefaultsConfig {
            vcpu: None,
            memory_mib: Some(777),
            disk_bytes: None,
        };
        let d = resolve_vm_defaults(&cfg, Some(4), None);
        assert_eq!(d.vcpu.source, Provenance::Auto);
        assert_eq!(d.memory_mib.source, Provenance::Config);
        assert_eq!(d.disk_bytes.source, Provenance::Builtin);
    }

    #[test]
    fn provenance_display_and_serde_are_lowercase() {
        assert_eq!(Provenance::Config.to_string(), "config");
        assert_eq!(Provenance::Auto.to_string(), "auto");
        assert_eq!(Provenance::Builtin.to_string(), "builtin");
        let d = resolve_vm_defaults(&VmDefaultsConfig::default(), Some(2), None);
        let json = serde_json_like(&d.vcpu);
        assert!(json.contains("source = \"auto\""), "{json}");
    }

    /// Serialise through TOML (already a dependency) to check the serde names.
    fn serde_json_like<T: Serialize>(v: &T) -> String {
        toml::to_string(v).unwrap_or_default()
    }
}
