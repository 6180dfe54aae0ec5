//! A system install's VM cgroups on a cgroup v1 (or hybrid) host: the hierarchies are
//! root's, so the owner's daemon asks the root helper (`ensure_vm_cgroup`,
//! `remove_vm_cgroup`) as the VMM driver's [`CgroupDelegate`]. The helper makes
//! `banger-<owner uid>/<vm id>` in the memory and pids hierarchies and gives the owner only
//! the membership files; the VMM's child enters them before `exec` as before.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use banger_helper::{HelperClient, Privileged};
use banger_helper_proto::{FailureKind, JailId, JailLimits};
use banger_vmm::sandbox::cgroup::{CgroupDelegate, DelegateError, Limits};

/// How long a VMM that is still exiting may keep its group busy on removal.
const REMOVE_WAIT: Duration = Duration::from_secs(5);

/// The helper on `socket`, asked per VM (it may have been restarted since).
#[derive(Debug)]
pub struct HelperCgroups {
    socket: PathBuf,
}

impl HelperCgroups {
    pub fn new(socket: PathBuf) -> HelperCgroups {
        HelperCgroups { socket }
    }
}

impl CgroupDelegate for HelperCgroups {
    fn ensure(&self, vm_id: &str, limits: Limits) -> Result<Vec<PathBuf>, DelegateError> {
        let id = JailId::new(vm_id)?;
        // Out of the helper's range (64 MiB–1 TiB, 16–65536 tasks): refused, naming it.
        let pids = u32::try_from(limits.pids_max).unwrap_or(u32::MAX);
        let limits = JailLimits::new(limits.memory_max, pids)?;
        Ok(HelperClient::new(&self.socket).ensure_vm_cgroup(&id, limits)?)
    }

    fn remove(&self, vm_id: &str) -> Result<(), DelegateError> {
        let id = JailId::new(vm_id)?;
        let deadline = Instant::now() + REMOVE_WAIT;
        loop {
            match HelperClient::new(&self.socket).remove_vm_cgroup(&id) {
                // A VMM that is still exiting keeps its group busy a moment.
                Err(e) if e.kind() == Some(FailureKind::Conflict) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return Ok(other?),
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "cgroup v1 groups made by the root helper ({})",
            self.socket.display()
        )
    }
}
