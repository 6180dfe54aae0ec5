//! `PUT /boot-source`, `PUT|PATCH|GET /machine-config`, `PUT /actions`.

use std::path::PathBuf;

use serde::de::{Deserializer, Error as _, Unexpected};
use serde::{Deserialize, Serialize};

use super::{Answer, os_error, parse, post_boot_only, pre_boot_only, prefixed};
use crate::guest::{Guest, GuestConfig};
use crate::http::Response;
use crate::vmm::{BootSource, InstanceState, Vmm};

/// notes: "`PUT /boot-source` `{kernel_image_path*, boot_args, initrd_path}`" (field order as
/// the unknown-field message lists them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootSourceBody {
    kernel_image_path: String,
    initrd_path: Option<String>,
    boot_args: Option<String>,
}

pub(super) fn put_boot_source(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let body: BootSourceBody = parse(body)?;
    // notes: "kernel missing: `Boot source error: The kernel file cannot be opened: No such
    // file or directory (os error 2)`".
    if let Err(e) = std::fs::File::open(&body.kernel_image_path) {
        return Err(prefixed(
            vmm,
            "Boot source error: ",
            format!("The kernel file cannot be opened: {}", os_error(&e)),
        ));
    }
    if let Some(initrd) = &body.initrd_path
        && let Err(e) = std::fs::File::open(initrd)
    {
        return Err(prefixed(
            vmm,
            "Boot source error: ",
            format!("The initrd file cannot be opened: {}", os_error(&e)),
        ));
    }
    vmm.boot_source = Some(BootSource {
        kernel: PathBuf::from(body.kernel_image_path),
        initrd: body.initrd_path.map(PathBuf::from),
        boot_args: body.boot_args,
    });
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
enum HugePages {
    None,
    #[serde(rename = "2M")]
    Size2M,
}

/// 1.5.0's body: vCPUs are range-checked while deserializing (notes: "1.5.0 rejects at
/// deserialization (`invalid value: vcpu_num, expected number of vCPUs should be larger than
/// 0` / `… exceeds the maximum limitation`)"), and there is no `huge_pages` (notes: "(after
/// 1.5)").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineConfigV1_5 {
    #[serde(deserialize_with = "vcpu_num")]
    vcpu_count: u8,
    mem_size_mib: u64,
    smt: Option<bool>,
    cpu_template: Option<String>,
    track_dirty_pages: Option<bool>,
}

fn vcpu_num<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = u8::deserialize(d)?;
    if n == 0 {
        Err(D::Error::invalid_value(
            Unexpected::Other("vcpu_num"),
            &"number of vCPUs should be larger than 0",
        ))
    } else if n > MAX_VCPUS {
        Err(D::Error::invalid_value(
            Unexpected::Other("vcpu_num"),
            &"number of vCPUs exceeds the maximum limitation",
        ))
    } else {
        Ok(n)
    }
}

/// 1.6 to 1.12: vCPUs still checked while deserializing, `huge_pages` already there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineConfigV1_6 {
    #[serde(deserialize_with = "vcpu_num")]
    vcpu_count: u8,
    mem_size_mib: u64,
    smt: Option<bool>,
    cpu_template: Option<String>,
    track_dirty_pages: Option<bool>,
    huge_pages: Option<HugePages>,
}

/// notes: "`PUT /machine-config` `{vcpu_count* 1..32, mem_size_mib*, smt, track_dirty_pages,
/// huge_pages None|2M (after 1.5)}`".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineConfigBody {
    vcpu_count: u8,
    mem_size_mib: u64,
    smt: Option<bool>,
    cpu_template: Option<String>,
    track_dirty_pages: Option<bool>,
    huge_pages: Option<HugePages>,
}

/// `PATCH /machine-config`: "with a subset of fields is accepted before boot".
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MachineConfigPatch {
    vcpu_count: Option<u8>,
    mem_size_mib: Option<u64>,
    smt: Option<bool>,
    cpu_template: Option<String>,
    track_dirty_pages: Option<bool>,
    huge_pages: Option<HugePages>,
}

const MAX_VCPUS: u8 = 32;

pub(super) fn put_machine_config(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let p = vmm.personality;
    let patch = if !p.has_huge_pages() {
        let b: MachineConfigV1_5 = parse(body)?;
        MachineConfigPatch {
            vcpu_count: Some(b.vcpu_count),
            mem_size_mib: Some(b.mem_size_mib),
            smt: b.smt,
            cpu_template: b.cpu_template,
            track_dirty_pages: b.track_dirty_pages,
            huge_pages: None,
        }
    } else if p.vcpus_checked_at_deserialization() {
        let b: MachineConfigV1_6 = parse(body)?;
        MachineConfigPatch {
            vcpu_count: Some(b.vcpu_count),
            mem_size_mib: Some(b.mem_size_mib),
            smt: b.smt,
            cpu_template: b.cpu_template,
            track_dirty_pages: b.track_dirty_pages,
            huge_pages: b.huge_pages,
        }
    } else {
        let b: MachineConfigBody = parse(body)?;
        MachineConfigPatch {
            vcpu_count: Some(b.vcpu_count),
            mem_size_mib: Some(b.mem_size_mib),
            smt: b.smt,
            cpu_template: b.cpu_template,
            track_dirty_pages: b.track_dirty_pages,
            huge_pages: b.huge_pages,
        }
    };
    apply_machine_config(vmm, patch)
}

/// 1.5.0's `PATCH /machine-config`: no `huge_pages`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MachineConfigPatchV1_5 {
    vcpu_count: Option<u8>,
    mem_size_mib: Option<u64>,
    smt: Option<bool>,
    cpu_template: Option<String>,
    track_dirty_pages: Option<bool>,
}

pub(super) fn patch_machine_config(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let patch = if vmm.personality.has_huge_pages() {
        parse::<MachineConfigPatch>(body)?
    } else {
        let b: MachineConfigPatchV1_5 = parse(body)?;
        MachineConfigPatch {
            vcpu_count: b.vcpu_count,
            mem_size_mib: b.mem_size_mib,
            smt: b.smt,
            cpu_template: b.cpu_template,
            track_dirty_pages: b.track_dirty_pages,
            huge_pages: None,
        }
    };
    apply_machine_config(vmm, patch)
}

fn apply_machine_config(vmm: &mut Vmm, patch: MachineConfigPatch) -> Answer {
    let mut next = vmm.machine.clone();
    if let Some(n) = patch.vcpu_count {
        next.vcpu_count = u32::from(n);
    }
    if let Some(m) = patch.mem_size_mib {
        next.mem_size_mib = m;
    }
    if let Some(smt) = patch.smt {
        next.smt = smt;
    }
    if let Some(t) = patch.track_dirty_pages {
        next.track_dirty_pages = t;
    }
    if let Some(h) = patch.huge_pages {
        next.huge_pages = match h {
            HugePages::None => "None".into(),
            HugePages::Size2M => "2M".into(),
        };
    }
    let _ = patch.cpu_template;
    // notes: "vcpu_count 0 or 33: 1.14.1 400 `Machine config error: The number of vCPUs must
    // be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.`"
    let odd_with_smt = next.smt && next.vcpu_count > 1 && next.vcpu_count % 2 == 1;
    if next.vcpu_count == 0 || next.vcpu_count > u32::from(MAX_VCPUS) || odd_with_smt {
        return Err(prefixed(
            vmm,
            "Machine config error: ",
            "The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even \
             number if SMT is enabled.",
        ));
    }
    if next.mem_size_mib == 0 {
        // Not observed in the notes: the fake's wording.
        return Err(prefixed(
            vmm,
            "Machine config error: ",
            "The memory size (MiB) is invalid.",
        ));
    }
    vmm.machine = next;
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}

/// notes: "`GET /machine-config` defaults: 1 vCPU, 128 MiB (1.14.1 also reports
/// `"huge_pages":"None"`)."
pub(super) fn get_machine_config(vmm: &mut Vmm) -> Answer {
    let m = &vmm.machine;
    let mut value = serde_json::json!({
        "vcpu_count": m.vcpu_count,
        "mem_size_mib": m.mem_size_mib,
        "smt": m.smt,
        "track_dirty_pages": m.track_dirty_pages,
    });
    if vmm.personality.reports_huge_pages() {
        value["huge_pages"] = m.huge_pages.clone().into();
    }
    Ok(Response::json(&value))
}

/// notes: "Other actions: FlushMetrics, SendCtrlAltDel (x86 only)"; "unknown action: `unknown
/// variant `Bogus`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel``".
#[derive(Deserialize)]
enum ActionType {
    FlushMetrics,
    InstanceStart,
    SendCtrlAltDel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    action_type: ActionType,
}

pub(super) fn put_action(vmm: &mut Vmm, body: &[u8]) -> Answer {
    let body: ActionBody = parse(body)?;
    match body.action_type {
        ActionType::InstanceStart => instance_start(vmm),
        ActionType::SendCtrlAltDel => {
            post_boot_only(vmm)?;
            if let Some(guest) = &vmm.guest {
                guest.ctrl_alt_del();
            }
            Ok(Response::no_content())
        }
        // notes: "`FlushMetrics` → 204."
        ActionType::FlushMetrics => {
            if let Some(path) = &vmm.metrics_path {
                let line = format!("{{\"utc_timestamp_ms\":{}}}\n", now_ms());
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            }
            Ok(Response::no_content())
        }
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn instance_start(vmm: &mut Vmm) -> Answer {
    // notes: "a second `InstanceStart`" answers "not supported after starting".
    pre_boot_only(vmm)?;
    // notes: "`InstanceStart` without `PUT /boot-source`: 400 `Start microvm error: Cannot
    // start microvm without kernel configuration.` (1.5.0 without the `Start microvm error: `
    // prefix). A kernel alone is enough: InstanceStart with no drive at all answers 204."
    let Some(boot) = vmm.boot_source.clone() else {
        return Err(prefixed(
            vmm,
            "Start microvm error: ",
            "Cannot start microvm without kernel configuration.",
        ));
    };
    // notes: "x86_64 boots only an uncompressed ELF `vmlinux` (not bzImage)". The wording is
    // the fake's: the notes record the rule, not the message.
    if let Err(why) = check_elf_kernel(&boot.kernel) {
        return Err(prefixed(
            vmm,
            "Start microvm error: ",
            format!(
                "Cannot load kernel due to invalid memory configuration or invalid kernel \
                 image: {why}"
            ),
        ));
    }
    vmm.held_files = super::devices::open_drives(vmm).map_err(|why| {
        prefixed(
            vmm,
            "Start microvm error: ",
            format!("Cannot open block device: {why}"),
        )
    })?;
    let config = GuestConfig::from_vmm(vmm, &boot);
    let guest = Guest::start(config, vmm.log.instance_id.clone()).map_err(|e| {
        prefixed(
            vmm,
            "Start microvm error: ",
            format!("fake-firecracker: {e}"),
        )
    })?;
    vmm.guest = Some(guest);
    vmm.state = InstanceState::Running;
    vmm.log.line("fc_api", "Successfully started microvm");
    Ok(Response::no_content())
}

/// An x86-64 ELF executable, as Firecracker's ELF loader wants.
fn check_elf_kernel(path: &std::path::Path) -> Result<(), String> {
    let mut header = [0u8; 20];
    let mut file = std::fs::File::open(path).map_err(|e| os_error(&e))?;
    std::io::Read::read_exact(&mut file, &mut header)
        .map_err(|_| "Kernel Loader: failed to read ELF header".to_owned())?;
    if &header[..4] != b"\x7fELF" {
        return Err("Kernel Loader: invalid ELF magic number (a bzImage is not bootable)".into());
    }
    const ELFCLASS64: u8 = 2;
    const EM_X86_64: u16 = 62;
    if header[4] != ELFCLASS64 || u16::from_le_bytes([header[18], header[19]]) != EM_X86_64 {
        return Err("Kernel Loader: not a 64-bit x86 ELF image".into());
    }
    Ok(())
}
