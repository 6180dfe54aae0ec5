//! A VM's shared host directories are registered with it, in order, and go away with it.

use crate::common;

use banger_store::{Delivery, StoreError, VmShare};
use common::{store_with_image, vm};

fn share(host: &str, guest: &str, read_only: bool) -> VmShare {
    VmShare {
        host_path: host.into(),
        guest_path: guest.into(),
        read_only,
        delivery: Delivery::VirtioFs,
    }
}

#[test]
fn shares_live_and_die_with_their_vm() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let shares = vec![
        share("/home/me/my project", "/src", false),
        share("/etc/ssl", "/mnt/ssl", true),
        VmShare {
            delivery: Delivery::Copy,
            ..share("/home/me/data", "/data", false)
        },
    ];
    store
        .insert_vm_sharing(&vm("aaaa00000001", "dev", "base"), &[], &[], &shares)
        .unwrap();
    assert_eq!(store.vm_shares("aaaa00000001").unwrap(), shares);
    assert!(store.vm_has_shares("aaaa00000001").unwrap());
    store
        .insert_vm_with(&vm("bbbb00000002", "plain", "base"), &[], &[])
        .unwrap();
    assert!(!store.vm_has_shares("bbbb00000002").unwrap());
    store.delete_vm("aaaa00000001").unwrap();
    assert!(store.vm_shares("aaaa00000001").unwrap().is_empty());
    assert!(!store.vm_has_shares("aaaa00000001").unwrap());
}

#[test]
fn a_guest_path_shared_twice_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let shares = vec![share("/a", "/src", false), share("/b", "/src", true)];
    let err = store
        .insert_vm_sharing(&vm("aaaa00000001", "dev", "base"), &[], &[], &shares)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidValue { reason, .. } if reason.contains("\"/src\"")),
        "{err:?}"
    );
    assert!(
        store.get_vm("dev").unwrap().is_none(),
        "the VM row rolled back too"
    );
}

#[test]
fn relative_paths_are_refused_by_the_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let err = store
        .insert_vm_sharing(
            &vm("aaaa00000001", "dev", "base"),
            &[],
            &[],
            &[share("relative", "/src", false)],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
    assert!(store.get_vm("dev").unwrap().is_none());
}

#[test]
fn a_run_s_share_state_stays_until_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let shares = vec![share("/a", "/src", false), share("/b", "/data", true)];
    store
        .insert_vm_sharing(&vm("aaaa00000001", "dev", "base"), &[], &[], &shares)
        .unwrap();
    assert!(store.shares_down("aaaa00000001").unwrap().is_empty());
    store
        .set_share_down("aaaa00000001", 1, Some("virtiofsd exited"))
        .unwrap();
    assert_eq!(
        store.shares_down("aaaa00000001").unwrap(),
        vec![(1, "virtiofsd exited".to_string())]
    );
    assert_eq!(
        store.vm_shares("aaaa00000001").unwrap(),
        shares,
        "unchanged"
    );
    store.set_share_synced("aaaa00000001", 0, 7).unwrap();
    assert_eq!(store.shares_synced("aaaa00000001").unwrap(), vec![(0, 7)]);
    store.clear_share_run("aaaa00000001").unwrap();
    assert!(store.shares_down("aaaa00000001").unwrap().is_empty());
    assert!(store.shares_synced("aaaa00000001").unwrap().is_empty());
}
