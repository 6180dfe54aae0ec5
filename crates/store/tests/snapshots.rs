//! Snapshots: registered whole, listed, found by name or id; a snapshot with clones cannot
//! be removed, and a clone's origin goes with the clone.

use crate::common;

use banger_store::{SnapshotRecord, StoreError};
use common::{snapshot_record, store_with_image, vm};

fn snap(id: &str, name: &str) -> SnapshotRecord {
    snapshot_record(id, name, "dev")
}

#[test]
fn snapshots_with_clones_are_kept_until_the_clones_go() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store.insert_snapshot(&snap("5a000001", "s1")).unwrap();
    let err = store.insert_snapshot(&snap("5a000002", "s1")).unwrap_err();
    assert!(matches!(err, StoreError::SnapshotExists(_)), "{err}");
    let mut orphan = snap("5a000003", "s3");
    orphan.image_name = "nope".into();
    assert!(matches!(
        store.insert_snapshot(&orphan).unwrap_err(),
        StoreError::ImageNotFound(_)
    ));
    let mut bad = snap("5a000004", "s4");
    bad.detail_json = "{".into();
    assert!(store.insert_snapshot(&bad).is_err());

    assert_eq!(store.get_snapshot("s1").unwrap().unwrap().id, "5a000001");
    assert_eq!(store.get_snapshot("5a000001").unwrap().unwrap().name, "s1");
    assert!(store.get_snapshot("s9").unwrap().is_none());
    assert_eq!(store.list_snapshots().unwrap().len(), 1);

    store
        .insert_clone(&vm("c1000001", "c1", "base"), &[], "5a000001")
        .unwrap();
    let origin = store.vm_origin("c1000001").unwrap().unwrap();
    assert_eq!(origin.snapshot_id, "5a000001");
    assert_eq!(origin.restored_at, None);
    store
        .mark_restored("c1000001", "2026-12-01T10:00:00Z")
        .unwrap();
    assert!(
        store
            .vm_origin("c1000001")
            .unwrap()
            .unwrap()
            .restored_at
            .is_some()
    );
    assert_eq!(store.snapshot_clones("5a000001").unwrap(), ["c1"]);

    let err = store.delete_snapshot("5a000001").unwrap_err();
    assert!(
        matches!(&err, StoreError::SnapshotInUse { vms, .. } if vms == &["c1"]),
        "{err}"
    );
    assert!(store.get_snapshot("s1").unwrap().is_some());
    // A clone of an unknown snapshot is not registered at all.
    assert!(
        store
            .insert_clone(&vm("c1000002", "c2", "base"), &[], "missing")
            .is_err()
    );
    assert!(store.get_vm("c2").unwrap().is_none());

    store.delete_vm("c1000001").unwrap();
    assert!(store.vm_origin("c1000001").unwrap().is_none());
    store.delete_snapshot("5a000001").unwrap();
    assert!(store.list_snapshots().unwrap().is_empty());
}
