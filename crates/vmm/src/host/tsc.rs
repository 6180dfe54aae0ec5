//! The host's TSC frequency in kHz.
//!
//! QEMU `-M microvm` under TCG gives the guest no timer to calibrate its TSC against (no HPET,
//! no PM timer), and the guest's TSC is the host's, so the guest must be told the frequency
//! (`tsc_early_khz=`) or it hangs at "Marking TSC unstable". A wrong value boots but the guest
//! clock drifts, so exact sources come first:
//!
//! 1. `/sys/devices/system/cpu/cpu0/tsc_freq_khz` (some kernels export it);
//! 2. CPUID leaf 0x15 (crystal × ratio) or 0x16 (base MHz), when the CPU implements them;
//! 3. the hypervisor timing leaf 0x40000010 (VMware convention, also offered by KVM/QEMU);
//! 4. measuring `rdtsc` against `CLOCK_MONOTONIC_RAW` (~300 ms). The model name's "@ 2.10GHz"
//!    is never used: it is marketing, not the TSC rate.
//!
//! Measuring is slow, so [`tsc_khz_cached`] keeps the answer in a file keyed by boot id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tsc_measure;

/// Where a frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TscSource {
    Sysfs,
    CpuidLeaf15,
    CpuidLeaf16,
    HypervisorLeaf,
    Measured,
}

impl TscSource {
    pub fn describe(self) -> &'static str {
        match self {
            TscSource::Sysfs => "sysfs tsc_freq_khz",
            TscSource::CpuidLeaf15 => "CPUID leaf 0x15",
            TscSource::CpuidLeaf16 => "CPUID leaf 0x16",
            TscSource::HypervisorLeaf => "hypervisor CPUID leaf 0x40000010",
            TscSource::Measured => "measured against CLOCK_MONOTONIC_RAW",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TscFrequency {
    pub khz: u64,
    pub source: TscSource,
}

#[derive(Debug, thiserror::Error)]
pub enum TscError {
    /// Not an x86_64 host.
    #[error("the TSC frequency can only be determined on x86_64 hosts")]
    UnsupportedArch,
    /// The measurement produced nonsense (clock jumped, host heavily overloaded).
    #[error("measured TSC frequency {khz} kHz is implausible; retry on a less loaded host")]
    Implausible { khz: u64 },
    /// A clock could not be read.
    #[error("cannot read CLOCK_MONOTONIC_RAW: {0}")]
    Clock(#[source] std::io::Error),
}

/// Plausible TSC rates: 100 MHz .. 10 GHz.
const PLAUSIBLE_KHZ: std::ops::RangeInclusive<u64> = 100_000..=10_000_000;

/// Determine the TSC frequency, measuring if no exact source answers (takes ~300 ms).
pub fn tsc_khz() -> Result<TscFrequency, TscError> {
    let sysfs = Path::new("/sys/devices/system/cpu/cpu0/tsc_freq_khz");
    if let Some(khz) = read_sysfs_khz(sysfs) {
        return Ok(TscFrequency {
            khz,
            source: TscSource::Sysfs,
        });
    }
    if let Some(found) = tsc_measure::from_cpuid() {
        return Ok(found);
    }
    let khz = round_measured_khz(tsc_measure::measure_khz(Duration::from_millis(100), 3)?);
    if !PLAUSIBLE_KHZ.contains(&khz) {
        return Err(TscError::Implausible { khz });
    }
    Ok(TscFrequency {
        khz,
        source: TscSource::Measured,
    })
}

fn read_sysfs_khz(path: &Path) -> Option<u64> {
    let khz: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    PLAUSIBLE_KHZ.contains(&khz).then_some(khz)
}

/// Round a measured rate. Measurements are good to a few ppm; rates within 10 ppm of a whole
/// MHz are taken to be that (2100.003 MHz → 2100000 kHz), others are kept to the kHz, as the
/// kernel prints them (2445.434 MHz → 2445434 kHz).
pub fn round_measured_khz(khz: f64) -> u64 {
    let mhz = (khz / 1000.0).round() * 1000.0;
    if (khz - mhz).abs() <= mhz * 10e-6 {
        mhz as u64
    } else {
        khz.round() as u64
    }
}

/// What the cache file holds.
#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    boot_id: String,
    khz: u64,
    source: TscSource,
}

/// [`tsc_khz`], remembered in `cache_file` for the current boot (the TSC rate cannot change
/// without a reboot). A cache that cannot be written is logged and otherwise ignored.
pub fn tsc_khz_cached(cache_file: &Path) -> Result<TscFrequency, TscError> {
    let boot_id = crate::process::boot_id().ok();
    if let Some(hit) = boot_id.as_deref().and_then(|id| read_cache(cache_file, id)) {
        return Ok(hit);
    }
    let found = tsc_khz()?;
    if let Some(boot_id) = boot_id {
        let entry = CacheEntry {
            boot_id,
            khz: found.khz,
            source: found.source,
        };
        if let Err(e) = write_cache(cache_file, &entry) {
            tracing::warn!(path = %cache_file.display(), error = %e, "cannot cache TSC frequency");
        }
    }
    Ok(found)
}

fn read_cache(cache_file: &Path, boot_id: &str) -> Option<TscFrequency> {
    let text = std::fs::read_to_string(cache_file).ok()?;
    let entry: CacheEntry = serde_json::from_str(&text).ok()?;
    (entry.boot_id == boot_id && PLAUSIBLE_KHZ.contains(&entry.khz)).then_some(TscFrequency {
        khz: entry.khz,
        source: entry.source,
    })
}

/// Write to a temp name, fsync, rename: readers never see half a file.
fn write_cache(cache_file: &Path, entry: &CacheEntry) -> std::io::Result<()> {
    use std::io::Write;
    let dir = cache_file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(
        serde_json::to_string(entry)
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )?;
    tmp.as_file().sync_all()?;
    tmp.persist(cache_file).map_err(|e| e.error)?;
    Ok(())
}

/// Default cache location under a runtime dir (cleared at reboot on most hosts anyway).
pub fn default_cache_file(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("tsc_khz.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_whole_mhz_only_when_close() {
        assert_eq!(round_measured_khz(2_100_003.4), 2_100_000);
        assert_eq!(round_measured_khz(2_099_990.0), 2_100_000);
        assert_eq!(round_measured_khz(2_445_434.2), 2_445_434);
        assert_eq!(round_measured_khz(2_445_433.6), 2_445_434);
        assert_eq!(round_measured_khz(3_000_100.0), 3_000_100);
    }

    #[test]
    fn sysfs_value_is_parsed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tsc_freq_khz");
        std::fs::write(&p, "2100000\n").unwrap();
        assert_eq!(read_sysfs_khz(&p), Some(2_100_000));
        std::fs::write(&p, "7\n").unwrap();
        assert_eq!(read_sysfs_khz(&p), None);
        assert_eq!(read_sysfs_khz(&dir.path().join("absent")), None);
    }

    #[test]
    fn cache_is_keyed_by_boot_id() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/tsc.json");
        let entry = CacheEntry {
            boot_id: "b1".into(),
            khz: 2_100_000,
            source: TscSource::Measured,
        };
        write_cache(&file, &entry).unwrap();
        assert_eq!(
            read_cache(&file, "b1"),
            Some(TscFrequency {
                khz: 2_100_000,
                source: TscSource::Measured
            })
        );
        assert_eq!(read_cache(&file, "b2"), None);
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(read_cache(&file, "b1"), None);
    }

    #[test]
    fn cached_probe_writes_then_reuses_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tsc.json");
        let first = tsc_khz_cached(&file).unwrap();
        assert!(PLAUSIBLE_KHZ.contains(&first.khz));
        // Plant a different value for this boot: a cache hit must return it unchanged.
        let boot_id = crate::process::boot_id().unwrap();
        let planted = CacheEntry {
            boot_id,
            khz: 1_234_567,
            source: first.source,
        };
        write_cache(&file, &planted).unwrap();
        assert_eq!(tsc_khz_cached(&file).unwrap().khz, 1_234_567);
    }
}
