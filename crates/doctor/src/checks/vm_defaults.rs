//! The sizing `vm run` / `vm create` apply when no flags are given, and where each
//! number comes from (`config`, `auto` from this host, or `builtin`).

use banger_config::{Provenance, format_size};

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};

const NAME: &str = "vm defaults";
const MIB: u64 = 1024 * 1024;

pub struct VmDefaultsCheck;

impl CapabilityCheck for VmDefaultsCheck {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let host = ctx.host_resources;
        let d = ctx
            .config
            .vm_defaults_resolved(host.map(|h| h.cpus), host.map(|h| h.total_memory_bytes));
        let mut check = Check::pass(
            groups::DEFAULTS,
            NAME,
            format!(
                "{} vCPU, {} memory, {} work disk",
                d.vcpu.value,
                format_size(d.memory_mib.value * MIB),
                format_size(d.disk_bytes.value)
            ),
        )
        .detail(format!("vcpu: {} ({})", d.vcpu.value, d.vcpu.source))
        .detail(format!(
            "memory: {} MiB ({})",
            d.memory_mib.value, d.memory_mib.source
        ))
        .detail(format!(
            "disk: {} ({})",
            format_size(d.disk_bytes.value),
            d.disk_bytes.source
        ));
        let sources = [d.vcpu.source, d.memory_mib.source, d.disk_bytes.source];
        if let (Some(h), true) = (host, sources.contains(&Provenance::Auto)) {
            check = check.detail(format!(
                "auto: sized from this host's {} CPUs and {} of memory",
                h.cpus,
                format_size(h.total_memory_bytes - h.total_memory_bytes % MIB)
            ));
        }
        // The daemon refuses a guest larger than the host: a default that is one fails
        // every VM created without --memory.
        if let Some(h) = host
            && d.memory_mib.value.saturating_mul(MIB) > h.total_memory_bytes
        {
            check.status = Status::Warn;
            check.summary = format!(
                "default memory {} MiB ({}) is more than this host's {} MiB: every VM created \
                 without --memory is refused",
                d.memory_mib.value,
                d.memory_mib.source,
                h.total_memory_bytes / MIB
            );
            check = check.hint(format!(
                "lower `memory` under [vm_defaults] in {} to at most {} MiB",
                ctx.layout.config_file().display(),
                h.total_memory_bytes / MIB
            ));
        }
        if host.is_none() {
            check = check.detail(
                "host CPUs and memory could not be read; auto sizing fell back to builtin values",
            );
        }
        vec![check.detail(format!(
            "override any of them under [vm_defaults] in {}, or per VM with flags",
            ctx.layout.config_file().display()
        ))]
    }
}
