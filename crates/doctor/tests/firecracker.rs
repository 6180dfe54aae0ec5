//! The Firecracker binary check against fake firecracker scripts, and the
//! distro-aware install hint against os-release fixtures.

use crate::common;

use banger_config::{Config, VmmPreference};
use banger_doctor::checks::firecracker::{FirecrackerProbe, check_firecracker};
use banger_doctor::checks::install_hint::{
    RELEASES_URL, firecracker_install_lines, install_command,
};
use banger_doctor::{Status, groups};
use common::{FakeHost, ScriptedRunner, fake_firecracker};

fn probe(host: &FakeHost, runner: &ScriptedRunner, required: bool) -> banger_doctor::Check {
    let bin = host.path("bin/firecracker");
    let search = host.path("bin").into_os_string();
    check_firecracker(&FirecrackerProbe {
        runner,
        bin: bin.to_str().unwrap(),
        search_path: Some(&search),
        os_release: &host.path("etc/os-release"),
        required,
    })
}

#[test]
fn tested_version_passes() {
    let host = FakeHost::new();
    fake_firecracker(&host, "1.14.1");
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.summary.starts_with("v1.14.1 at "), "{}", c.summary);
}

#[test]
fn minimum_version_passes() {
    let host = FakeHost::new();
    host.script(
        "firecracker",
        "printf 'Firecracker v1.5.0\\n\\nSupported snapshot data format versions:\\n0.23.0\\n1.5.0\\n'",
    );
    assert_eq!(
        probe(&host, &ScriptedRunner::new(), true).status,
        Status::Pass
    );
}

#[test]
fn newer_than_tested_warns() {
    let host = FakeHost::new();
    fake_firecracker(&host, "1.15.0");
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.summary.contains("newer than the tested v1.14.1"),
        "{}",
        c.summary
    );
}

#[test]
fn older_than_minimum_fails() {
    let host = FakeHost::new();
    fake_firecracker(&host, "1.4.1");
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary
            .contains("older than the supported minimum v1.5.0"),
        "{}",
        c.summary
    );
    assert!(c.hint.unwrap().contains(RELEASES_URL));
}

#[test]
fn prerelease_of_the_minimum_fails() {
    let host = FakeHost::new();
    fake_firecracker(&host, "1.5.0-rc.1");
    assert_eq!(
        probe(&host, &ScriptedRunner::new(), true).status,
        Status::Fail
    );
}

#[test]
fn missing_binary_fails_with_releases_url() {
    let host = FakeHost::new();
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.starts_with("not found"), "{}", c.summary);
    assert!(
        c.details.iter().any(|d| d.contains(RELEASES_URL)),
        "{:?}",
        c.details
    );
}

#[test]
fn failing_version_command_fails_with_its_stderr() {
    let host = FakeHost::new();
    host.script("firecracker", "echo 'illegal instruction' >&2\nexit 132");
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("--version` failed"), "{}", c.summary);
    assert!(
        c.details[0].contains("illegal instruction"),
        "{:?}",
        c.details
    );
    assert!(c.details[0].contains("132"), "{:?}", c.details);
}

#[test]
fn garbage_version_output_fails() {
    let host = FakeHost::new();
    host.script("firecracker", "echo 'hello'");
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.details[0].contains("hello"), "{:?}", c.details);
}

#[test]
fn missing_binary_fails_even_when_qemu_is_the_driver() {
    let host = FakeHost::new();
    host.script("qemu-system-x86_64", "exit 0");
    let config = Config {
        vmm: VmmPreference::Qemu,
        ..Config::default()
    };
    let report = banger_doctor::run(&host.context(config, ScriptedRunner::new()));
    let c = report.find(groups::VMM, "firecracker binary").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.details.iter().any(|d| d.contains(RELEASES_URL)),
        "{:?}",
        c.details
    );
    assert!(
        c.details.iter().any(|d| d.contains("VMs run under QEMU")),
        "{:?}",
        c.details
    );
}

#[test]
fn missing_binary_fails_when_firecracker_is_the_configured_driver() {
    let host = FakeHost::new();
    host.script("qemu-system-x86_64", "exit 0");
    let config = Config {
        vmm: VmmPreference::Firecracker,
        ..Config::default()
    };
    let report = banger_doctor::run(&host.context(config, ScriptedRunner::new()));
    let c = report.find(groups::VMM, "firecracker binary").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert_eq!(
        report.find(groups::VMM, "driver").unwrap().status,
        Status::Fail
    );
    assert!(report.has_failures());
}

// --- install hint dispatch ------------------------------------------------------

const APT_CANDIDATE: &str = "firecracker:\n  Installed: (none)\n  Candidate: 1.10.1+dfsg-1\n  Version table:\n     1.10.1+dfsg-1 500\n";
const APT_NONE: &str = "firecracker:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n";

fn hint_for(os_release: Option<&str>, runner: &ScriptedRunner) -> Option<String> {
    let host = FakeHost::new();
    let path = host.path("etc/os-release");
    if let Some(text) = os_release {
        std::fs::write(&path, text).unwrap();
    }
    let lines = firecracker_install_lines(&path, runner);
    assert!(lines.last().unwrap().contains(RELEASES_URL), "{lines:?}");
    install_command(&path, runner)
}

fn apt(policy: &str) -> ScriptedRunner {
    ScriptedRunner::new().answer("apt-cache policy firecracker", policy, 0)
}

#[test]
fn debian_with_a_candidate_suggests_apt() {
    let hint = hint_for(
        Some("ID=debian\nVERSION_CODENAME=trixie\n"),
        &apt(APT_CANDIDATE),
    );
    assert_eq!(hint.as_deref(), Some("sudo apt install firecracker"));
}

#[test]
fn debian_without_a_candidate_gets_only_the_url() {
    assert_eq!(hint_for(Some("ID=debian\n"), &apt(APT_NONE)), None);
    // apt-cache missing or failing: no guess either.
    assert_eq!(hint_for(Some("ID=debian\n"), &ScriptedRunner::new()), None);
    let failing = ScriptedRunner::new().answer("apt-cache policy firecracker", APT_CANDIDATE, 100);
    assert_eq!(hint_for(Some("ID=debian\n"), &failing), None);
}

#[test]
fn ubuntu_is_matched_through_id_like() {
    let hint = hint_for(Some("ID=ubuntu\nID_LIKE=debian\n"), &apt(APT_CANDIDATE));
    assert_eq!(hint.as_deref(), Some("sudo apt install firecracker"));
    let runner = apt(APT_CANDIDATE);
    hint_for(Some("ID=pop\nID_LIKE=\"ubuntu debian\"\n"), &runner).unwrap();
    // Only the read-only apt query was run, nothing else.
    let calls = runner.calls.lock().unwrap();
    assert!(
        !calls.is_empty() && calls.iter().all(|c| c == "apt-cache policy firecracker"),
        "{calls:?}"
    );
}

#[test]
fn arch_family_gets_an_aur_helper_line() {
    for os in [
        "ID=arch\n",
        "ID=manjaro\nID_LIKE=arch\n",
        "ID=endeavouros\nID_LIKE=arch\n",
    ] {
        let hint = hint_for(Some(os), &ScriptedRunner::new()).unwrap();
        assert!(hint.contains("paru -S firecracker"), "{os}: {hint}");
        assert!(hint.contains("AUR"), "{hint}");
    }
}

#[test]
fn nixos_gets_nix_env() {
    let hint = hint_for(Some("ID=nixos\n"), &ScriptedRunner::new()).unwrap();
    assert!(hint.starts_with("nix-env -iA nixos.firecracker"), "{hint}");
}

#[test]
fn fedora_and_missing_os_release_get_only_the_url() {
    let runner = ScriptedRunner::new();
    assert_eq!(
        hint_for(Some("ID=fedora\nID_LIKE=\"rhel centos\"\n"), &runner),
        None
    );
    assert_eq!(hint_for(None, &runner), None);
    // Nothing was asked of apt on a non-Debian host.
    assert!(runner.calls.lock().unwrap().is_empty());
}

/// A binary the root helper would refuse is reported in any mode (here: dev mode), with the
/// install command that fixes it.
#[test]
fn a_group_writable_or_symlinked_binary_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let host = FakeHost::new();
    let real = fake_firecracker(&host, "1.14.1");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o775)).unwrap();
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.details
            .iter()
            .any(|d| d.contains("writable by group or others")),
        "{c:?}"
    );
    assert!(
        c.hint
            .as_deref()
            .unwrap()
            .contains("sudo banger firecracker install"),
        "{c:?}"
    );

    let host = FakeHost::new();
    let target = host.path("opt/firecracker-real");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let real = fake_firecracker(&host, "1.14.1");
    std::fs::rename(&real, &target).unwrap();
    std::os::unix::fs::symlink(&target, &real).unwrap();
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.details.iter().any(|d| d.contains("symbolic link")),
        "{c:?}"
    );
}

#[test]
fn a_missing_binary_names_the_install_command() {
    let host = FakeHost::new();
    let c = probe(&host, &ScriptedRunner::new(), true);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.hint
            .as_deref()
            .unwrap()
            .contains("sudo banger firecracker install"),
        "{c:?}"
    );
}
