//! The fake's API transport and bodies: `--version`, `GET /`, unknown fields, malformed
//! requests. Each rule is tested against the line of `shared/notes/firecracker-api.md` it
//! comes from (quoted above each assertion), in the personalities the notes observed.

use crate::support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;

use support::{BOTH, Fake, elf_kernel, json};

#[test]
fn version_output_is_byte_for_byte() {
    // "v1.14.1 stdout, exactly: `Firecracker v1.14.1\n\n2026-11-28T13:49:55.559793615
    // [anonymous-instance:main] Firecracker exiting successfully. exit_code=0\n`"
    // "`--version`, exit 0, nothing on stderr."
    let out = Command::new(support::FAKE)
        .arg("--version")
        .env("FAKE_FIRECRACKER_VERSION", "1.14.1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    let (first, rest) = text.split_once("\n\n").unwrap();
    assert_eq!(first, "Firecracker v1.14.1");
    assert!(
        rest.ends_with(
            " [anonymous-instance:main] Firecracker exiting successfully. exit_code=0\n"
        ),
        "{rest:?}"
    );
    let timestamp = rest.split(' ').next().unwrap();
    assert_eq!(
        timestamp.len(),
        "2026-11-28T13:49:55.559793615".len(),
        "{timestamp}"
    );
    assert_eq!(&timestamp[10..11], "T");
    // "v1.5.0 stdout: `Firecracker v1.5.0\n\nSupported snapshot data format versions:\n0.23.0\n
    // 0.24.0\n0.25.0\n1.0.0\n1.1.0\n1.2.0\n1.3.0\n1.4.0\n1.5.0\n`"
    let out = Command::new(support::FAKE)
        .arg("--version")
        .env("FAKE_FIRECRACKER_VERSION", "1.5.0")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Firecracker v1.5.0\n\nSupported snapshot data format versions:\n0.23.0\n0.24.0\n\
         0.25.0\n1.0.0\n1.1.0\n1.2.0\n1.3.0\n1.4.0\n1.5.0\n"
    );
}

#[test]
fn instance_info_and_states() {
    for v in BOTH {
        let fake = Fake::start(v);
        // "`GET /` before boot: 200 `{"id":"anonymous-instance","state":"Not started",
        // "vmm_version":"1.14.1","app_name":"Firecracker"}`"
        let (status, body) = fake.call("GET", "/", "");
        assert_eq!(status, 200);
        let info: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(info["id"], "anonymous-instance");
        assert_eq!(info["state"], "Not started");
        assert_eq!(info["vmm_version"], v);
        assert_eq!(info["app_name"], "Firecracker");
        // "after InstanceStart: `"state":"Running"`"; "InstanceStart answers 204"
        fake.boot();
        assert_eq!(fake.state(), "Running");
        // "Running: `PATCH /vm {"state":"Paused"}` → 204 and `GET /` says `"Paused"`;
        // `Resumed` → 204"
        fake.ok("PATCH", "/vm", r#"{"state":"Paused"}"#);
        assert_eq!(fake.state(), "Paused");
        fake.ok("PATCH", "/vm", r#"{"state":"Resumed"}"#);
        assert_eq!(fake.state(), "Running");
        // "`Bogus` → 400 `unknown variant `Bogus`, expected `Paused` or `Resumed``"
        let msg = fake.fault("PATCH", "/vm", r#"{"state":"Bogus"}"#);
        assert!(
            msg.contains("unknown variant `Bogus`, expected `Paused` or `Resumed`"),
            "{msg}"
        );
    }
}

#[test]
fn instance_id_comes_from_the_command_line() {
    let fake = Fake::start_with("1.14.1", 50, &["--id", "vm-42"]);
    let (_, body) = fake.call("GET", "/", "");
    assert!(body.contains(r#""id":"vm-42""#), "{body}");
}

#[test]
fn config_bodies_reject_unknown_fields() {
    // "Config bodies reject unknown fields (`deny_unknown_fields`)"; "unknown field: `An error
    // occurred when deserializing the json body of a request: unknown field `bogus_field`,
    // expected one of `kernel_image_path`, `initrd_path`, `boot_args` at line 1 column 89.`"
    for v in BOTH {
        let fake = Fake::start(v);
        let body = json(serde_json::json!({
            "kernel_image_path": elf_kernel(), "bogus_field": 1
        }));
        let msg = fake.fault("PUT", "/boot-source", &body);
        assert!(
            msg.starts_with(
                "An error occurred when deserializing the json body of a request: unknown \
                 field `bogus_field`, expected one of `kernel_image_path`, `initrd_path`, \
                 `boot_args` at line 1 column "
            ),
            "{msg}"
        );
        assert!(msg.ends_with('.'), "{msg}");
        for (path, body) in [
            (
                "/machine-config",
                r#"{"vcpu_count":1,"mem_size_mib":128,"x":1}"#,
            ),
            ("/vsock", r#"{"guest_cid":3,"uds_path":"/tmp/x","x":1}"#),
            ("/actions", r#"{"action_type":"InstanceStart","x":1}"#),
            ("/metrics", r#"{"metrics_path":"/tmp/x","x":1}"#),
        ] {
            let msg = fake.fault("PUT", path, body);
            assert!(msg.contains("unknown field `x`"), "{v} {path}: {msg}");
        }
    }
}

#[test]
fn malformed_json_unknown_paths_and_methods() {
    let fake = Fake::start("1.14.1");
    // "malformed JSON: `An error occurred when deserializing the json body of a request:
    // expected ident at line 1 column 2.`"
    assert_eq!(
        fake.fault("PUT", "/boot-source", "nope"),
        "An error occurred when deserializing the json body of a request: expected ident at \
         line 1 column 2."
    );
    // "Unknown path: 400 `Invalid request method and/or path: GET nope.`"
    assert_eq!(
        fake.fault("GET", "/nope", ""),
        "Invalid request method and/or path: GET nope."
    );
    // "an unsupported method (POST): 400 with a different body shape, `{ "error": "Invalid
    // HTTP Method: Unsupported HTTP method.\nAll previous unanswered requests will be
    // dropped." }`"
    let (status, body) = fake.call("POST", "/actions", "{}");
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"],
        "Invalid HTTP Method: Unsupported HTTP method.\nAll previous unanswered requests will \
         be dropped."
    );
    // "unknown action: `unknown variant `Bogus`, expected one of `FlushMetrics`,
    // `InstanceStart`, `SendCtrlAltDel``"
    let msg = fake.fault("PUT", "/actions", r#"{"action_type":"Bogus"}"#);
    assert!(
        msg.contains(
            "unknown variant `Bogus`, expected one of `FlushMetrics`, `InstanceStart`, \
             `SendCtrlAltDel`"
        ),
        "{msg}"
    );
    // "Bodies are sized by Content-Length; max payload 51200 bytes by default."
    // (The size is judged from the header, before any of the body is read.)
    let mut s = UnixStream::connect(&fake.sock).unwrap();
    s.write_all(b"PUT /boot-source HTTP/1.1\r\nContent-Length: 51201\r\n\r\n")
        .unwrap();
    let (status, body) = support::read_response(&mut std::io::BufReader::new(s));
    assert_eq!(status, 400);
    assert!(body.contains("larger than the limit of 51200"), "{body}");
}

#[test]
fn stale_api_socket_is_not_removed_for_you() {
    // "remove a stale socket file before starting"
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    std::fs::write(&sock, "").unwrap();
    let out = Command::new(support::FAKE)
        .arg("--api-sock")
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Failed to open the API socket"));
}
