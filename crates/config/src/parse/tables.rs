//! One function per table below the top level: each turns its raw table into the typed
//! config, with errors that point at the offending value.

use super::{
    Ctx, MEMORY_MIB_RANGE, RawLogs, RawNetwork, RawSandbox, RawShares, RawVmDefaults, VCPU_RANGE,
};
use crate::network::{MAX_DNS, NetworkConfig, usable_resolver};
use crate::sandbox::{
    SandboxConfig, VMM_ID_BASE_RANGE, VMM_ID_COUNT_RANGE, VMM_MEMORY_OVERHEAD_RANGE,
    VMM_PIDS_MAX_RANGE,
};
use crate::shares::{COPY_MAX_RANGE, SharesConfig};
use crate::{ConfigError, LOG_MAX_RANGE, LogsConfig, VmDefaultsConfig};
use banger_helper_proto::Subnet;
use std::net::Ipv4Addr;
use std::ops::Range;
use toml::{Spanned, Value};

/// `[sandbox]`: the numeric id range a root daemon's VMMs run as (see docs/security.md).
pub(super) fn sandbox(ctx: &Ctx<'_>, raw: &RawSandbox) -> Result<SandboxConfig, ConfigError> {
    let mut out = SandboxConfig::default();
    if let Some(v) = &raw.vmm_id_base {
        let n = ctx.bounded("sandbox.vmm_id_base", v, VMM_ID_BASE_RANGE, "")?;
        out.vmm_id_base = Some(n as u32);
    }
    if let Some(v) = &raw.vmm_id_count {
        let n = ctx.bounded("sandbox.vmm_id_count", v, VMM_ID_COUNT_RANGE, "")?;
        out.vmm_id_count = Some(n as u32);
    }
    if let Some(v) = &raw.vmm_memory_overhead_mib {
        let n = ctx.bounded(
            "sandbox.vmm_memory_overhead_mib",
            v,
            VMM_MEMORY_OVERHEAD_RANGE,
            " (MiB)",
        )?;
        out.vmm_memory_overhead_mib = Some(n);
    }
    if let Some(v) = &raw.vmm_pids_max {
        out.vmm_pids_max = Some(ctx.bounded("sandbox.vmm_pids_max", v, VMM_PIDS_MAX_RANGE, "")?);
    }
    let (base, count) = out.id_range();
    if u64::from(base) + u64::from(count) > 1 << 31 {
        let span = raw
            .vmm_id_count
            .as_ref()
            .or(raw.vmm_id_base.as_ref())
            .map_or(0..0, |v| v.span());
        return Err(ctx.error(
            span,
            Some("sandbox.vmm_id_count"),
            format!(
                "the VMM id range {base}+{count} ends above 2^31 (2147483648); tools mishandle \
                 such ids, so lower vmm_id_base or vmm_id_count"
            ),
        ));
    }
    Ok(out)
}

pub(super) fn network(ctx: &Ctx<'_>, raw: &RawNetwork) -> Result<NetworkConfig, ConfigError> {
    let mut out = NetworkConfig::default();
    if let Some(v) = &raw.mode {
        let key = "network.mode";
        let expected = "one of \"auto\", \"bridge\", \"user\", \"none\"";
        let s = ctx.string(key, v, expected)?;
        out.mode = Some(s.parse().map_err(|_| {
            ctx.error(
                v.span(),
                Some(key),
                format!("`{key}` = {s:?} is not {expected}"),
            )
        })?);
    }
    if let Some(v) = &raw.subnet {
        let key = "network.subnet";
        let s = ctx.string(
            key,
            v,
            "a string: a private IPv4 subnet such as \"10.213.0.0/24\"",
        )?;
        let subnet: Subnet = s
            .parse()
            .map_err(|e| ctx.error(v.span(), Some(key), format!("`{key}`: {e}")))?;
        out.subnet = Some(subnet);
    }
    if let Some(v) = &raw.dns {
        out.dns = Some(dns(ctx, v)?);
    }
    Ok(out)
}

/// `network.dns`: 1 to 3 IPv4 resolvers a guest can reach. An element's error points at
/// the element (found in the array's source text: toml keeps no spans inside arrays).
fn dns(ctx: &Ctx<'_>, v: &Spanned<Value>) -> Result<Vec<Ipv4Addr>, ConfigError> {
    let key = "network.dns";
    let expected = format!("an array of 1 to {MAX_DNS} IPv4 addresses, such as [\"1.1.1.1\"]");
    let Value::Array(items) = v.get_ref() else {
        return Err(ctx.wrong_type(key, v, v.get_ref(), &expected));
    };
    if items.is_empty() || items.len() > MAX_DNS {
        return Err(ctx.error(
            v.span(),
            Some(key),
            format!(
                "`{key}` has {} entries; give at least one and at most {MAX_DNS} resolvers",
                items.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for item in items {
        let text = match item {
            Value::String(s) => s.as_str(),
            _ => return Err(ctx.wrong_type(key, v, item, &expected)),
        };
        let at = element_span(ctx.text, v.span(), text);
        let addr: Ipv4Addr = text.parse().map_err(|_| {
            ctx.error(
                at.clone(),
                Some(key),
                format!("`{key}`: {text:?} is not an IPv4 address; expected {expected}"),
            )
        })?;
        usable_resolver(addr).map_err(|why| ctx.error(at, Some(key), format!("`{key}`: {why}")))?;
        out.push(addr);
    }
    Ok(out)
}

/// Where the string `value` stands inside `array` (the array's span when not found).
fn element_span(text: &str, array: Range<usize>, value: &str) -> Range<usize> {
    let inside = text.get(array.clone()).unwrap_or_default();
    [format!("\"{value}\""), format!("'{value}'")]
        .iter()
        .find_map(|quoted| inside.find(quoted.as_str()))
        .map_or(array.clone(), |i| {
            array.start + i..array.start + i + value.len() + 2
        })
}

/// `[shares]`: the fallback of `-v` where live sharing is impossible, the copy-in cap.
pub(super) fn shares(ctx: &Ctx<'_>, raw: &RawShares) -> Result<SharesConfig, ConfigError> {
    let mut out = SharesConfig::default();
    if let Some(v) = &raw.fallback {
        let key = "shares.fallback";
        let expected = "one of \"copy\", \"refuse\"";
        let s = ctx.string(key, v, expected)?;
        out.fallback = Some(s.parse().map_err(|()| {
            ctx.error(
                v.span(),
                Some(key),
                format!("`{key}` = {s:?} is not {expected}"),
            )
        })?);
    }
    if let Some(v) = &raw.copy_max {
        out.copy_max_bytes = Some(ctx.size("shares.copy_max", v, COPY_MAX_RANGE, "\"2G\"")?);
    }
    Ok(out)
}

pub(super) fn logs(ctx: &Ctx<'_>, raw: &RawLogs) -> Result<LogsConfig, ConfigError> {
    let mut out = LogsConfig::default();
    if let Some(v) = &raw.console_max {
        out.console_max_bytes = Some(ctx.size("logs.console_max", v, LOG_MAX_RANGE, "\"8M\"")?);
    }
    if let Some(v) = &raw.daemon_max {
        out.daemon_max_bytes = Some(ctx.size("logs.daemon_max", v, LOG_MAX_RANGE, "\"16M\"")?);
    }
    Ok(out)
}

pub(super) fn vm_defaults(
    ctx: &Ctx<'_>,
    raw: &RawVmDefaults,
) -> Result<VmDefaultsConfig, ConfigError> {
    let mut out = VmDefaultsConfig::default();
    if let Some(v) = &raw.vcpu {
        let range = (u64::from(VCPU_RANGE.0), u64::from(VCPU_RANGE.1));
        let n = ctx.bounded("vm_defaults.vcpu", v, range, "")?;
        // `bounded` checked n <= 32, so the conversion cannot fail.
        out.vcpu = Some(u32::try_from(n).unwrap_or(VCPU_RANGE.1));
    }
    if let Some(v) = &raw.memory {
        out.memory_mib = Some(ctx.bounded("vm_defaults.memory", v, MEMORY_MIB_RANGE, " (MiB)")?);
    }
    if let Some(v) = &raw.disk {
        out.disk_bytes = Some(ctx.disk("vm_defaults.disk", v)?);
    }
    Ok(out)
}
