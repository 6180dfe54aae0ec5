//! The first start of a clone: the VMM loads the snapshot instead of booting the kernel,
//! and the guest is given an identity of its own before anyone can use it.

use banger_agent_client::AgentClient;
use banger_store::VmRecord;
use banger_vmm::SnapshotFiles;

use super::{Detail, Devices};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Host entropy handed to each restored guest (the kernel credits up to 256 bits per
/// add; 64 bytes is twice that).
const ENTROPY_BYTES: usize = 64;

/// What a clone's first start restores.
#[derive(Debug, Clone)]
pub struct Plan {
    pub snapshot: String,
    pub files: SnapshotFiles,
    devices: Devices,
}

/// `Some` for a clone whose snapshot was never restored yet; later starts boot its disks.
pub fn plan(daemon: &Daemon, vm: &VmRecord) -> Result<Option<Plan>> {
    let Some(origin) = daemon.store().vm_origin(&vm.id)? else {
        return Ok(None);
    };
    if origin.restored_at.is_some() {
        return Ok(None);
    }
    let snap = daemon
        .store()
        .get_snapshot(&origin.snapshot_id)?
        .ok_or_else(|| {
            DaemonError::internal(format!(
                "VM {} is a clone of snapshot {}, which is gone",
                vm.name, origin.snapshot_id
            ))
        })?;
    let detail = Detail::parse(&snap)?;
    Ok(Some(Plan {
        snapshot: snap.name,
        files: detail.files,
        devices: detail.devices,
    }))
}

impl Plan {
    /// The network this start got must give the guest the devices it was saved with.
    pub fn check_devices(&self, vm: &str, nics: usize, user_net: bool) -> Result<()> {
        let got = Devices { nics, user_net };
        if got == self.devices {
            return Ok(());
        }
        let describe = |d: Devices| match (d.nics, d.user_net) {
            (0, false) => "no network".to_string(),
            (0, true) => "user-mode networking".to_string(),
            (n, _) => format!("{n} bridged interface(s)"),
        };
        Err(DaemonError::conflict(format!(
            "VM {vm} cannot restore snapshot {}: it was taken with {}, and this start gives {}",
            self.snapshot,
            describe(self.devices),
            describe(got)
        ))
        .with_hint("set the same `[network] mode` as when the snapshot was taken"))
    }
}

/// Make the freshly resumed guest of `vm` its own machine: RNG reseeded with host
/// entropy, clock set, new hostname, machine-id and SSH host keys, and on the bridge
/// `network`: the MAC and address this start leased, the parent's routes and neighbours
/// flushed.
pub async fn reidentify(
    vm: &VmRecord,
    client: &AgentClient,
    network: Option<banger_agent_proto::NetIdentity>,
) -> Result<()> {
    let mut entropy = vec![0u8; ENTROPY_BYTES];
    banger_system::random::fill(&mut entropy).map_err(|e| {
        DaemonError::internal(format!("cannot draw entropy for VM {}: {e}", vm.name))
    })?;
    client
        .reidentify(&vm.id, &vm.name, entropy, network)
        .await
        .map_err(|e| {
            DaemonError::internal(format!(
                "VM {} was restored but could not be given its own identity: {}",
                vm.name,
                banger_system::error_chain(&e)
            ))
            .with_hint("rebuild the image so its agent is current, then take the snapshot again")
        })
}
