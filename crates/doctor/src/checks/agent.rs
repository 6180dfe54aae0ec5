//! The guest agent: the binary banger ships into images, and the channel the host
//! uses to reach it.
//!
//! Neither driver needs `/dev/vhost-vsock`: QEMU reaches the agent over a
//! virtio-serial port exposed as a Unix socket, and Firecracker's hybrid vsock ends
//! in a Unix socket on the host. Doctor says so rather than failing hosts (like
//! ours) that have no vhost-vsock device.

use banger_system::preflight::Preflight;
use banger_vmm::DriverKind;

use super::lifecycle::requirement_check;
use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const BINARY: &str = "agent binary";
const CHANNEL: &str = "agent channel";
const BUILD_HINT: &str =
    "build it (`make build`, or `cargo build --release -p banger-agent`) or reinstall banger";

pub struct GuestAgent;

impl CapabilityCheck for GuestAgent {
    fn name(&self) -> &'static str {
        "guest agent"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        vec![binary(ctx), channel(ctx)]
    }
}

fn binary(ctx: &DoctorContext) -> Check {
    match &ctx.agent_binary {
        Ok(path) => {
            let mut preflight = Preflight::new();
            preflight.require_executable(&path.to_string_lossy(), BINARY, BUILD_HINT);
            requirement_check(groups::AGENT, &preflight.requirements()[0])
                .detail("copied into every image; runs inside the guest")
        }
        Err(why) => Check::fail(groups::AGENT, BINARY, why.clone()).hint(BUILD_HINT),
    }
}

fn channel(ctx: &DoctorContext) -> Check {
    let device = ctx.vhost_vsock_device.display();
    let vhost = if ctx.vhost_vsock_device.exists() {
        format!("{device} is present (not used by this driver)")
    } else {
        format!("{device} is absent (not needed by this driver)")
    };
    match ctx.selected_driver() {
        Some(DriverKind::Qemu) => Check::pass(
            groups::AGENT,
            CHANNEL,
            "virtio-serial port, exposed by QEMU as a Unix socket",
        )
        .detail(vhost),
        Some(DriverKind::Firecracker) => Check::pass(
            groups::AGENT,
            CHANNEL,
            "Firecracker hybrid vsock, ending in a Unix socket on the host",
        )
        .detail(vhost),
        None => Check::warn(
            groups::AGENT,
            CHANNEL,
            "unknown until a VMM driver can be selected (see the vmm group)",
        ),
    }
}
