//! KVM: present, openable by this user, and usable for ordinary guests.
//!
//! Without usable KVM banger still works — QEMU runs guests under TCG software
//! emulation — so every shortfall here is a WARN. On a PVM host (`kvm_pvm`) the
//! device opens fine but ordinary guest kernels do not boot under it, which is why
//! "openable" is not the same as "usable".

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const NAME: &str = "kvm";

pub struct Kvm;

impl CapabilityCheck for Kvm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let kvm = &ctx.kvm;
        let mut facts = vec![format!(
            "device present: {}, openable: {}, usable for guests: {}",
            yes_no(kvm.device_present),
            yes_no(kvm.openable),
            yes_no(kvm.usable_for_guests)
        )];
        if let Some(module) = &kvm.module {
            facts.push(format!("provided by the {module} module"));
        }
        if let Some(version) = kvm.api_version {
            facts.push(format!("KVM API version {version}"));
        }
        let check = if kvm.usable_for_guests {
            Check::pass(groups::HOST, NAME, kvm.reason.clone())
        } else {
            let hint = if !kvm.device_present {
                "enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd (sudo modprobe kvm_intel)"
            } else if !kvm.openable {
                "add your user to the group owning /dev/kvm (sudo usermod -aG kvm $USER) and log in again"
            } else if kvm.pvm {
                "nothing to fix for banger: VMs work under QEMU (TCG), only more slowly; a host with hardware virtualisation runs them at full speed"
            } else {
                "check the host's KVM setup (dmesg | grep -i kvm)"
            };
            Check::warn(groups::HOST, NAME, kvm.reason.clone()).hint(hint)
        };
        vec![check.details(facts)]
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}
