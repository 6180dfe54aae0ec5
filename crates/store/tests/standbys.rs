//! Warm standbys: registered with their clone row, hidden until taken, taken once, and
//! gone with their VM.

use crate::common;

use banger_store::StoreError;
use common::{snapshot_record, store_with_image, vm};

#[test]
fn a_standby_is_taken_once_under_a_free_name_and_keeps_its_stamp() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store
        .insert_snapshot(&snapshot_record("5a000001", "warm", "dev"))
        .unwrap();
    store
        .insert_clone_as(&vm("5b000001", "_standby-1", "base"), &[], "5a000001", true)
        .unwrap();
    store
        .insert_clone_as(&vm("5b000002", "_standby-2", "base"), &[], "5a000001", true)
        .unwrap();
    store
        .insert_clone(&vm("c1000001", "user", "base"), &[], "5a000001")
        .unwrap();
    assert_eq!(
        store.waiting_standbys().unwrap(),
        vec!["5b000001".to_string(), "5b000002".to_string()]
    );
    assert!(store.is_waiting_standby("5b000001").unwrap());
    assert!(!store.is_waiting_standby("c1000001").unwrap());
    assert_eq!(store.standby_taken_at("c1000001").unwrap(), None);

    // A taken name leaves the standby waiting, under its old name.
    let err = store.take_standby("5b000001", "user", "t1").unwrap_err();
    assert!(
        matches!(err, StoreError::VmExists(ref n) if n == "user"),
        "{err}"
    );
    assert!(store.is_waiting_standby("5b000001").unwrap());
    assert_eq!(
        store.get_vm("5b000001").unwrap().unwrap().name,
        "_standby-1"
    );

    assert!(store.take_standby("5b000001", "run1", "t2").unwrap());
    // Never twice.
    assert!(!store.take_standby("5b000001", "run2", "t3").unwrap());
    assert_eq!(store.get_vm("run1").unwrap().unwrap().id, "5b000001");
    assert!(store.get_vm("run2").unwrap().is_none());
    assert!(!store.is_waiting_standby("5b000001").unwrap());
    assert_eq!(
        store.standby_taken_at("5b000001").unwrap().as_deref(),
        Some("t2")
    );
    assert_eq!(
        store.waiting_standbys().unwrap(),
        vec!["5b000002".to_string()]
    );

    // The row goes with its VM.
    store.delete_vm("5b000002").unwrap();
    assert!(store.waiting_standbys().unwrap().is_empty());
    assert!(!store.take_standby("5b000002", "run3", "t4").unwrap());
}
