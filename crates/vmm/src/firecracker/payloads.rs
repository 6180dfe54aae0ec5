//! The boot sequence as a pure function of the launch spec and the detected release: the
//! API calls, in order, with their bodies (table-tested per release in `payloads_tests.rs`).
//!
//! Rules from `shared/notes/firecracker-api.md`:
//! * order: logger, metrics, serial (1.13+), boot source, drives, machine config, network interfaces, vsock,
//!   then `InstanceStart`;
//! * bodies reject unknown fields, so nothing is sent that the oldest supported release
//!   (1.5.0) does not know, and everything 1.5.0 requires is always sent (`path_on_host`
//!   and `is_read_only` on every drive);
//! * `vsock_id` is deprecated and never sent; the guest CID is at least 3;
//! * logger and metrics files exist before they are configured (1.5.0 requires it); the
//!   logger writes into the named pipe `firecracker.log.fifo`, drained into a capped log;
//! * the serial console goes into the named pipe `console.fifo` that the daemon drains into
//!   the capped console log (`crate::console`): 1.13+ is told so with `PUT /serial
//!   {serial_out_path}`; older releases (where that endpoint answers 400) write the serial to
//!   stdout, which the launcher makes that same pipe.

use std::path::{Path, PathBuf};

use banger_firecracker::SemVer;
use serde_json::json;

use super::api::ApiCall;
use super::relocate;
use crate::spec::{DriveFormat, GUEST_KERNEL_ARGS, LaunchSpec};
use crate::validate;

/// The files of one Firecracker VM inside its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcPaths {
    pub api_socket: PathBuf,
    /// The hybrid-vsock Unix socket (`uds_path`).
    pub vsock: PathBuf,
    /// Firecracker's own log as the daemon keeps it (capped, rotated), drained from `log_fifo`.
    pub log: PathBuf,
    /// The named pipe Firecracker logs into (`PUT /logger`): a guest can make Firecracker
    /// log a line per console byte it loses, so its log must be capped like the console.
    pub log_fifo: PathBuf,
    pub metrics: PathBuf,
    /// Firecracker's stderr (panics, argument errors).
    pub stderr: PathBuf,
    /// The runtime record written right after spawning, before the API is driven.
    pub launch_record: PathBuf,
    /// The named pipe the guest's serial console is written into.
    pub console_fifo: PathBuf,
}

impl FcPaths {
    pub fn in_dir(dir: &Path) -> FcPaths {
        FcPaths {
            api_socket: dir.join("firecracker.sock"),
            vsock: dir.join("firecracker.vsock"),
            log: dir.join("firecracker.log"),
            log_fifo: dir.join("firecracker.log.fifo"),
            metrics: dir.join("firecracker.metrics"),
            stderr: dir.join("firecracker.stderr"),
            launch_record: dir.join("firecracker.launch.json"),
            console_fifo: dir.join("console.fifo"),
        }
    }
}

/// Inputs of [`boot_plan`].
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub spec: &'a LaunchSpec,
    pub version: &'a SemVer,
    pub paths: &'a FcPaths,
    pub guest_cid: u32,
    pub agent_port: u32,
}

/// `PUT /logger` and `PUT /metrics`: the first calls of a boot and of a restore.
pub(super) fn observability_calls(paths: &FcPaths) -> Result<Vec<ApiCall>, String> {
    let path = |what: &str, p: &Path| validate::host_path(what, p).map(str::to_owned);
    Ok(vec![
        ApiCall::put(
            "/logger",
            json!({
                "log_path": path("Firecracker log pipe", &paths.log_fifo)?,
                "level": "Info",
                "show_level": true,
                "show_log_origin": false,
            }),
        ),
        ApiCall::put(
            "/metrics",
            json!({ "metrics_path": path("Firecracker metrics", &paths.metrics)? }),
        ),
    ])
}

/// Kernel arguments banger always passes, before the caller's:
/// * `console=ttyS0`: the serial console (Firecracker's default args have none);
/// * `reboot=k panic=1`: a guest reboot or panic resets through the keyboard controller,
///   which ends Firecracker;
/// * `pci=off`: Firecracker's devices are virtio-mmio (it appends `pci=off` itself too);
/// * `i8042.*`: the keyboard controller Firecracker emulates, so `SendCtrlAltDel` works;
/// * `banger.poweroff=reboot`: the agent ends the machine with a reboot, since a halted
///   guest would leave Firecracker running.
const BASE_ARGS: &[&str] = &[
    "console=ttyS0",
    "reboot=k",
    "panic=1",
    "pci=off",
    "i8042.noaux",
    "i8042.nomux",
    "i8042.dumbkbd",
    "banger.poweroff=reboot",
];

/// The first release with `PUT /serial` (notes: "`PUT /serial {serial_out_path}` (1.13+)";
/// "1.5.0 answers 400 `Invalid request method and/or path: PUT serial.`").
pub const SERIAL_OUT_SINCE: (u64, u64) = (1, 13);

/// Whether `version` takes `PUT /serial`; older releases write the serial to stdout.
pub fn has_serial_out(version: &SemVer) -> bool {
    (version.major, version.minor) >= SERIAL_OUT_SINCE
}

/// Firecracker takes at most 32 vCPUs.
pub const MAX_VCPUS: u32 = 32;

/// The API calls that boot `input.spec`, `InstanceStart` last.
pub fn boot_plan(input: &PlanInput<'_>) -> Result<Vec<ApiCall>, String> {
    let spec = input.spec;
    let path = |what: &str, p: &Path| validate::host_path(what, p).map(str::to_owned);
    // One plan serves every supported release: each body holds only fields 1.5.0 knows
    // (newer releases still accept them) and everything 1.5.0 requires.
    banger_firecracker::require_supported(input.version, "the configured binary")
        .map_err(|e| e.to_string())?;
    let mut calls = observability_calls(input.paths)?;

    if has_serial_out(input.version) {
        calls.push(ApiCall::put(
            "/serial",
            json!({ "serial_out_path": path("console pipe", &input.paths.console_fifo)? }),
        ));
    }

    let mut boot = json!({
        "kernel_image_path": path("kernel", &spec.kernel)?,
        "boot_args": kernel_cmdline(input)?,
    });
    if let Some(initrd) = &spec.initrd {
        boot["initrd_path"] = path("initrd", initrd)?.into();
    }
    calls.push(ApiCall::put("/boot-source", boot));

    if spec.drives.iter().filter(|d| d.root).count() > 1 {
        return Err("more than one drive is marked as the root drive".into());
    }
    // The root drive first, as Firecracker attaches it: it becomes /dev/vda.
    let mut drives: Vec<_> = spec.drives.iter().collect();
    drives.sort_by_key(|d| !d.root);
    for drive in drives {
        resource_id("drive", &drive.id)?;
        if drive.format != DriveFormat::Raw {
            return Err(format!(
                "drive {} is {}, but Firecracker reads only raw images",
                drive.id,
                drive.format.as_str()
            ));
        }
        // Given relative to the VM's directory, where `fc-drives/<id>` links to the disk: a
        // restored clone reopens its own (`relocate`).
        path(&format!("drive {}", drive.id), &drive.path)?;
        calls.push(ApiCall::put(
            format!("/drives/{}", drive.id),
            json!({
                "drive_id": drive.id,
                "path_on_host": relocate::drive_link(&drive.id),
                "is_root_device": drive.root,
                "is_read_only": drive.read_only,
            }),
        ));
    }

    if !(1..=MAX_VCPUS).contains(&spec.vcpus) {
        return Err(format!(
            "{} vCPUs requested; Firecracker runs 1 to {MAX_VCPUS}",
            spec.vcpus
        ));
    }
    if spec.memory_mib == 0 {
        return Err("0 MiB of memory requested".into());
    }
    calls.push(ApiCall::put(
        "/machine-config",
        json!({ "vcpu_count": spec.vcpus, "mem_size_mib": spec.memory_mib, "smt": false }),
    ));

    if spec.user_net.is_some() {
        return Err(
            "Firecracker has no user-mode networking; give the VM a TAP interface instead".into(),
        );
    }
    if !spec.shares.is_empty() {
        return Err(
            "Firecracker has neither virtio-fs nor 9p, so it cannot share host \
                    directories; run the VM under QEMU, or copy files with `banger vm cp`"
                .into(),
        );
    }
    for nic in &spec.nics {
        resource_id("network interface", &nic.id)?;
        validate::tap_name(&nic.tap)?;
        validate::mac_address(&nic.mac)?;
        calls.push(ApiCall::put(
            format!("/network-interfaces/{}", nic.id),
            json!({ "iface_id": nic.id, "host_dev_name": nic.tap, "guest_mac": nic.mac }),
        ));
    }

    if input.guest_cid < 3 {
        return Err(format!(
            "guest CID {} is reserved; use 3 or more",
            input.guest_cid
        ));
    }
    calls.push(ApiCall::put(
        "/vsock",
        json!({
            "guest_cid": input.guest_cid,
            // Relative, like the drives (`relocate`).
            "uds_path": relocate::VSOCK_NAME,
        }),
    ));
    calls.push(ApiCall::put(
        "/actions",
        json!({ "action_type": "InstanceStart" }),
    ));
    Ok(calls)
}

/// banger's arguments, the agent's port, every guest's ([`GUEST_KERNEL_ARGS`]), then the caller's.
fn kernel_cmdline(input: &PlanInput<'_>) -> Result<String, String> {
    let mut args: Vec<String> = BASE_ARGS.iter().map(|a| (*a).to_owned()).collect();
    args.push(format!("banger.agent=vsock:{}", input.agent_port));
    args.extend(GUEST_KERNEL_ARGS.iter().map(|a| (*a).to_owned()));
    for arg in &input.spec.kernel_args {
        validate::kernel_arg(arg)?;
        args.push(arg.clone());
    }
    Ok(args.join(" "))
}

/// Firecracker's API resource ids: letters, digits and `_`, at most 64 (they are also path
/// segments of the API).
fn resource_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} id {id:?} must be 1-64 letters, digits or '_' for Firecracker"
        ))
    }
}

#[cfg(test)]
#[path = "payloads_tests.rs"]
mod tests;
