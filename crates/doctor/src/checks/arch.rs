//! Host architecture: banger only ships for x86_64.

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

/// Fails off x86_64: the companion binaries are built for x86_64, the image catalog
/// has only x86_64 kernels, and OCI import pulls linux/amd64 layers. Saying so up
/// front beats a confusing failure deep inside an image build.
pub struct Architecture;

impl CapabilityCheck for Architecture {
    fn name(&self) -> &'static str {
        "architecture"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        vec![check_arch(&ctx.arch)]
    }
}

pub fn check_arch(arch: &str) -> Check {
    if arch == "x86_64" {
        return Check::pass(groups::HOST, "architecture", "x86_64");
    }
    Check::fail(
        groups::HOST,
        "architecture",
        format!("this host is {arch}; banger supports only x86_64 (amd64) hosts"),
    )
    .detail("the guest agent, the image catalog's kernels and OCI imports are all linux/amd64")
    .hint("run banger on an x86_64 Linux machine")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn only_x86_64_passes() {
        assert_eq!(check_arch("x86_64").status, Status::Pass);
        let c = check_arch("aarch64");
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("aarch64"));
        assert!(c.hint.is_some());
    }
}
