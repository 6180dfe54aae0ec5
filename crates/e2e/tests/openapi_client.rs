//! The OpenAPI document is a contract programs can build on: a client generated from
//! `docs/openapi.json` by a real generator (`openapi-python-client` from PyPI) drives
//! a real daemon over its Unix socket through create → start → inspect → stop → rm,
//! booting a real guest.

use std::process::Command;

use banger_e2e::{Env, python, stderr, stdout, workspace_root};

#[test]
fn a_generated_python_client_drives_a_vm_through_its_life() {
    let work = tempfile::tempdir().expect("temp dir");
    let spec = workspace_root().join("docs/openapi.json");
    let pythonpath = python::generate_client(&spec, "banger_client", work.path())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let venv = python::venv().unwrap_or_else(|e| panic!("{e:#}"));

    let env = Env::new().unwrap_or_else(|e| panic!("{e:#}"));
    env.ok(["vm", "ls"]); // starts this installation's daemon
    let socket = env.runtime_dir().join("bangerd.sock");
    let script = workspace_root().join("crates/e2e/tests/openapi_client/drive.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(&socket)
        .arg("py-client")
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("run the Python driver");
    assert!(
        out.status.success(),
        "the generated client failed ({}):\nstdout: {}\nstderr: {}\n{}",
        out.status,
        stdout(&out),
        stderr(&out),
        env.diagnostics()
    );

    let steps: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {steps:?}"))
            .clone()
    };
    let create = step("create");
    assert_eq!(create["status"], 201);
    assert_eq!(create["state"], "created");
    assert_eq!(
        create["location"],
        format!("/v1/vms/{}", create["id"].as_str().unwrap_or_default())
    );
    assert_eq!(step("start")["state"], "running");
    let inspect = step("inspect");
    assert_eq!(inspect["state"], "running");
    assert!(inspect["pid"].as_i64().is_some_and(|p| p > 0), "{inspect}");
    assert!(inspect["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(step("list")["names"], serde_json::json!(["py-client"]));
    assert_eq!(step("stop")["state"], "stopped");
    assert_eq!(step("rm")["state"], "removed");
    assert_eq!(step("gone")["kind"], "not_found");
    let invalid = step("invalid");
    assert_eq!(invalid["field"], "memory_mib");
    assert!(
        invalid["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("memory_mib 1 ")),
        "{invalid}"
    );

    // The CLI sees what the client did.
    assert_eq!(env.ok(["vm", "ls", "--json"]).trim(), "[]");
}
