//! A VM's published ports and network mode are registered with it and go away with it.

use crate::common;

use banger_store::StoreError;
use common::{store_with_image, vm};

#[test]
fn ports_and_mode_live_and_die_with_their_vm() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let ports = vec!["8080:80/tcp".to_string(), "5353:53/udp".to_string()];
    store
        .insert_vm_with(&vm("aaaa00000001", "dev", "base"), &[], &ports)
        .unwrap();
    assert_eq!(store.vm_ports("aaaa00000001").unwrap(), ports);
    assert_eq!(store.vm_network("aaaa00000001").unwrap(), None);
    store.set_vm_network("aaaa00000001", "bridge").unwrap();
    store.set_vm_network("aaaa00000001", "user").unwrap();
    assert_eq!(
        store.vm_network("aaaa00000001").unwrap().as_deref(),
        Some("user")
    );
    assert!(matches!(
        store.set_vm_network("aaaa00000001", "wifi"),
        Err(StoreError::InvalidValue { .. })
    ));
    assert!(matches!(
        store.set_vm_network("bbbb00000002", "user"),
        Err(StoreError::VmNotFound(_))
    ));
    assert_eq!(store.list_vm_networks().unwrap().len(), 1);
    store.clear_vm_network("aaaa00000001").unwrap();
    assert!(store.list_vm_networks().unwrap().is_empty());
    store.set_vm_network("aaaa00000001", "bridge").unwrap();
    store.delete_vm("aaaa00000001").unwrap();
    assert!(store.vm_ports("aaaa00000001").unwrap().is_empty());
    assert!(store.list_vm_networks().unwrap().is_empty());
}
