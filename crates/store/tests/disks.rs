//! VM disks are registered with their VM, atomically, and go away with it.

use crate::common;

use banger_store::{DiskRole, StoreError, VmDisk};
use common::{image, store_with_image, vm};

fn disk(role: DiskRole, backend: &str) -> VmDisk {
    VmDisk {
        role,
        path: format!("/vms/x/{}.img", role.as_str()).into(),
        format: if backend == "qcow2" { "qcow2" } else { "raw" }.into(),
        backend: backend.into(),
        size_bytes: 1 << 30,
    }
}

#[test]
fn disks_are_registered_with_their_vm_and_removed_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let disks = [
        disk(DiskRole::Work, "fresh"),
        disk(DiskRole::Root, "reflink"),
    ];
    store
        .insert_vm_with_disks(&vm("aaaa00000001", "dev", "base"), &disks)
        .unwrap();
    let got = store.vm_disks("aaaa00000001").unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].role, DiskRole::Root, "root disk comes first");
    assert_eq!(got[0].backend, "reflink");
    assert_eq!(got[1].role, DiskRole::Work);

    store.delete_vm("aaaa00000001").unwrap();
    assert!(store.vm_disks("aaaa00000001").unwrap().is_empty());
}

#[test]
fn a_bad_disk_registers_neither_the_vm_nor_any_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let err = store
        .insert_vm_with_disks(
            &vm("aaaa00000001", "dev", "base"),
            &[disk(DiskRole::Root, "magic")],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err:?}");
    assert!(err.to_string().contains("magic"), "{err}");

    // The same disk role twice violates the primary key: the VM row must roll back too.
    let twice = [disk(DiskRole::Root, "copy"), disk(DiskRole::Root, "copy")];
    assert!(
        store
            .insert_vm_with_disks(&vm("aaaa00000001", "dev", "base"), &twice)
            .is_err()
    );
    assert!(store.get_vm("dev").unwrap().is_none());
    assert!(store.vm_disks("aaaa00000001").unwrap().is_empty());
}

#[test]
fn image_facts_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let mut img = image("base");
    assert_eq!(store.get_image("base").unwrap().unwrap(), img);
    img.kernel_pvh = None;
    img.init = None;
    img.config_json = None;
    img.digest = None;
    store.replace_image(&img).unwrap();
    assert_eq!(store.get_image("base").unwrap().unwrap(), img);
    img.config_json = Some("{not json".into());
    assert!(store.replace_image(&img).is_err());
}
