//! Every lifecycle path against the fake driver, including a daemon killed at each fault
//! point and a new one reconciling what it left.

use banger_api::StopVmRequest;
use banger_store::VmState;
use banger_vmm::fake::FakeFaults;

use crate::faults::FaultPoint;
use crate::testing::{Harness, Incarnation, WAIT, request, wait_for};

fn state(inc: &Incarnation, name: &str) -> Option<VmState> {
    inc.daemon
        .store()
        .get_vm(name)
        .expect("read the store")
        .map(|vm| vm.state)
}

#[test]
fn create_exec_stop_start_and_remove() {
    let harness = Harness::new();
    let inc = harness.start();
    let vm = inc.create("dev", true);
    assert_eq!(vm.state, "running");
    assert_eq!(inc.exec_stdout("dev", &["echo", "hello"]), "hello\n");
    assert_eq!(harness.vmm_processes().len(), 1);

    let stopped = inc
        .block_on(crate::vms::stop(
            &inc.daemon,
            "dev",
            StopVmRequest::default(),
            &banger_system::progress::NoProgress,
        ))
        .expect("stop");
    assert_eq!(stopped.state, "stopped");
    assert!(harness.vmm_processes().is_empty());

    let started = inc
        .block_on(crate::vms::start(
            &inc.daemon,
            "dev",
            &banger_system::progress::NoProgress,
        ))
        .expect("start");
    assert_eq!(started.state, "running");
    assert_eq!(inc.exec_stdout("dev", &["echo", "again"]), "again\n");

    let gone = inc
        .block_on(crate::vms::remove(&inc.daemon, "dev", true))
        .expect("rm -f");
    assert_eq!(gone.state, "removed");
    assert!(harness.vmm_processes().is_empty());
    assert_eq!(state(&inc, "dev"), None);
    harness.assert_consistent();
}

/// A VMM is gone when its last thread is, not its main one: `stop` waits until then, so the
/// next start does not find the pid file still locked, and no process outlives the VM.
#[test]
fn stop_waits_for_every_thread_of_the_vmm() {
    let harness = Harness::new();
    harness.driver.set_faults(FakeFaults {
        main_thread_exits: true,
        ..FakeFaults::default()
    });
    let inc = harness.start();
    let vm = inc.create("threads", true);
    assert_eq!(vm.state, "running");
    assert_eq!(harness.vmm_processes().len(), 1, "the running VMM is found");
    assert_eq!(inc.exec_stdout("threads", &["echo", "up"]), "up\n");
    for _ in 0..2 {
        let stopped = inc
            .block_on(crate::vms::stop(
                &inc.daemon,
                "threads",
                StopVmRequest::default(),
                &banger_system::progress::NoProgress,
            ))
            .expect("stop");
        assert_eq!(stopped.state, "stopped");
        assert!(
            harness.vmm_processes().is_empty(),
            "a stopped VM's VMM runs"
        );
        let started = inc
            .block_on(crate::vms::start(
                &inc.daemon,
                "threads",
                &banger_system::progress::NoProgress,
            ))
            .unwrap_or_else(|e| panic!("start after stop: {}", e.message));
        assert_eq!(started.state, "running");
    }
    inc.block_on(crate::vms::remove(&inc.daemon, "threads", true))
        .expect("rm -f");
    assert!(harness.vmm_processes().is_empty());
    harness.assert_consistent();
}

#[test]
fn a_guest_powering_itself_off_is_recorded_as_stopped() {
    let harness = Harness::new();
    let inc = harness.start();
    inc.create("off", true);
    inc.block_on(async {
        let vm = crate::vms::lookup(&inc.daemon, "off").expect("lookup");
        let client = crate::vms::client_for(&inc.daemon, &vm)
            .await
            .expect("agent");
        client.poweroff().await.expect("poweroff");
    });
    wait_for("the exit watcher", || {
        state(&inc, "off") == Some(VmState::Stopped)
    });
    let vm = inc
        .daemon
        .store()
        .get_vm("off")
        .expect("read")
        .expect("row");
    assert!(vm.runtime_json.is_none());
    harness.assert_consistent();
}

/// What a test does up to the point where the daemon dies.
fn operation_for(point: FaultPoint) -> (&'static str, bool) {
    use FaultPoint::*;
    match point {
        CreateIntentRecorded | CreateDirMade | CreateDiskMade => ("create", false),
        StartMarkedStarting | StartNetworkAttached | StartLaunched | StartRecorded => {
            ("start", false)
        }
        StopMarkedStopping | StopAgentAsked | StopVmmGone => ("stop", true),
        RemoveIntentRecorded | RemoveVmmGone | RemoveDirDeleted => ("rm", true),
    }
}

/// A daemon killed at each fault point of each operation; the next one reconciles. The VM
/// ends running (its VMM adopted and answering), stopped, failed or gone — never stuck, never
/// with a VMM or a directory nobody owns.
#[test]
fn a_daemon_killed_at_any_point_leaves_nothing_behind() {
    killed_at_each_point(FakeFaults::default());
}

/// The same with VMMs whose main thread has exited while they run, as a VMM looks while
/// SIGKILL takes its threads down one by one: one that is still up must be found and waited
/// for until its last thread is gone (its pid file unlocked), or the next start fails.
#[test]
fn a_vmm_outliving_its_main_thread_is_killed_before_the_next_start() {
    killed_at_each_point(FakeFaults {
        main_thread_exits: true,
        ..FakeFaults::default()
    });
}

fn killed_at_each_point(faults: FakeFaults) {
    for point in FaultPoint::ALL {
        let harness = Harness::new();
        harness.driver.set_faults(faults.clone());
        let (op, running_before) = operation_for(point);
        let first = harness.start();
        if op != "create" {
            first.create("vm", running_before);
        }
        let reached = first.daemon.faults.crash_at(point);
        let daemon = first.daemon.clone();
        let task = first.rt.spawn(async move {
            match op {
                "create" => crate::vms::create(
                    &daemon,
                    request("vm", true),
                    &banger_system::progress::NoProgress,
                )
                .await
                .map(drop),
                "start" => crate::vms::start(&daemon, "vm", &banger_system::progress::NoProgress)
                    .await
                    .map(drop),
                "stop" => crate::vms::stop(
                    &daemon,
                    "vm",
                    StopVmRequest::default(),
                    &banger_system::progress::NoProgress,
                )
                .await
                .map(drop),
                _ => crate::vms::remove(&daemon, "vm", true).await.map(drop),
            }
        });
        first.block_on(async {
            tokio::select! {
                _ = reached.notified() => {}
                done = task => panic!("{point:?}: the operation ended without reaching its fault point: {:?}", done.map(|r| r.map_err(|e| e.message))),
                _ = tokio::time::sleep(WAIT) => panic!("{point:?}: fault point not reached"),
            }
        });
        first.kill();

        let second = harness.start();
        harness.assert_consistent();
        let after = state(&second, "vm");
        if let Some(VmState::Failed) = after {
            let vm = second
                .daemon
                .store()
                .get_vm("vm")
                .expect("read")
                .expect("row");
            assert!(
                vm.last_error.is_some(),
                "{point:?}: failed without a reason"
            );
        }
        match after {
            None => {}
            Some(VmState::Running) => {
                assert_eq!(
                    second.exec_stdout("vm", &["echo", "adopted"]),
                    "adopted\n",
                    "{point:?}"
                );
            }
            Some(VmState::Stopped | VmState::Failed | VmState::Created) => {
                // Whatever state it settled in, it can boot again.
                let started = second
                    .block_on(crate::vms::start(
                        &second.daemon,
                        "vm",
                        &banger_system::progress::NoProgress,
                    ))
                    .unwrap_or_else(|e| panic!("{point:?}: start after reconcile: {}", e.message));
                assert_eq!(started.state, "running", "{point:?}");
            }
            other => panic!("{point:?}: unexpected state {other:?}"),
        }
        let expected_gone = matches!(
            point,
            FaultPoint::CreateIntentRecorded
                | FaultPoint::CreateDirMade
                | FaultPoint::CreateDiskMade
                | FaultPoint::RemoveIntentRecorded
                | FaultPoint::RemoveVmmGone
                | FaultPoint::RemoveDirDeleted
        );
        assert_eq!(after.is_none(), expected_gone, "{point:?}: {after:?}");
        if after.is_some() {
            second
                .block_on(crate::vms::remove(&second.daemon, "vm", true))
                .unwrap_or_else(|e| panic!("{point:?}: rm -f after reconcile: {}", e.message));
        }
        harness.assert_consistent();
        second.kill();
    }
}

#[test]
fn leftovers_nobody_owns_are_reclaimed_at_start() {
    let harness = Harness::new();
    let vms = harness.layout.vms_dir();
    let orphan = vms.join("0123456789ab");
    std::fs::create_dir_all(&orphan).expect("mkdir");
    std::fs::write(orphan.join("work.ext4"), b"x").expect("write");
    let foreign = vms.join("not-a-vm");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    let cache = harness.layout.cache_dir().join("debian");
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::write(cache.join(".download-abc"), b"partial").expect("write");
    std::fs::write(cache.join("kept.deb"), b"whole").expect("write");
    let work = harness.layout.images_dir().join(".minimal.work-xyz");
    std::fs::create_dir_all(work.join("modules")).expect("mkdir");

    let _inc = harness.start();
    assert!(!orphan.exists());
    assert!(
        foreign.exists(),
        "only VM-id-shaped directories are removed"
    );
    assert!(!cache.join(".download-abc").exists());
    assert!(cache.join("kept.deb").exists());
    assert!(!work.exists());
}

#[test]
fn a_vm_whose_files_are_gone_is_failed_with_the_reason() {
    let harness = Harness::new();
    let first = harness.start();
    let vm = first.create("lost", false);
    first.kill();
    std::fs::remove_dir_all(&vm.dir).expect("delete the VM's directory");
    let second = harness.start();
    let record = second
        .daemon
        .store()
        .get_vm("lost")
        .expect("read")
        .expect("row");
    assert_eq!(record.state, VmState::Failed);
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("directory is gone"),
        "{record:?}"
    );
    let err = second
        .block_on(crate::vms::start(
            &second.daemon,
            "lost",
            &banger_system::progress::NoProgress,
        ))
        .expect_err("a VM without files cannot start");
    assert!(!err.message.is_empty());
    second
        .block_on(crate::vms::remove(&second.daemon, "lost", false))
        .expect("a failed VM can be removed");
}

/// The first defect: a VMM running for a VM the store calls `failed` (its daemon
/// died before recording it) is stopped, not left holding memory, and `start` works.
#[test]
fn a_vmm_the_store_does_not_know_is_stopped_before_start() {
    let harness = Harness::new();
    let first = harness.start();
    first.create("twice", true);
    let vm = first
        .daemon
        .store()
        .get_vm("twice")
        .expect("read")
        .expect("row");
    // Forget the VMM as an older daemon would have.
    let store = first.daemon.store();
    store
        .update_vm_state(
            &vm.id,
            Some(VmState::Running),
            VmState::Failed,
            Some("lost"),
        )
        .expect("mark failed");
    store
        .set_vm_runtime(&vm.id, None, None, None)
        .expect("forget runtime");
    drop(store);
    first.kill();
    assert_eq!(harness.vmm_processes().len(), 1);
    let second = harness.start();
    assert!(
        harness.vmm_processes().is_empty(),
        "the unrecorded VMM was not stopped"
    );
    let started = second
        .block_on(crate::vms::start(
            &second.daemon,
            "twice",
            &banger_system::progress::NoProgress,
        ))
        .expect("start");
    assert_eq!(started.state, "running");
}

/// `rm` moves the VM's directory out of `vms/` at once and deletes it in the background;
/// the deletion is done when the daemon settles its trash (as it does before it exits).
#[test]
fn removed_vm_files_go_through_the_trash() {
    let harness = Harness::new();
    let inc = harness.start();
    let dir = std::path::PathBuf::from(inc.create("gone", true).dir);
    std::fs::write(dir.join("big.img"), vec![7u8; 1 << 20]).expect("write");
    inc.block_on(crate::vms::remove(&inc.daemon, "gone", true))
        .expect("rm -f");
    assert!(!dir.exists(), "the VM's directory left vms/ with rm");
    inc.block_on(inc.daemon.trash.settle());
    let trash = harness.layout.trash_dir();
    let left: Vec<_> = std::fs::read_dir(&trash)
        .expect("the trash exists once used")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in the trash: {left:?}");
    harness.assert_consistent();
    // A directory already gone is no error.
    crate::trash::discard(&inc.daemon, &dir).expect("discard a missing directory");
}

/// What a daemon that died left in the trash is deleted by the next one.
#[test]
fn a_dead_daemons_trash_is_emptied_at_start() {
    let harness = Harness::new();
    let trash = harness.layout.trash_dir();
    let left = trash.join("0123456789ab.1.0");
    std::fs::create_dir_all(left.join("sub")).expect("mkdir");
    std::fs::write(left.join("sub/work.ext4"), b"x").expect("write");
    std::fs::write(trash.join("stray-file"), b"x").expect("write");
    let inc = harness.start();
    inc.block_on(inc.daemon.trash.settle());
    assert_eq!(
        std::fs::read_dir(&trash).expect("trash").count(),
        0,
        "the trash is empty after the start"
    );
}

/// A daemon killed while a VM boots, after its VMM was launched and recorded: the next one
/// does not adopt the half-booted guest as running (its SSH keys, shares check and, for a
/// clone, its own identity never happened) but stops it and fails the VM with the reason;
/// `start` then boots it whole.
#[test]
fn a_boot_cut_short_is_failed_not_adopted() {
    let harness = Harness::new();
    let first = harness.start();
    first.create("half", false);
    let reached = first.daemon.faults.crash_at(FaultPoint::StartRecorded);
    let daemon = first.daemon.clone();
    let _boot = first.rt.spawn(async move {
        crate::vms::start(&daemon, "half", &banger_system::progress::NoProgress).await
    });
    first.block_on(async {
        tokio::select! {
            _ = reached.notified() => {}
            _ = tokio::time::sleep(WAIT) => panic!("the boot never reached StartRecorded"),
        }
    });
    first.kill();
    assert_eq!(
        harness.vmm_processes().len(),
        1,
        "the booting VMM outlives its daemon"
    );

    let second = harness.start();
    let vm = second
        .daemon
        .store()
        .get_vm("half")
        .expect("read")
        .expect("row");
    assert_eq!(vm.state, VmState::Failed);
    assert!(
        vm.last_error.as_deref().unwrap_or("").contains("booting"),
        "{:?}",
        vm.last_error
    );
    assert!(
        harness.vmm_processes().is_empty(),
        "the half-booted VMM was not stopped"
    );
    let started = second
        .block_on(crate::vms::start(
            &second.daemon,
            "half",
            &banger_system::progress::NoProgress,
        ))
        .unwrap_or_else(|e| panic!("start after a cut-short boot: {}", e.message));
    assert_eq!(started.state, "running");
    harness.assert_consistent();
}
