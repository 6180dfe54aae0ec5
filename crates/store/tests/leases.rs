//! IPAM leases on a real SQLite database.

use crate::common;

use std::net::Ipv4Addr;

use banger_store::{Store, StoreError};
use common::{store_with_image, vm};

const SUBNET: &str = "10.213.0.0/29";
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
const LAST: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 6);

fn add_vms(store: &Store, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = format!("{i:012x}");
            store
                .insert_vm(&vm(&id, &format!("vm{i}"), "base"))
                .unwrap();
            id
        })
        .collect()
}

#[test]
fn leases_are_distinct_idempotent_and_exhaust_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(dir.path());
    let ids = add_vms(&store, 6);
    let mut seen = Vec::new();
    for id in &ids[..5] {
        let lease = store.lease_address(id, SUBNET, FIRST, LAST).unwrap();
        assert!(
            !seen.contains(&lease.address),
            "{} handed out twice",
            lease.address
        );
        seen.push(lease.address);
        let again = store.lease_address(id, SUBNET, FIRST, LAST).unwrap();
        assert_eq!(again, lease, "asking again must return the same lease");
    }
    assert_eq!(seen.first(), Some(&FIRST));
    let err = store
        .lease_address(&ids[5], SUBNET, FIRST, LAST)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AddressesExhausted { size: 5, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("larger subnet"), "{err}");

    // Releasing one frees exactly that one.
    let freed = store.release_address(&ids[2]).unwrap().unwrap();
    assert_eq!(store.release_address(&ids[2]).unwrap(), None);
    assert_eq!(store.lease_of(&ids[2]).unwrap(), None);
    let lease = store.lease_address(&ids[5], SUBNET, FIRST, LAST).unwrap();
    assert_eq!(lease.address, freed);
    assert_eq!(store.list_leases().unwrap().len(), 5);
}

#[test]
fn released_addresses_are_reused_last() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(dir.path());
    let ids = add_vms(&store, 3);
    let a = store.lease_address(&ids[0], SUBNET, FIRST, LAST).unwrap();
    store.release_address(&ids[0]).unwrap();
    let b = store.lease_address(&ids[1], SUBNET, FIRST, LAST).unwrap();
    assert_ne!(
        a.address, b.address,
        "the address just released is not reused first"
    );
    let c = store.lease_address(&ids[2], SUBNET, FIRST, LAST).unwrap();
    assert_eq!(u32::from(c.address), u32::from(b.address) + 1);
}

#[test]
fn a_lease_goes_with_its_vm_and_follows_a_subnet_change() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(dir.path());
    let ids = add_vms(&store, 1);
    store.lease_address(&ids[0], SUBNET, FIRST, LAST).unwrap();
    let moved = store
        .lease_address(
            &ids[0],
            "10.213.1.0/24",
            Ipv4Addr::new(10, 213, 1, 2),
            Ipv4Addr::new(10, 213, 1, 254),
        )
        .unwrap();
    assert_eq!(moved.address, Ipv4Addr::new(10, 213, 1, 2));
    assert_eq!(store.list_leases().unwrap(), vec![moved]);

    store.delete_vm(&ids[0]).unwrap();
    assert!(
        store.list_leases().unwrap().is_empty(),
        "cascade on VM delete"
    );

    let err = store
        .lease_address("ffffffffffff", SUBNET, FIRST, LAST)
        .unwrap_err();
    assert!(matches!(err, StoreError::VmNotFound(_)), "{err:?}");
    assert!(store.lease_address(&ids[0], SUBNET, LAST, FIRST).is_err());
}

#[test]
fn concurrent_leases_from_two_connections_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(dir.path());
    let ids = add_vms(&store, 40);
    let first = Ipv4Addr::new(10, 213, 0, 2);
    let last = Ipv4Addr::new(10, 213, 0, 254);
    let halves: Vec<Vec<String>> = ids.chunks(20).map(|c| c.to_vec()).collect();
    let handles: Vec<_> = halves
        .into_iter()
        .map(|half| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Store::open(&path).unwrap();
                half.iter()
                    .map(|id| {
                        store
                            .lease_address(id, "10.213.0.0/24", first, last)
                            .unwrap()
                            .address
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Ipv4Addr> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), before, "an address was handed out twice");
    assert_eq!(before, 40);
}
