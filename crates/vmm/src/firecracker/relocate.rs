//! How a Firecracker snapshot is restored into ANOTHER VM's directory.
//!
//! `PUT /snapshot/load` reopens every drive at the `path_on_host` recorded in the snapshot
//! and binds the vsock `uds_path` recorded there; only TAP names can be overridden (1.12+,
//! `network_overrides`). Were those paths absolute, a clone would open its parent's disks
//! and collide with its parent's vsock socket. So banger never gives Firecracker an
//! absolute drive or vsock path: Firecracker runs with the VM's directory as its working
//! directory, every drive is the symlink `fc-drives/<drive id>` there (pointing at the VM's
//! own disk), and the vsock socket is `firecracker.vsock`. The snapshot records those
//! relative names, and the same names resolve to the clone's own files in the clone's
//! directory. This works on every supported release (no drive update after load, which
//! would need the guest to be paused with the wrong disks already open) and keeps working
//! in banger's sandbox: its child enters the VM's directory (bound at its own path) after
//! `pivot_root`, and every drive's target is bound at its own path too.
//!
//! The sandbox refuses symlinks among a VM's files when it gives them to the VMM's uid (a
//! link there could make root change a file outside). So the links are removed before
//! that walk ([`clear_drive_links`]) and made after it ([`link_drives`]), by the launcher,
//! in a directory it owns: the VMM's uid may read them but not change them. Hard links
//! would not do: a regular file with several links is a shared base to the sandbox, made
//! read-only for the VMM, and a disk elsewhere or on another filesystem cannot be linked.
//!
//! Beside the snapshot's files, [`LAYOUT_FILE`] records what the restore needs to check:
//! that layout, the drive ids and the TAP each interface had.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::ApiCall;
use super::payloads::{PlanInput, has_serial_out};
use crate::error::VmmError;
use crate::spec::{LaunchSpec, SnapshotFiles};
use crate::validate;

/// The directory of drive symlinks inside a VM's directory (relative to Firecracker's
/// working directory).
pub const DRIVE_LINK_DIR: &str = "fc-drives";
/// The vsock `uds_path` as Firecracker is given it.
pub const VSOCK_NAME: &str = "firecracker.vsock";
/// The layout record beside a snapshot's `vmstate`.
pub const LAYOUT_FILE: &str = "firecracker.layout.json";
/// The first release with `network_overrides` on load (notes: "(1.12+)").
pub const NETWORK_OVERRIDES_SINCE: (u64, u64) = (1, 12);

const LAYOUT_VERSION: u32 = 1;

/// `path_on_host` of drive `id`, relative to the VM's directory.
pub fn drive_link(id: &str) -> String {
    format!("{DRIVE_LINK_DIR}/{id}")
}

/// What a snapshot's restore must reproduce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub layout: u32,
    /// The release that wrote the snapshot (notes: "Snapshot files do not move between
    /// Firecracker versions").
    pub firecracker: String,
    pub drives: Vec<LayoutDrive>,
    pub nics: Vec<LayoutNic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutDrive {
    pub id: String,
    pub root: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutNic {
    pub id: String,
    pub tap: String,
}

impl Layout {
    /// The layout of a running VM, read from its `GET /vm/config`; `Err` names what is not
    /// relocatable (a VM launched by an older banger with absolute paths).
    pub fn from_vm_config(config: &serde_json::Value, firecracker: &str) -> Result<Layout, String> {
        let list = |key: &str| {
            config
                .get(key)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        let text = |v: &serde_json::Value, key: &str| {
            v.get(key)
                .and_then(|s| s.as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("GET /vm/config has no {key} in {v}"))
        };
        let mut drives = Vec::new();
        for d in list("drives") {
            let id = text(&d, "drive_id")?;
            let path = text(&d, "path_on_host")?;
            if path != drive_link(&id) {
                return Err(format!(
                    "its drive {id} was opened at {path:?}, not at the relocatable {:?}",
                    drive_link(&id)
                ));
            }
            drives.push(LayoutDrive {
                id,
                root: d.get("is_root_device").and_then(|b| b.as_bool()) == Some(true),
                read_only: d.get("is_read_only").and_then(|b| b.as_bool()) == Some(true),
            });
        }
        if let Some(vsock) = config.get("vsock").filter(|v| !v.is_null()) {
            let uds = text(vsock, "uds_path")?;
            if uds != VSOCK_NAME {
                return Err(format!(
                    "its vsock socket is {uds:?}, not the relocatable {VSOCK_NAME:?}"
                ));
            }
        }
        let mut nics = Vec::new();
        for n in list("network-interfaces") {
            nics.push(LayoutNic {
                id: text(&n, "iface_id")?,
                tap: text(&n, "host_dev_name")?,
            });
        }
        Ok(Layout {
            layout: LAYOUT_VERSION,
            firecracker: firecracker.to_owned(),
            drives,
            nics,
        })
    }

    /// Write the record beside the snapshot: temp name, fsync, rename.
    pub fn write(&self, dir: &Path) -> Result<(), VmmError> {
        let path = dir.join(LAYOUT_FILE);
        let temp = dir.join(format!(".{LAYOUT_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| VmmError::io("encode", &path, std::io::Error::other(e)))?;
        std::fs::write(&temp, json).map_err(|e| VmmError::io("write", &temp, e))?;
        crate::fsutil::commit(&temp, &path)
    }

    /// The record beside `files.state`.
    pub fn read(vm_id: &str, files: &SnapshotFiles) -> Result<Layout, VmmError> {
        let path = files
            .state
            .parent()
            .map(|d| d.join(LAYOUT_FILE))
            .unwrap_or_else(|| PathBuf::from(LAYOUT_FILE));
        let failed = |reason: String| VmmError::RestoreFailed {
            vm_id: vm_id.to_owned(),
            state: files.state.clone(),
            reason,
        };
        let text = std::fs::read(&path).map_err(|e| {
            failed(format!(
                "its drive layout record {} cannot be read ({e}); snapshots taken before \
                 banger could restore Firecracker VMs are not restorable",
                path.display()
            ))
        })?;
        let layout: Layout = serde_json::from_slice(&text)
            .map_err(|e| failed(format!("{} is damaged: {e}", path.display())))?;
        if layout.layout != LAYOUT_VERSION {
            return Err(failed(format!(
                "{} has layout {}, this banger knows {LAYOUT_VERSION}",
                path.display(),
                layout.layout
            )));
        }
        Ok(layout)
    }

    /// The `network_overrides` that give `spec`'s interfaces their own TAPs, checked
    /// against the snapshot's drives and interfaces.
    pub fn overrides_for(
        &self,
        spec: &LaunchSpec,
        version: &banger_firecracker::SemVer,
    ) -> Result<Vec<LayoutNic>, String> {
        let running = format!("{}.{}.{}", version.major, version.minor, version.patch);
        if self.firecracker != running {
            return Err(format!(
                "it was written by Firecracker {} and this is {running}, which cannot read it \
                 (snapshot files do not move between Firecracker versions)",
                self.firecracker
            ));
        }
        let saved: BTreeSet<_> = self.drives.iter().map(|d| d.id.as_str()).collect();
        let given: BTreeSet<_> = spec.drives.iter().map(|d| d.id.as_str()).collect();
        if saved != given {
            return Err(format!(
                "the snapshot has drives {saved:?} and this VM has {given:?}"
            ));
        }
        for d in &self.drives {
            let mine = spec.drives.iter().find(|g| g.id == d.id);
            if mine.is_some_and(|g| g.root != d.root || g.read_only != d.read_only) {
                return Err(format!(
                    "drive {} is not attached as it was in the snapshot",
                    d.id
                ));
            }
        }
        if self.nics.len() != spec.nics.len() {
            return Err(format!(
                "the snapshot has {} network interface(s) and this VM {}",
                self.nics.len(),
                spec.nics.len()
            ));
        }
        let mut overrides = Vec::new();
        for saved in &self.nics {
            let Some(mine) = spec.nics.iter().find(|n| n.id == saved.id) else {
                return Err(format!(
                    "the snapshot's network interface {} is not among this VM's",
                    saved.id
                ));
            };
            validate::tap_name(&mine.tap)?;
            if mine.tap != saved.tap {
                overrides.push(LayoutNic {
                    id: saved.id.clone(),
                    tap: mine.tap.clone(),
                });
            }
        }
        Ok(overrides)
    }
}

/// Remove what a previous launch left in `fc-drives` (before the sandbox walks the VM's
/// directory, which refuses symlinks).
pub fn clear_drive_links(spec: &LaunchSpec) -> Result<(), VmmError> {
    let dir = spec.vm_dir.join(DRIVE_LINK_DIR);
    // Never follows a link: a link at `fc-drives` itself is removed, not its target.
    let result = match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&dir),
        Ok(_) => std::fs::remove_file(&dir),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VmmError::io("remove old drive links", &dir, e)),
    }
}

/// Make `fc-drives/<id>` in the VM's directory point at each drive of `spec` (replacing
/// what a previous launch left). After the sandbox gave the VM's directory away: the
/// directory and its links stay the launcher's.
pub fn link_drives(spec: &LaunchSpec) -> Result<(), VmmError> {
    clear_drive_links(spec)?;
    let dir = spec.vm_dir.join(DRIVE_LINK_DIR);
    std::fs::create_dir(&dir).map_err(|e| VmmError::io("create", &dir, e))?;
    for drive in &spec.drives {
        let link = spec.vm_dir.join(drive_link(&drive.id));
        std::os::unix::fs::symlink(&drive.path, &link)
            .map_err(|e| VmmError::io("link drive", &link, e))?;
    }
    Ok(())
}

/// The calls that restore a snapshot: logger and metrics (the only resources the notes
/// allow before a load), then `PUT /snapshot/load`. The guest is left paused
/// (`resume_vm: false`): the daemon records the new VMM before it lets the guest run.
/// The serial is not configured (`PUT /serial` counts as a boot resource): it goes to
/// stdout, which the launcher makes the console pipe.
pub fn restore_plan(
    input: &PlanInput<'_>,
    files: &SnapshotFiles,
    overrides: &[LayoutNic],
) -> Result<Vec<ApiCall>, String> {
    let path = |what: &str, p: &Path| validate::host_path(what, p).map(str::to_owned);
    let memory = files
        .memory
        .as_ref()
        .ok_or("the snapshot has no memory file")?;
    if !overrides.is_empty() && (input.version.major, input.version.minor) < NETWORK_OVERRIDES_SINCE
    {
        return Err(format!(
            "Firecracker {} cannot give a restored VM a TAP of its own (network_overrides \
             arrived in {}.{}); upgrade Firecracker to restore snapshots of networked VMs",
            input.version, NETWORK_OVERRIDES_SINCE.0, NETWORK_OVERRIDES_SINCE.1
        ));
    }
    let mut calls = super::payloads::observability_calls(input.paths)?;
    let mut load = json!({
        "snapshot_path": path("snapshot state", &files.state)?,
        "mem_backend": { "backend_type": "File", "backend_path": path("snapshot memory", memory)? },
        "resume_vm": false,
    });
    if !overrides.is_empty() {
        load["network_overrides"] = overrides
            .iter()
            .map(|o| json!({ "iface_id": o.id, "host_dev_name": o.tap }))
            .collect();
    }
    calls.push(ApiCall::put("/snapshot/load", load));
    Ok(calls)
}

/// Whether a launch of `version` writes the serial through `PUT /serial` (a boot) or to
/// stdout (every restore, and releases before 1.13).
pub fn serial_out(version: &banger_firecracker::SemVer, restoring: bool) -> bool {
    !restoring && has_serial_out(version)
}
