//! Write-ahead intents: recorded before a multi-step operation, ended atomically with it.

use crate::common;

use banger_store::{IntentOp, StoreError};
use common::{store_with_image, vm};
use std::path::Path;

#[test]
fn registering_a_vm_ends_its_create_intent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(dir.path());
    store
        .begin_intent("aa01", IntentOp::Create, Path::new("/vms/aa01"))
        .unwrap();
    let intents = store.list_intents().unwrap();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].op, IntentOp::Create);
    assert_eq!(intents[0].dir, Path::new("/vms/aa01"));

    store.insert_vm(&vm("aa01", "one", "base")).unwrap();
    assert!(store.list_intents().unwrap().is_empty());
}

#[test]
fn a_failed_registration_keeps_the_intent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(dir.path());
    store.insert_vm(&vm("aa01", "taken", "base")).unwrap();
    store
        .begin_intent("aa02", IntentOp::Create, Path::new("/vms/aa02"))
        .unwrap();
    let err = store.insert_vm(&vm("aa02", "taken", "base")).unwrap_err();
    assert!(matches!(err, StoreError::VmExists(_)), "{err}");
    // The directory may exist: the intent is what tells reconciliation to remove it.
    assert_eq!(store.list_intents().unwrap().len(), 1);
    store.end_intent("aa02").unwrap();
    assert!(store.list_intents().unwrap().is_empty());
    store.end_intent("aa02").unwrap();
}

#[test]
fn deleting_a_vm_ends_its_remove_intent_and_one_intent_per_vm() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(dir.path());
    store.insert_vm(&vm("aa01", "one", "base")).unwrap();
    store
        .begin_intent("aa01", IntentOp::Remove, Path::new("/vms/aa01"))
        .unwrap();
    let err = store
        .begin_intent("aa01", IntentOp::Remove, Path::new("/vms/aa01"))
        .unwrap_err();
    assert!(matches!(err, StoreError::IntentExists(_)), "{err}");

    // Intents survive a reopen: that is their point.
    drop(store);
    let store = banger_store::Store::open(&path).unwrap();
    assert_eq!(store.list_intents().unwrap()[0].op, IntentOp::Remove);
    store.delete_vm("aa01").unwrap();
    assert!(store.list_intents().unwrap().is_empty());
    assert!(store.get_vm("aa01").unwrap().is_none());
}
