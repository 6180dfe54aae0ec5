//! `banger system install` end to end under a fake root: the real binary installs into
//! it, `systemd-analyze verify` checks the units, the helper and the daemon run exactly as
//! their units say (same user, arguments and environment, Type=notify readiness), doctor's
//! posture checks pass against them and fail on each drift, the CLI finds the system
//! daemon from install.toml, and install → uninstall → install leaves no stray file.
//!
//! Needs root (the install writes root-owned files and runs the daemon as `nobody`, an
//! existing unprivileged user; no user is created) and `systemd-analyze` (Debian's
//! systemd package; `scripts/install-deps` installs it). Nothing outside the fake root is
//! touched and systemctl is never run: the install sees a moved root.

#[path = "system_install/root.rs"]
mod root;
#[path = "system_install/units.rs"]
mod units;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use banger_doctor::{Check, Status};
use banger_system::{CommandOutput, CommandRunner};
use root::{FakeRoot, OWNER, Snapshot, text};

/// `systemctl is-active` answered from the processes this test started.
struct LiveUnits(Vec<(&'static str, u32)>);

impl CommandRunner for LiveUnits {
    fn run(&self, program: &Path, args: &[&OsStr]) -> std::io::Result<CommandOutput> {
        let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            program,
            Path::new("systemctl"),
            "unexpected program {program:?}"
        );
        assert_eq!(args[0], "is-active");
        let pid = self
            .0
            .iter()
            .find(|(unit, _)| *unit == args[1])
            .map(|u| u.1);
        let active = pid.is_some_and(units::is_active);
        Ok(CommandOutput {
            code: Some(if active { 0 } else { 3 }),
            stdout: if active {
                b"active\n".to_vec()
            } else {
                b"inactive\n".to_vec()
            },
            stderr: Vec::new(),
        })
    }
}

fn status_of<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {checks:#?}"))
}

fn assert_fails(checks: &[Check], name: &str, needle: &str) {
    let c = status_of(checks, name);
    assert_eq!(c.status, Status::Fail, "{c:#?}");
    assert!(
        c.summary.contains(needle),
        "{name}: {:?} lacks {needle:?}",
        c.summary
    );
}

#[test]
fn install_run_check_drift_and_round_trip() {
    let root = FakeRoot::new();
    let before = root.snapshot();

    // Install, then install again: nothing changes, not even an mtime.
    let first = root.install();
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("created"),
        "{}",
        text(&first)
    );
    let installed = root.snapshot();
    let again = root.install();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("up to date"),
        "{}",
        text(&again)
    );
    assert_eq!(root.snapshot(), installed, "a second install changed files");

    // Another owner on this install: refused, saying how to switch.
    let other = root.banger(&[
        "system",
        "install",
        "--owner",
        "daemon",
        "--prefix",
        "/usr/local",
    ]);
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("installed for nobody") && err.contains("system uninstall"),
        "{err}"
    );

    let status = root.banger(&["system", "status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["owner_user"], OWNER, "{status}");
    assert_eq!(
        status["helper_service"],
        serde_json::Value::Null,
        "a moved root asks no systemctl"
    );

    // The rendered units pass systemd's own checker.
    let units_dir = root.path("etc/systemd/system");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units_dir.join("banger-helper.service"))
        .arg(units_dir.join("bangerd.service"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}",
        text(&verify)
    );

    // Run both exactly as their units say.
    let work = root.path("work");
    let mut helper = units::start(
        "banger-helper.service",
        &units_dir.join("banger-helper.service"),
        &work,
    );
    let mut daemon = units::start("bangerd.service", &units_dir.join("bangerd.service"), &work);
    let live = LiveUnits(vec![
        (helper.name, helper.pid()),
        (daemon.name, daemon.pid()),
    ]);

    // A VMM binary as the install would require it: root-owned, 0755.
    let vmm = root.path("usr/local/bin/firecracker");
    // cp(1) in a child, not std::fs::copy: a write descriptor held by this multi-threaded
    // process could be inherited by another test's fork, and exec'ing the copy would then
    // fail with ETXTBSY.
    assert!(
        std::process::Command::new("cp")
            .arg("/bin/true")
            .arg(&vmm)
            .status()
            .unwrap()
            .success()
    );
    std::fs::set_permissions(&vmm, std::fs::Permissions::from_mode(0o755)).unwrap();

    let checks = root.posture(&live, &vmm);
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{c:#?}");
    }
    assert_eq!(checks.len(), 8, "{checks:#?}");

    // The CLI, as the owner, finds the system daemon through install.toml alone.
    let out = root.banger_as_owner(&["daemon", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["mode"], "system", "{health}");
    assert_eq!(health["pid"], daemon.pid(), "{health}");

    drift(&root, &live, &vmm);

    // The daemon down: the CLI says how to start it and starts no daemon of its own.
    daemon.stop();
    let out = root.banger_as_owner(&["vm", "ls"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("systemctl start bangerd.service"),
        "{}",
        text(&out)
    );
    assert!(
        !root.path("run/banger/bangerd.sock").exists() || {
            // A stale socket file may remain; nothing may answer on it.
            std::os::unix::net::UnixStream::connect(root.path("run/banger/bangerd.sock")).is_err()
        }
    );
    helper.stop();

    round_trip(&root, &before, &installed);
}

/// Each drift the issue names gives its FAIL; each is put back before the next.
fn drift(root: &FakeRoot, live: &LiveUnits, vmm: &Path) {
    let unit = root.path("etc/systemd/system/bangerd.service");
    let good = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, good.replace("NoNewPrivileges=yes\n", "")).unwrap();
    assert_fails(
        &root.posture(live, vmm),
        "daemon unit hardening",
        "NoNewPrivileges=yes",
    );
    // A drop-in that widens the helper's capabilities.
    let dropins = root.path("etc/systemd/system/banger-helper.service.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(
        dropins.join("override.conf"),
        "[Service]\nCapabilityBoundingSet=CAP_SYS_ADMIN\n",
    )
    .unwrap();
    assert_fails(
        &root.posture(live, vmm),
        "helper unit hardening",
        "CapabilityBoundingSet=",
    );
    std::fs::remove_dir_all(&dropins).unwrap();
    std::fs::write(&unit, &good).unwrap();

    let helper_sock = root.path("run/banger-helper/helper.sock");
    std::fs::set_permissions(&helper_sock, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_fails(&root.posture(live, vmm), "helper socket", "mode is 0o644");
    std::fs::set_permissions(&helper_sock, std::fs::Permissions::from_mode(0o600)).unwrap();

    let daemon_sock = root.path("run/banger/bangerd.sock");
    std::os::unix::fs::lchown(&daemon_sock, Some(0), None).unwrap();
    assert_fails(&root.posture(live, vmm), "daemon socket", "owner uid is 0");
    std::os::unix::fs::lchown(&daemon_sock, Some(root.owner_uid), None).unwrap();

    for c in root.posture(live, vmm) {
        assert_eq!(c.status, Status::Pass, "not restored: {c:#?}");
    }

    std::fs::set_permissions(vmm, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_eq!(
        status_of(&root.posture(live, vmm), "firecracker binary").status,
        Status::Fail
    );
    std::fs::set_permissions(vmm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = root.path("usr/local/bin/firecracker-link");
    std::os::unix::fs::symlink(vmm, &link).unwrap();
    assert_eq!(
        status_of(&root.posture(live, &link), "firecracker binary").status,
        Status::Fail
    );
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(vmm).unwrap();

    // install.toml naming another owner than the one the units and sockets serve.
    let toml = root.path("etc/banger/install.toml");
    let record = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        record.replace(
            "owner_user = \"nobody\"\nowner_uid = 65534",
            "owner_user = \"root\"\nowner_uid = 0",
        ),
    )
    .unwrap();
    let checks = root.posture(live, vmm);
    assert_fails(&checks, "daemon unit hardening", "User=root");
    assert_fails(&checks, "helper socket", "want 0");
    assert_fails(&checks, "daemon socket", "want 0");
    std::fs::write(&toml, &record).unwrap();
}

/// install → uninstall → install → uninstall --purge: the same files each time, and
/// nothing of the install left behind but what is documented to stay.
fn round_trip(root: &FakeRoot, before: &Snapshot, installed: &Snapshot) {
    let kept = |p: &Path| p.starts_with("var/lib/banger") || p.starts_with("home/nobody/.config");
    let out = root.banger(&["system", "uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kept images and VMs"),
        "{}",
        text(&out)
    );
    let after: Vec<_> = root
        .snapshot()
        .into_keys()
        .filter(|p| !before.contains_key(p) && !kept(p))
        .collect();
    assert_eq!(after, Vec::<PathBuf>::new(), "stray files after uninstall");
    assert!(
        root.path("var/lib/banger/state.db").exists(),
        "uninstall must keep the state"
    );

    root.install();
    let again: Vec<_> = root.snapshot().into_keys().filter(|p| !kept(p)).collect();
    let first: Vec<_> = installed.keys().filter(|p| !kept(p)).cloned().collect();
    assert_eq!(
        again, first,
        "the second install wrote other files than the first"
    );

    let out = root.banger(&["system", "uninstall", "--purge"]);
    assert!(out.status.success(), "{}", text(&out));
    let left: Vec<_> = root
        .snapshot()
        .into_keys()
        .filter(|p| !before.contains_key(p) && !p.starts_with("home/nobody/.config"))
        .collect();
    assert_eq!(
        left,
        Vec::<PathBuf>::new(),
        "stray files after uninstall --purge"
    );

    let out = root.banger(&["system", "uninstall"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no system install"),
        "{}",
        text(&out)
    );
}

#[test]
fn dry_run_renders_into_a_directory_without_touching_the_system() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banger"))
        .args(["system", "install", "--owner", OWNER, "--dry-run", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut names: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["banger-helper.service", "bangerd.service", "install.toml"]
    );
    let daemon = std::fs::read_to_string(out_dir.path().join("bangerd.service")).unwrap();
    assert!(daemon.lines().any(|l| l == "User=nobody"), "{daemon}");
    assert!(
        daemon.lines().any(|l| l == "StateDirectory=banger"),
        "{daemon}"
    );

    let root_owner = Command::new(env!("CARGO_BIN_EXE_banger"))
        .args(["system", "install", "--owner", "root", "--dry-run"])
        .output()
        .unwrap();
    assert!(!root_owner.status.success());
    assert!(
        String::from_utf8_lossy(&root_owner.stderr).contains("ordinary user"),
        "{}",
        text(&root_owner)
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_banger"))
        .args([
            "system",
            "install",
            "--owner",
            "no-such-user-here",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no user named"),
        "{}",
        text(&bad)
    );
}

/// `--firecracker` chooses the jailing posture, says so, and renders the jailer's unit and
/// install record; binaries root may not run are refused, naming the file and the fix.
#[test]
fn dry_run_with_a_jailer_renders_the_jailing_helper() {
    let bins = tempfile::tempdir().unwrap();
    for name in ["firecracker", "jailer"] {
        let path = bins.path().join(name);
        std::fs::write(&path, b"\x7fELF").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let firecracker = bins.path().join("firecracker");
    let out_dir = tempfile::tempdir().unwrap();
    let dry_run = |extra: &[&OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_banger"))
            .args(["system", "install", "--owner", OWNER, "--dry-run"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = dry_run(&[
        "--out".as_ref(),
        out_dir.path().as_os_str(),
        "--firecracker".as_ref(),
        firecracker.as_os_str(),
    ]);
    // SAFETY: getuid has no preconditions and cannot fail.
    if unsafe { libc::getuid() } != 0 {
        // Files this test writes are its user's, which the helper would refuse.
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not root"));
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("helper posture: jailer:"),
        "{}",
        text(&out)
    );
    let helper = std::fs::read_to_string(out_dir.path().join("banger-helper.service")).unwrap();
    let jailer = bins.path().join("jailer");
    let exec = format!(
        "--jailer {} --firecracker {}",
        jailer.display(),
        firecracker.display()
    );
    assert!(
        helper
            .lines()
            .any(|l| l.starts_with("ExecStart=") && l.ends_with(&exec)),
        "{helper}"
    );
    for line in [
        "KillMode=process",
        "RestrictNamespaces=mnt pid",
        "DevicePolicy=closed",
    ] {
        assert!(helper.lines().any(|l| l == line), "{line}\n{helper}");
    }
    let record = std::fs::read_to_string(out_dir.path().join("install.toml")).unwrap();
    assert!(
        record.contains(&format!("jailer = \"{}\"", jailer.display())),
        "{record}"
    );

    // A jailer another user may replace: refused, naming it and the fix.
    std::fs::set_permissions(&jailer, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = dry_run(&["--firecracker".as_ref(), firecracker.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&jailer.display().to_string()) && err.contains("chmod go-w"),
        "{err}"
    );

    // No Firecracker anywhere: network only, saying why.
    let out = dry_run(&["--no-jailer".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("helper posture: network only (--no-jailer)"),
        "{stdout}"
    );
    assert!(!stdout.contains("--jailer /"), "{stdout}");
}
