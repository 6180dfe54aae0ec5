//! Every wait has a deadline: a frozen guest cannot hang `stop`, and a forced operation never
//! queues behind a hung one. The outer timeouts here only catch hangs; they measure nothing.

use banger_api::StopVmRequest;
use banger_store::VmState;
use banger_vmm::fake::FakeFaults;

use crate::testing::{Harness, Incarnation, WAIT, wait_for};

/// SIGSTOP the VM's fake VMM: its guest answers nothing from now on.
fn freeze(inc: &Incarnation, name: &str) -> u32 {
    let vm = inc.daemon.store().get_vm(name).expect("read").expect("row");
    let pid = super::runtime_of(&vm).expect("runtime").pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("SIGSTOP");
    pid
}

fn state(inc: &Incarnation, name: &str) -> VmState {
    inc.daemon
        .store()
        .get_vm(name)
        .expect("read")
        .expect("row")
        .state
}

#[test]
fn stopping_a_frozen_guest_ends_with_a_kill() {
    let harness = Harness::new();
    let inc = harness.start();
    inc.create("frozen", true);
    // The daemon already holds a connection from the boot; the frozen agent reads none of it.
    freeze(&inc, "frozen");
    let req = StopVmRequest {
        timeout_secs: Some(2),
        force: false,
    };
    let stopped = inc.block_on(async {
        tokio::time::timeout(
            WAIT,
            super::stop(
                &inc.daemon,
                "frozen",
                req,
                &banger_system::progress::NoProgress,
            ),
        )
        .await
        .expect("stop hung on a frozen guest")
    });
    assert_eq!(stopped.expect("stop").state, "stopped");
    assert!(harness.vmm_processes().is_empty());
    harness.assert_consistent();
}

#[test]
fn a_forced_remove_cancels_a_hung_graceful_stop() {
    let harness = Harness::new();
    let inc = harness.start();
    inc.create("stuck", true);
    freeze(&inc, "stuck");
    let daemon = inc.daemon.clone();
    // Ten minutes of patience, that nobody should have to wait.
    let slow = inc.rt.spawn(async move {
        let req = StopVmRequest {
            timeout_secs: Some(600),
            force: false,
        };
        super::stop(&daemon, "stuck", req, &banger_system::progress::NoProgress).await
    });
    wait_for("the graceful stop to begin", || {
        state(&inc, "stuck") == VmState::Stopping
    });
    let removed = inc.block_on(async {
        tokio::time::timeout(WAIT, super::remove(&inc.daemon, "stuck", true))
            .await
            .expect("rm -f waited behind the hung stop")
    });
    assert_eq!(removed.expect("rm -f").state, "removed");
    let first = inc.block_on(async { tokio::time::timeout(WAIT, slow).await });
    // The cut-short stop still ended (stopped the VM), before the removal.
    assert!(
        first
            .expect("the graceful stop never ended")
            .expect("join")
            .is_ok()
    );
    assert!(harness.vmm_processes().is_empty());
    harness.assert_consistent();
}

#[test]
fn a_forced_stop_cancels_a_boot_that_waits_for_a_silent_guest() {
    let harness = Harness::new();
    let inc = harness.start();
    inc.create("mute", false);
    harness.driver.set_faults(FakeFaults {
        silent_guest: true,
        ..FakeFaults::default()
    });
    let daemon = inc.daemon.clone();
    let boot = inc.rt.spawn(async move {
        super::start(&daemon, "mute", &banger_system::progress::NoProgress).await
    });
    wait_for("the VMM to be launched", || {
        !harness.vmm_processes().is_empty()
    });
    let req = StopVmRequest {
        timeout_secs: None,
        force: true,
    };
    let stopped = inc.block_on(async {
        tokio::time::timeout(
            WAIT,
            super::stop(
                &inc.daemon,
                "mute",
                req,
                &banger_system::progress::NoProgress,
            ),
        )
        .await
        .expect("stop --force waited behind the boot")
    });
    assert!(stopped.is_ok(), "{:?}", stopped.map_err(|e| e.message));
    let booted = inc.block_on(async { tokio::time::timeout(WAIT, boot).await });
    let err = booted
        .expect("boot hung")
        .expect("join")
        .expect_err("the boot must fail");
    assert!(err.message.contains("cancelled"), "{}", err.message);
    // A conflict with another request, not a failure of banger or the host; the hint fits
    // a VM that may be gone.
    assert_eq!(
        err.kind,
        crate::error::ErrorKind::Conflict,
        "{}",
        err.message
    );
    let hint = err.hint.unwrap_or_default();
    assert!(hint.contains("banger vm ls"), "{hint}");
    assert!(!hint.contains("vm logs"), "{hint}");
    assert_eq!(state(&inc, "mute"), VmState::Failed);
    assert!(harness.vmm_processes().is_empty());
    harness.assert_consistent();
}
