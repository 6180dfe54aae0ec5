//! Read-write copies the guest changed and nobody synced back.
//!
//! A copy-in share is an ext4 image the guest mounts read-write; the next start replaces it
//! with a fresh copy of the host directory. Whether the guest changed it is read from the
//! image's journal position (`banger_images::ext4::journal`): it grows with every
//! transaction the guest's kernel commits, and a fresh image is at
//! [`journal::FRESH`](banger_images::ext4::journal::FRESH). `banger vm sync` records the
//! position it synced at ([`mark_synced`]), so "unsynced" means "grew since the start or
//! the last whole-share sync". Cheap: one `debugfs` read of the journal per read-write
//! copy, no walk of the tree and no guest round trip, and it works on a stopped VM (the
//! image keeps the guest's changes until the next start).

use banger_images::ext4::journal;
use banger_store::{Delivery, VmRecord, VmShare};

use super::copy;
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// For each of `shares` (VM `vm`'s, in order): whether it is a read-write copy whose guest
/// content changed since the last start or sync. A journal that cannot be read counts as
/// unchanged (and is logged): the warning this feeds is advice, never a refusal.
pub fn unsynced(daemon: &Daemon, vm: &VmRecord, shares: &[VmShare]) -> Result<Vec<bool>> {
    let synced = daemon.store().shares_synced(&vm.id)?;
    Ok(shares
        .iter()
        .enumerate()
        .map(|(position, share)| {
            if share.delivery != Delivery::Copy || share.read_only {
                return false;
            }
            let image = copy::image_path(&vm.dir, position);
            if !image.exists() {
                return false;
            }
            let mark = synced
                .iter()
                .find(|(p, _)| *p == position)
                .map_or(journal::FRESH, |(_, at)| *at);
            match journal::position(daemon.runner.as_ref(), &image) {
                Ok(now) => now > mark,
                Err(e) => {
                    tracing::warn!(vm = %vm.name, share = %share.guest_path, error = %banger_system::error_chain(&e), "cannot tell whether the guest changed a copy");
                    false
                }
            }
        })
        .collect())
}

/// Record that the guest content of VM `name`'s read-write copies at `guest_paths` was
/// just synced back whole: their journal positions now are the new marks.
pub fn mark_synced(daemon: &Daemon, vm: &VmRecord, guest_paths: &[String]) -> Result<()> {
    let shares = daemon.store().vm_shares(&vm.id)?;
    for guest in guest_paths {
        let Some((position, _)) = shares
            .iter()
            .enumerate()
            .find(|(_, s)| s.guest_path == *guest && s.delivery == Delivery::Copy && !s.read_only)
        else {
            return Err(DaemonError::invalid(format!(
                "VM {} has no read-write copy-in share at {guest:?}",
                vm.name
            ))
            .with_field("guest_paths")
            .with_hint("`banger vm inspect` lists the VM's shares and their modes"));
        };
        let image = copy::image_path(&vm.dir, position);
        let at = journal::position(daemon.runner.as_ref(), &image).map_err(|e| {
            DaemonError::internal(format!(
                "cannot read the journal of VM {}'s copy of {guest}: {}",
                vm.name,
                banger_system::error_chain(&e)
            ))
        })?;
        daemon.store().set_share_synced(&vm.id, position, at)?;
    }
    Ok(())
}
