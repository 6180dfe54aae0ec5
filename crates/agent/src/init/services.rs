//! The lean init's services: the few long-running programs a dev VM needs (sshd),
//! listed in `/etc/banger/services`, started after the agent's own setup and restarted
//! when they exit.
//!
//! One service a line: `NAME PROGRAM [ARG]...`, split on whitespace (no shell, no
//! quoting); `#` starts a comment. Before starting, `/run/NAME` is created (like systemd's
//! `RuntimeDirectory=`: sshd needs `/run/sshd`); output is appended to
//! `/var/log/banger/NAME.log`.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::log;

pub const SERVICES_FILE: &str = "/etc/banger/services";
const LOG_DIR: &str = "/var/log/banger";
/// A service that ran at least this long is restarted at once; a quicker death doubles
/// the back-off, up to [`MAX_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub argv: Vec<String>,
}

/// Parse the services file; bad lines are reported and skipped.
pub fn parse(text: &str) -> Vec<Service> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace().map(str::to_string);
            let name = words.next()?;
            let argv: Vec<String> = words.collect();
            let valid_name = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !name.starts_with('.');
            if !valid_name || argv.is_empty() || !argv[0].starts_with('/') {
                log!(
                    "{SERVICES_FILE} line {}: want `NAME /ABSOLUTE/PROGRAM [ARG]...`; skipped",
                    i + 1
                );
                return None;
            }
            Some(Service { name, argv })
        })
        .collect()
}

/// Start every listed service, each watched by its own thread. Returns how many.
pub fn start_all() -> usize {
    let text = match fs::read_to_string(SERVICES_FILE) {
        Ok(text) => text,
        Err(_) => return 0,
    };
    let services = parse(&text);
    let _ = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(LOG_DIR);
    for service in &services {
        let service = service.clone();
        let spawned = thread::Builder::new()
            .name(format!("svc-{}", service.name))
            .stack_size(64 * 1024)
            .spawn(move || supervise(&service));
        if let Err(e) = spawned {
            log!("cannot start a thread for a service: {e}");
        }
    }
    services.len()
}

fn supervise(service: &Service) -> ! {
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        match spawn(service) {
            Ok(pid) => {
                log!("service {} started (pid {pid})", service.name);
                wait_gone(pid);
                log!("service {} exited; restarting", service.name);
            }
            Err(e) => log!("service {} failed to start: {e}", service.name),
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = Duration::from_millis(500);
        } else {
            thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

fn spawn(service: &Service) -> std::io::Result<i32> {
    let _ = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(format!("/run/{}", service.name));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{LOG_DIR}/{}.log", service.name))?;
    let child = Command::new(&service.argv[0])
        .args(&service.argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    // PID 1's signal thread reaps every child (it waits on P_ALL), so the status is not
    // ours to collect: watch the pid instead.
    Ok(child.id() as i32)
}

/// Block until `pid` is gone (reaped by PID 1's reaper).
fn wait_gone(pid: i32) {
    loop {
        // SAFETY: kill with signal 0 only checks for existence; no memory effects.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            return;
        }
        thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_services() {
        let got = parse(
            "# services\nsshd /usr/sbin/sshd -D -e  # the SSH server\n\nbad\nrel bin/x\n../x /bin/true\ncron /usr/sbin/cron -f\n",
        );
        assert_eq!(
            got,
            vec![
                Service {
                    name: "sshd".into(),
                    argv: vec!["/usr/sbin/sshd".into(), "-D".into(), "-e".into()],
                },
                Service {
                    name: "cron".into(),
                    argv: vec!["/usr/sbin/cron".into(), "-f".into()],
                },
            ]
        );
    }
}
