//! Pre-boot configuration rules of the fake (boot source, drives, machine config, logger,
//! metrics, serial, vsock, network), each tested against the line of
//! `shared/notes/firecracker-api.md` it comes from, in both observed personalities.

use crate::support;

use std::time::Duration;

use support::{BOTH, Fake, json};

#[test]
fn boot_source_errors_by_release() {
    // "kernel missing: `Boot source error: The kernel file cannot be opened: No such file or
    // directory (os error 2)`" (v1.14.1; "v1.5.0 lacks the `Boot source error: ` … prefixes")
    for (v, want) in [
        (
            "1.14.1",
            "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)",
        ),
        (
            "1.5.0",
            "The kernel file cannot be opened: No such file or directory (os error 2)",
        ),
    ] {
        let fake = Fake::start(v);
        assert_eq!(
            fake.fault(
                "PUT",
                "/boot-source",
                r#"{"kernel_image_path":"/nonexistent/vmlinux"}"#
            ),
            want
        );
    }
}

#[test]
fn drive_rules_by_release() {
    for v in BOTH {
        let fake = Fake::start(v);
        let disk = fake.path("disk");
        std::fs::write(&disk, [0u8; 512]).unwrap();
        // "drive without path_on_host: v1.14.1 `Drive config error: Unable to create the
        // virtio block device: Invalid block config.`; v1.5.0 `An error occurred when
        // deserializing the json body of a request: missing field `path_on_host` …`"
        let msg = fake.fault(
            "PUT",
            "/drives/d",
            r#"{"drive_id":"d","is_root_device":false,"is_read_only":false}"#,
        );
        if v == "1.14.1" {
            assert_eq!(
                msg,
                "Drive config error: Unable to create the virtio block device: Invalid block config."
            );
        } else {
            assert!(msg.contains("missing field `path_on_host`"), "{msg}");
            // "always send path_on_host and is_read_only (required in 1.5)"
            let msg = fake.fault(
                "PUT",
                "/drives/d",
                &json(serde_json::json!({
                    "drive_id": "d", "is_root_device": false, "path_on_host": disk
                })),
            );
            assert!(msg.contains("missing field `is_read_only`"), "{msg}");
        }
        // "Path id ≠ body id on `/drives/{id}`: 400 `The id from the path does not match the
        // id from the body!`"
        let drive = |id: &str, root: bool, path: &std::path::Path| {
            json(serde_json::json!({
                "drive_id": id, "path_on_host": path, "is_root_device": root,
                "is_read_only": false
            }))
        };
        assert_eq!(
            fake.fault("PUT", "/drives/a", &drive("b", false, &disk)),
            "The id from the path does not match the id from the body!"
        );
        // "A second root drive: 400 `Drive config error: A root block device already exists!`"
        fake.ok("PUT", "/drives/root", &drive("root", true, &disk));
        fake.ok("PUT", "/drives/root", &drive("root", true, &disk));
        let msg = fake.fault("PUT", "/drives/root2", &drive("root2", true, &disk));
        assert!(
            msg.ends_with("A root block device already exists!"),
            "{msg}"
        );
        assert_eq!(msg.starts_with("Drive config error: "), v == "1.14.1");
        // "a missing backing file: 1.14.1 `Drive config error: Unable to create the virtio
        // block device: Virtio backend error: Error manipulating the backing file: No such
        // file or directory (os error 2) PATH`, 1.5.0 `Invalid block device path: PATH`."
        let missing = fake.path("missing.img");
        let msg = fake.fault("PUT", "/drives/x", &drive("x", false, &missing));
        let want = if v == "1.14.1" {
            format!(
                "Drive config error: Unable to create the virtio block device: Virtio backend \
                 error: Error manipulating the backing file: No such file or directory (os \
                 error 2) {}",
                missing.display()
            )
        } else {
            format!("Invalid block device path: {}", missing.display())
        };
        assert_eq!(msg, want);
    }
}

#[test]
fn machine_config_rules_by_release() {
    // "`/machine-config` vcpu_count 0 or 33: 1.14.1 400 `Machine config error: The number of
    // vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is
    // enabled.`; 1.5.0 rejects at deserialization (`invalid value: vcpu_num, expected number
    // of vCPUs should be larger than 0` / `… exceeds the maximum limitation`)."
    let new = Fake::start("1.14.1");
    for n in [0, 33] {
        assert_eq!(
            new.fault(
                "PUT",
                "/machine-config",
                &format!(r#"{{"vcpu_count":{n},"mem_size_mib":128}}"#)
            ),
            "Machine config error: The number of vCPUs must be greater than 0, less than 32 and \
             must be 1 or an even number if SMT is enabled."
        );
    }
    let old = Fake::start("1.5.0");
    let msg = old.fault(
        "PUT",
        "/machine-config",
        r#"{"vcpu_count":0,"mem_size_mib":128}"#,
    );
    assert!(
        msg.contains("invalid value: vcpu_num, expected number of vCPUs should be larger than 0"),
        "{msg}"
    );
    let msg = old.fault(
        "PUT",
        "/machine-config",
        r#"{"vcpu_count":33,"mem_size_mib":128}"#,
    );
    assert!(msg.contains("exceeds the maximum limitation"), "{msg}");
    for fake in [&new, &old] {
        // "Missing `mem_size_mib` on PUT: `missing field `mem_size_mib``."
        let msg = fake.fault("PUT", "/machine-config", r#"{"vcpu_count":2}"#);
        assert!(msg.contains("missing field `mem_size_mib`"), "{msg}");
        // "`PATCH /machine-config` with a subset of fields is accepted before boot."
        fake.ok("PATCH", "/machine-config", r#"{"vcpu_count":2}"#);
    }
    // "`GET /machine-config` defaults: 1 vCPU, 128 MiB (1.14.1 also reports
    // `"huge_pages":"None"`)."
    let fresh = Fake::start("1.14.1");
    let (_, body) = fresh.call("GET", "/machine-config", "");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (m["vcpu_count"].as_u64(), m["mem_size_mib"].as_u64()),
        (Some(1), Some(128))
    );
    assert_eq!(m["huge_pages"], "None");
    let (_, body) = old.call("GET", "/machine-config", "");
    assert!(!body.contains("huge_pages"), "{body}");
    // "huge_pages None|2M (after 1.5)"
    let msg = old.fault(
        "PUT",
        "/machine-config",
        r#"{"vcpu_count":1,"mem_size_mib":128,"huge_pages":"2M"}"#,
    );
    assert!(msg.contains("unknown field `huge_pages`"), "{msg}");
    fresh.ok(
        "PUT",
        "/machine-config",
        r#"{"vcpu_count":2,"mem_size_mib":256,"huge_pages":"2M"}"#,
    );
}

#[test]
fn logger_and_metrics_files_by_release() {
    // "`/logger` and `/metrics` with a file that does not exist: 1.14.1 creates it (204);
    // 1.5.0 answers 400 `Failed to open target file: No such file or directory (os error 2)`
    // / `No such file or directory (os error 2)`. 1.14.1 accepted a second `PUT /logger`."
    let new = Fake::start("1.14.1");
    let log = new.path("fc.log");
    let metrics = new.path("fc.metrics");
    new.ok(
        "PUT",
        "/logger",
        &json(serde_json::json!({ "log_path": log, "level": "Info" })),
    );
    new.ok(
        "PUT",
        "/metrics",
        &json(serde_json::json!({ "metrics_path": metrics })),
    );
    assert!(log.exists() && metrics.exists());
    new.ok(
        "PUT",
        "/logger",
        &json(serde_json::json!({ "log_path": log })),
    );

    let old = Fake::start("1.5.0");
    let log = old.path("fc.log");
    let metrics = old.path("fc.metrics");
    assert_eq!(
        old.fault(
            "PUT",
            "/logger",
            &json(serde_json::json!({ "log_path": log }))
        ),
        "Failed to open target file: No such file or directory (os error 2)"
    );
    assert_eq!(
        old.fault(
            "PUT",
            "/metrics",
            &json(serde_json::json!({ "metrics_path": metrics }))
        ),
        "No such file or directory (os error 2)"
    );
    // "(before 1.14.0 the files must already exist; logger only once)"
    std::fs::write(&log, "").unwrap();
    std::fs::write(&metrics, "").unwrap();
    old.ok(
        "PUT",
        "/logger",
        &json(serde_json::json!({ "log_path": log })),
    );
    old.ok(
        "PUT",
        "/metrics",
        &json(serde_json::json!({ "metrics_path": metrics })),
    );
    old.fault(
        "PUT",
        "/logger",
        &json(serde_json::json!({ "log_path": log })),
    );
    // Firecracker's own log lines go to the logger once configured.
    old.boot();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("[anonymous-instance:"), "{text}");
}

#[test]
fn serial_endpoint_exists_from_1_13() {
    // "`PUT /serial` exists in 1.14.1 (204); 1.5.0 answers 400 `Invalid request method and/or
    // path: PUT serial.`"
    let new = Fake::start("1.14.1");
    let console = new.path("console.log");
    new.ok(
        "PUT",
        "/serial",
        &json(serde_json::json!({ "serial_out_path": console })),
    );
    new.boot();
    // "Serial: guest console goes to Firecracker's stdout unless `PUT /serial
    // {serial_out_path}`". The appended boot args show on the console:
    // "Firecracker appends `pci=off root=/dev/vda rw virtio_mmio.device=…` to the boot args".
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        if text.contains("pci=off") && text.contains("virtio_mmio.device=") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "console: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let old = Fake::start("1.5.0");
    assert_eq!(
        old.fault("PUT", "/serial", r#"{"serial_out_path":"/tmp/x"}"#),
        "Invalid request method and/or path: PUT serial."
    );
    let new13 = Fake::start("1.13.0");
    new13.ok("PUT", "/serial", r#"{}"#);
}

/// Firecracker's source (`open_file_write_nonblock`, used for `serial_out_path` by the
/// 1.13+ device manager): `O_WRONLY | O_CREAT | O_NONBLOCK`, neither `O_APPEND` nor
/// `O_TRUNC`. So a regular file is overwritten from its start, and a named pipe without a
/// reader cannot be opened (`ENXIO`), which fails InstanceStart.
#[test]
fn serial_out_path_is_opened_as_firecracker_opens_it() {
    let fake = Fake::start("1.14.1");
    let console = fake.path("console.log");
    std::fs::write(&console, vec![b'Z'; 64 * 1024]).unwrap();
    fake.ok(
        "PUT",
        "/serial",
        &json(serde_json::json!({ "serial_out_path": console })),
    );
    fake.boot();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read(&console).unwrap();
        if text.starts_with(b"[    0.000000] Linux version") {
            assert_eq!(text.len(), 64 * 1024, "not truncated, not appended");
            assert_eq!(text.last(), Some(&b'Z'));
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }

    let fake = Fake::start("1.14.1");
    let fifo = fake.path("console.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fake.ok(
        "PUT",
        "/serial",
        &json(serde_json::json!({ "serial_out_path": fifo })),
    );
    fake.configure();
    let msg = fake.fault("PUT", "/actions", r#"{"action_type":"InstanceStart"}"#);
    assert!(msg.contains("(os error 6)"), "{msg}");
}

/// Firecracker's serial (`devices/legacy/serial.rs`): the UART is written without blocking;
/// a byte the output does not take is lost, with `Failed the write to serial: …` in the log,
/// and the guest goes on. Here the console pipe has a reader that never reads.
#[test]
fn a_full_console_pipe_drops_the_guests_output_and_logs_it() {
    use std::os::unix::fs::OpenOptionsExt;
    let fake = Fake::start("1.14.1");
    let fifo = fake.path("console.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let log = fake.path("fc.log");
    fake.ok(
        "PUT",
        "/logger",
        &json(serde_json::json!({ "log_path": log, "level": "Info" })),
    );
    fake.ok(
        "PUT",
        "/serial",
        &json(serde_json::json!({ "serial_out_path": fifo })),
    );
    fake.boot();
    // The guest floods its ttyS0 with more than a pipe holds (64 KiB).
    let tty = fake.path("fake-guest/ttyS0");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !tty.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no ttyS0 in the guest"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&tty, vec![b'y'; 128 * 1024]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Failed the write to serial: IOError(Os { code: 11") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The guest (and the API) go on.
    assert_eq!(fake.state(), "Running");
}

#[test]
fn vsock_socket_rules() {
    for v in BOTH {
        let fake = Fake::start(v);
        let uds = fake.path("v.sock");
        // "the socket is created at PUT time"
        fake.ok(
            "PUT",
            "/vsock",
            &json(serde_json::json!({"guest_cid":3,"uds_path":uds})),
        );
        assert!(uds.exists());
        // "`PUT /vsock` with guest_cid 2 was accepted (204) by both"; "a second `PUT /vsock`
        // before boot replaces the first."
        let uds2 = fake.path("v2.sock");
        fake.ok(
            "PUT",
            "/vsock",
            &json(serde_json::json!({"guest_cid":2,"uds_path":uds2})),
        );
        // "`uds_path` must not exist before `PUT /vsock`"; "vsock uds_path already exists:
        // `Vsock config error: Cannot create backend for vsock device: Error binding to the
        // host-side Unix socket: Address already in use (os error 98)`"
        let msg = fake.fault(
            "PUT",
            "/vsock",
            &json(serde_json::json!({"guest_cid":3,"uds_path":uds})),
        );
        let want = "Cannot create backend for vsock device: Error binding to the host-side Unix \
                    socket: Address already in use (os error 98)";
        if v == "1.14.1" {
            assert_eq!(msg, format!("Vsock config error: {want}"));
        } else {
            assert_eq!(msg, want);
        }
    }
}

#[test]
fn network_interfaces_need_an_existing_tap() {
    // "`PUT /network-interfaces` with a TAP name that does not exist: run as root,
    // Firecracker's TUNSETIFF CREATES that TAP … banger must create, own and clean up its
    // TAPs itself." The fake refuses rather than create host devices.
    let fake = Fake::start("1.14.1");
    let msg = fake.fault(
        "PUT",
        "/network-interfaces/eth0",
        r#"{"iface_id":"eth0","host_dev_name":"bgnosuchtap0"}"#,
    );
    assert!(
        msg.starts_with("Network config error: Open tap device failed"),
        "{msg}"
    );
    assert_eq!(
        fake.fault(
            "PUT",
            "/network-interfaces/eth0",
            r#"{"iface_id":"eth1","host_dev_name":"lo"}"#
        ),
        "The id from the path does not match the id from the body!"
    );
    let msg = fake.fault(
        "PUT",
        "/network-interfaces/eth0",
        r#"{"iface_id":"eth0","host_dev_name":"lo"}"#,
    );
    assert!(msg.contains("not a TAP"), "{msg}");
}
