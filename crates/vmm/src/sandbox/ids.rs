//! The unprivileged uids and gids sandboxed VMMs run as.
//!
//! A root daemon never runs a VMM as root: each VM gets its own uid and gid from a reserved
//! numeric range, so one compromised VMM cannot signal, ptrace or read another. No passwd or
//! group entries are created on the host — the numbers are only ever used as numbers. The
//! first id of the range is the *inputs group*: the group of the shared read-only files
//! (kernels, initrds, base images) every sandboxed VMM may read and other local users may not.

use std::collections::HashSet;
use std::io;

/// Start of the default range (`sandbox.vmm_id_base`): above systemd-nspawn's container
/// ranges (which end at 1879048191) and below 2³¹, which some tools mishandle.
pub const DEFAULT_ID_BASE: u32 = banger_config::BUILTIN_VMM_ID_BASE;
/// Ids in the default range (the first is the inputs group, the rest one per VM).
pub const DEFAULT_ID_COUNT: u32 = banger_config::BUILTIN_VMM_ID_COUNT;
/// The range must start above every uid a distribution hands out to users and services
/// (Debian: below 60000; systemd's dynamic users: 61184–65519).
pub const MIN_ID_BASE: u32 = banger_config::VMM_ID_BASE_RANGE.0 as u32;

/// A reserved range of numeric ids: `base` is the inputs group, `base + 1 ..` are VM ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    base: u32,
    count: u32,
}

impl Default for IdRange {
    fn default() -> Self {
        IdRange {
            base: DEFAULT_ID_BASE,
            count: DEFAULT_ID_COUNT,
        }
    }
}

impl IdRange {
    /// A range of `count` ids from `base`. Refused when it would overlap users' or system
    /// ids, cross 2³¹, or leave no id for a VM.
    pub fn new(base: u32, count: u32) -> Result<IdRange, String> {
        if base < MIN_ID_BASE {
            return Err(format!(
                "the VMM id range starts at {base}, among ordinary users' and system ids; \
                 start it at {MIN_ID_BASE} or above"
            ));
        }
        if count < 2 {
            return Err(format!(
                "the VMM id range has {count} ids; it needs at least 2 (the inputs group and one VM)"
            ));
        }
        if u64::from(base) + u64::from(count) > 1 << 31 {
            return Err(format!(
                "the VMM id range {base}+{count} ends above 2^31; tools mishandle such ids, \
                 so keep the range below 2147483648"
            ));
        }
        Ok(IdRange { base, count })
    }

    pub fn base(&self) -> u32 {
        self.base
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The group of shared read-only inputs; every sandboxed VMM has it as its one
    /// supplementary group.
    pub fn inputs_gid(&self) -> u32 {
        self.base
    }

    /// Whether `id` is one of this range's per-VM ids.
    pub fn is_vm_id(&self, id: u32) -> bool {
        id > self.base && u64::from(id) < u64::from(self.base) + u64::from(self.count)
    }

    /// The id for VM `vm_id`: its hash picks a starting slot (so a VM tends to keep its id
    /// across boots), and the first slot from there that no live process uses wins. `None`
    /// when every id of the range is in use.
    pub fn pick(&self, vm_id: &str, in_use: &HashSet<u32>) -> Option<u32> {
        let slots = self.count - 1;
        let start = fnv1a(vm_id.as_bytes()) % u64::from(slots);
        (0..u64::from(slots))
            .map(|i| self.base + 1 + ((start + i) % u64::from(slots)) as u32)
            .find(|id| !in_use.contains(id))
    }
}

/// 64-bit FNV-1a: stable across builds and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Every uid and gid (real, effective, saved, filesystem) any live process holds.
pub fn ids_in_use() -> io::Result<HashSet<u32>> {
    let mut ids = HashSet::new();
    for pid in banger_system::procfs::pids()? {
        // A process may exit between the listing and the read: skip it.
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(rest) = line
                .strip_prefix("Uid:")
                .or_else(|| line.strip_prefix("Gid:"))
            {
                ids.extend(
                    rest.split_whitespace()
                        .filter_map(|s| s.parse::<u32>().ok()),
                );
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlapping_users_or_crossing_2_31_are_refused() {
        assert!(IdRange::new(1000, 100).unwrap_err().contains("65536"));
        assert!(IdRange::new(100_000, 1).unwrap_err().contains("at least 2"));
        assert!(
            IdRange::new(2_147_483_000, 1000)
                .unwrap_err()
                .contains("2^31")
        );
        let r = IdRange::new(100_000, 10).unwrap();
        assert_eq!(r.inputs_gid(), 100_000);
        assert!(!r.is_vm_id(100_000));
        assert!(r.is_vm_id(100_001) && r.is_vm_id(100_009));
        assert!(!r.is_vm_id(100_010));
        let d = IdRange::default();
        assert!(IdRange::new(d.base(), d.count()).is_ok());
    }

    #[test]
    fn picks_are_stable_distinct_and_skip_ids_in_use() {
        let r = IdRange::new(100_000, 10).unwrap();
        let none = HashSet::new();
        let a = r.pick("vm-a", &none).unwrap();
        assert_eq!(r.pick("vm-a", &none), Some(a), "a VM keeps its slot");
        assert!(r.is_vm_id(a));
        let busy: HashSet<u32> = [a].into();
        let b = r.pick("vm-a", &busy).unwrap();
        assert_ne!(a, b);
        assert!(r.is_vm_id(b));
        let all: HashSet<u32> = (100_001..100_010).collect();
        assert_eq!(r.pick("vm-a", &all), None);
        // The last free id is found whatever the start.
        let all_but_one: HashSet<u32> = (100_001..100_009).collect();
        assert_eq!(r.pick("anything", &all_but_one), Some(100_009));
    }

    #[test]
    fn live_ids_include_our_own() {
        let ids = ids_in_use().unwrap();
        // SAFETY: getuid has no preconditions and touches no memory.
        let uid = unsafe { libc::getuid() };
        assert!(ids.contains(&uid));
    }
}
