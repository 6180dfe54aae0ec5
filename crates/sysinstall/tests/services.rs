//! What `install()` asks of systemd on the real system, against a recording runner: the
//! files go into a temporary root (never /etc), the sockets are real ones this test binds,
//! and every systemctl call is recorded instead of run.
//!
//! Needs root: the installed files are root-owned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use banger_sysinstall::{InstallPlan, Sources, install};
use banger_system::{CommandOutput, CommandRunner};

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    fail: Option<&'static str>,
    /// Sockets `enable --now` brings up, as the started services would: real sockets,
    /// 0600, the owner's.
    services: Vec<PathBuf>,
    listeners: Mutex<Vec<UnixListener>>,
}

impl Recorder {
    fn starting(plan: &InstallPlan) -> Recorder {
        Recorder {
            services: vec![plan.helper_socket(), plan.daemon_socket()],
            ..Recorder::default()
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn start_services(&self) {
        let mut listeners = self.listeners.lock().unwrap();
        if !listeners.is_empty() {
            return;
        }
        for sock in &self.services {
            listeners.push(UnixListener::bind(sock).unwrap());
            std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

impl CommandRunner for Recorder {
    fn run(&self, program: &Path, args: &[&OsStr]) -> std::io::Result<CommandOutput> {
        let line = std::iter::once(program.as_os_str())
            .chain(args.iter().copied())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(line.starts_with("systemctl "), "unexpected command: {line}");
        let failed = self.fail.is_some_and(|f| line.contains(f));
        if !failed && line.contains(" enable --now ") {
            self.start_services();
        }
        self.calls.lock().unwrap().push(line);
        Ok(CommandOutput {
            code: Some(if failed { 1 } else { 0 }),
            stdout: Vec::new(),
            stderr: if failed {
                b"Unit not found.".to_vec()
            } else {
                Vec::new()
            },
        })
    }
}

struct Host {
    dir: tempfile::TempDir,
    plan: InstallPlan,
}

fn host() -> Host {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test needs root: the installed files are root-owned"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = |rel: &str| dir.path().join(rel);
    let plan = InstallPlan {
        owner_user: "root".into(),
        owner_uid: 0,
        owner_gid: 0,
        version: "0.1.0".into(),
        build: "b1".into(),
        prefix: p("usr/local"),
        etc_dir: p("etc/banger"),
        unit_dir: p("etc/systemd/system"),
        state_dir: p("var/lib/banger"),
        runtime_dir: p("run/banger"),
        helper_runtime_dir: p("run/banger-helper"),
        owner_config_dir: p("home/root/.config/banger"),
        owner_home: None,
        manage_services: true,
        socket_timeout: std::time::Duration::from_secs(2),
        jail: None,
        posture_why: "network only".into(),
        cgroup: None,
    };
    std::fs::create_dir_all(&plan.owner_config_dir).unwrap();
    std::fs::write(p("banger"), b"\x7fELF banger").unwrap();
    Host { plan, dir }
}

fn sources(host: &Host) -> Sources {
    Sources {
        banger: host.dir.path().join("banger"),
        agent: None,
    }
}

const ENABLE: &str = "systemctl enable --now banger-helper.service bangerd.service";
const RELOAD: &str = "systemctl daemon-reload";
const RESTART: &str = "systemctl restart banger-helper.service bangerd.service";

#[test]
fn systemd_is_asked_for_exactly_what_changed() {
    let host = host();
    let runner = Recorder::starting(&host.plan);

    // Fresh: reload (new units), enable and start; nothing to restart.
    let report = install(&host.plan, &sources(&host), &runner).unwrap();
    assert!(report.live && !report.upgrade);
    assert_eq!(runner.take(), [RELOAD, ENABLE]);

    // Again: nothing changed, so no reload and no restart; enable --now is idempotent.
    let report = install(&host.plan, &sources(&host), &runner).unwrap();
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    assert_eq!(runner.take(), [ENABLE]);

    // A hand-edited unit is put back: reload, and restart so the services run it.
    let unit = host.plan.daemon_unit();
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(
        &unit,
        text.replace("NoNewPrivileges=yes", "NoNewPrivileges=no"),
    )
    .unwrap();
    install(&host.plan, &sources(&host), &runner).unwrap();
    assert_eq!(runner.take(), [RELOAD, ENABLE, RESTART]);
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), text);

    // An upgrade (a new binary, a new build in install.toml): restart, no reload.
    std::fs::write(host.dir.path().join("banger"), b"\x7fELF banger v2").unwrap();
    let plan = InstallPlan {
        build: "b2".into(),
        ..host.plan.clone()
    };
    install(&plan, &sources(&host), &runner).unwrap();
    assert_eq!(runner.take(), [ENABLE, RESTART]);
}

#[test]
fn a_failing_systemctl_and_a_wrong_socket_are_errors_that_say_where_to_look() {
    let host = host();
    let runner = Recorder {
        fail: Some("enable"),
        ..Recorder::default()
    };
    let err = install(&host.plan, &sources(&host), &runner).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("systemctl enable --now") && text.contains("Unit not found"),
        "{text}"
    );

    // The daemon's socket world-readable: the install does not call that success.
    let _helper = UnixListener::bind(host.plan.helper_socket()).unwrap();
    let _daemon = UnixListener::bind(host.plan.daemon_socket()).unwrap();
    std::fs::set_permissions(
        host.plan.helper_socket(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        host.plan.daemon_socket(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let plan = InstallPlan {
        owner_uid: 0,
        ..host.plan.clone()
    };
    let started = std::time::Instant::now();
    let err = install(&plan, &sources(&host), &Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bangerd.service") && err.contains("0o644"),
        "{err}"
    );
    assert!(err.contains("journalctl -u bangerd.service"), "{err}");
    assert!(started.elapsed() >= plan.socket_timeout, "gave up early");
}

#[test]
fn uninstall_stops_and_disables_then_removes_and_keeps_the_state() {
    let host = host();
    let runner = Recorder::starting(&host.plan);
    install(&host.plan, &sources(&host), &runner).unwrap();
    runner.take();
    std::fs::create_dir_all(host.plan.state_dir.join("images")).unwrap();

    // A moved root never reaches systemctl, whatever the plan said at install time.
    let report = banger_sysinstall::uninstall(&host.plan.etc_dir, false, &runner).unwrap();
    assert!(!report.live);
    assert_eq!(runner.take(), Vec::<String>::new());
    assert_eq!(
        report.kept_state.as_deref(),
        Some(host.plan.state_dir.as_path())
    );
    for gone in [
        host.plan.install_toml(),
        host.plan.helper_unit(),
        host.plan.daemon_unit(),
        host.plan.banger_bin(),
    ] {
        assert!(!gone.exists(), "{} is still there", gone.display());
    }
    assert!(host.plan.state_dir.join("images").is_dir());
    assert!(
        host.plan.owner_config_dir.is_dir(),
        "the owner's config stays"
    );

    let err = banger_sysinstall::uninstall(&host.plan.etc_dir, false, &runner)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no system install"), "{err}");
}

#[test]
fn a_dev_mode_daemon_in_the_way_is_refused_before_anything_is_written() {
    let host = host();
    std::fs::create_dir_all(&host.plan.runtime_dir).unwrap();
    let _dev_daemon = UnixListener::bind(host.plan.daemon_socket()).unwrap();
    let err = install(&host.plan, &sources(&host), &Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sudo banger daemon stop"), "{err}");
    assert!(!host.plan.install_toml().exists());
    assert!(!host.plan.banger_bin().exists());
}
