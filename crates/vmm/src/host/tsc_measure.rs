//! The CPU-specific half of TSC probing: CPUID leaves and the rdtsc measurement.

use std::time::Duration;

use super::tsc::{TscError, TscFrequency, TscSource};

/// CPUID registers `[eax, ebx, ecx, edx]` for a leaf (sub-leaf 0).
type Cpuid<'a> = &'a dyn Fn(u32) -> [u32; 4];

/// Ask the CPU (or the hypervisor) for the TSC rate.
pub(super) fn from_cpuid() -> Option<TscFrequency> {
    #[cfg(target_arch = "x86_64")]
    {
        let cpuid = |leaf: u32| {
            let r = std::arch::x86_64::__cpuid_count(leaf, 0);
            [r.eax, r.ebx, r.ecx, r.edx]
        };
        from_cpuid_with(&cpuid)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The leaf logic, with CPUID injectable for tests. Leaves above the reported maximum are
/// never read: Intel CPUs answer them with the data of the highest leaf.
fn from_cpuid_with(cpuid: Cpuid<'_>) -> Option<TscFrequency> {
    let max_basic = cpuid(0)[0];
    if max_basic >= 0x15 {
        let [denominator, numerator, crystal_hz, _] = cpuid(0x15);
        if denominator != 0 && numerator != 0 {
            if crystal_hz != 0 {
                let khz =
                    u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator) / 1000;
                return Some(TscFrequency {
                    khz,
                    source: TscSource::CpuidLeaf15,
                });
            }
            // Ratio known, crystal not: as Linux does, the base frequency (leaf 0x16) is the
            // TSC rate then.
            if max_basic >= 0x16 {
                let base_mhz = cpuid(0x16)[0] & 0xffff;
                if base_mhz != 0 {
                    let khz = u64::from(base_mhz) * 1000;
                    return Some(TscFrequency {
                        khz,
                        source: TscSource::CpuidLeaf16,
                    });
                }
            }
        }
    }
    let hypervisor = cpuid(1)[2] & (1 << 31) != 0;
    if hypervisor && cpuid(0x4000_0000)[0] >= 0x4000_0010 {
        let khz = u64::from(cpuid(0x4000_0010)[0]);
        if khz != 0 {
            return Some(TscFrequency {
                khz,
                source: TscSource::HypervisorLeaf,
            });
        }
    }
    None
}

/// Measure the TSC rate against `CLOCK_MONOTONIC_RAW` over `rounds` windows of `window` and
/// return the median, in (fractional) kHz.
pub(super) fn measure_khz(window: Duration, rounds: usize) -> Result<f64, TscError> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut results = Vec::with_capacity(rounds);
        for _ in 0..rounds.max(1) {
            let (tsc0, ns0) = sample()?;
            std::thread::sleep(window);
            let (tsc1, ns1) = sample()?;
            let ns = ns1.saturating_sub(ns0).max(1) as f64;
            // cycles per nanosecond × 10^6 = kHz
            results.push(tsc1.wrapping_sub(tsc0) as f64 * 1e6 / ns);
        }
        results.sort_by(f64::total_cmp);
        Ok(results[results.len() / 2])
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (window, rounds);
        Err(TscError::UnsupportedArch)
    }
}

/// One (tsc, ns) pair: the TSC read bracketed by two clock reads, keeping the tightest of a
/// few tries so a preemption between the reads does not skew the result.
#[cfg(target_arch = "x86_64")]
fn sample() -> Result<(u64, u64), TscError> {
    let mut best: Option<(u64, u64, u64)> = None; // (width, tsc, midpoint ns)
    for _ in 0..16 {
        let before = monotonic_raw_ns()?;
        // SAFETY: rdtsc has no memory effects; every x86_64 CPU implements it.
        let tsc = unsafe { std::arch::x86_64::_rdtsc() };
        let after = monotonic_raw_ns()?;
        let width = after.saturating_sub(before);
        if best.is_none_or(|(w, _, _)| width < w) {
            best = Some((width, tsc, before + width / 2));
        }
    }
    // The loop ran at least once, so `best` is set; the fallback is unreachable.
    let (_, tsc, ns) = best.unwrap_or_default();
    Ok((tsc, ns))
}

#[cfg(target_arch = "x86_64")]
fn monotonic_raw_ns() -> Result<u64, TscError> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) } != 0 {
        return Err(TscError::Clock(std::io::Error::last_os_error()));
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fake(leaves: &[(u32, [u32; 4])]) -> impl Fn(u32) -> [u32; 4] {
        let map: HashMap<u32, [u32; 4]> = leaves.iter().copied().collect();
        move |leaf| {
            map.get(&leaf)
                .copied()
                .unwrap_or([0xdead, 0xbeef, 0xdead, 0xbeef])
        }
    }

    #[test]
    fn leaf_15_with_crystal() {
        // 24 MHz crystal × 175/2 = 2100 MHz.
        let f = fake(&[(0, [0x16, 0, 0, 0]), (0x15, [2, 175, 24_000_000, 0])]);
        assert_eq!(
            from_cpuid_with(&f),
            Some(TscFrequency {
                khz: 2_100_000,
                source: TscSource::CpuidLeaf15
            })
        );
    }

    #[test]
    fn leaf_16_when_crystal_unknown() {
        let f = fake(&[
            (0, [0x16, 0, 0, 0]),
            (0x15, [2, 176, 0, 0]),
            (0x16, [2100, 3700, 100, 0]),
        ]);
        assert_eq!(
            from_cpuid_with(&f),
            Some(TscFrequency {
                khz: 2_100_000,
                source: TscSource::CpuidLeaf16
            })
        );
    }

    #[test]
    fn leaves_beyond_the_maximum_are_ignored() {
        // An AMD-like CPU under KVM (max leaf 0xd, hypervisor leaves up to 0x40000001): the
        // garbage the fake returns for unlisted leaves must not be used.
        let f = fake(&[
            (0, [0xd, 0, 0, 0]),
            (1, [0, 0, 1 << 31, 0]),
            (0x4000_0000, [0x4000_0001, 0, 0, 0]),
        ]);
        assert_eq!(from_cpuid_with(&f), None);
    }

    #[test]
    fn hypervisor_timing_leaf() {
        let f = fake(&[
            (0, [0xd, 0, 0, 0]),
            (1, [0, 0, 1 << 31, 0]),
            (0x4000_0000, [0x4000_0010, 0, 0, 0]),
            (0x4000_0010, [2_445_434, 1_000_000, 0, 0]),
        ]);
        assert_eq!(
            from_cpuid_with(&f),
            Some(TscFrequency {
                khz: 2_445_434,
                source: TscSource::HypervisorLeaf
            })
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn measurement_is_stable() {
        let a = measure_khz(Duration::from_millis(50), 3).unwrap();
        let b = measure_khz(Duration::from_millis(50), 3).unwrap();
        assert!((100_000.0..10_000_000.0).contains(&a), "{a}");
        // Two measurements agree to 0.1 % even on a noisy machine.
        assert!((a - b).abs() / a < 1e-3, "{a} vs {b}");
    }
}
