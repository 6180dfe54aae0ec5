//! Which copy-on-write backend new VM root disks get on this host (see
//! `banger_images::vmdisk`): reflinks on xfs/btrfs, else qcow2 overlays under QEMU,
//! else sparse copies. Reads only: the state directory's filesystem type and PATH.

use banger_images::vmdisk;
use banger_system::preflight::find_executable;

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};

const NAME: &str = "vm root disks";

pub struct VmDisks;

impl CapabilityCheck for VmDisks {
    fn name(&self) -> &'static str {
        "vm disk backend"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let dir = &ctx.layout.state_dir;
        let fs = match vmdisk::reflink_filesystem(dir) {
            Ok(fs) => fs,
            Err(e) => {
                return vec![Check::new(
                    groups::LIFECYCLE,
                    NAME,
                    Status::Warn,
                    format!("cannot read the filesystem type of {}: {e}", dir.display()),
                )];
            }
        };
        let qemu_img = find_executable("qemu-img", ctx.search_path.as_deref()).is_some();
        let check = match fs {
            Some(fs) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Pass,
                format!(
                    "reflink clones: {} is on {fs}, so a new VM's root disk shares the image's extents (instant, no space until the guest writes)",
                    dir.display()
                ),
            ),
            None if qemu_img && ctx.qemu_selected() => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Pass,
                format!(
                    "qcow2 overlays: {} has no reflinks, so QEMU VMs get an overlay on the image (instant, a few hundred KiB); Firecracker VMs would get sparse copies",
                    dir.display()
                ),
            )
            .hint("for instant raw clones (Firecracker), keep banger's state on xfs or btrfs"),
            None => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Warn,
                format!(
                    "sparse copies: {} has no reflinks{}, so every VM's root disk is a copy of the image's used bytes",
                    dir.display(),
                    if qemu_img { "" } else { " and qemu-img is missing" }
                ),
            )
            .hint("keep banger's state on xfs or btrfs for instant clones, or install qemu-utils (QEMU overlays)"),
        };
        vec![check]
    }
}
