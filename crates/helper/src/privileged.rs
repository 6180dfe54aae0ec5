//! [`Privileged`]: the daemon's one way to do privileged work.

use std::sync::Arc;

use banger_helper_proto::{
    BridgeInfo, FirewallReport, Inventory, JailId, JailLaunch, JailLimits, Jailed, Publish, Reply,
    Subnet, TapInfo, TapName, Verb,
};

use crate::{Executor, HelperError};

/// Privileged network plumbing for the owner's VMs. Implemented by [`crate::HelperClient`]
/// (system install) and [`InProcess`] (dev mode as root); both run the same executor.
/// Blocking: call from `spawn_blocking` in async code.
pub trait Privileged: Send + Sync {
    /// Carry out one verb. The typed methods below are the interface; this is the
    /// transport each implementation provides.
    fn call(&self, verb: Verb) -> Result<Reply, HelperError>;

    /// The admitted owner's uid (a handshake: fails early on a version mismatch).
    fn hello(&self) -> Result<u32, HelperError> {
        match self.call(Verb::Hello)? {
            Reply::Hello { owner_uid, .. } => Ok(owner_uid),
            _ => Err(HelperError::Unexpected { verb: "hello" }),
        }
    }

    fn ensure_bridge(&self, subnet: Subnet) -> Result<BridgeInfo, HelperError> {
        match self.call(Verb::EnsureBridge { subnet })? {
            Reply::Bridge(info) => Ok(info),
            _ => Err(HelperError::Unexpected {
                verb: "ensure_bridge",
            }),
        }
    }

    fn remove_bridge(&self) -> Result<(), HelperError> {
        done(self.call(Verb::RemoveBridge)?, "remove_bridge")
    }

    fn ensure_nat(&self) -> Result<(), HelperError> {
        done(self.call(Verb::EnsureNat)?, "ensure_nat")
    }

    fn remove_nat(&self) -> Result<(), HelperError> {
        done(self.call(Verb::RemoveNat)?, "remove_nat")
    }

    fn create_tap(&self, tap: &TapName) -> Result<TapInfo, HelperError> {
        match self.call(Verb::CreateTap { tap: tap.clone() })? {
            Reply::Tap(info) => Ok(info),
            _ => Err(HelperError::Unexpected { verb: "create_tap" }),
        }
    }

    /// Start the owner's Firecracker through its jailer (docs/privileges.md).
    fn launch_jailed(&self, launch: &JailLaunch) -> Result<Jailed, HelperError> {
        match self.call(Verb::LaunchJailed {
            launch: launch.clone(),
        })? {
            Reply::Jailed(jailed) => Ok(jailed),
            _ => Err(HelperError::Unexpected {
                verb: "launch_jailed",
            }),
        }
    }

    /// Remove a jail once its Firecracker is gone.
    fn release_jail(&self, id: &JailId) -> Result<(), HelperError> {
        done(
            self.call(Verb::ReleaseJail { id: id.clone() })?,
            "release_jail",
        )
    }

    /// A VM's v1 groups with `limits`, whose membership files are the owner's.
    fn ensure_vm_cgroup(
        &self,
        id: &JailId,
        limits: JailLimits,
    ) -> Result<Vec<std::path::PathBuf>, HelperError> {
        match self.call(Verb::EnsureVmCgroup {
            id: id.clone(),
            limits,
        })? {
            Reply::VmCgroup { dirs } => Ok(dirs),
            _ => Err(HelperError::Unexpected {
                verb: "ensure_vm_cgroup",
            }),
        }
    }

    /// Remove a VM's v1 groups.
    fn remove_vm_cgroup(&self, id: &JailId) -> Result<(), HelperError> {
        done(
            self.call(Verb::RemoveVmCgroup { id: id.clone() })?,
            "remove_vm_cgroup",
        )
    }

    fn delete_tap(&self, tap: &TapName) -> Result<(), HelperError> {
        done(
            self.call(Verb::DeleteTap { tap: tap.clone() })?,
            "delete_tap",
        )
    }

    fn add_publish(&self, publish: Publish) -> Result<(), HelperError> {
        done(self.call(Verb::AddPublish { publish })?, "add_publish")
    }

    fn remove_publish(&self, publish: Publish) -> Result<(), HelperError> {
        done(
            self.call(Verb::RemovePublish { publish })?,
            "remove_publish",
        )
    }

    fn inventory(&self) -> Result<Inventory, HelperError> {
        match self.call(Verb::Inventory)? {
            Reply::Inventory(inv) => Ok(inv),
            _ => Err(HelperError::Unexpected { verb: "inventory" }),
        }
    }

    fn firewall(&self) -> Result<FirewallReport, HelperError> {
        match self.call(Verb::Firewall)? {
            Reply::Firewall(report) => Ok(report),
            _ => Err(HelperError::Unexpected { verb: "firewall" }),
        }
    }
}

fn done(reply: Reply, verb: &'static str) -> Result<(), HelperError> {
    match reply {
        Reply::Done => Ok(()),
        _ => Err(HelperError::Unexpected { verb }),
    }
}

/// Dev mode as root: the executor runs in the daemon's own process, with the daemon's uid
/// as the owner — the same validation and code as the helper, minus the socket.
#[derive(Clone)]
pub struct InProcess {
    executor: Arc<Executor>,
}

impl InProcess {
    pub fn new(executor: Arc<Executor>) -> InProcess {
        InProcess { executor }
    }
}

impl Privileged for InProcess {
    fn call(&self, verb: Verb) -> Result<Reply, HelperError> {
        let name = verb.name();
        self.executor
            .execute(verb)
            .map_err(|failure| HelperError::Refused {
                verb: name,
                failure,
            })
    }
}
