//! The API as a program sees it through curl on the daemon's socket: HTTP semantics,
//! the served OpenAPI document, and a boot's progress streamed as NDJSON.

use std::process::Command;

use banger_e2e::{Env, stderr, stdout, workspace_root};

/// `curl` against this installation's daemon; returns (status, headers, body).
fn curl(env: &Env, args: &[&str]) -> (u16, String, String) {
    let socket = env.runtime_dir().join("bangerd.sock");
    let out = Command::new("curl")
        .arg("--silent")
        .arg("--show-error")
        .arg("--no-buffer")
        .arg("--unix-socket")
        .arg(&socket)
        .args(["--max-time", "600", "--dump-header", "-"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (install it; scripts/install-deps does): {e}"));
    assert!(out.status.success(), "curl {args:?}: {}", stderr(&out));
    let text = stdout(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn semantics_seen_by_curl() {
    let env = Env::new().unwrap_or_else(|e| panic!("{e:#}"));
    env.ok(["vm", "ls"]);

    let (status, head, body) = curl(&env, &["-X", "PUT", "http://banger/v1/vms"]);
    assert_eq!(status, 405, "{body}");
    assert!(head.contains("allow: get,head,post"), "{head}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["kind"], "method_not_allowed");

    let (status, _, body) = curl(&env, &["http://banger/v2/vms"]);
    assert_eq!(status, 404, "{body}");

    let (status, head, body) = curl(&env, &["http://banger/v1/openapi.json"]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    let checked_in = std::fs::read_to_string(workspace_root().join("docs/openapi.json")).unwrap();
    assert_eq!(
        body, checked_in,
        "the daemon serves what docs/openapi.json says"
    );

    let (status, _, body) = curl(
        &env,
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name":"c","vcpu":0}"#,
            "http://banger/v1/vms",
        ],
    );
    assert_eq!(status, 400, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["field"], "vcpu");
}

#[test]
fn a_boot_streams_its_phases_then_the_result() {
    let env = Env::new().unwrap_or_else(|e| panic!("{e:#}"));
    env.ok(["vm", "ls"]);
    let (status, head, body) = curl(
        &env,
        &[
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/x-ndjson",
            "-d",
            r#"{"name":"streamed","start":true}"#,
            "http://banger/v1/vms",
        ],
    );
    assert_eq!(status, 200, "{body}\n{}", env.diagnostics());
    assert!(
        head.contains("content-type: application/x-ndjson"),
        "{head}"
    );
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let phases: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "phase")
        .filter_map(|l| l["name"].as_str())
        .collect();
    let position = |prefix: &str| {
        phases
            .iter()
            .position(|p| p.starts_with(prefix))
            .unwrap_or_else(|| panic!("no phase {prefix:?} in {phases:?}"))
    };
    assert!(position("start the VMM") < position("boot the guest kernel"));
    assert!(position("boot the guest kernel") < position("guest kernel running"));
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "result", "{body}");
    assert_eq!(last["status"], 201);
    assert_eq!(last["value"]["state"], "running");
    assert_eq!(env.vm_json("streamed")["state"], "running");
}
