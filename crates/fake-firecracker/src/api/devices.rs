//! `PUT|PATCH /drives/{id}`, `PUT /network-interfaces/{id}`, `PUT /vsock`.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Answer, os_error, parse, post_boot_only, pre_boot_only, prefixed, same_id};
use crate::http::Response;
use crate::vmm::{Drive, NetIface, Vmm, Vsock};

#[derive(Deserialize, Clone, Copy)]
enum CacheType {
    Unsafe,
    Writeback,
}

#[derive(Deserialize, Clone, Copy)]
enum IoEngine {
    Sync,
    Async,
}

/// 1.5.0: notes "always send path_on_host and is_read_only (required in 1.5)".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DriveV1_5 {
    drive_id: String,
    path_on_host: String,
    is_root_device: bool,
    partuuid: Option<String>,
    is_read_only: bool,
    cache_type: Option<CacheType>,
    rate_limiter: Option<serde_json::Value>,
    io_engine: Option<IoEngine>,
}

/// notes: "`PUT /drives/{id}` `{drive_id*, is_root_device*, path_on_host, is_read_only,
/// partuuid, cache_type Unsafe|Writeback, io_engine Sync|Async, rate_limiter}`".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DriveBody {
    drive_id: String,
    partuuid: Option<String>,
    is_root_device: bool,
    cache_type: Option<CacheType>,
    is_read_only: Option<bool>,
    path_on_host: Option<String>,
    rate_limiter: Option<serde_json::Value>,
    io_engine: Option<IoEngine>,
    socket: Option<String>,
}

pub(super) fn put_drive(vmm: &mut Vmm, id: &str, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let drive = if vmm.personality.drive_path_required() {
        let b: DriveV1_5 = parse(body)?;
        let _ = (b.cache_type, b.rate_limiter, b.io_engine);
        Drive {
            id: b.drive_id,
            path: PathBuf::from(b.path_on_host),
            root: b.is_root_device,
            read_only: b.is_read_only,
            partuuid: b.partuuid,
        }
    } else {
        let b: DriveBody = parse(body)?;
        let _ = (b.cache_type, b.rate_limiter, b.io_engine);
        if b.socket.is_some() {
            return Err(Response::fault(
                "fake-firecracker: vhost-user drives (`socket`) are not simulated",
            ));
        }
        // notes: "drive without path_on_host: v1.14.1 `Drive config error: Unable to create the
        // virtio block device: Invalid block config.`"
        let Some(path) = b.path_on_host else {
            return Err(prefixed(
                vmm,
                "Drive config error: ",
                "Unable to create the virtio block device: Invalid block config.",
            ));
        };
        Drive {
            id: b.drive_id,
            path: PathBuf::from(path),
            root: b.is_root_device,
            read_only: b.is_read_only.unwrap_or(false),
            partuuid: b.partuuid,
        }
    };
    same_id(id, &drive.id)?;
    // notes: "A second root drive: 400 `Drive config error: A root block device already
    // exists!`" (replacing the root drive under its own id is an update, not a second one).
    let existing = vmm.drives.iter().position(|d| d.id == drive.id);
    let other_root = vmm
        .drives
        .iter()
        .any(|d| d.root && Some(d.id.as_str()) != existing.map(|i| vmm.drives[i].id.as_str()));
    if drive.root && other_root {
        return Err(prefixed(
            vmm,
            "Drive config error: ",
            "A root block device already exists!",
        ));
    }
    open_backing_file(vmm, &drive.path, drive.read_only)?;
    match existing {
        Some(i) => vmm.drives[i] = drive,
        None => vmm.drives.push(drive),
    }
    // Firecracker keeps the root drive first: it becomes /dev/vda.
    vmm.drives.sort_by_key(|d| !d.root);
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}

/// notes: "a missing backing file: 1.14.1 `Drive config error: Unable to create the virtio
/// block device: Virtio backend error: Error manipulating the backing file: No such file or
/// directory (os error 2) PATH`, 1.5.0 `Invalid block device path: PATH`."
fn open_backing_file(vmm: &Vmm, path: &Path, read_only: bool) -> Result<(), Response> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path);
    let Err(e) = opened else { return Ok(()) };
    if vmm.personality.error_prefixes() {
        Err(Response::fault(format!(
            "Drive config error: Unable to create the virtio block device: Virtio backend \
             error: Error manipulating the backing file: {} {}",
            os_error(&e),
            path.display()
        )))
    } else if e.kind() == std::io::ErrorKind::NotFound {
        Err(Response::fault(format!(
            "Invalid block device path: {}",
            path.display()
        )))
    } else {
        Err(Response::fault(format!(
            "Cannot open block device. Invalid permission/path: {}",
            os_error(&e)
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrivePatch {
    drive_id: String,
    path_on_host: Option<String>,
    rate_limiter: Option<serde_json::Value>,
}

/// Updating a drive of a running VM (e.g. after its backing file changed).
pub(super) fn patch_drive(vmm: &mut Vmm, id: &str, body: &[u8]) -> Answer {
    post_boot_only(vmm)?;
    let b: DrivePatch = parse(body)?;
    let _ = b.rate_limiter;
    same_id(id, &b.drive_id)?;
    let Some(index) = vmm.drives.iter().position(|d| d.id == b.drive_id) else {
        return Err(prefixed(
            vmm,
            "Drive config error: ",
            "Invalid drive ID: the drive does not exist.",
        ));
    };
    if let Some(path) = b.path_on_host {
        let path = PathBuf::from(path);
        open_backing_file(vmm, &path, vmm.drives[index].read_only)?;
        vmm.drives[index].path = path;
    }
    Ok(Response::no_content())
}

/// notes: "`PUT /network-interfaces/{id}` `{iface_id*, host_dev_name* (TAP), guest_mac,
/// rx_rate_limiter, tx_rate_limiter}`".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IfaceBody {
    iface_id: String,
    host_dev_name: String,
    guest_mac: Option<String>,
    rx_rate_limiter: Option<serde_json::Value>,
    tx_rate_limiter: Option<serde_json::Value>,
}

pub(super) fn put_iface(vmm: &mut Vmm, id: &str, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let b: IfaceBody = parse(body)?;
    let _ = (b.rx_rate_limiter, b.tx_rate_limiter);
    same_id(id, &b.iface_id)?;
    check_tap(&b.host_dev_name).map_err(|why| prefixed(vmm, "Network config error: ", why))?;
    let iface = NetIface {
        id: b.iface_id,
        tap: b.host_dev_name,
        mac: b.guest_mac,
    };
    match vmm.ifaces.iter().position(|i| i.id == iface.id) {
        Some(i) => vmm.ifaces[i] = iface,
        None => vmm.ifaces.push(iface),
    }
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}

/// notes: "`PUT /vsock` `{guest_cid* (>=3), uds_path*}` (vsock_id deprecated — don't send)".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VsockBody {
    vsock_id: Option<String>,
    guest_cid: u32,
    uds_path: String,
}

pub(super) fn put_vsock(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let b: VsockBody = parse(body)?;
    if b.vsock_id.is_some() {
        vmm.log.line(
            "fc_api",
            "[DEPRECATED API] PUT /vsock: the vsock_id field is deprecated.",
        );
    }
    // notes: "`uds_path` must not exist before `PUT /vsock`"; "vsock uds_path already exists:
    // `Vsock config error: Cannot create backend for vsock device: Error binding to the
    // host-side Unix socket: Address already in use (os error 98)`; the socket is created at
    // PUT time." A second PUT before boot replaces the first ("was accepted").
    let uds_path = PathBuf::from(b.uds_path);
    vmm.vsock = None;
    let listener = UnixListener::bind(&uds_path).map_err(|e| {
        prefixed(
            vmm,
            "Vsock config error: ",
            format!(
                "Cannot create backend for vsock device: Error binding to the host-side Unix \
                 socket: {}",
                os_error(&e)
            ),
        )
    })?;
    vmm.vsock = Some(Vsock {
        guest_cid: b.guest_cid,
        uds_path,
        listener,
    });
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}

/// notes: "`PUT /network-interfaces` with a TAP name that does not exist: run as root,
/// Firecracker's TUNSETIFF CREATES that TAP … banger must create, own and clean up its TAPs
/// itself." The fake never creates host devices, so a missing TAP is refused: a driver
/// relying on Firecracker to create it (at configuration or at a snapshot load) fails here
/// instead of leaking TAPs in production.
pub(super) fn check_tap(name: &str) -> Result<(), String> {
    let missing = || {
        format!(
            "Open tap device failed: fake-firecracker: TAP {name} does not exist (the real \
             Firecracker would create it as root and delete it on exit; banger must create \
             its TAPs itself)"
        )
    };
    let classes = Path::new("/sys/class/net");
    if !classes.is_dir() {
        // In the jailer's chroot there is no /sys; the real Firecracker finds the TAP by
        // name (TUNSETIFF), so the fake looks the name up in its network namespace.
        let c_name = std::ffi::CString::new(name).map_err(|_| missing())?;
        // SAFETY: a NUL-terminated string that outlives the call; no other memory is used.
        if unsafe { libc::if_nametoindex(c_name.as_ptr()) } == 0 {
            return Err(missing());
        }
        return Ok(());
    }
    let sys = classes.join(name);
    if !sys.exists() {
        return Err(missing());
    }
    if !sys.join("tun_flags").exists() {
        return Err(format!(
            "Open tap device failed: {name} is not a TAP device"
        ));
    }
    Ok(())
}

/// Open every configured drive's backing file as the VM keeps it open while it runs. A
/// relative `path_on_host` resolves against Firecracker's working directory, as the real
/// one's `open(2)` does.
pub(super) fn open_drives(vmm: &Vmm) -> Result<Vec<std::fs::File>, String> {
    vmm.drives
        .iter()
        .map(|d| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(!d.read_only)
                .open(&d.path)
                .map_err(|e| format!("{}: {}", d.path.display(), os_error(&e)))
        })
        .collect()
}
