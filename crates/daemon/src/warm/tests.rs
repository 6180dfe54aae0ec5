//! Warm images against the fake driver: the state is registered hidden and survives
//! restarts; a VM whose key differs boots cold and says why; a stale state is dropped; a
//! restore that fails falls back to a cold boot; `image rm` takes the state along.

use banger_api::CreateVmRequest;
use banger_system::progress::NoProgress;

use crate::testing::{Harness, Incarnation};

fn warm(inc: &Incarnation) -> banger_api::ImageView {
    inc.block_on(super::warm(&inc.daemon, "minimal", &NoProgress))
        .expect("image warm")
}

fn run(inc: &Incarnation, req: CreateVmRequest) -> banger_api::VmView {
    inc.block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .expect("vm run");
    let name = req_name(&inc.daemon);
    crate::vms::get(&inc.daemon, &name).expect("vm inspect")
}

/// The one VM there is.
fn req_name(daemon: &crate::state::Daemon) -> String {
    let vms = daemon.store().list_vms().unwrap();
    assert_eq!(vms.len(), 1, "{vms:?}");
    vms[0].name.clone()
}

fn named(name: &str) -> CreateVmRequest {
    CreateVmRequest {
        name: Some(name.into()),
        image: Some("minimal".into()),
        start: true,
        ..Default::default()
    }
}

fn harness() -> Harness {
    let mut harness = Harness::new();
    harness.no_network = true;
    harness
}

#[test]
fn a_warm_state_is_kept_hidden_and_survives_a_restart() {
    let harness = harness();
    let inc = harness.start();
    let image = warm(&inc);
    let state = image.warm.expect("a warm state");
    assert_eq!(state.network, "none");
    assert_eq!(state.vcpu, inc.daemon.defaults.vcpu.value);
    assert_eq!(state.memory_mib, inc.daemon.defaults.memory_mib.value);
    // The VM booted to make it is gone, and it is not a user snapshot.
    assert!(inc.daemon.store().list_vms().unwrap().is_empty());
    assert!(crate::snapshots::list(&inc.daemon).unwrap().is_empty());
    inc.kill();

    let inc = harness.start();
    let again = crate::images::get(&inc.daemon, "minimal").unwrap();
    assert_eq!(again.warm.as_ref(), Some(&state));
    // Warming again replaces it; the replaced one's files go.
    let newer = warm(&inc).warm.unwrap();
    assert_ne!(newer.snapshot, state.snapshot);
    let dirs = std::fs::read_dir(inc.daemon.layout.snapshots_dir())
        .unwrap()
        .count();
    assert_eq!(dirs, 1);
    harness.assert_consistent();
}

#[test]
fn other_resources_and_cold_boot_cold_and_say_why_keeping_the_state() {
    let harness = harness();
    let inc = harness.start();
    let state = warm(&inc).warm.unwrap();
    let vm = run(
        &inc,
        CreateVmRequest {
            memory_mib: Some(state.memory_mib + 128),
            ..named("big")
        },
    );
    assert!(vm.origin.is_none(), "{vm:?}");
    let why = vm.cold_reason.expect("a reason");
    assert!(why.contains("memory_mib differs"), "{why}");
    inc.block_on(crate::vms::remove(&inc.daemon, "big", true))
        .unwrap();

    let vm = run(
        &inc,
        CreateVmRequest {
            cold: true,
            ..named("forced")
        },
    );
    assert!(vm.origin.is_none(), "{vm:?}");
    assert!(vm.cold_reason.unwrap().contains("--cold"));
    inc.block_on(crate::vms::remove(&inc.daemon, "forced", true))
        .unwrap();
    let still = crate::images::get(&inc.daemon, "minimal").unwrap().warm;
    assert_eq!(still.as_ref(), Some(&state));
}

#[test]
fn a_changed_image_boots_cold_says_why_and_drops_the_stale_state() {
    let harness = harness();
    let inc = harness.start();
    warm(&inc);
    // The image is rebuilt: its initrd (where the minimal image's agent lives) is new.
    let image = inc.daemon.store().get_image("minimal").unwrap().unwrap();
    let initrd = image.initrd_path.unwrap();
    std::fs::create_dir_all(initrd.parent().unwrap()).unwrap();
    std::fs::write(&initrd, b"a new initrd").unwrap();

    let vm = run(&inc, named("after"));
    assert!(vm.origin.is_none(), "{vm:?}");
    let why = vm.cold_reason.expect("a reason");
    assert!(why.contains("image minimal's files changed"), "{why}");
    // Stale for every VM: dropped, files and all.
    assert!(
        crate::images::get(&inc.daemon, "minimal")
            .unwrap()
            .warm
            .is_none()
    );
    assert!(inc.daemon.store().warm_states().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(inc.daemon.layout.snapshots_dir())
            .unwrap()
            .count(),
        0
    );
}

/// The fake guest's agent cannot take an identity of its own, so a restore of the warm
/// state fails: the VM boots cold instead, says why, and the state is retired.
#[test]
fn a_failed_restore_falls_back_to_a_cold_boot() {
    let harness = harness();
    let inc = harness.start();
    warm(&inc);
    let vm = run(&inc, named("fallback"));
    assert_eq!(vm.state, "running", "{vm:?}");
    assert!(vm.origin.is_none(), "{vm:?}");
    let why = vm.cold_reason.expect("a reason");
    assert!(why.contains("restoring the warm state failed"), "{why}");
    assert!(inc.daemon.store().warm_states().unwrap().is_empty());
    harness.assert_consistent();
}

#[test]
fn image_rm_takes_the_warm_state_along() {
    let harness = harness();
    let inc = harness.start();
    warm(&inc);
    crate::images::remove(&inc.daemon, "minimal").expect("image rm");
    assert!(inc.daemon.store().warm_states().unwrap().is_empty());
    assert!(inc.daemon.store().list_snapshots().unwrap().is_empty());
}
