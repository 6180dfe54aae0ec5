//! What the fake does on `PUT /snapshot/load` beyond the request's shape, as the real
//! Firecracker does (notes, "Snapshots"): it reopens the drives recorded in the snapshot and
//! keeps them open with the memory file (mapped privately: opened read-only), checks each
//! `network_overrides` entry against the snapshot's interfaces, and ends the process when a
//! load fails.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Fake, json};

/// A booted fake's snapshot: (state file, memory file, the drive it recorded).
fn snapshot_of_a_booted_guest() -> (Fake, PathBuf, PathBuf, PathBuf) {
    let mut fake = Fake::start("1.14.1");
    fake.boot();
    fake.ok("PATCH", "/vm", r#"{"state":"Paused"}"#);
    let (snap, mem) = (fake.path("snap"), fake.path("mem"));
    fake.ok(
        "PUT",
        "/snapshot/create",
        &json(serde_json::json!({"snapshot_path": snap, "mem_file_path": mem})),
    );
    let disk = fake.path("work.ext4");
    // The original's vsock socket must be gone before a restore binds it again.
    fake.kill();
    let _ = std::fs::remove_file(fake.path("v.sock"));
    (fake, snap, mem, disk)
}

fn load(snap: &Path, mem: &Path, extra: serde_json::Value) -> String {
    let mut body = serde_json::json!({
        "snapshot_path": snap,
        "mem_backend": {"backend_path": mem, "backend_type": "File"},
        "resume_vm": false,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    json(body)
}

/// `(path, opened read-only)` of every file process `pid` holds.
fn held(pid: u32) -> Vec<(PathBuf, bool)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let path = std::fs::read_link(e.path()).ok()?;
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .ok()?;
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())?;
            Some((
                path,
                flags & libc::O_ACCMODE as u32 == libc::O_RDONLY as u32,
            ))
        })
        .collect()
}

#[test]
fn a_restored_vm_holds_its_drives_and_a_read_only_memory_file() {
    let (_original, snap, mem, disk) = snapshot_of_a_booted_guest();
    let restored = Fake::start("1.14.1");
    restored.ok(
        "PUT",
        "/snapshot/load",
        &load(&snap, &mem, serde_json::json!({})),
    );
    assert_eq!(restored.state(), "Paused");
    let files = held(restored.child.id());
    assert!(files.contains(&(disk.clone(), false)), "{files:?}");
    assert!(files.contains(&(mem.clone(), true)), "{files:?}");
}

#[test]
fn a_missing_recorded_drive_fails_the_load_and_ends_the_process() {
    let (_original, snap, mem, disk) = snapshot_of_a_booted_guest();
    std::fs::remove_file(&disk).unwrap();
    let mut restored = Fake::start("1.14.1");
    let msg = restored.fault(
        "PUT",
        "/snapshot/load",
        &load(&snap, &mem, serde_json::json!({})),
    );
    assert!(msg.contains("block device"), "{msg}");
    assert!(msg.contains(disk.to_str().unwrap()), "{msg}");
    assert_eq!(restored.wait_exit(Duration::from_secs(10)), Some(1));
}

#[test]
fn an_override_of_an_interface_the_snapshot_lacks_fails_the_load() {
    let (_original, snap, mem, _) = snapshot_of_a_booted_guest();
    let mut restored = Fake::start("1.14.1");
    let overrides = serde_json::json!({
        "network_overrides": [{"iface_id": "eth9", "host_dev_name": "bgt-none"}]
    });
    let msg = restored.fault("PUT", "/snapshot/load", &load(&snap, &mem, overrides));
    assert!(msg.contains("eth9"), "{msg}");
    assert_eq!(restored.wait_exit(Duration::from_secs(10)), Some(1));
}
