//! Host directories shared with VMs (`-v HOST:GUEST[:OPTS]`): checked at create
//! ([`validate`]), stored with the VM with how each reaches the guest ([`Delivery`]),
//! turned into the driver's share specs, copy-in drives and the guest's mount list at every
//! start ([`plan`]), and described by `vm inspect`.
//!
//! QEMU serves a share live over virtio-fs (one `virtiofsd` per share, see
//! `banger_vmm::virtiofs`). Firecracker has neither virtio-fs nor 9p, and Debian's cloud
//! kernel has no 9p either: there a share is copied in at every boot ([`copy`]) and
//! `banger vm sync` copies the guest's changes back. Which one a share got is said at
//! create and by inspect, never silently degraded.

pub mod copy;
pub mod guest;
#[cfg(test)]
mod tests;
pub mod unsynced;
mod validate;
pub mod watch;

use banger_api::ShareView;
use banger_store::{Delivery, VmRecord, VmShare, VmState};
use banger_vmm::virtiofs::{self, ShareSpec};
use banger_vmm::{DriveSpec, DriverKind};

use crate::error::Result;
use crate::state::Daemon;

pub use validate::validate;

/// At most this many shares per VM: each costs a `virtiofsd` process or a drive.
pub const MAX_SHARES: usize = 8;

/// Why a VM run by `driver` cannot share a directory live on this host, and what to do;
/// `None` when it can.
pub fn live_problem(driver: DriverKind) -> Option<String> {
    match driver {
        DriverKind::Firecracker => Some(
            "Firecracker has neither virtio-fs nor 9p, so it cannot share a directory live; \
             create the VM with `--vmm qemu` for a live share"
                .to_string(),
        ),
        DriverKind::Qemu => match virtiofs::find_binary() {
            Some(_) => None,
            None => Some(format!(
                "sharing a directory live with QEMU needs virtiofsd (Debian's cloud kernel has \
                 no 9p to fall back on); {}",
                virtiofs::INSTALL_HINT
            )),
        },
    }
}

/// The driver a stored VM runs on.
pub fn driver_of(vm: &VmRecord) -> DriverKind {
    vm.driver
        .as_deref()
        .and_then(|d| d.parse().ok())
        .unwrap_or(DriverKind::Qemu)
}

/// What a boot of a VM with `shares` needs: the live shares for the driver, the copy-in
/// drives (appended after the VM's own), and the guest's mount list.
#[derive(Debug, Default)]
pub struct Plan {
    pub live: Vec<ShareSpec>,
    pub drives: Vec<DriveSpec>,
    pub kernel_arg: Option<String>,
}

/// Prepare VM `vm`'s shares for a boot: copy each copy-in share into its drive (fresh from
/// the host directory, see [`copy`]). An error names the share and what to do.
pub fn plan(daemon: &Daemon, vm: &VmRecord, shares: &[VmShare]) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut entries = Vec::new();
    for (position, share) in shares.iter().enumerate() {
        match share.delivery {
            Delivery::VirtioFs => {
                let spec = ShareSpec {
                    tag: ShareSpec::tag_for(position),
                    host_dir: share.host_path.clone(),
                    read_only: share.read_only,
                };
                entries.push(guest::Entry::live(&spec.tag, share));
                plan.live.push(spec);
            }
            Delivery::Copy => {
                let drive = copy::build(daemon, vm, position, share)?;
                entries.push(guest::Entry::copy(&copy::label(position), share));
                plan.drives.push(drive);
            }
        }
    }
    plan.kernel_arg = guest::kernel_arg(&entries);
    Ok(plan)
}

/// `vm inspect`'s lines for VM `vm`. A live share of a running VM whose `virtiofsd` has
/// died is `down`, with its last words: as the watcher recorded it ([`watch`]), or as found
/// now (a VM adopted from a daemon that did not watch), then recorded too.
pub fn views(daemon: &Daemon, vm: &VmRecord) -> Result<Vec<ShareView>> {
    let shares = daemon.store().vm_shares(&vm.id)?;
    let active = matches!(vm.state, VmState::Running | VmState::Paused);
    let recorded = if active {
        daemon.store().shares_down(&vm.id)?
    } else {
        Vec::new()
    };
    let problem = live_problem(driver_of(vm));
    let binary = active.then(virtiofs::find_binary).flatten();
    let unsynced = unsynced::unsynced(daemon, vm, &shares)?;
    Ok(shares
        .into_iter()
        .enumerate()
        .map(|(position, s)| {
            let known = recorded
                .iter()
                .find(|(p, _)| *p == position)
                .map(|(_, why)| why.clone());
            let (mode, problem) = match s.delivery {
                Delivery::VirtioFs => match (&problem, &binary, known) {
                    (_, _, Some(why)) => ("down", Some(why)),
                    (Some(why), _, None) => ("unavailable", Some(why.clone())),
                    (None, Some(binary), None) => match down(binary, vm, position, &s) {
                        Some(why) => {
                            let _ = daemon.store().set_share_down(&vm.id, position, Some(&why));
                            ("down", Some(why))
                        }
                        None => ("virtio-fs", None),
                    },
                    (None, None, None) => ("virtio-fs", None),
                },
                Delivery::Copy => ("copy", None),
            };
            let note = (s.delivery == Delivery::Copy).then(|| copy::note(&vm.name, s.read_only));
            ShareView {
                host: s.host_path.display().to_string(),
                guest: s.guest_path,
                read_only: s.read_only,
                mode: mode.to_string(),
                problem,
                note,
                unsynced: unsynced.get(position).copied().unwrap_or(false),
            }
        })
        .collect())
}

/// The guest paths of VM `vm`'s shares recorded as down (for `vm ls`); empty unless the
/// VM runs.
pub fn down_paths(daemon: &Daemon, vm: &VmRecord) -> Result<Vec<String>> {
    if !matches!(vm.state, VmState::Running | VmState::Paused) {
        return Ok(Vec::new());
    }
    let down = daemon.store().shares_down(&vm.id)?;
    if down.is_empty() {
        return Ok(Vec::new());
    }
    let shares = daemon.store().vm_shares(&vm.id)?;
    Ok(down
        .iter()
        .filter_map(|(p, _)| shares.get(*p).map(|s| s.guest_path.clone()))
        .collect())
}

/// Why live share `position` of running VM `vm` is down, when its `virtiofsd` is gone.
fn down(
    binary: &std::path::Path,
    vm: &VmRecord,
    position: usize,
    share: &VmShare,
) -> Option<String> {
    let spec = ShareSpec {
        tag: ShareSpec::tag_for(position),
        host_dir: share.host_path.clone(),
        read_only: share.read_only,
    };
    // No log: no virtiofsd was started for this VM (a driver that serves shares otherwise).
    if !spec.log(&vm.dir).exists() || virtiofs::spawn::serving(binary, &vm.dir, &spec) {
        return None;
    }
    let last = virtiofs::spawn::last_words(&vm.dir, &spec);
    tracing::warn!(vm = %vm.name, share = %share.guest_path, last_words = %last, "a share's virtiofsd is gone");
    Some(down_reason(&vm.name, &share.guest_path, &last))
}

/// What `vm inspect` says of share `guest` of VM `name` whose `virtiofsd` exited with
/// `last` as its last words, and the way back.
fn down_reason(name: &str, guest: &str, last: &str) -> String {
    format!(
        "its virtiofsd exited ({last}); guest processes touching {guest} hang until the VM \
         stops. virtio-fs cannot reconnect a new virtiofsd to a running guest (QEMU 7.2): \
         restart the VM (`banger vm stop {name}` then `banger vm start {name}`; \
         `vm stop -f` if the guest hangs on the share) to serve it again"
    )
}
