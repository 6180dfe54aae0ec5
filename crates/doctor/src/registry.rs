//! The list of checks doctor runs.
//!
//! Each check is a small type implementing [`CapabilityCheck`]. Features that need
//! something from the host (networking, copy-on-write disks, a VMM) bring their own
//! check and add it to [`builtin_checks`]; nothing else changes.

use crate::checks;
use crate::context::DoctorContext;
use crate::report::Check;

/// One concern doctor checks. It may emit several rows (one per requirement) or none
/// (when it does not apply to this host).
pub trait CapabilityCheck {
    /// Short identifier, for logs and for picking checks in tests.
    fn name(&self) -> &'static str;

    /// Inspect the host through `ctx` (never directly) and report. Must not change
    /// anything on the host.
    fn run(&self, ctx: &DoctorContext) -> Vec<Check>;
}

/// Every built-in check, in report order.
pub fn builtin_checks() -> Vec<Box<dyn CapabilityCheck>> {
    vec![
        Box::new(checks::arch::Architecture),
        Box::new(checks::kvm::Kvm),
        Box::new(checks::config::ConfigFile),
        Box::new(checks::store::StateStore),
        Box::new(checks::runtime::HostRuntime),
        Box::new(checks::image_recipes::ImageRecipes),
        Box::new(checks::lifecycle::LifecycleTools),
        Box::new(checks::vm_disks::VmDisks),
        Box::new(checks::shares::SharedDirectories),
        Box::new(checks::agent::GuestAgent),
        Box::new(checks::vm_defaults::VmDefaultsCheck),
        Box::new(checks::ssh::SshShortcut),
        Box::new(checks::driver::VmmDriver),
        Box::new(checks::firecracker::FirecrackerBinary),
        Box::new(checks::network::Network),
        Box::new(checks::security::SecurityPosture),
        Box::new(checks::security::VmmSandbox),
    ]
}
