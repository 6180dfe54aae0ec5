//! Starting a rendered unit the way systemd would: its `ExecStart`, its `Environment`,
//! its `User` (with the variables systemd sets for one), `PATH` as systemd sets it, and
//! `Type=notify` readiness on a real datagram socket. What systemd cannot do here (it is
//! not PID 1 on CI machines) is exactly this much, and nothing is faked past it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// systemd's default `PATH` for system services.
const SYSTEMD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Generous: the daemon opens its store and reconciles before it is ready, on a shared
/// two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The `[Service]` lines this emulation honours.
#[derive(Debug, Default)]
pub struct Service {
    pub exec_start: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub user: Option<String>,
    pub notify: bool,
}

pub fn parse(unit: &Path) -> Service {
    let text = std::fs::read_to_string(unit).unwrap();
    let mut service = Service::default();
    let mut in_service = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap();
        match key {
            // The renderer refuses white space in paths, so splitting is exact.
            "ExecStart" => service.exec_start = value.split(' ').map(String::from).collect(),
            "Environment" => {
                let (k, v) = value.split_once('=').unwrap();
                service.environment.push((k.into(), v.into()));
            }
            "User" => service.user = Some(value.into()),
            "Type" => service.notify = value == "notify",
            _ => {}
        }
    }
    assert!(
        !service.exec_start.is_empty(),
        "{} has no ExecStart",
        unit.display()
    );
    service
}

/// A started unit; killed when dropped.
pub struct Running {
    pub name: &'static str,
    pub child: Child,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        // SAFETY: kill sends a signal to our own child's pid; it touches no memory.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Start `unit` as systemd would and wait for its `READY=1`. `work` holds the
/// notification socket and the output log.
pub fn start(name: &'static str, unit: &Path, work: &Path) -> Running {
    let service = parse(unit);
    assert!(service.notify, "{name}: the unit is not Type=notify");
    let notify_path = work.join(format!("{name}.notify"));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    // Whoever the service runs as must be able to send to it (systemd's is root's, and
    // it accepts from the main pid only; NotifyAccess=main).
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let log_path = work.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();

    let mut cmd = Command::new(&service.exec_start[0]);
    cmd.args(&service.exec_start[1..])
        .env_clear()
        .env("PATH", SYSTEMD_PATH)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(user) = &service.user {
        let pw = nix::unistd::User::from_name(user).unwrap().unwrap();
        cmd.env("USER", &pw.name)
            .env("LOGNAME", &pw.name)
            .env("HOME", &pw.dir)
            .env("SHELL", &pw.shell)
            .uid(pw.uid.as_raw())
            // std drops root's supplementary groups with the uid; systemd would give the
            // user's own (initgroups), which for `nobody` is none beyond its primary group.
            .gid(pw.gid.as_raw());
    }
    for (k, v) in &service.environment {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();

    let deadline = Instant::now() + READY_TIMEOUT;
    let mut buf = [0u8; 256];
    loop {
        match notify.recv(&mut buf) {
            Ok(n)
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1") =>
            {
                return Running { name, child };
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{name}: notify socket: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{name} exited before it was ready ({status}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{name} sent no READY=1 within {}s:\n{}",
                READY_TIMEOUT.as_secs(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    }
}

/// Whether the process is alive (not exited, not a zombie): what `systemctl is-active`
/// would say of its service.
pub fn is_active(pid: u32) -> bool {
    std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat")))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}
