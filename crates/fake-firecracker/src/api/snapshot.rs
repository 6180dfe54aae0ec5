//! `PUT /snapshot/create` and `PUT /snapshot/load`: the shapes and preconditions of the
//! notes' "Snapshots" section. The snapshot file is the fake's own JSON (a real one holds
//! device state); the memory file has the guest's memory size.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Answer, os_error, parse, post_boot_only, pre_boot_only, prefixed};
use crate::guest::{Guest, GuestConfig};
use crate::http::Response;
use crate::vmm::{BootSource, Drive, InstanceState, NetIface, Vmm, Vsock};

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Debug)]
enum SnapshotType {
    Full,
    Diff,
}

/// 1.5.0 still took `version` ("v1.5.0 accepts it with a deprecation log").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateV1_5 {
    snapshot_type: Option<SnapshotType>,
    snapshot_path: String,
    mem_file_path: String,
    version: Option<String>,
}

/// notes: "`PUT /snapshot/create {snapshot_path*, mem_file_path*, snapshot_type Full|Diff}`.
/// Never send `version` (removed in 1.6)."
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    snapshot_type: Option<SnapshotType>,
    snapshot_path: String,
    mem_file_path: String,
}

/// What the fake writes as a snapshot: enough to restore its configuration.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    fake_firecracker_snapshot: u32,
    vmm_version: String,
    snapshot_type: SnapshotType,
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    boot_args: Option<String>,
    drives: Vec<(String, PathBuf, bool, bool)>,
    vcpu_count: u32,
    mem_size_mib: u64,
    vsock: Option<(u32, PathBuf)>,
    /// `(iface_id, host_dev_name, guest_mac)`: the TAP is reopened by name on load.
    #[serde(default)]
    ifaces: Vec<(String, String, Option<String>)>,
}

pub(super) fn create(vmm: &mut Vmm, body: &[u8]) -> Answer {
    let (kind, snapshot_path, mem_file_path) = if vmm.personality.accepts_snapshot_version() {
        let b: CreateV1_5 = parse(body)?;
        if b.version.is_some() {
            vmm.log.line(
                "fc_api",
                "[DEPRECATED API] PUT /snapshot/create: the version field is deprecated.",
            );
        }
        (b.snapshot_type, b.snapshot_path, b.mem_file_path)
    } else {
        let b: CreateBody = parse(body)?;
        (b.snapshot_type, b.snapshot_path, b.mem_file_path)
    };
    // notes: "Before boot: `The requested operation is not supported before starting the
    // microVM.`"
    post_boot_only(vmm)?;
    // notes: "`PUT /snapshot/create` while running → 400 `Create snapshot error: Cannot save
    // the microVM state: Operation not allowed: save/restore unavailable while running` (1.5.0
    // without the first prefix)."
    if vmm.state != InstanceState::Paused {
        return Err(prefixed(
            vmm,
            "Create snapshot error: ",
            "Cannot save the microVM state: Operation not allowed: save/restore unavailable \
             while running",
        ));
    }
    let kind = kind.unwrap_or(SnapshotType::Full);
    if kind == SnapshotType::Diff && !vmm.machine.track_dirty_pages {
        return Err(prefixed(
            vmm,
            "Create snapshot error: ",
            "Diff snapshots are not allowed on uVMs with dirty page tracking disabled.",
        ));
    }
    let Some(boot) = &vmm.boot_source else {
        return Err(Response::fault(
            "fake-firecracker: running without a boot source",
        ));
    };
    let p = vmm.personality;
    let file = SnapshotFile {
        fake_firecracker_snapshot: 1,
        vmm_version: format!("{}.{}.{}", p.major, p.minor, p.patch),
        snapshot_type: kind,
        kernel: boot.kernel.clone(),
        initrd: boot.initrd.clone(),
        boot_args: boot.boot_args.clone(),
        drives: vmm
            .drives
            .iter()
            .map(|d| (d.id.clone(), d.path.clone(), d.root, d.read_only))
            .collect(),
        vcpu_count: vmm.machine.vcpu_count,
        mem_size_mib: vmm.machine.mem_size_mib,
        vsock: vmm
            .vsock
            .as_ref()
            .map(|v| (v.guest_cid, v.uds_path.clone())),
        ifaces: vmm
            .ifaces
            .iter()
            .map(|i| (i.id.clone(), i.tap.clone(), i.mac.clone()))
            .collect(),
    };
    let save_error = |e: std::io::Error| {
        prefixed(
            vmm,
            "Create snapshot error: ",
            format!("Cannot save the microVM state: {}", os_error(&e)),
        )
    };
    let json = serde_json::to_vec(&file).map_err(|e| save_error(std::io::Error::other(e)))?;
    std::fs::write(&snapshot_path, json).map_err(save_error)?;
    std::fs::File::create(&mem_file_path)
        .and_then(|f| f.set_len(file.mem_size_mib << 20))
        .map_err(save_error)?;
    Ok(Response::no_content())
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum BackendType {
    File,
    Uffd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemBackend {
    backend_path: String,
    backend_type: BackendType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkOverride {
    iface_id: String,
    host_dev_name: String,
}

/// Before 1.12: no `network_overrides`; before 1.13: `enable_diff_snapshots`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadV1_5 {
    snapshot_path: String,
    mem_file_path: Option<String>,
    mem_backend: Option<MemBackend>,
    enable_diff_snapshots: Option<bool>,
    resume_vm: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadV1_12 {
    snapshot_path: String,
    mem_file_path: Option<String>,
    mem_backend: Option<MemBackend>,
    enable_diff_snapshots: Option<bool>,
    resume_vm: Option<bool>,
    network_overrides: Option<Vec<NetworkOverride>>,
}

/// notes: "`PUT /snapshot/load {snapshot_path*, mem_backend {backend_path, backend_type
/// File|Uffd} | mem_file_path (deprecated), resume_vm, track_dirty_pages (1.13+; older:
/// enable_diff_snapshots), network_overrides [{iface_id, host_dev_name}] (1.12+)}`".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBody {
    snapshot_path: String,
    mem_file_path: Option<String>,
    mem_backend: Option<MemBackend>,
    track_dirty_pages: Option<bool>,
    resume_vm: Option<bool>,
    network_overrides: Option<Vec<NetworkOverride>>,
}

pub(super) fn load(vmm: &mut Vmm, body: &[u8]) -> Answer {
    let p = vmm.personality;
    let b = if p.load_uses_track_dirty_pages() {
        parse::<LoadBody>(body)?
    } else if p.has_network_overrides() {
        let b: LoadV1_12 = parse(body)?;
        LoadBody {
            snapshot_path: b.snapshot_path,
            mem_file_path: b.mem_file_path,
            mem_backend: b.mem_backend,
            track_dirty_pages: b.enable_diff_snapshots,
            resume_vm: b.resume_vm,
            network_overrides: b.network_overrides,
        }
    } else {
        let b: LoadV1_5 = parse(body)?;
        LoadBody {
            snapshot_path: b.snapshot_path,
            mem_file_path: b.mem_file_path,
            mem_backend: b.mem_backend,
            track_dirty_pages: b.enable_diff_snapshots,
            resume_vm: b.resume_vm,
            network_overrides: None,
        }
    };
    pre_boot_only(vmm)?;
    // notes: "Load (only logger/metrics may be configured before)".
    if vmm.boot_resources_configured {
        return Err(Response::fault(
            "Loading a microVM snapshot not allowed after configuring boot-specific resources.",
        ));
    }
    let mem = match (&b.mem_file_path, &b.mem_backend) {
        (Some(path), None) => PathBuf::from(path),
        (None, Some(backend)) if backend.backend_type == BackendType::File => {
            PathBuf::from(&backend.backend_path)
        }
        (None, Some(_)) => {
            return Err(Response::fault(
                "fake-firecracker: Uffd memory backends are not simulated",
            ));
        }
        _ => {
            return Err(Response::fault(
                "Load snapshot error: exactly one of mem_file_path and mem_backend must be given.",
            ));
        }
    };
    // notes: "A failed load ends the process."
    match restore(vmm, &b, &mem) {
        Ok(()) => Ok(Response::no_content()),
        Err(why) => {
            vmm.exit_after_response = Some(1);
            Err(prefixed(vmm, "Load snapshot error: ", why))
        }
    }
}

fn restore(vmm: &mut Vmm, b: &LoadBody, mem: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read(&b.snapshot_path)
        .map_err(|e| format!("Cannot open the snapshot file: {}", os_error(&e)))?;
    let file: SnapshotFile = serde_json::from_slice(&text)
        .map_err(|e| format!("Cannot deserialize the microVM state: {e}"))?;
    // notes: "Snapshot files do not move between Firecracker versions."
    let p = vmm.personality;
    let mine = format!("{}.{}.{}", p.major, p.minor, p.patch);
    if file.vmm_version != mine {
        return Err(format!(
            "Cannot deserialize the microVM state: the snapshot was written by Firecracker \
             v{} and this is v{mine}",
            file.vmm_version
        ));
    }
    let mem_len = std::fs::metadata(mem)
        .map_err(|e| format!("Cannot open the memory file: {}", os_error(&e)))?
        .len();
    if mem_len != file.mem_size_mib << 20 {
        return Err("the memory file does not match the snapshot's memory size".into());
    }
    // notes: "Disk/TAP/vsock paths must match the originals (unless overridden)": each is
    // reopened at the path recorded in the snapshot, as given then (a relative path
    // resolves against this process's working directory), and held open while the VM runs.
    let mut held = Vec::new();
    for (_, path, _, read_only) in &file.drives {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| {
                format!(
                    "Cannot restore devices: block device {}: {}",
                    path.display(),
                    os_error(&e)
                )
            })?;
        held.push(opened);
    }
    // The memory file is mapped MAP_PRIVATE: opened read-only, never written, so any
    // number of clones can share it.
    held.push(
        std::fs::File::open(mem)
            .map_err(|e| format!("Cannot open the memory file: {}", os_error(&e)))?,
    );
    // notes: "network_overrides [{iface_id, host_dev_name}] (1.12+)": each names an
    // interface of the snapshot; the (possibly overridden) TAP is opened by name.
    let overrides = b.network_overrides.as_deref().unwrap_or_default();
    if let Some(o) = overrides
        .iter()
        .find(|o| !file.ifaces.iter().any(|(id, _, _)| *id == o.iface_id))
    {
        return Err(format!(
            "Invalid network override: the snapshot has no network interface {}",
            o.iface_id
        ));
    }
    let mut ifaces = Vec::new();
    for (id, tap, mac) in &file.ifaces {
        let tap = overrides
            .iter()
            .find(|o| o.iface_id == *id)
            .map_or(tap.clone(), |o| o.host_dev_name.clone());
        super::devices::check_tap(&tap).map_err(|why| format!("Cannot restore devices: {why}"))?;
        ifaces.push(NetIface {
            id: id.clone(),
            tap,
            mac: mac.clone(),
        });
    }
    vmm.ifaces = ifaces;
    vmm.vsock = match &file.vsock {
        None => None,
        Some((cid, uds_path)) => Some(Vsock {
            guest_cid: *cid,
            uds_path: uds_path.clone(),
            listener: UnixListener::bind(uds_path).map_err(|e| {
                format!(
                    "Cannot restore devices: vsock: Error binding to the host-side Unix socket: {}",
                    os_error(&e)
                )
            })?,
        }),
    };
    vmm.boot_source = Some(BootSource {
        kernel: file.kernel,
        initrd: file.initrd,
        boot_args: file.boot_args,
    });
    vmm.drives = file
        .drives
        .into_iter()
        .map(|(id, path, root, read_only)| Drive {
            id,
            path,
            root,
            read_only,
            partuuid: None,
        })
        .collect();
    vmm.machine.vcpu_count = file.vcpu_count;
    vmm.machine.mem_size_mib = file.mem_size_mib;
    vmm.machine.track_dirty_pages = b.track_dirty_pages.unwrap_or(false);
    let Some(boot) = vmm.boot_source.clone() else {
        return Err("no boot source in the snapshot".into());
    };
    // notes: "vsock connections reset across a snapshot": the guest's agent starts afresh.
    let guest = Guest::start(
        GuestConfig::from_vmm(vmm, &boot),
        vmm.log.instance_id.clone(),
    )
    .map_err(|e| format!("fake-firecracker: {e}"))?;
    if b.resume_vm == Some(true) {
        vmm.state = InstanceState::Running;
    } else {
        guest.pause();
        vmm.state = InstanceState::Paused;
    }
    vmm.guest = Some(guest);
    vmm.held_files = held;
    Ok(())
}
