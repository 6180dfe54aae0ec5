//! Host tools the VM lifecycle runs: networking (`ip`, `nft`), disk creation
//! (`mkfs.ext4`, `qemu-img`) and, when QEMU is the driver, the emulator itself.

use banger_system::preflight::{Preflight, Requirement};

use crate::context::{DoctorContext, QEMU_BINARY};
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};

/// A program banger runs on the host.
struct Tool {
    program: &'static str,
    /// The Debian package that ships it.
    package: &'static str,
    /// What banger uses it for.
    purpose: &'static str,
    /// `None`: required (FAIL when missing). `Some(consequence)`: optional, WARN.
    when_missing: Option<&'static str>,
}

const TOOLS: [Tool; 4] = [
    Tool {
        program: "ip",
        package: "iproute2",
        purpose: "creates TAP devices and the bridge",
        when_missing: None,
    },
    Tool {
        program: "nft",
        package: "nftables",
        purpose: "sets up NAT and port forwarding",
        when_missing: None,
    },
    Tool {
        program: "mkfs.ext4",
        package: "e2fsprogs",
        purpose: "formats work disks",
        when_missing: None,
    },
    // Per-VM root disks are reflinks where the filesystem allows, else qcow2
    // overlays, else sparse copies: without qemu-img only the middle step is lost.
    Tool {
        program: "qemu-img",
        package: "qemu-utils",
        purpose: "creates qcow2 overlays for VM disks",
        when_missing: Some(
            "without it, VM disks on filesystems without reflinks are full (sparse) copies of the image",
        ),
    },
];

/// Only needed when QEMU is the selected driver.
const QEMU_TOOL: Tool = Tool {
    program: QEMU_BINARY,
    package: "qemu-system-x86",
    purpose: "runs VMs (the selected driver is QEMU)",
    when_missing: None,
};

pub struct LifecycleTools;

impl CapabilityCheck for LifecycleTools {
    fn name(&self) -> &'static str {
        "vm lifecycle tools"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let qemu = ctx.qemu_selected().then_some(QEMU_TOOL);
        let tools: Vec<Tool> = TOOLS.into_iter().chain(qemu).collect();
        let mut preflight = Preflight::with_search_path(ctx.search_path.clone());
        for tool in &tools {
            let package = tool.package;
            preflight.require_executable(
                tool.program,
                tool.program,
                &format!(
                    "install the {package} package (Debian/Ubuntu: sudo apt install {package})"
                ),
            );
        }
        preflight
            .requirements()
            .iter()
            .zip(&tools)
            .map(|(req, tool)| {
                let mut check = requirement_check(groups::LIFECYCLE, req)
                    .detail(format!("banger {}", tool.purpose));
                if let (false, Some(consequence)) = (req.met, tool.when_missing) {
                    check.status = Status::Warn;
                    check = check.detail(format!("optional: {consequence}"));
                }
                check
            })
            .collect()
    }
}

/// A preflight requirement as a report row: PASS when met, FAIL otherwise.
pub fn requirement_check(group: &str, req: &Requirement) -> Check {
    let status = if req.met { Status::Pass } else { Status::Fail };
    Check::new(group, &req.label, status, req.detail.clone()).maybe_hint(req.hint.clone())
}
