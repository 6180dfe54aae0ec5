//! The `banger` binary's own surface: help, completions, man page, doctor's exit code
//! and JSON, and clear errors for bad invocations. No VMs here (see crates/e2e).

use crate::support;

use std::process::Command;

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
fn completion_scripts_call_banger_back_for_dynamic_answers() {
    let dir = tempfile::tempdir().unwrap();
    let bash = banger(&dir, &["completions", "bash"]);
    assert!(bash.status.success());
    let bash = text(&bash.stdout);
    assert!(
        bash.contains("BANGER_COMPLETE=\"bash\"") && bash.contains("complete "),
        "{bash}"
    );
    let zsh = text(&banger(&dir, &["completions", "zsh"]).stdout);
    assert!(zsh.starts_with("#compdef banger"), "{zsh}");
    let fish = text(&banger(&dir, &["completions", "fish"]).stdout);
    assert!(fish.contains("BANGER_COMPLETE=fish"), "{fish}");
    let bad = banger(&dir, &["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));

    // What the script asks at a Tab: subcommands and flags come from the definition.
    let words = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_banger"))
            .args(args)
            .env("BANGER_COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (args.len() - 3).to_string())
            .env("BANGER_RUNTIME_DIR", dir.path().join("run"))
            .env("BANGER_STATE_DIR", dir.path().join("state"))
            .env("BANGER_CONFIG_DIR", dir.path().join("config"))
            .env("BANGER_ETC_DIR", dir.path().join("etc"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let top = words(&["banger", "--", "banger", "ex"]);
    assert!(top.contains("exec"), "{top:?}");
    let vm = words(&["banger", "--", "banger", "vm", "in"]);
    assert!(vm.contains("inspect"), "{vm:?}");
    // No daemon runs here: no VM names, no error, and no daemon started for a Tab.
    let names = words(&["banger", "--", "banger", "vm", "exec", ""]);
    assert!(!names.contains("error"), "{names:?}");
    assert!(
        !dir.path().join("state").exists(),
        "completion started a daemon"
    );
}

#[test]
fn one_man_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let man = banger(&dir, &["man"]);
    assert!(man.status.success());
    let man = text(&man.stdout);
    assert!(
        man.contains(".TH banger 1") && man.contains("doctor"),
        "{man}"
    );
    let run = text(&banger(&dir, &["man", "vm", "run"]).stdout);
    assert!(run.contains(".TH banger-vm-run 1"), "{run}");
    assert!(
        run.contains("\\-\\-memory") && run.contains("Exit status"),
        "{run}"
    );
    let bad = banger(&dir, &["man", "vm", "frobnicate"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("banger vm --help"),
        "{}",
        text(&bad.stderr)
    );

    let pages = dir.path().join("man1");
    let out = banger(&dir, &["man", "--dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "banger.1",
        "banger-vm.1",
        "banger-vm-run.1",
        "banger-vm-exec.1",
        "banger-image-prune.1",
        "banger-run.1",
        "banger-doctor.1",
    ] {
        assert!(pages.join(page).is_file(), "{page} was not written");
    }
    // Every page is valid roff that man(1) can format.
    let formatted = Command::new("man")
        .args(["-l", "-Tutf8"])
        .arg(pages.join("banger-vm-exec.1"))
        .env("MANPAGER", "cat")
        .output()
        .expect("man(1) is installed (scripts/install-deps installs man-db)");
    assert!(formatted.status.success(), "{}", text(&formatted.stderr));
    assert!(text(&formatted.stdout).contains("banger-vm-exec"));
}

#[test]
fn exit_statuses_tell_banger_failures_from_the_guest_commands() {
    let dir = tempfile::tempdir().unwrap();
    // A bad command line: 2, but 125 for run and exec, whose 2 could be the guest's.
    assert_eq!(
        banger(&dir, &["vm", "ls", "--bogus"]).status.code(),
        Some(2)
    );
    for args in [
        &["exec", "--bogus", "dev", "true"][..],
        &["vm", "exec", "dev"],
        &["run", "--memory", "lots", "true"],
        &["vm", "run", "--rm", "-d"],
    ] {
        let out = banger(&dir, args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // -t with stdin not a terminal is refused before anything runs, as docker does.
    for args in [
        &["exec", "-it", "dev", "--", "sh"][..],
        &["vm", "run", "--rm", "-t", "sh"],
    ] {
        let out = banger(&dir, args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(
            text(&out.stderr).contains("the input device is not a TTY"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            !dir.path().join("state").exists(),
            "a daemon was started for {args:?}"
        );
    }
    // Help is not an error.
    assert_eq!(banger(&dir, &["exec", "--help"]).status.code(), Some(0));
}

/// `run --json` prints the booted VM; with a command it would be silently ignored, so it
/// is refused before a daemon is even asked.
#[test]
fn run_json_with_a_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = banger(&dir, &["run", "--rm", "--json", "--", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("--json"), "{err}");
    assert!(!dir.path().join("state").exists(), "a daemon was started");
}

/// A negative number is a bad value of its flag, not an unknown flag `-1` with a tip to
/// write `-- -1` (which would make it the guest command or a VM name).
#[test]
fn a_negative_number_is_refused_as_the_flags_value() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (&["vm", "create", "--memory", "-1"][..], "--memory"),
        (&["vm", "create", "--disk", "-1"], "--disk"),
        (&["vm", "create", "--vcpu", "-1"], "--vcpu"),
        (&["vm", "stop", "-t", "-1", "dev"], "--timeout"),
        (&["vm", "logs", "--tail", "-1", "dev"], "--tail"),
    ] {
        let out = banger(&dir, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("invalid value '-1'") && err.contains(flag),
            "{args:?}: {err}"
        );
        assert!(!err.contains("-- -1"), "{args:?}: {err}");
    }
    assert!(!dir.path().join("state").exists(), "a daemon was started");
}

#[test]
fn help_documents_exit_statuses_and_size_units() {
    let dir = tempfile::tempdir().unwrap();
    let exec = text(&banger(&dir, &["exec", "--help"]).stdout);
    for needle in ["125", "126", "127", "-- cat /etc/os-release"] {
        assert!(exec.contains(needle), "exec --help lacks {needle}:\n{exec}");
    }
    let run = text(&banger(&dir, &["vm", "run", "--help"]).stdout);
    assert!(
        run.contains("512m") && run.contains("plain number is MiB"),
        "{run}"
    );
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
