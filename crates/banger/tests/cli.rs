//! The `banger` binary's own surface: help, completions, man page, doctor's exit code
//! and JSON, and clear errors for bad invocations. No VMs here (see crates/e2e).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{banger, text};

#[test]
fn help_teaches_the_main_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = banger(&dir, &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "banger vm run --rm -- uname -a",
        "banger doctor",
        "docs/privileges.md",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = banger(&dir, &["vm", "exec", "--help"]);
    assert!(
        text(&out.stdout).contains("exit code"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let dir = tempfile::tempdir().unwrap();
    let bash = banger(&dir, &["completions", "bash"]);
    assert!(bash.status.success());
    let bash = text(&bash.stdout);
    assert!(
        bash.contains("_banger()") && bash.contains("inspect"),
        "{bash}"
    );
    let zsh = text(&banger(&dir, &["completions", "zsh"]).stdout);
    assert!(zsh.starts_with("#compdef banger"), "{zsh}");
    let man = banger(&dir, &["man"]);
    assert!(man.status.success());
    let man = text(&man.stdout);
    assert!(
        man.contains(".TH banger 1") && man.contains("doctor"),
        "{man}"
    );
    let bad = banger(&dir, &["completions", "cmd.exe"]);
    assert!(!bad.status.success());
}

#[test]
fn doctor_json_matches_its_exit_code_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = banger(&dir, &["doctor", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    let failed = report["counts"]["fail"].as_u64().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(failed == 0));
    assert_eq!(
        out.status.code(),
        Some(if failed == 0 { 0 } else { 1 }),
        "{report}"
    );
    for group in ["host", "state store", "vm defaults", "vmm", "security"] {
        assert!(
            report["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == group),
            "no group {group}: {report}"
        );
    }
    // Read-only: a fresh installation stays empty.
    assert!(
        !dir.path().join("state").exists(),
        "doctor created the state dir"
    );

    let human = banger(&dir, &["doctor"]);
    assert_eq!(human.status.code(), out.status.code());
    assert!(text(&human.stdout).contains("security posture"));
}

#[test]
fn a_broken_config_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/config.toml"),
        "vmm = \"qemu\"\n[vm_defaults]\nvcpu = 99\n",
    )
    .unwrap();
    let out = banger(&dir, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["group"] == "config")
        .unwrap()
        .clone();
    assert_eq!(config["status"], "fail", "{config}");
    assert!(config.to_string().contains("config.toml:3:"), "{config}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn unknown_subcommands_and_missing_daemons_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = banger(&dir, &["vm", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("frobnicate"));
    let out = banger(&dir, &["daemon", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("not running"));
    let out = banger(&dir, &["daemon", "stop"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("no banger daemon is running"));
}
