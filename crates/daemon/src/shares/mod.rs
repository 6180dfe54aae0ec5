//! Host directories shared with VMs (`-v HOST:GUEST[:ro]`): checked at create
//! ([`validate`]), stored with the VM, turned into the driver's share specs and the guest's
//! mount list at every start, and described by `vm inspect`.
//!
//! QEMU serves each share live over virtio-fs (one `virtiofsd` per share, see
//! `banger_vmm::virtiofs`). Firecracker has neither virtio-fs nor 9p, and Debian's cloud
//! kernel has no 9p either: such shares are refused at create with what to do instead,
//! never silently degraded.

pub mod guest;
#[cfg(test)]
mod tests;
mod validate;

use banger_api::ShareView;
use banger_store::{VmRecord, VmShare};
use banger_vmm::DriverKind;
use banger_vmm::virtiofs::{self, ShareSpec};

use crate::error::Result;
use crate::state::Daemon;

pub use validate::validate;

/// At most this many shares per VM: each costs a `virtiofsd` process and a device.
pub const MAX_SHARES: usize = 8;

/// How a share reaches the guest of a VM run by `driver` on this host: `Ok(mode)`, or
/// why it cannot and what to do.
pub fn mode(driver: DriverKind) -> std::result::Result<&'static str, String> {
    match driver {
        DriverKind::Firecracker => Err(
            "Firecracker has neither virtio-fs nor 9p, so it cannot share host directories; \
             create the VM with `--vmm qemu`, or copy files in with `banger vm cp`"
                .to_string(),
        ),
        DriverKind::Qemu => match virtiofs::find_binary() {
            Some(_) => Ok("virtio-fs"),
            None => Err(format!(
                "sharing host directories with QEMU needs virtiofsd (Debian's cloud kernel has \
                 no 9p to fall back on); {}",
                virtiofs::INSTALL_HINT
            )),
        },
    }
}

/// The driver's view of VM `vm`'s shares: tags by position.
pub fn specs(shares: &[VmShare]) -> Vec<ShareSpec> {
    shares
        .iter()
        .enumerate()
        .map(|(i, s)| ShareSpec {
            tag: ShareSpec::tag_for(i),
            host_dir: s.host_path.clone(),
            read_only: s.read_only,
        })
        .collect()
}

/// `vm inspect`'s lines for VM `vm`.
pub fn views(daemon: &Daemon, vm: &VmRecord) -> Result<Vec<ShareView>> {
    let shares = daemon.store().vm_shares(&vm.id)?;
    if shares.is_empty() {
        return Ok(Vec::new());
    }
    let driver = vm
        .driver
        .as_deref()
        .and_then(|d| d.parse().ok())
        .unwrap_or(DriverKind::Qemu);
    let mode = mode(driver);
    Ok(shares
        .into_iter()
        .map(|s| ShareView {
            host: s.host_path.display().to_string(),
            guest: s.guest_path,
            read_only: s.read_only,
            mode: mode.clone().unwrap_or("unavailable").to_string(),
            problem: mode.clone().err(),
        })
        .collect())
}
