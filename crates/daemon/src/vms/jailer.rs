//! A system install's Firecracker through its jailer: the root helper's `launch_jailed` and
//! `release_jail` verbs ([`banger_helper`]), as the Firecracker driver's
//! [`JailLauncher`]. A helper started without `--jailer` answers `Unsupported`: the driver
//! then spawns Firecracker itself, in banger's own sandbox (doctor says which way a VM took).

use std::path::PathBuf;

use banger_helper::{HelperClient, Privileged};
use banger_helper_proto::{FailureKind, JailId, JailLaunch, Jailed};
use banger_vmm::firecracker::jailed::{JailLauncher, LaunchError};

/// The helper on `socket`, asked per launch (it may have been restarted since).
pub struct HelperJailer {
    socket: PathBuf,
    /// The helper's chroot base for this owner (`<state>-jail/<uid>`), where each VM's
    /// chroot is `firecracker/<id>/root`.
    base: PathBuf,
}

impl HelperJailer {
    pub fn new(socket: PathBuf, base: PathBuf) -> HelperJailer {
        HelperJailer { socket, base }
    }
}

impl JailLauncher for HelperJailer {
    fn launch(&self, launch: &JailLaunch) -> Result<Option<Jailed>, LaunchError> {
        match HelperClient::new(&self.socket).launch_jailed(launch) {
            Ok(jailed) => Ok(Some(jailed)),
            Err(e) if e.kind() == Some(FailureKind::Unsupported) => {
                tracing::info!(
                    vm = launch.id.as_str(),
                    "the helper has no jailer; Firecracker starts in banger's sandbox"
                );
                Ok(None)
            }
            Err(e) => Err(Box::new(e)),
        }
    }

    fn chroot(&self, id: &JailId) -> Option<PathBuf> {
        Some(
            self.base
                .join(banger_helper_proto::JAIL_EXEC_NAME)
                .join(id.as_str())
                .join("root"),
        )
    }

    fn release(&self, id: &JailId) -> Result<(), LaunchError> {
        match HelperClient::new(&self.socket).release_jail(id) {
            Err(e) if e.kind() == Some(FailureKind::Unsupported) => Ok(()),
            other => Ok(other?),
        }
    }
}
