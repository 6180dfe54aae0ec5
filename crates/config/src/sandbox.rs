//! The `[sandbox]` table: the numeric ids a root daemon's VMMs run as.
//!
//! * `vmm_id_base` — the first id of the range: the group of the shared read-only inputs
//!   (kernels, initrds, base images); each VM's VMM gets its own uid and gid above it.
//! * `vmm_id_count` — how many ids the range holds (at most `count - 1` sandboxed VMs run at
//!   once).
//!
//! * `vmm_memory_overhead_mib` — memory a VM's cgroup allows on top of its RAM (QEMU's own
//!   heap and buffers, its virtiofsds, page cache); TCG's translation cache is added on
//!   top under emulation. Not set: the driver's default (256 MiB).
//! * `vmm_pids_max` — tasks (processes and threads) a VM's cgroup allows. Not set: the
//!   driver's default (512).
//!
//! The cgroup limits apply where the daemon can make cgroups (`banger doctor` says);
//! `banger_vmm::sandbox::cgroup` owns the defaults.
//!
//! No passwd or group entries are created: the ids are numbers only, and must not be used
//! by anything else on the host. The driver crate checks and uses the range
//! (`banger_vmm::sandbox::IdRange`); the built-in values are the same.

use serde::{Deserialize, Serialize};

use crate::{Provenance, Resolved};

/// Above systemd-nspawn's container ranges (which end at 1879048191), below 2³¹.
pub const BUILTIN_VMM_ID_BASE: u32 = 1_900_000_000;
pub const BUILTIN_VMM_ID_COUNT: u32 = 65_536;
/// Above every id distributions give users and services (systemd's dynamic users end at
/// 65519), below 2³¹.
pub const VMM_ID_BASE_RANGE: (u64, u64) = (65_536, (1 << 31) - 2);
pub const VMM_ID_COUNT_RANGE: (u64, u64) = (2, 1 << 24);
/// Up to 64 GiB on top of a VM's RAM.
pub const VMM_MEMORY_OVERHEAD_RANGE: (u64, u64) = (0, 65_536);
/// QEMU needs a dozen tasks to start; the kernel's own ceiling is 2²².
pub const VMM_PIDS_MAX_RANGE: (u64, u64) = (32, 1 << 22);

/// The `[sandbox]` table as written: `None` means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub vmm_id_base: Option<u32>,
    pub vmm_id_count: Option<u32>,
    pub vmm_memory_overhead_mib: Option<u64>,
    pub vmm_pids_max: Option<u64>,
}

impl SandboxConfig {
    /// `(base, count)` with the built-in values for what is not set.
    pub fn id_range(&self) -> (u32, u32) {
        (
            self.vmm_id_base.unwrap_or(BUILTIN_VMM_ID_BASE),
            self.vmm_id_count.unwrap_or(BUILTIN_VMM_ID_COUNT),
        )
    }

    /// The range with its provenance (`config` when either key is set).
    pub fn id_range_resolved(&self) -> Resolved<(u32, u32)> {
        let provenance = if self.vmm_id_base.is_some() || self.vmm_id_count.is_some() {
            Provenance::Config
        } else {
            Provenance::Builtin
        };
        Resolved::new(self.id_range(), provenance)
    }
}
