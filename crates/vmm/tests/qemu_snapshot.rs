//! QEMU snapshots against the real qemu-system-x86_64 (sandboxed as the daemon would run it):
//! save a paused guest through a descriptor handed over QMP, restore it in another VM
//! directory from an inherited descriptor, and refuse what cannot be saved or loaded.

use crate::support;

use banger_vmm::{MachinePreference, RunState, SnapshotFiles, VmmDriver, VmmError};
use support::{KillOnDrop, driver, spec};

#[tokio::test]
async fn a_paused_guest_is_saved_and_restored_elsewhere() {
    let (tmp, spec) = spec("vm");
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    let snap_dir = tmp.path().join("snap");
    std::fs::create_dir(&snap_dir).unwrap();

    // A running guest is refused, and nothing is left behind.
    let err = driver.save_snapshot(&rt, &snap_dir).await.unwrap_err();
    assert!(matches!(err, VmmError::WrongState { .. }), "{err}");
    assert_eq!(std::fs::read_dir(&snap_dir).unwrap().count(), 0);

    driver.pause(&rt).await.unwrap();
    let files = driver.save_snapshot(&rt, &snap_dir).await.unwrap();
    assert_eq!(files.memory, None);
    let size = std::fs::metadata(&files.state).unwrap().len();
    assert!(
        size > 64 * 1024,
        "the stream holds the guest's memory: {size} bytes"
    );
    // Only the finished file: no temp name survives.
    let names: Vec<_> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [banger_vmm::qemu::STATE_FILE]);
    // The source stays paused, and resumes.
    assert_eq!(driver.run_state(&rt).await.unwrap(), RunState::Paused);
    driver.resume(&rt).await.unwrap();
    assert_eq!(driver.run_state(&rt).await.unwrap(), RunState::Running);
    driver.kill(&rt).await.unwrap();

    // Restored in a directory of its own: paused until resumed.
    let clone_dir = tmp.path().join("clone");
    std::fs::create_dir(&clone_dir).unwrap();
    let mut clone = spec.clone();
    clone.vm_id = "clone-vm".into();
    clone.console_log = clone_dir.join("console.log");
    // A sandboxed QEMU writes only inside its own directory: the clone gets copies.
    for drive in &mut clone.drives {
        let copy = clone_dir.join(drive.path.file_name().unwrap());
        std::fs::copy(&drive.path, &copy).unwrap();
        drive.path = copy;
    }
    clone.vm_dir = clone_dir;
    clone.restore = Some(files.clone());
    let crt = driver.launch(&clone).await.unwrap();
    let _clone_guard = KillOnDrop(crt.clone());
    assert_eq!(driver.run_state(&crt).await.unwrap(), RunState::Paused);
    driver.resume(&crt).await.unwrap();
    assert_eq!(driver.run_state(&crt).await.unwrap(), RunState::Running);
    driver.kill(&crt).await.unwrap();
}

#[tokio::test]
async fn a_stream_qemu_cannot_load_is_a_clear_error_and_no_vmm_is_left() {
    let (tmp, mut spec) = spec("vm");
    let driver = driver(MachinePreference::Auto);
    let bogus = tmp.path().join("vmstate");
    std::fs::write(&bogus, b"this is not a migration stream").unwrap();
    spec.restore = Some(SnapshotFiles {
        state: bogus.clone(),
        memory: None,
    });
    let err = driver.launch(&spec).await.unwrap_err();
    let VmmError::RestoreFailed { state, reason, .. } = &err else {
        panic!("expected RestoreFailed, got {err:?}");
    };
    assert_eq!(state, &bogus);
    assert!(!reason.is_empty() && !reason.starts_with('('), "{err}");
    assert!(
        banger_vmm::process::find_using_dir(&support::qemu_binary(), &spec.vm_dir)
            .unwrap()
            .is_empty(),
        "a QEMU of the failed restore is still running"
    );

    // A missing file is refused before any QEMU starts.
    spec.restore = Some(SnapshotFiles {
        state: tmp.path().join("missing"),
        memory: None,
    });
    let err = driver.launch(&spec).await.unwrap_err().to_string();
    assert!(err.contains("open snapshot state file"), "{err}");
}
