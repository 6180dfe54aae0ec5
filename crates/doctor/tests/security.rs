//! Security posture against a fake system install: install.toml, unit files, REAL
//! Unix sockets with chosen modes and owners, systemctl answered by a script.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use banger_config::Config;
use banger_doctor::checks::security::{PostureInputs, posture};
use banger_doctor::{Check, Status, groups};
use banger_sysinstall::{InstallPlan, render};
use banger_system::cgroup::{CgroupLayout, CgroupMounts};
use common::{FakeHost, ScriptedRunner};

/// The units exactly as `banger system install` renders them for `user`.
fn plan(user: &str) -> InstallPlan {
    InstallPlan {
        owner_user: user.into(),
        owner_uid: uid(),
        owner_gid: 0,
        version: "0.1.0".into(),
        build: "test".into(),
        prefix: "/usr/local".into(),
        etc_dir: "/etc/banger".into(),
        unit_dir: "/etc/systemd/system".into(),
        state_dir: "/var/lib/banger".into(),
        runtime_dir: "/run/banger".into(),
        helper_runtime_dir: "/run/banger-helper".into(),
        owner_config_dir: format!("/home/{user}/.config/banger").into(),
        owner_home: Some(format!("/home/{user}").into()),
        manage_services: true,
        socket_timeout: banger_sysinstall::plan::SOCKET_TIMEOUT,
        jail: None,
        posture_why: "network only".into(),
        cgroup: layout(HYBRID),
    }
}

/// A stand-in mount table (mountinfo) of a hybrid host (v1 memory and pids hierarchies).
const HYBRID: &str = "\
    25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n\
    26 25 0:22 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n\
    30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory\n\
    33 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids\n";

/// A stand-in mount table (mountinfo) of a pure cgroup v2 host.
const UNIFIED: &str = "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - \
    cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

/// The layout of the host whose mountinfo is `table`.
fn layout(table: &str) -> Option<CgroupLayout> {
    CgroupLayout::of(&CgroupMounts::parse(table))
}

fn helper_unit() -> String {
    render::helper_unit(&plan("al"))
}

fn daemon_unit(user: &str) -> String {
    render::daemon_unit(&plan(user))
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// A complete, correct system install in `host`; returns the bound listeners (the
/// sockets exist while they live).
fn install(host: &FakeHost) -> (UnixListener, UnixListener) {
    std::fs::write(
        host.path("etc/install.toml"),
        format!("owner_user = \"al\"\nowner_uid = {}\n", uid()),
    )
    .unwrap();
    std::fs::write(host.path("systemd/banger-helper.service"), helper_unit()).unwrap();
    std::fs::write(host.path("systemd/bangerd.service"), daemon_unit("al")).unwrap();
    std::fs::write(host.path("mountinfo"), HYBRID).unwrap();
    let helper = socket(&host.path("run/helper.sock"), 0o600);
    let daemon = socket(&host.path("run/bangerd.sock"), 0o600);
    (helper, daemon)
}

fn socket(path: &Path, mode: u32) -> UnixListener {
    let listener = UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    listener
}

fn systemctl(helper: &str, daemon: &str) -> ScriptedRunner {
    let code = |state: &str| if state == "active" { 0 } else { 3 };
    ScriptedRunner::new()
        .answer(
            "systemctl is-active banger-helper.service",
            &format!("{helper}\n"),
            code(helper),
        )
        .answer(
            "systemctl is-active bangerd.service",
            &format!("{daemon}\n"),
            code(daemon),
        )
}

fn run(host: &FakeHost, runner: &ScriptedRunner, binaries: &[(String, PathBuf)]) -> Vec<Check> {
    posture(&PostureInputs {
        runner,
        install_toml: &host.path("etc/install.toml"),
        systemd_dir: &host.path("systemd"),
        helper_socket: &host.path("run/helper.sock"),
        daemon_socket: &host.path("run/bangerd.sock"),
        vmm_binaries: binaries,
        mountinfo: &host.path("mountinfo"),
    })
}

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {checks:#?}"))
}

/// chown to another uid needs root; the build hosts run tests as root.
fn is_root() -> bool {
    if uid() != 0 {
        eprintln!("skipped: needs root to chown files");
    }
    uid() == 0
}

fn root_binary(host: &FakeHost, mode: u32) -> PathBuf {
    let path = host.path("bin/firecracker");
    std::fs::write(&path, b"\x7fELF").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn dev_mode_is_a_single_warning_pointing_at_the_docs() {
    let host = FakeHost::new();
    let checks = run(&host, &ScriptedRunner::new(), &[]);
    assert_eq!(checks.len(), 1, "{checks:#?}");
    let c = &checks[0];
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.details.iter().any(|d| d.contains("docs/privileges.md")),
        "{c:#?}"
    );
    assert!(c.hint.as_ref().unwrap().contains("system install"));

    // The same through the full doctor run.
    let report = banger_doctor::run(&host.context(Config::default(), ScriptedRunner::new()));
    // (The VMM sandbox rows of the same group are the sandbox check's own.)
    let rows: Vec<_> = report
        .group(groups::SECURITY)
        .filter(|c| !c.name.starts_with("VMM "))
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, Status::Warn);
    assert!(report.find(groups::SECURITY, "VMM sandbox").is_some());
}

#[test]
fn broken_install_toml_fails() {
    let host = FakeHost::new();
    std::fs::write(host.path("etc/install.toml"), "owner_user = 3\n").unwrap();
    let checks = run(&host, &ScriptedRunner::new(), &[]);
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, Status::Fail, "{checks:#?}");
}

#[test]
fn a_correct_install_passes_everything() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    let fc = root_binary(&host, 0o755);
    // Only root can own a root-owned binary; as another user, leave that row out.
    let binaries = if uid() == 0 {
        vec![("firecracker binary ownership".to_string(), fc)]
    } else {
        Vec::new()
    };
    let checks = run(&host, &systemctl("active", "active"), &binaries);
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{c:#?}");
    }
    let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "install metadata",
            "helper service",
            "daemon service",
            "helper socket",
            "daemon socket",
            "helper unit hardening",
            "daemon unit hardening",
            "firecracker binary ownership",
        ][..names.len().max(7)]
    );
    assert!(
        find(&checks, "helper socket")
            .summary
            .contains("mode 0o600")
    );
}

#[test]
fn inactive_service_fails_with_a_restart_hint() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    let checks = run(&host, &systemctl("active", "failed"), &[]);
    assert_eq!(find(&checks, "helper service").status, Status::Pass);
    let c = find(&checks, "daemon service");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("bangerd.service is failed"),
        "{}",
        c.summary
    );
    assert!(
        c.hint
            .as_ref()
            .unwrap()
            .contains("systemctl restart bangerd.service")
    );
}

#[test]
fn systemctl_missing_reports_unknown_state() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    let checks = run(&host, &ScriptedRunner::new(), &[]);
    let c = find(&checks, "helper service");
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("unknown"), "{}", c.summary);
}

#[test]
fn socket_with_wrong_mode_fails() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    std::fs::set_permissions(
        host.path("run/bangerd.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    assert_eq!(find(&checks, "helper socket").status, Status::Pass);
    let c = find(&checks, "daemon socket");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("mode is 0o666, want 0o600"),
        "{}",
        c.summary
    );
}

#[test]
fn socket_owned_by_another_uid_fails() {
    if !is_root() {
        return;
    }
    let host = FakeHost::new();
    let _sockets = install(&host);
    std::os::unix::fs::chown(host.path("run/helper.sock"), Some(4242), None).unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    let c = find(&checks, "helper socket");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("owner uid is 4242, want 0"),
        "{}",
        c.summary
    );
}

#[test]
fn missing_socket_and_regular_file_socket_fail() {
    let host = FakeHost::new();
    let (helper, _daemon) = install(&host);
    drop(helper);
    std::fs::remove_file(host.path("run/helper.sock")).unwrap();
    std::fs::remove_file(host.path("run/bangerd.sock")).unwrap();
    std::fs::write(host.path("run/bangerd.sock"), b"").unwrap();
    std::fs::set_permissions(
        host.path("run/bangerd.sock"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    assert_eq!(find(&checks, "helper socket").status, Status::Fail);
    let c = find(&checks, "daemon socket");
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("not a socket"), "{}", c.summary);
}

#[test]
fn unit_missing_a_directive_fails_naming_it() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    std::fs::write(
        host.path("systemd/banger-helper.service"),
        helper_unit().replace("ProtectHome=yes\n", ""),
    )
    .unwrap();
    std::fs::write(host.path("systemd/bangerd.service"), daemon_unit("root")).unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    let c = find(&checks, "helper unit hardening");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.ends_with("is missing ProtectHome=yes"),
        "{}",
        c.summary
    );
    // The daemon must run as the owner from install.toml, not as whoever.
    let c = find(&checks, "daemon unit hardening");
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("User=al"), "{}", c.summary);
}

#[test]
fn missing_unit_file_fails() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    std::fs::remove_file(host.path("systemd/bangerd.service")).unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    assert_eq!(find(&checks, "daemon unit hardening").status, Status::Fail);
}

#[test]
fn vmm_binary_ownership_rules() {
    if !is_root() {
        return;
    }
    let host = FakeHost::new();
    let _sockets = install(&host);
    let runner = systemctl("active", "active");
    let check = |path: PathBuf| {
        let checks = run(
            &host,
            &runner,
            &[("firecracker binary ownership".into(), path)],
        );
        find(&checks, "firecracker binary ownership").clone()
    };

    let fc = root_binary(&host, 0o755);
    assert_eq!(check(fc.clone()).status, Status::Pass);

    let link = host.path("bin/firecracker-link");
    std::os::unix::fs::symlink(&fc, &link).unwrap();
    let c = check(link);
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("symbolic link"), "{}", c.summary);

    std::fs::set_permissions(&fc, std::fs::Permissions::from_mode(0o775)).unwrap();
    let c = check(fc.clone());
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("writable by group or others"),
        "{}",
        c.summary
    );

    std::fs::set_permissions(&fc, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(check(fc.clone()).summary.contains("not executable"));

    std::fs::set_permissions(&fc, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&fc, Some(4242), None).unwrap();
    let c = check(fc);
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("uid 4242"), "{}", c.summary);
    assert!(c.hint.unwrap().contains("chown root"));
}

/// The jailing helper: its unit for the host's cgroup layout.
#[path = "security/jail.rs"]
mod jail;
