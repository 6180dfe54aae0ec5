//! Lifecycle rules of the fake: InstanceStart, pre/post-boot operations, snapshots, the
//! hybrid-vsock handshake and Ctrl-Alt-Del, each tested against the line of
//! `shared/notes/firecracker-api.md` it comes from.

use crate::support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use support::{BOTH, Fake, elf_kernel, json};

#[test]
fn instance_start_preconditions() {
    for v in BOTH {
        let fake = Fake::start(v);
        // "`InstanceStart` without `PUT /boot-source`: 400 `Start microvm error: Cannot start
        // microvm without kernel configuration.` (1.5.0 without the `Start microvm error: `
        // prefix)."
        let msg = fake.fault("PUT", "/actions", r#"{"action_type":"InstanceStart"}"#);
        let want = "Cannot start microvm without kernel configuration.";
        if v == "1.14.1" {
            assert_eq!(msg, format!("Start microvm error: {want}"));
        } else {
            assert_eq!(msg, want);
        }
        // "x86_64 boots only an uncompressed ELF `vmlinux` (not bzImage)"
        let bzimage = fake.path("bzImage");
        std::fs::write(&bzimage, b"MZ\x00\x00not an ELF at all").unwrap();
        fake.ok(
            "PUT",
            "/boot-source",
            &json(serde_json::json!({ "kernel_image_path": bzimage })),
        );
        let msg = fake.fault("PUT", "/actions", r#"{"action_type":"InstanceStart"}"#);
        assert!(msg.contains("invalid kernel image"), "{msg}");
        // "A kernel alone is enough: InstanceStart with no drive at all answers 204."
        fake.ok(
            "PUT",
            "/boot-source",
            &json(serde_json::json!({ "kernel_image_path": elf_kernel() })),
        );
        fake.ok("PUT", "/actions", r#"{"action_type":"InstanceStart"}"#);
    }
}

#[test]
fn pre_boot_and_post_boot_only_operations() {
    for v in BOTH {
        let fake = Fake::start(v);
        let before = "The requested operation is not supported before starting the microVM.";
        let after = "The requested operation is not supported after starting the microVM.";
        // "Before boot, `PATCH /vm` and `SendCtrlAltDel` answer 400 `The requested operation
        // is not supported before starting the microVM.`"
        assert_eq!(fake.fault("PATCH", "/vm", r#"{"state":"Paused"}"#), before);
        assert_eq!(
            fake.fault("PUT", "/actions", r#"{"action_type":"SendCtrlAltDel"}"#),
            before
        );
        fake.boot();
        // "after boot, every pre-boot resource (`/drives`, `/logger`, `/metrics`, `/vsock`,
        // `/boot-source`, `/machine-config`, a second `InstanceStart`) answers 400 `The
        // requested operation is not supported after starting the microVM.`"
        let disk = fake.path("work.ext4");
        for (path, body) in [
            (
                "/drives/more",
                json(serde_json::json!({"drive_id":"more","path_on_host":disk,
                    "is_root_device":false,"is_read_only":true})),
            ),
            ("/logger", json(serde_json::json!({"log_path": disk}))),
            ("/metrics", json(serde_json::json!({"metrics_path": disk}))),
            (
                "/vsock",
                json(serde_json::json!({"guest_cid":4,"uds_path":"/tmp/nope"})),
            ),
            (
                "/boot-source",
                json(serde_json::json!({"kernel_image_path": elf_kernel()})),
            ),
            (
                "/machine-config",
                r#"{"vcpu_count":1,"mem_size_mib":128}"#.to_owned(),
            ),
            ("/actions", r#"{"action_type":"InstanceStart"}"#.to_owned()),
        ] {
            assert_eq!(fake.fault("PUT", path, &body), after, "{v} PUT {path}");
        }
        // "`FlushMetrics` → 204."
        fake.ok("PUT", "/actions", r#"{"action_type":"FlushMetrics"}"#);
    }
}

#[test]
fn snapshot_shapes_and_preconditions() {
    for v in BOTH {
        let fake = Fake::start(v);
        let files = tempfile::tempdir().unwrap();
        let snap = files.path().join("snap");
        let mem = files.path().join("mem");
        let create = json(serde_json::json!({"snapshot_path": snap, "mem_file_path": mem}));
        // "Before boot: `The requested operation is not supported before starting the
        // microVM.`"
        assert_eq!(
            fake.fault("PUT", "/snapshot/create", &create),
            "The requested operation is not supported before starting the microVM."
        );
        fake.boot();
        // "`PUT /snapshot/create` while running → 400 `Create snapshot error: Cannot save the
        // microVM state: Operation not allowed: save/restore unavailable while running`
        // (1.5.0 without the first prefix)."
        let msg = fake.fault("PUT", "/snapshot/create", &create);
        let want = "Cannot save the microVM state: Operation not allowed: save/restore \
                    unavailable while running";
        if v == "1.14.1" {
            assert_eq!(msg, format!("Create snapshot error: {want}"));
        } else {
            assert_eq!(msg, want);
        }
        // "Create (VM must be Paused)"
        fake.ok("PATCH", "/vm", r#"{"state":"Paused"}"#);
        // "`snapshot/create` with `version`: v1.14.1 rejects it as an unknown field; v1.5.0
        // accepts it with a deprecation log."
        let with_version = json(serde_json::json!({
            "snapshot_path": snap, "mem_file_path": mem, "snapshot_type": "Full",
            "version": "1.5.0"
        }));
        if v == "1.14.1" {
            let msg = fake.fault("PUT", "/snapshot/create", &with_version);
            assert!(msg.contains("unknown field `version`"), "{msg}");
            fake.ok("PUT", "/snapshot/create", &create);
        } else {
            fake.ok("PUT", "/snapshot/create", &with_version);
        }
        assert!(snap.exists() && mem.exists());

        // "Load (only logger/metrics may be configured before)"
        let busy = Fake::start(v);
        busy.ok(
            "PUT",
            "/boot-source",
            &json(serde_json::json!({"kernel_image_path": elf_kernel()})),
        );
        let load = json(serde_json::json!({
            "snapshot_path": snap, "mem_backend": {"backend_path": mem, "backend_type": "File"}
        }));
        let msg = busy.fault("PUT", "/snapshot/load", &load);
        assert!(
            msg.contains("not allowed after configuring boot-specific resources"),
            "{msg}"
        );

        // The vsock socket of the original must be gone before the clone binds it again.
        let mut fake = fake;
        fake.kill();
        let _ = std::fs::remove_file(fake.path("v.sock"));
        let fresh = Fake::start(v);
        let log = fresh.path("fc.log");
        std::fs::write(&log, "").unwrap();
        fresh.ok(
            "PUT",
            "/logger",
            &json(serde_json::json!({"log_path": log})),
        );
        // "track_dirty_pages (1.13+; older: enable_diff_snapshots)"
        let dirty = if v == "1.14.1" {
            "enable_diff_snapshots"
        } else {
            "track_dirty_pages"
        };
        let wrong = json(serde_json::json!({
            "snapshot_path": snap, "mem_file_path": mem, dirty: false
        }));
        assert!(
            fresh
                .fault("PUT", "/snapshot/load", &wrong)
                .contains("unknown field")
        );
        fresh.ok("PUT", "/snapshot/load", &load);
        assert_eq!(fresh.state(), "Paused");
        fresh.ok("PATCH", "/vm", r#"{"state":"Resumed"}"#);
        assert_eq!(fresh.state(), "Running");
    }
}

#[test]
fn a_failed_snapshot_load_ends_the_process() {
    // "A failed load ends the process."; "Snapshot files do not move between Firecracker
    // versions."
    let mut fake = Fake::start("1.14.1");
    let snap = fake.path("snap");
    std::fs::write(&snap, br#"{"not":"a snapshot"}"#).unwrap();
    let mem = fake.path("mem");
    std::fs::write(&mem, b"").unwrap();
    let msg = fake.fault(
        "PUT",
        "/snapshot/load",
        &json(serde_json::json!({"snapshot_path": snap, "mem_file_path": mem})),
    );
    assert!(msg.starts_with("Load snapshot error: "), "{msg}");
    assert_eq!(fake.wait_exit(Duration::from_secs(10)), Some(1));
}

#[test]
fn hybrid_vsock_handshake() {
    // A long simulated boot: the guest's vsock driver is not up for 1.5 s.
    let fake = Fake::start_with("1.14.1", 1500, &[]);
    fake.boot();
    let uds = fake.path("v.sock");
    // "a host `CONNECT <port>\n` before the guest's vsock driver listens gets no answer and
    // no EOF" (for the boot's duration here).
    let mut early = UnixStream::connect(&uds).unwrap();
    early.write_all(b"CONNECT 1024\n").unwrap();
    early
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut byte = [0u8; 1];
    let err = early.read(&mut byte).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    // "Firecracker answers `OK <host-side port>\n` (a port it allocates, e.g. `OK
    // 1073741824`), then the raw stream." (Once the guest's driver is up and before its agent
    // listens, a CONNECT is closed: callers retry.)
    drop(early);
    let (_stream, line) = connect_ok(&uds, 1024);
    assert!(
        line[3..].trim().parse::<u32>().unwrap() >= 1 << 30,
        "{line:?}"
    );
    // "If nothing in the guest listens on P, the connection is closed."
    let mut other = UnixStream::connect(&uds).unwrap();
    other.write_all(b"CONNECT 5000\n").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(other.read(&mut byte).unwrap_or(0), 0);
    // "write `CONNECT P\n` in ONE write": a command split over writes is not understood.
    let mut split = UnixStream::connect(&uds).unwrap();
    split.write_all(b"CONNECT 10").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let _ = split.write_all(b"24\n");
    split
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(split.read(&mut byte).unwrap_or(0), 0);
}

/// CONNECT until the guest answers `OK`: (stream, the OK line).
fn connect_ok(uds: &std::path::Path, port: u32) -> (UnixStream, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = UnixStream::connect(uds).unwrap();
        s.write_all(format!("CONNECT {port}\n").as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let line = read_line(&mut s);
        if line.starts_with("OK ") {
            return (s, line);
        }
        assert!(std::time::Instant::now() < deadline, "no OK from the guest");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_line(s: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn ctrl_alt_del_powers_the_guest_off_and_firecracker_exits() {
    // "Other actions: FlushMetrics, SendCtrlAltDel (x86 only)"; with `reboot=k` the guest's
    // reboot ends Firecracker. The kernel delivers Ctrl-Alt-Del to PID 1 as SIGINT.
    let mut fake = Fake::start("1.14.1");
    fake.boot();
    // Wait for the agent to be up (its vsock port answers), then press the keys.
    let _agent = connect_ok(&fake.path("v.sock"), 1024);
    fake.ok("PUT", "/actions", r#"{"action_type":"SendCtrlAltDel"}"#);
    assert_eq!(fake.wait_exit(Duration::from_secs(30)), Some(0));
    let out = fake.stdout_after_exit();
    assert!(
        out.contains("Firecracker exiting successfully. exit_code=0"),
        "{out}"
    );
}
