//! Fixtures shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use banger_store::{ImageRecord, SnapshotRecord, Store, VmRecord, VmState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn image(name: &str) -> ImageRecord {
    ImageRecord {
        name: name.to_string(),
        kernel_path: format!("/images/{name}/vmlinux").into(),
        kernel_format: "elf-vmlinux".to_string(),
        bzimage_path: Some(format!("/images/{name}/bzImage").into()),
        initrd_path: None,
        rootfs_path: Some(format!("/images/{name}/rootfs.ext4").into()),
        source: "recipe:minimal".to_string(),
        kernel_release: Some("6.1.0-18-amd64".to_string()),
        dir: format!("/images/{name}").into(),
        created_at: "2024-05-01T10:00:00Z".to_string(),
        size_bytes: 123_456_789,
        kernel_pvh: Some(true),
        init: Some(banger_store::GuestInit::Agent),
        config_json: Some(r#"{"cmd":["sh"]}"#.to_string()),
        digest: Some(format!("sha256:{}", "ab".repeat(32))),
    }
}

pub fn vm(id: &str, name: &str, image: &str) -> VmRecord {
    VmRecord {
        id: id.to_string(),
        name: name.to_string(),
        image_name: image.to_string(),
        state: VmState::Created,
        vcpu: 2,
        memory_mib: 1024,
        disk_bytes: 8 << 30,
        dir: format!("/vms/{id}").into(),
        driver: None,
        runtime_json: None,
        boot_json: None,
        last_error: None,
        created_at: "2024-05-01T10:00:00Z".to_string(),
        updated_at: "2024-05-01T10:00:00Z".to_string(),
        started_at: None,
        driver_reason: None,
    }
}

/// A store at `<tmp>/state/state.db` with one image, "base".
pub fn store_with_image(dir: &Path) -> (Store, PathBuf) {
    let path = dir.join("state").join("state.db");
    let store = Store::open(&path).unwrap();
    store.insert_image(&image("base")).unwrap();
    (store, path)
}

/// Every file in `dir` with its full contents: the before/after proof that nothing was
/// written, created or removed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

pub fn names(snap: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    snap.keys().map(String::as_str).collect()
}

/// A snapshot record `name` of a 1-vCPU, 256 MiB VM of image "base" taken from VM
/// `source_vm`, with no files behind it.
pub fn snapshot_record(id: &str, name: &str, source_vm: &str) -> SnapshotRecord {
    SnapshotRecord {
        id: id.into(),
        name: name.into(),
        source_vm: source_vm.into(),
        image_name: "base".into(),
        driver: "qemu".into(),
        vcpu: 1,
        memory_mib: 256,
        disk_bytes: 1 << 30,
        dir: format!("/state/snapshots/{id}").into(),
        detail_json: r#"{"files":{}}"#.into(),
        size_bytes: 4096,
        created_at: banger_store::now_rfc3339(),
    }
}
