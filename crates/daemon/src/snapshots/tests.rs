//! Snapshots and clones against the fake driver: the service's rules, the files it keeps,
//! and a clone whose agent cannot take an identity of its own never running.

use banger_api::{CreateSnapshotRequest, CreateVmRequest};
use banger_store::VmState;
use banger_system::progress::NoProgress;

use crate::testing::Harness;

/// Clones of a bridged VM: each start leases a TAP, MAC and address of its own, the
/// restored guest's agent is handed them during Reidentify (before anyone can use it), the
/// parent keeps its own, and removing a clone gives its TAP and address back.
#[test]
fn bridged_clones_get_their_own_tap_mac_and_address_and_give_them_back() {
    let harness = Harness::new();
    harness.driver.set_faults(banger_vmm::fake::FakeFaults {
        simulated_guest: true,
        ..Default::default()
    });
    let inc = harness.start();
    let parent = inc.create("dev", true);
    snapshot(&inc, "dev", "s").expect("snapshot of a bridged VM");
    let mut seen = vec![parent.clone()];
    for name in ["c1", "c2"] {
        let req = CreateVmRequest {
            name: Some(name.into()),
            from: Some("s".into()),
            start: true,
            ..Default::default()
        };
        let clone = inc
            .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
            .expect("start a bridged clone");
        seen.push(clone);
    }
    // The store is a lock: never held across the daemon's own calls.
    let address = |id: &str| {
        inc.daemon
            .store()
            .lease_of(id)
            .unwrap()
            .expect("a lease")
            .address
    };
    let addresses: Vec<_> = seen.iter().map(|vm| address(&vm.id)).collect();
    let mut unique = addresses.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{addresses:?}");
    let taps = harness.host_net.inventory_now().taps;
    for vm in &seen {
        let tap = banger_helper_proto::TapName::for_vm(&vm.id).unwrap();
        assert!(
            taps.contains(&tap),
            "{} has no TAP of its own: {taps:?}",
            vm.name
        );
    }
    // What each clone's agent was told: its own MAC and address, with the gateway.
    for (vm, addr) in seen.iter().zip(&addresses).skip(1) {
        let told = std::fs::read_to_string(
            std::path::Path::new(&vm.dir)
                .join(banger_vmm::fake::SIMULATED_GUEST_DIR)
                .join("network"),
        )
        .expect("the clone's agent was reidentified");
        let mac = banger_helper_proto::MacAddr::for_guest(*addr).to_string();
        assert!(
            told.starts_with(&format!("{mac} {addr}/")),
            "{}: {told}",
            vm.name
        );
        let hostname =
            std::fs::read_to_string(std::path::Path::new(&vm.dir).join("guest/etc/hostname"))
                .unwrap();
        assert_eq!(hostname.trim(), vm.name);
    }
    // The parent was never reidentified and runs on.
    assert!(
        !std::path::Path::new(&parent.dir)
            .join("guest/network")
            .exists()
    );
    assert_eq!(inc.exec_stdout("dev", &["echo", "on"]), "on\n");

    // Removing a clone gives its TAP and address back.
    inc.block_on(crate::vms::remove(&inc.daemon, "c1", true))
        .expect("remove c1");
    let gone = banger_helper_proto::TapName::for_vm(&seen[1].id).unwrap();
    assert!(!harness.host_net.inventory_now().taps.contains(&gone));
    assert!(inc.daemon.store().lease_of(&seen[1].id).unwrap().is_none());
    harness.assert_consistent();
}

fn snapshot(
    inc: &crate::testing::Incarnation,
    vm: &str,
    name: &str,
) -> crate::error::Result<banger_api::SnapshotView> {
    let req = CreateSnapshotRequest {
        name: Some(name.into()),
        stop: false,
    };
    inc.block_on(super::take(&inc.daemon, vm, req, &NoProgress))
}

#[test]
fn a_snapshot_is_kept_whole_survives_restarts_and_outlives_no_clone() {
    let mut harness = Harness::new();
    harness.no_network = true;
    let inc = harness.start();
    inc.create("dev", true);
    let snap = snapshot(&inc, "dev", "ready").expect("snapshot");
    assert_eq!(snap.source_vm, "dev");
    // The VM runs on, and its files are complete in the snapshot's directory.
    assert_eq!(
        inc.daemon.store().get_vm("dev").unwrap().unwrap().state,
        VmState::Running
    );
    assert_eq!(inc.exec_stdout("dev", &["echo", "on"]), "on\n");
    let dir = std::path::PathBuf::from(&snap.dir);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == banger_vmm::fake::SNAPSHOT_FILE),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("work.")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");

    // Same name again: refused, nothing new on disk.
    let err = snapshot(&inc, "dev", "ready").unwrap_err();
    assert_eq!(
        err.kind,
        crate::error::ErrorKind::Conflict,
        "{}",
        err.message
    );
    assert_eq!(
        std::fs::read_dir(inc.daemon.layout.snapshots_dir())
            .unwrap()
            .count(),
        1
    );

    // A clone is registered with disks of its own built on the snapshot's.
    let req = CreateVmRequest {
        name: Some("c1".into()),
        from: Some("ready".into()),
        ..Default::default()
    };
    let clone = inc
        .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .expect("clone");
    assert_eq!(clone.state, "created");
    assert_eq!(clone.origin.as_ref().unwrap().snapshot, "ready");
    assert_eq!(clone.vcpu, snap.vcpu);
    for disk in &clone.disks {
        assert!(disk.path.starts_with(&clone.dir), "{disk:?}");
    }
    // Resources are the snapshot's.
    let req = CreateVmRequest {
        from: Some("ready".into()),
        vcpu: Some(4),
        ..Default::default()
    };
    let err = inc
        .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("vcpu"));

    // Survives a daemon restart.
    drop(inc);
    let inc = harness.start();
    let err = inc
        .block_on(async { super::remove(&inc.daemon, "ready") })
        .unwrap_err();
    assert!(err.message.contains("c1"), "{}", err.message);
    assert!(dir.exists());
    inc.block_on(crate::vms::remove(&inc.daemon, "c1", true))
        .expect("remove the clone");
    super::remove(&inc.daemon, "ready").expect("remove the snapshot");
    assert!(!dir.exists());
    assert!(super::list(&inc.daemon).unwrap().is_empty());
}

#[test]
fn a_stopped_vm_cannot_be_snapshotted() {
    let mut harness = Harness::new();
    harness.no_network = true;
    let inc = harness.start();
    inc.create("cold", false);
    let err = snapshot(&inc, "cold", "s").unwrap_err();
    assert_eq!(
        err.kind,
        crate::error::ErrorKind::Conflict,
        "{}",
        err.message
    );
    assert!(err.message.contains("not running"), "{}", err.message);
    assert!(super::list(&inc.daemon).unwrap().is_empty());
}

/// The fake's agent runs on the host, so it refuses to change an identity: exactly the
/// agent a clone must never run with. The restore is undone and the VM marked failed.
#[test]
fn a_clone_whose_agent_cannot_reidentify_never_runs() {
    let mut harness = Harness::new();
    harness.no_network = true;
    let inc = harness.start();
    inc.create("dev", true);
    snapshot(&inc, "dev", "s").expect("snapshot");
    let req = CreateVmRequest {
        name: Some("c".into()),
        from: Some("s".into()),
        start: true,
        ..Default::default()
    };
    let err = inc
        .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .unwrap_err();
    assert!(err.message.contains("own identity"), "{}", err.message);
    // A clone that could not be restored is not left registered.
    assert!(inc.daemon.store().get_vm("c").unwrap().is_none());
    assert!(super::get(&inc.daemon, "s").unwrap().clones.is_empty());
    // Only the parent's VMM runs.
    assert_eq!(harness.vmm_processes().len(), 1);
    harness.assert_consistent();
}

/// A snapshot keeps its image: `image rm` names the snapshot, `image prune` keeps the
/// image and says why, even once no VM uses it.
#[test]
fn an_image_a_snapshot_uses_is_kept_and_the_snapshot_named() {
    let mut harness = Harness::new();
    harness.no_network = true;
    let inc = harness.start();
    let vm = inc.create("dev", true);
    snapshot(&inc, "dev", "keep").expect("snapshot");
    inc.block_on(crate::vms::remove(&inc.daemon, "dev", true))
        .expect("vm rm -f");
    let image = vm.image;
    let err = crate::images::remove(&inc.daemon, &image).unwrap_err();
    assert!(err.message.contains("snapshot(s): keep"), "{}", err.message);
    assert!(inc.daemon.store().get_image(&image).unwrap().is_some());
    let report = inc
        .block_on(crate::prune::prune(
            &inc.daemon,
            banger_api::PruneImagesRequest {
                all: true,
                dry_run: false,
            },
        ))
        .expect("prune");
    assert!(
        report.kept.iter().any(|k| k.contains("snapshot(s) keep")),
        "{report:?}"
    );
    assert!(inc.daemon.store().get_image(&image).unwrap().is_some());
}
