//! VM groups made by someone else on the daemon's behalf: in a system install on a cgroup
//! v1 (or hybrid) host the memory and pids hierarchies are root's, so the owner's daemon
//! asks the root helper (`ensure_vm_cgroup`, `remove_vm_cgroup`), which makes
//! `banger-<owner uid>/<vm id>` in both, writes the limits, and gives the owner only the
//! membership files. The VMM's child then writes itself in before `exec`, exactly as into a
//! group the daemon made ([`super::Placement`]).

use std::path::PathBuf;
use std::sync::Arc;

use banger_system::cgroup::CgroupLayout;

use super::{CgroupError, Limits, Placement, VmCgroup};

/// An error of the delegate, kept whole as the cause.
pub type DelegateError = Box<dyn std::error::Error + Send + Sync>;

/// Who makes and removes VM groups for this daemon.
pub trait CgroupDelegate: Send + Sync + std::fmt::Debug {
    /// Make VM `vm_id`'s group with `limits` (again, when it exists); its directories.
    fn ensure(&self, vm_id: &str, limits: Limits) -> Result<Vec<PathBuf>, DelegateError>;
    /// Remove VM `vm_id`'s group once nothing runs in it (none is not an error).
    fn remove(&self, vm_id: &str) -> Result<(), DelegateError>;
    /// Who it is, for logs and reports (`the root helper (cgroup v1)`).
    fn describe(&self) -> String;
}

/// A shared delegate, compared by identity (a policy holds one for the daemon's life).
#[derive(Debug, Clone)]
pub struct Delegate(pub Arc<dyn CgroupDelegate>);

impl PartialEq for Delegate {
    fn eq(&self, other: &Delegate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Delegate {}

impl Delegate {
    /// Make VM `vm_id`'s group through the delegate (off the async workers: it is a
    /// blocking call to another process).
    pub async fn make(&self, vm_id: &str, limits: Limits) -> Result<VmCgroup, CgroupError> {
        let delegate = Arc::clone(&self.0);
        let id = vm_id.to_owned();
        let dirs = tokio::task::spawn_blocking(move || delegate.ensure(&id, limits))
            .await
            .map_err(|e| CgroupError::Delegated {
                source: Box::new(e),
            })?
            .map_err(|source| CgroupError::Delegated { source })?;
        Ok(VmCgroup {
            placement: Placement::for_dirs(&dirs)?,
            dirs,
            limits,
        })
    }

    /// Remove VM `vm_id`'s group through the delegate.
    pub async fn remove(&self, vm_id: &str) -> Result<(), CgroupError> {
        let delegate = Arc::clone(&self.0);
        let id = vm_id.to_owned();
        tokio::task::spawn_blocking(move || delegate.remove(&id))
            .await
            .map_err(|e| CgroupError::Delegated {
                source: Box::new(e),
            })?
            .map_err(|source| CgroupError::Delegated { source })
    }
}

/// Whether a daemon that cannot make VM groups itself gets them from the root helper: in a
/// system install (`system_install`) on a host with the v1 hierarchies. The daemon and
/// doctor decide with this one rule.
pub fn helper_makes_groups(system_install: bool) -> bool {
    system_install && v1_host()
}

/// Whether this host has the cgroup v1 memory and pids hierarchies, where a delegate can
/// make the groups a daemon without write access to them cannot: the v1 layout the helper
/// launches by (`banger_system::cgroup::CgroupLayout`).
pub fn v1_host() -> bool {
    CgroupLayout::of_host() == Some(CgroupLayout::V1)
}
