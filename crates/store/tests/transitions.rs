//! The lifecycle's compound moves (`mark_running`, `mark_ended`) record everything or
//! nothing.

use crate::common;

use banger_store::{Delivery, Started, Store, StoreError, VmShare, VmState};
use common::{snapshot_record, store_with_image, vm};

const ID: &str = "c1000001";
const RUNTIME: &str = r#"{"pid":42,"sock":"/r/x"}"#;
const BOOT: &str = r#"{"ms":812}"#;
const STARTED: &str = "2026-12-01T10:00:00Z";

fn running(restored: bool) -> Started<'static> {
    Started {
        driver: "qemu",
        runtime_json: RUNTIME,
        boot_json: Some(BOOT),
        started_at: STARTED,
        restored,
    }
}

/// A store (in its temporary directory, with the database's path) holding one VM with a
/// share whose last run left a `down` and a `synced_at`, marked `starting` with the runtime
/// a launch records before the guest answers.
fn starting_vm() -> (tempfile::TempDir, Store, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    let share = VmShare {
        host_path: "/a".into(),
        guest_path: "/src".into(),
        read_only: false,
        delivery: Delivery::Copy,
    };
    store
        .insert_vm_sharing(&vm(ID, "c1", "base"), &[], &[], &[share])
        .unwrap();
    store
        .set_share_down(ID, 0, Some("virtiofsd exited"))
        .unwrap();
    store.set_share_synced(ID, 0, 7).unwrap();
    mark_starting(&store);
    (tmp, store, path)
}

/// A clone of a snapshot, marked `starting` like [`starting_vm`].
fn starting_clone(store: &Store) {
    store
        .insert_snapshot(&snapshot_record("5a000001", "s1", "dev"))
        .unwrap();
    store
        .insert_clone(&vm(ID, "c1", "base"), &[], "5a000001")
        .unwrap();
    mark_starting(store);
}

fn mark_starting(store: &Store) {
    store
        .update_vm_state(ID, Some(VmState::Created), VmState::Starting, None)
        .unwrap();
    store
        .set_vm_runtime(ID, Some("qemu"), Some(RUNTIME), None)
        .unwrap();
}

/// The fields `mark_running` writes, as they are now.
type Fields = (VmState, Option<String>, Option<String>, bool, bool, bool);

fn run_fields(store: &Store) -> Fields {
    let got = store.get_vm(ID).unwrap().unwrap();
    (
        got.state,
        got.boot_json,
        got.started_at,
        !store.shares_down(ID).unwrap().is_empty(),
        !store.shares_synced(ID).unwrap().is_empty(),
        store
            .vm_origin(ID)
            .unwrap()
            .is_some_and(|o| o.restored_at.is_some()),
    )
}

#[test]
fn reaching_running_records_runtime_start_and_shares_together() {
    let (_tmp, store, _) = starting_vm();
    store
        .mark_running(ID, VmState::Starting, &running(false))
        .unwrap();
    let got = store.get_vm(ID).unwrap().unwrap();
    assert_eq!(got.state, VmState::Running);
    assert_eq!(got.driver.as_deref(), Some("qemu"));
    assert_eq!(got.runtime_json.as_deref(), Some(RUNTIME));
    assert_eq!(got.boot_json.as_deref(), Some(BOOT));
    assert_eq!(got.started_at.as_deref(), Some(STARTED));
    assert_eq!(got.last_error, None);
    assert!(store.shares_down(ID).unwrap().is_empty());
    assert!(store.shares_synced(ID).unwrap().is_empty());
}

#[test]
fn a_restored_clone_is_marked_restored_with_its_move_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    starting_clone(&store);
    store
        .update_vm_state(ID, Some(VmState::Starting), VmState::Stopping, None)
        .unwrap();
    let refused = store.mark_running(ID, VmState::Starting, &running(true));
    assert!(refused.is_err());
    assert_eq!(store.vm_origin(ID).unwrap().unwrap().restored_at, None);
    store
        .update_vm_state(ID, Some(VmState::Stopping), VmState::Failed, None)
        .unwrap();
    store
        .update_vm_state(ID, Some(VmState::Failed), VmState::Starting, None)
        .unwrap();
    store
        .mark_running(ID, VmState::Starting, &running(true))
        .unwrap();
    assert_eq!(
        store.vm_origin(ID).unwrap().unwrap().restored_at.as_deref(),
        Some(STARTED)
    );
}

#[test]
fn a_boot_that_is_no_longer_starting_records_nothing() {
    let (_tmp, store, _) = starting_vm();
    // A forced stop took the VM over while the guest booted.
    store
        .update_vm_state(ID, Some(VmState::Starting), VmState::Stopping, None)
        .unwrap();
    let before = run_fields(&store);
    let err = store
        .mark_running(ID, VmState::Starting, &running(true))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateConflict {
                expected: VmState::Starting,
                actual: VmState::Stopping,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(run_fields(&store), before);
    assert_eq!(before.0, VmState::Stopping);
    assert_eq!(before.2, None, "no start time was recorded");
    assert!(before.3 && before.4, "the last run's share state is kept");
}

#[test]
fn a_write_failing_late_in_the_move_rolls_back_the_earlier_ones() {
    let (_tmp, store, path) = starting_vm();
    // The share statement runs after the VM row is written: make it fail.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE ON vm_shares \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .unwrap();
    let before = run_fields(&store);
    let err = store
        .mark_running(ID, VmState::Starting, &running(true))
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("refused by the test"),
        "{err:?}"
    );
    assert_eq!(run_fields(&store), before);
    assert_eq!(before.0, VmState::Starting);
}

#[test]
fn bad_json_is_refused_before_anything_is_written() {
    let (_tmp, store, _) = starting_vm();
    let before = run_fields(&store);
    let bad = Started {
        boot_json: Some("{"),
        ..running(false)
    };
    let err = store.mark_running(ID, VmState::Starting, &bad).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidJson {
                field: "boot_json",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(run_fields(&store), before);
}

#[test]
fn ending_a_run_drops_the_runtime_with_the_state_change_or_not_at_all() {
    let (_tmp, store, _) = starting_vm();
    store
        .mark_running(ID, VmState::Starting, &running(false))
        .unwrap();
    // Not `stopping`: refused, and the runtime record stays.
    let err = store
        .mark_ended(
            ID,
            VmState::Stopping,
            VmState::Stopped,
            None,
            Some("qemu"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::StateConflict { .. }), "{err:?}");
    assert_eq!(
        store.get_vm(ID).unwrap().unwrap().runtime_json.as_deref(),
        Some(RUNTIME)
    );
    store
        .update_vm_state(ID, Some(VmState::Running), VmState::Stopping, None)
        .unwrap();
    store
        .mark_ended(
            ID,
            VmState::Stopping,
            VmState::Failed,
            Some("the guest hung"),
            Some("qemu"),
            Some(r#"{"ms":1}"#),
        )
        .unwrap();
    let got = store.get_vm(ID).unwrap().unwrap();
    assert_eq!(got.state, VmState::Failed);
    assert_eq!(got.last_error.as_deref(), Some("the guest hung"));
    assert_eq!(got.runtime_json, None);
    assert_eq!(got.driver.as_deref(), Some("qemu"));
    assert_eq!(got.boot_json.as_deref(), Some(r#"{"ms":1}"#));
    assert_eq!(got.started_at.as_deref(), Some(STARTED), "kept");
}
