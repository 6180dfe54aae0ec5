//! How `-v` (host directories shared with VMs) works here: QEMU serves shares live over
//! virtio-fs with `virtiofsd`; Debian's cloud kernel has no 9p to fall back on, so without
//! `virtiofsd`, and on Firecracker (which has neither), shares are copied in at boot
//! (docs/shares.md). Reads only: the filesystem.

use banger_vmm::DriverKind;
use banger_vmm::virtiofs;

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};

const NAME: &str = "shared directories";

pub struct SharedDirectories;

impl CapabilityCheck for SharedDirectories {
    fn name(&self) -> &'static str {
        "shared directories"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let found = virtiofs::find_binary_in(ctx.search_path.as_deref());
        let check = match (ctx.selected_driver(), found) {
            (Some(DriverKind::Firecracker), _) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Warn,
                "Firecracker (this host's driver) has neither virtio-fs nor 9p: -v copies \
                 host directories in at every boot (`banger vm sync` copies changes back)"
                    .to_string(),
            )
            .hint("create VMs that need live sharing with `--vmm qemu` (and virtiofsd)"),
            (_, Some(path)) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Pass,
                format!(
                    "virtio-fs: QEMU VMs share host directories live (-v) through {}",
                    path.display()
                ),
            ),
            (_, None) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Warn,
                "virtiofsd not found: QEMU VMs cannot share host directories live; -v copies \
                 them in at every boot instead (Debian's cloud kernel has no 9p to fall back on)"
                    .to_string(),
            )
            .hint(virtiofs::INSTALL_HINT),
        };
        vec![check]
    }
}
