//! Warm images: one current warm state per image, retired (not deleted) when replaced, its
//! row gone with its snapshot; cold reasons go with their VM.

use crate::common;

use banger_store::SnapshotRecord;
use common::{snapshot_record, store_with_image, vm};

fn snap(id: &str) -> SnapshotRecord {
    snapshot_record(id, &format!("warm-{id}"), "warm-helper")
}

#[test]
fn a_new_warm_state_retires_the_old_one_and_rows_follow_their_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store
        .insert_warm_state(&snap("5a0000aa"), r#"{"k":1}"#)
        .unwrap();
    store
        .insert_warm_state(&snap("5a0000bb"), r#"{"k":2}"#)
        .unwrap();
    let current = store.current_warm_state("base").unwrap().unwrap();
    assert_eq!(current.snapshot.id, "5a0000bb");
    assert_eq!(current.key_json, r#"{"k":2}"#);
    let all = store.warm_states().unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|w| w.snapshot.id == "5a0000aa" && !w.current)
    );
    assert_eq!(
        store.warm_image_of("5a0000aa").unwrap().as_deref(),
        Some("base")
    );
    assert_eq!(store.warm_image_of("nope").unwrap(), None);
    store.delete_snapshot("5a0000aa").unwrap();
    assert_eq!(store.warm_states().unwrap().len(), 1);
    store.retire_warm_state("5a0000bb").unwrap();
    assert!(store.current_warm_state("base").unwrap().is_none());
}

#[test]
fn a_key_that_is_not_json_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    assert!(
        store
            .insert_warm_state(&snap("5a0000aa"), "not json")
            .is_err()
    );
    assert!(store.get_snapshot("5a0000aa").unwrap().is_none());
    // A failed snapshot insert rolls the retirement back too.
    store.insert_warm_state(&snap("5a0000aa"), "{}").unwrap();
    let mut clash = snap("5a0000cc");
    clash.name = "warm-5a0000aa".into();
    assert!(store.insert_warm_state(&clash, "{}").is_err());
    assert_eq!(
        store
            .current_warm_state("base")
            .unwrap()
            .unwrap()
            .snapshot
            .id,
        "5a0000aa"
    );
}

#[test]
fn cold_reasons_go_with_their_vm() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let v = vm("c1000001", "c1", "base");
    store.insert_vm(&v).unwrap();
    store.set_cold_reason(&v.id, "first").unwrap();
    store.set_cold_reason(&v.id, "second").unwrap();
    assert_eq!(store.cold_reason(&v.id).unwrap().as_deref(), Some("second"));
    store.delete_vm(&v.id).unwrap();
    assert_eq!(store.cold_reason(&v.id).unwrap(), None);
}
