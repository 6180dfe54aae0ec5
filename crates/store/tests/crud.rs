//! Typed queries, uniqueness errors and the VM state machine.

use crate::common;

use banger_store::{Store, StoreError, VmState};
use common::{image, store_with_image, vm};

#[test]
fn image_crud_and_uniqueness() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    assert_eq!(store.get_image("base").unwrap(), Some(image("base")));
    assert_eq!(store.get_image("nope").unwrap(), None);

    let err = store.insert_image(&image("base")).unwrap_err();
    assert!(
        matches!(err, StoreError::ImageExists(ref n) if n == "base"),
        "{err:?}"
    );
    assert!(err.to_string().contains("already exists"));

    let mut other = image("alpha");
    other.initrd_path = Some("/images/alpha/initrd".into());
    other.bzimage_path = None;
    other.kernel_format = "bzimage".into();
    store.insert_image(&other).unwrap();
    let listed: Vec<_> = store
        .list_images()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, ["alpha", "base"], "sorted by name");
    assert_eq!(store.get_image("alpha").unwrap(), Some(other));

    store.delete_image("alpha").unwrap();
    assert_eq!(store.get_image("alpha").unwrap(), None);
    assert!(matches!(
        store.delete_image("alpha"),
        Err(StoreError::ImageNotFound(_))
    ));
}

#[test]
fn replace_image_upserts() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store.insert_vm(&vm("aaaa00000001", "dev", "base")).unwrap();
    let mut rebuilt = image("base");
    rebuilt.kernel_release = Some("6.12.0".into());
    rebuilt.size_bytes = 42;
    store.replace_image(&rebuilt).unwrap();
    assert_eq!(store.get_image("base").unwrap(), Some(rebuilt));
    // Upsert of a new name inserts.
    store.replace_image(&image("fresh")).unwrap();
    assert_eq!(store.list_images().unwrap().len(), 2);
    // The VM still points at the rebuilt image.
    assert_eq!(store.vms_using_image("base").unwrap(), ["dev"]);
}

#[test]
fn invalid_image_values_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let mut bad = image("bad");
    bad.kernel_format = "uimage".into();
    assert!(
        store
            .insert_image(&bad)
            .unwrap_err()
            .to_string()
            .contains("kernel_format")
    );
    let mut huge = image("huge");
    huge.size_bytes = u64::MAX;
    assert!(
        store
            .insert_image(&huge)
            .unwrap_err()
            .to_string()
            .contains("size_bytes")
    );
    use std::os::unix::ffi::OsStrExt;
    let mut non_utf8 = image("bytes");
    non_utf8.dir = std::ffi::OsStr::from_bytes(b"/x/\xff").into();
    assert!(
        store
            .insert_image(&non_utf8)
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
    assert_eq!(store.list_images().unwrap().len(), 1);
}

#[test]
fn images_in_use_cannot_be_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store.insert_vm(&vm("aaaa00000002", "web", "base")).unwrap();
    store.insert_vm(&vm("aaaa00000001", "api", "base")).unwrap();
    assert_eq!(store.vms_using_image("base").unwrap(), ["api", "web"]);
    assert!(store.vms_using_image("other").unwrap().is_empty());
    let err = store.delete_image("base").unwrap_err();
    assert!(
        matches!(err, StoreError::ImageInUse { ref vms, .. } if vms == &["api", "web"]),
        "{err:?}"
    );
    store.delete_vm("aaaa00000001").unwrap();
    store.delete_vm("aaaa00000002").unwrap();
    store.delete_image("base").unwrap();
}

#[test]
fn vm_crud_lookup_and_uniqueness() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let mut first = vm("aaaa00000001", "dev", "base");
    first.runtime_json = Some(r#"{"pid": 42}"#.into());
    first.created_at = "2024-05-01T09:00:00Z".into();
    store.insert_vm(&first).unwrap();
    store.insert_vm(&vm("aaaa00000002", "ci", "base")).unwrap();

    assert_eq!(store.get_vm("dev").unwrap(), Some(first.clone()));
    assert_eq!(store.get_vm("aaaa00000001").unwrap(), Some(first.clone()));
    assert_eq!(store.get_vm("missing").unwrap(), None);
    let order: Vec<_> = store
        .list_vms()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(order, ["dev", "ci"], "oldest first");

    let err = store
        .insert_vm(&vm("aaaa00000003", "dev", "base"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VmExists(ref n) if n == "dev"),
        "{err:?}"
    );
    let err = store
        .insert_vm(&vm("aaaa00000001", "other", "base"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VmIdExists(ref id) if id == "aaaa00000001"),
        "{err:?}"
    );

    // A name that equals another VM's id: the name match wins.
    store
        .insert_vm(&vm("aaaa00000004", "aaaa00000002", "base"))
        .unwrap();
    assert_eq!(
        store.get_vm("aaaa00000002").unwrap().unwrap().id,
        "aaaa00000004"
    );

    store.delete_vm("aaaa00000001").unwrap();
    assert_eq!(store.get_vm("dev").unwrap(), None);
    assert!(matches!(
        store.delete_vm("aaaa00000001"),
        Err(StoreError::VmNotFound(_))
    ));
}

#[test]
fn runtime_and_start_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store.insert_vm(&vm("aaaa00000001", "dev", "base")).unwrap();
    store
        .set_vm_runtime(
            "aaaa00000001",
            Some("qemu"),
            Some(r#"{"pid":1,"sock":"/r/x"}"#),
            Some(r#"{"ms":812}"#),
        )
        .unwrap();
    store
        .set_vm_started("aaaa00000001", "2024-05-01T11:00:00Z")
        .unwrap();
    let got = store.get_vm("dev").unwrap().unwrap();
    assert_eq!(got.driver.as_deref(), Some("qemu"));
    assert_eq!(
        got.runtime_json.as_deref(),
        Some(r#"{"pid":1,"sock":"/r/x"}"#)
    );
    assert_eq!(got.boot_json.as_deref(), Some(r#"{"ms":812}"#));
    assert_eq!(got.started_at.as_deref(), Some("2024-05-01T11:00:00Z"));
    assert_ne!(
        got.updated_at, "2024-05-01T10:00:00Z",
        "updated_at moves on every change"
    );

    store
        .set_vm_runtime("aaaa00000001", None, None, None)
        .unwrap();
    let got = store.get_vm("dev").unwrap().unwrap();
    assert_eq!(
        (got.driver, got.runtime_json, got.boot_json),
        (None, None, None)
    );

    let err = store
        .set_vm_runtime("aaaa00000001", Some("qemu"), Some("{not json"), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidJson {
                field: "runtime_json",
                ..
            }
        ),
        "{err:?}"
    );
    let mut bad = vm("aaaa00000002", "bad", "base");
    bad.boot_json = Some("nope".into());
    assert!(matches!(
        store.insert_vm(&bad),
        Err(StoreError::InvalidJson {
            field: "boot_json",
            ..
        })
    ));
    assert!(matches!(
        store.set_vm_started("nope", "x"),
        Err(StoreError::VmNotFound(_))
    ));
    assert!(matches!(
        store.set_vm_runtime("nope", None, None, None),
        Err(StoreError::VmNotFound(_))
    ));
}

#[test]
fn state_transitions_follow_the_machine() {
    use VmState::*;
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    store.insert_vm(&vm("aaaa00000001", "dev", "base")).unwrap();
    let state = |s: &Store| s.get_vm("dev").unwrap().unwrap();

    // A full life: create, start, run, stop, restart, crash, retry.
    for (from, to) in [
        (Created, Starting),
        (Starting, Running),
        (Running, Stopping),
        (Stopping, Stopped),
        (Stopped, Starting),
        (Starting, Running),
        (Running, Paused),
        (Paused, Running),
        (Running, Paused),
        (Paused, Stopping),
        (Stopping, Stopped),
        (Stopped, Starting),
        (Starting, Running),
    ] {
        store
            .update_vm_state("aaaa00000001", Some(from), to, None)
            .unwrap();
        assert_eq!(state(&store).state, to);
    }
    store
        .update_vm_state(
            "aaaa00000001",
            None,
            Failed,
            Some("qemu exited with status 1"),
        )
        .unwrap();
    assert_eq!(
        state(&store).last_error.as_deref(),
        Some("qemu exited with status 1")
    );
    store
        .update_vm_state("aaaa00000001", Some(Failed), Starting, None)
        .unwrap();
    assert_eq!(
        state(&store).last_error,
        None,
        "last_error is replaced, None clears it"
    );

    // Refused moves change nothing (a VM that is not running cannot be paused).
    for to in [Created, Starting, Stopped, Paused] {
        let err = store
            .update_vm_state("aaaa00000001", None, to, Some("x"))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidTransition { from: Starting, to: t, .. } if t == to),
            "{err:?}"
        );
    }
    assert_eq!(state(&store).state, Starting);
    assert_eq!(state(&store).last_error, None);
    assert!(matches!(
        store.update_vm_state("nope", None, Starting, None),
        Err(StoreError::VmNotFound(_))
    ));
}

#[test]
fn compare_and_set_detects_concurrent_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, path) = store_with_image(tmp.path());
    let b = Store::open(&path).unwrap();
    a.insert_vm(&vm("aaaa00000001", "dev", "base")).unwrap();

    // Both handles read "created"; `a` wins the race to start it.
    let seen_by_b = b.get_vm("dev").unwrap().unwrap().state;
    a.update_vm_state(
        "aaaa00000001",
        Some(VmState::Created),
        VmState::Starting,
        None,
    )
    .unwrap();
    let err = b
        .update_vm_state(
            "aaaa00000001",
            Some(seen_by_b),
            VmState::Failed,
            Some("b's view"),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateConflict {
                expected: VmState::Created,
                actual: VmState::Starting,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("changed concurrently"), "{err}");
    let now = a.get_vm("dev").unwrap().unwrap();
    assert_eq!((now.state, now.last_error), (VmState::Starting, None));
}

#[test]
fn concurrent_writers_never_both_win() {
    // Two connections race the same CAS many times from two threads; exactly one wins
    // each round. Both see the same store through WAL + busy_timeout.
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    store.insert_vm(&vm("aaaa00000001", "dev", "base")).unwrap();
    drop(store);
    let rounds = 50;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let s = Store::open(&path).unwrap();
                let mut wins = 0;
                for round in 0..rounds {
                    barrier.wait();
                    let (from, to) = if round % 2 == 0 {
                        (VmState::Created, VmState::Starting)
                    } else {
                        (VmState::Starting, VmState::Failed)
                    };
                    let from = if round > 0 && round % 2 == 0 {
                        VmState::Failed
                    } else {
                        from
                    };
                    match s.update_vm_state("aaaa00000001", Some(from), to, None) {
                        Ok(()) => wins += 1,
                        Err(StoreError::StateConflict { .. }) => {}
                        Err(e) => panic!("round {round}: {e:?}"),
                    }
                    barrier.wait();
                }
                wins
            })
        })
        .collect();
    let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, rounds);
}

#[test]
fn records_serialise_for_the_api() {
    let v = vm("aaaa00000001", "dev", "base");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["state"], "created");
    assert_eq!(json["dir"], "/vms/aaaa00000001");
    let back: banger_store::VmRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, v);
    let i = image("base");
    let back: banger_store::ImageRecord =
        serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(back, i);
}
