//! `GET /`, `PATCH /vm`, `GET /vm/config`, and MMDS.

use serde::Deserialize;

use super::{Answer, parse, post_boot_only, pre_boot_only};
use crate::http::Response;
use crate::vmm::{InstanceState, Vmm};

/// notes: "`GET /` before boot: 200 `{"id":"anonymous-instance","state":"Not started",
/// "vmm_version":"1.14.1","app_name":"Firecracker"}`; after InstanceStart: `"state":"Running"`."
pub(super) fn instance_info(vmm: &mut Vmm) -> Answer {
    let p = vmm.personality;
    let body = format!(
        "{{\"id\":{},\"state\":\"{}\",\"vmm_version\":\"{}.{}.{}\",\"app_name\":\"Firecracker\"}}",
        serde_json::Value::from(vmm.log.instance_id.clone()),
        vmm.state.as_str(),
        p.major,
        p.minor,
        p.patch
    );
    Ok(Response {
        status: 200,
        body: Some(body),
    })
}

/// notes: "`PATCH /vm {"state":"Paused"|"Resumed"}`"; "`Bogus` → 400 `unknown variant
/// `Bogus`, expected `Paused` or `Resumed``".
#[derive(Deserialize)]
enum VmState {
    Paused,
    Resumed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VmBody {
    state: VmState,
}

pub(super) fn patch_vm(vmm: &mut Vmm, body: &[u8]) -> Answer {
    let b: VmBody = parse(body)?;
    // notes: "Before boot, `PATCH /vm` … answer 400 `The requested operation is not supported
    // before starting the microVM.`"
    post_boot_only(vmm)?;
    match b.state {
        VmState::Paused => {
            if let Some(guest) = &vmm.guest {
                guest.pause();
            }
            vmm.state = InstanceState::Paused;
            vmm.log.line("fc_api", "Paused microVM");
        }
        VmState::Resumed => {
            if let Some(guest) = &vmm.guest {
                guest.resume();
            }
            vmm.state = InstanceState::Running;
            vmm.log.line("fc_api", "Resumed microVM");
        }
    }
    Ok(Response::no_content())
}

/// The whole configuration, keyed like `--config-file`.
pub(super) fn full_config(vmm: &mut Vmm) -> Answer {
    let boot = vmm.boot_source.as_ref().map(|b| {
        serde_json::json!({
            "kernel_image_path": b.kernel,
            "initrd_path": b.initrd,
            "boot_args": b.boot_args,
        })
    });
    let drives: Vec<_> = vmm
        .drives
        .iter()
        .map(|d| {
            serde_json::json!({
                "drive_id": d.id,
                "path_on_host": d.path,
                "is_root_device": d.root,
                "is_read_only": d.read_only,
                "partuuid": d.partuuid,
            })
        })
        .collect();
    let ifaces: Vec<_> = vmm
        .ifaces
        .iter()
        .map(|i| {
            serde_json::json!({
                "iface_id": i.id,
                "host_dev_name": i.tap,
                "guest_mac": i.mac,
            })
        })
        .collect();
    let vsock = vmm
        .vsock
        .as_ref()
        .map(|v| serde_json::json!({ "guest_cid": v.guest_cid, "uds_path": v.uds_path }));
    Ok(Response::json(&serde_json::json!({
        "boot-source": boot,
        "drives": drives,
        "machine-config": {
            "vcpu_count": vmm.machine.vcpu_count,
            "mem_size_mib": vmm.machine.mem_size_mib,
            "smt": vmm.machine.smt,
            "track_dirty_pages": vmm.machine.track_dirty_pages,
        },
        "network-interfaces": ifaces,
        "vsock": vsock,
    })))
}

pub(super) fn get_mmds(vmm: &mut Vmm) -> Answer {
    Ok(Response::json(
        vmm.mmds.as_ref().unwrap_or(&serde_json::json!({})),
    ))
}

/// notes: "`PUT /mmds/config`, `PUT /mmds`".
pub(super) fn put_mmds(vmm: &mut Vmm, body: &[u8]) -> Answer {
    let value: serde_json::Value = parse(body)?;
    vmm.mmds = Some(value);
    Ok(Response::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MmdsConfig {
    network_interfaces: Vec<String>,
    version: Option<String>,
    ipv4_address: Option<String>,
}

pub(super) fn put_mmds_config(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let b: MmdsConfig = parse(body)?;
    let _ = (b.version, b.ipv4_address);
    if b.network_interfaces
        .iter()
        .any(|id| !vmm.ifaces.iter().any(|i| &i.id == id))
    {
        return Err(Response::fault(
            "The list of network interface IDs provided contains at least one ID that does not \
             correspond to any existing network interface.",
        ));
    }
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}
