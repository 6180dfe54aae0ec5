//! The QEMU driver against the real qemu-system-x86_64, booting the tiny PVH test kernel.

use crate::support;

use std::time::Duration;

use banger_vmm::{
    AgentEndpoint, Driver, DriverKind, MachinePreference, MachineType, RunState, VmmDriver,
    VmmError, WaitOutcome,
};
use serde_json::Value;
use support::{KillOnDrop, driver, impatient_driver, spec};

const GENEROUS: Duration = Duration::from_secs(30);

#[tokio::test]
async fn launches_a_microvm_that_runs_and_answers_qmp() {
    let (_tmp, spec) = spec("vm");
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());

    assert_eq!(rt.driver, DriverKind::Qemu);
    assert_eq!(
        rt.machine,
        MachineType::Microvm,
        "the test kernel has a PVH note"
    );
    assert!(driver.is_alive(&rt));
    assert!(rt.control_socket.exists());
    // The console is offered as a socket for the daemon to capture (never a file QEMU grows).
    assert!(rt.console.as_ref().is_some_and(|s| s.path().exists()));
    assert!(!spec.console_log.exists());
    // The record survives a round trip through JSON, as the daemon stores it.
    let json = serde_json::to_string(&rt).unwrap();
    assert_eq!(
        serde_json::from_str::<banger_vmm::VmRuntime>(&json).unwrap(),
        rt
    );

    let mut qmp = driver.qmp(&rt).await.unwrap();
    assert_eq!(qmp.query_status().await.unwrap(), "running");

    // Drives: root first, read-only; the work disk really is qcow2.
    let blocks = qmp.execute("query-block", None).await.unwrap();
    let block = |id: &str| -> Value {
        blocks
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["qdev"].as_str().unwrap_or("").contains(id) || b["device"] == id)
            .unwrap_or_else(|| panic!("no {id} in {blocks}"))
            .clone()
    };
    assert_eq!(block("drive-root")["inserted"]["ro"], true);
    assert_eq!(block("drive-work")["inserted"]["drv"], "qcow2");
    assert_eq!(block("drive-work")["inserted"]["ro"], false);

    let cmdline = qmp
        .execute(
            "qom-get",
            Some(serde_json::json!({"path": "/machine", "property": "append"})),
        )
        .await
        .unwrap();
    assert_eq!(
        cmdline,
        "console=ttyS0 panic=-1 tsc_early_khz=2100000 root=/dev/vda ro cryptomgr.notests banger.hostname=test"
    );
    drop(qmp);

    driver.kill(&rt).await.unwrap();
    assert!(!driver.is_alive(&rt));
    assert!(!rt.control_socket.exists(), "QMP socket left behind");
}

#[tokio::test]
async fn agent_socket_accepts_a_connection() {
    let (_tmp, spec) = spec("vm");
    let driver = Driver::Qemu(driver(MachinePreference::Microvm));
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    let AgentEndpoint::VirtioSerial { socket } = &rt.agent else {
        panic!("QEMU uses virtio-serial: {:?}", rt.agent)
    };
    assert!(socket.starts_with(&spec.vm_dir));

    let agent_chardev = |chardevs: &Value| -> String {
        chardevs
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["label"] == "agent0")
            .unwrap()["filename"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let Driver::Qemu(qemu) = &driver else {
        panic!("a QEMU driver was built");
    };
    let mut qmp = qemu.qmp(&rt).await.unwrap();
    let before = agent_chardev(&qmp.execute("query-chardev", None).await.unwrap());
    assert!(before.starts_with("disconnected:"), "{before}");

    let _stream = driver.connect_agent(&rt).await.unwrap();
    // QEMU accepts asynchronously: poll its view until it reports the connection.
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        let now = agent_chardev(&qmp.execute("query-chardev", None).await.unwrap());
        if !now.starts_with("disconnected:") {
            assert!(now.contains("agent.sock"), "{now}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "QEMU never accepted the agent connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(qmp);
    driver.kill(&rt).await.unwrap();
}

#[tokio::test]
async fn pc_machine_boots_too() {
    let (_tmp, spec) = spec("vm");
    let driver = driver(MachinePreference::Pc);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    assert_eq!(rt.machine, MachineType::Pc);
    let mut qmp = driver.qmp(&rt).await.unwrap();
    assert_eq!(qmp.query_status().await.unwrap(), "running");
    let pci = qmp.execute("query-pci", None).await.unwrap().to_string();
    // virtio PCI vendor id 0x1af4 = 6900.
    assert!(pci.contains("6900"), "no virtio PCI devices: {pci}");
    drop(qmp);
    driver.kill(&rt).await.unwrap();
}

#[tokio::test]
async fn shutdown_request_wait_exit_and_pid_reuse_safety() {
    let (_tmp, spec) = spec("vm");
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());

    // The test kernel ignores the ACPI power button: the request is delivered, the VM runs on.
    driver.request_shutdown(&rt).await.unwrap();
    assert_eq!(
        driver
            .wait_exit(&rt, Duration::from_millis(300))
            .await
            .unwrap(),
        WaitOutcome::StillRunning
    );

    // Same pid, different start time: a different process as far as banger is concerned.
    let mut impostor = rt.clone();
    impostor.pid_start_time += 1;
    assert!(!driver.is_alive(&impostor));
    assert_eq!(
        driver.wait_exit(&impostor, GENEROUS).await.unwrap(),
        WaitOutcome::Exited
    );
    let mut other_boot = rt.clone();
    other_boot.boot_id = "not-this-boot".into();
    assert!(!driver.is_alive(&other_boot));

    // QEMU exits on its own (here: QMP quit); wait_exit notices though it is not our child.
    driver.qmp(&rt).await.unwrap().quit().await.unwrap();
    assert_eq!(
        driver.wait_exit(&rt, GENEROUS).await.unwrap(),
        WaitOutcome::Exited
    );
    assert!(!driver.is_alive(&rt));
    // Requests to a VM that is gone are no-ops.
    driver.request_shutdown(&rt).await.unwrap();
    driver.kill(&rt).await.unwrap();
}

#[tokio::test]
async fn kill_escalates_to_signals_when_qmp_does_not_answer() {
    let (_tmp, spec) = spec("vm");
    let driver = impatient_driver();
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    // A stopped QEMU accepts the QMP connection but never greets, and SIGTERM stays pending:
    // only SIGKILL ends it.
    let id = banger_vmm::process::ProcessIdentity {
        pid: rt.pid,
        start_time: rt.pid_start_time,
    };
    assert!(banger_vmm::process::signal(id, libc::SIGSTOP).unwrap());
    driver.kill(&rt).await.unwrap();
    assert!(!driver.is_alive(&rt));
    // Killed QEMU cannot clean up: the driver removed the leftovers.
    assert!(!rt.control_socket.exists());
    assert!(!rt.vm_dir.join("qemu.pid").exists());
}

#[tokio::test]
async fn commas_in_paths_reach_qemu_intact() {
    let (_tmp, spec) = spec("vm,with,commas");
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    assert!(
        rt.control_socket
            .to_str()
            .unwrap()
            .contains("vm,with,commas")
    );
    let mut qmp = driver.qmp(&rt).await.unwrap();
    assert_eq!(qmp.query_status().await.unwrap(), "running");
    drop(qmp);
    let _stream = driver.connect_agent(&rt).await.unwrap();
    driver.kill(&rt).await.unwrap();
}

#[tokio::test]
async fn a_running_vm_dir_is_not_launched_twice() {
    let (_tmp, spec) = spec("vm");
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    let err = driver.launch(&spec).await.unwrap_err();
    assert!(
        matches!(err, VmmError::AlreadyRunning { pid: Some(p), .. } if p == rt.pid),
        "{err}"
    );
    // The first VM is untouched.
    assert_eq!(
        driver.qmp(&rt).await.unwrap().query_status().await.unwrap(),
        "running"
    );
    driver.kill(&rt).await.unwrap();
    // Once it is gone the directory can be used again.
    let rt2 = driver.launch(&spec).await.unwrap();
    let _guard2 = KillOnDrop(rt2.clone());
    assert_ne!((rt2.pid, rt2.pid_start_time), (rt.pid, rt.pid_start_time));
    driver.kill(&rt2).await.unwrap();
}

#[tokio::test]
async fn missing_kernel_error_carries_qemus_reason() {
    let (tmp, mut spec) = spec("vm");
    spec.kernel = tmp.path().join("no-such-vmlinux");
    let err = driver(MachinePreference::Auto)
        .launch(&spec)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, VmmError::QemuRefused { .. }), "{msg}");
    assert!(msg.contains("could not open kernel file"), "{msg}");
    assert!(
        msg.contains("no-such-vmlinux") && msg.contains("No such file"),
        "{msg}"
    );
    assert!(msg.contains("test-vm"), "{msg}");
}

#[tokio::test]
async fn missing_disk_and_vm_dir_errors_are_clear() {
    let (tmp, mut spec) = spec("vm");
    spec.drives[0].path = tmp.path().join("gone.qcow2");
    let err = driver(MachinePreference::Auto)
        .launch(&spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gone.qcow2") && err.contains("No such file"),
        "{err}"
    );

    let (tmp, mut spec) = support::spec("vm");
    spec.vm_dir = tmp.path().join("absent");
    let err = driver(MachinePreference::Auto)
        .launch(&spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("open VM directory") && err.contains("absent"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_binary_is_a_spawn_error() {
    let (_tmp, spec) = spec("vm");
    let config = banger_vmm::QemuConfig::new(
        "/nonexistent/qemu-system-x86_64",
        banger_vmm::Accel::Tcg,
        Some(support::TSC_KHZ),
    );
    let err = banger_vmm::QemuDriver::new(config)
        .unwrap()
        .launch(&spec)
        .await
        .unwrap_err();
    assert!(matches!(err, VmmError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("installed"), "{err}");
}

/// Pause and resume through QMP `stop`/`cont`, as `run_state` (`query-status`) reports them.
#[tokio::test]
async fn pause_resume_and_run_state() {
    let (_tmp, spec) = spec("vm");
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    assert_eq!(driver.run_state(&rt).await.unwrap(), RunState::Running);
    driver.pause(&rt).await.unwrap();
    assert_eq!(driver.run_state(&rt).await.unwrap(), RunState::Paused);
    let mut qmp = driver.qmp(&rt).await.unwrap();
    assert_eq!(qmp.query_status().await.unwrap(), "paused");
    drop(qmp);
    driver.resume(&rt).await.unwrap();
    assert_eq!(driver.run_state(&rt).await.unwrap(), RunState::Running);
    // A paused VM is killed like any other.
    driver.pause(&rt).await.unwrap();
    driver.kill(&rt).await.unwrap();
    assert!(!driver.is_alive(&rt));
}
