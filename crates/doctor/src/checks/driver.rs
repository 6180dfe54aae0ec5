//! The VMM driver banger will use on this host, and why.

use banger_vmm::SelectError;

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const NAME: &str = "driver";

pub struct VmmDriver;

impl CapabilityCheck for VmmDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let preference = format!("preference: vmm = {}", ctx.config.vmm);
        let check = match ctx.selection() {
            Ok(selection) => {
                let summary = format!("{} with {}", selection.driver, selection.accel);
                let check = match &selection.caveat {
                    None => Check::pass(groups::VMM, NAME, summary),
                    Some(caveat) => Check::warn(groups::VMM, NAME, summary)
                        .detail(format!("caveat: {caveat}"))
                        .hint("set vmm = \"auto\" to let banger pick what works best here"),
                };
                check.detail(selection.reason.clone()).detail(preference)
            }
            Err(err) => {
                let hint = match err {
                    SelectError::FirecrackerUnusable { .. } => format!(
                        "fix what is listed above, or set vmm = \"auto\" in {} to fall back to QEMU",
                        ctx.layout.config_file().display()
                    ),
                    SelectError::QemuMissing { .. } => {
                        "sudo apt install qemu-system-x86 (Debian/Ubuntu)".to_string()
                    }
                };
                Check::fail(groups::VMM, NAME, crate::error_chain(err))
                    .detail(preference)
                    .hint(hint)
            }
        };
        vec![check]
    }
}
