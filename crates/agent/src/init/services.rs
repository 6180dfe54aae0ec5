//! The lean init's services: the few long-running programs a dev VM needs (sshd),
//! listed in `/etc/banger/services`, started after the agent's own setup and restarted
//! when they exit.
//!
//! One service a line: `NAME [listen=tcp:PORT [prestart]] PROGRAM [ARG]...`, split on whitespace (no
//! shell, no quoting); `#` starts a comment. Before starting, `/run/NAME` is created (like
//! systemd's `RuntimeDirectory=`: sshd needs `/run/sshd`); output is appended to
//! `/var/log/banger/NAME.log`.
//!
//! A plain service is one long-running process, restarted when it exits. A `listen=`
//! service is socket-activated, like inetd or systemd's `Accept=yes` sockets
//! (`listen.rs`): PID 1 listens on the port before the guest reports ready and starts
//! PROGRAM for each connection with the connection as its stdin and stdout (`sshd -i`).
//! So the port is open as soon as the agent is, instead of after the server's own
//! start-up (the longest step of a root-disk boot under emulation), and per connection it
//! costs what sshd's own re-exec per connection costs anyway. With `prestart`, one
//! instance is also kept started ahead for the host's next tunnel to the port
//! (`prestart.rs`: `ssh NAME.vm` then finds sshd loaded instead of starting it).

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
    /// Socket-activated on this TCP port (all addresses).
    pub listen: Option<u16>,
    /// With `listen`: one instance kept started for the host's next tunnel to the port
    /// (`prestart.rs`).
    pub prestart: bool,
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
            let mut argv: Vec<String> = words.collect();
            let listen = match argv.first().and_then(|w| w.strip_prefix("listen=")) {
                Some(spec) => {
                    let port = spec
                        .strip_prefix("tcp:")
                        .and_then(|p| p.parse::<u16>().ok())
                        .filter(|&p| p != 0);
                    if port.is_none() {
                        log!(
                            "{SERVICES_FILE} line {}: want `listen=tcp:PORT` (1-65535); skipped",
                            i + 1
                        );
                        return None;
                    }
                    argv.remove(0);
                    port
                }
                None => None,
            };
            let prestart = listen.is_some() && argv.first().is_some_and(|w| w == "prestart");
            if prestart {
                argv.remove(0);
            }
            let valid_name = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !name.starts_with('.');
            if !valid_name || argv.is_empty() || !argv[0].starts_with('/') {
                log!(
                    "{SERVICES_FILE} line {}: want `NAME [listen=tcp:PORT [prestart]] /ABSOLUTE/PROGRAM [ARG]...`; skipped",
                    i + 1
                );
                return None;
            }
            Some(Service {
                name,
                listen,
                prestart,
                argv,
            })
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
        let thread_name = format!("svc-{}", service.name);
        // The socket is bound here, before the agent reports ready: the port is open from
        // the first moment the host may use it.
        let run: Box<dyn FnOnce() + Send> = match service.listen {
            Some(port) => match super::listen::bind(port) {
                Ok(listener) => {
                    if service.prestart
                        && let Err(e) = super::prestart::start(service.clone(), port, Dirs::guest())
                    {
                        log!(
                            "service {}: cannot start its pre-start thread: {e}",
                            service.name
                        );
                    }
                    Box::new(move || super::listen::serve(&service, listener, &Dirs::guest()))
                }
                Err(e) => {
                    log!(
                        "service {}: cannot listen on port {port}: {e}",
                        service.name
                    );
                    continue;
                }
            },
            None => Box::new(move || supervise(&service)),
        };
        let spawned = thread::Builder::new()
            .name(thread_name)
            .stack_size(64 * 1024)
            .spawn(run);
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
    let log = prepare(service, &Dirs::guest())?;
    let mut command = command(service);
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    crate::exec::table()
        .spawn_guarded(|| command.spawn())
        .map(|child| child.id() as i32)
}

/// Where services get their runtime directory and their log.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub run: std::path::PathBuf,
    pub log: std::path::PathBuf,
}

impl Dirs {
    /// The guest's: `/run/NAME`, `/var/log/banger/NAME.log`.
    pub fn guest() -> Dirs {
        Dirs {
            run: "/run".into(),
            log: LOG_DIR.into(),
        }
    }
}

/// `RUN/NAME` made, and the service's log opened for appending.
pub(super) fn prepare(service: &Service, dirs: &Dirs) -> std::io::Result<fs::File> {
    let _ = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dirs.run.join(&service.name));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dirs.log.join(format!("{}.log", service.name)))
}

/// The service's program with a clean environment. PID 1's signal thread reaps every
/// child (it waits on P_ALL), so a child's status is never ours to collect: callers watch
/// its pid instead.
pub(super) fn command(service: &Service) -> Command {
    let mut cmd = Command::new(&service.argv[0]);
    cmd.args(&service.argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .current_dir("/");
    cmd
}

/// Block until `pid` is gone (reaped by PID 1's reaper).
fn wait_gone(pid: i32) {
    while alive(pid) {
        thread::sleep(Duration::from_millis(500));
    }
}

/// Whether `pid` still exists (a reused pid counts: callers only over-count).
pub(super) fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence; no memory effects.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_services() {
        let got = parse(
            "# services\nsshd /usr/sbin/sshd -D -e  # the SSH server\n\nbad\nrel bin/x\n../x /bin/true\ncron /usr/sbin/cron -f\n\
             ssh2 listen=tcp:2222 /usr/sbin/sshd -i -e\nx listen=tcp:0 /bin/true\ny listen=udp:1 /bin/true\n\
             z listen=tcp:22\nssh3 listen=tcp:22 prestart /usr/sbin/sshd -i\nw prestart /bin/true\n\
             v listen=tcp:22 prestart\n",
        );
        assert_eq!(
            got,
            vec![
                Service {
                    name: "sshd".into(),
                    listen: None,
                    prestart: false,
                    argv: vec!["/usr/sbin/sshd".into(), "-D".into(), "-e".into()],
                },
                Service {
                    name: "cron".into(),
                    listen: None,
                    prestart: false,
                    argv: vec!["/usr/sbin/cron".into(), "-f".into()],
                },
                Service {
                    name: "ssh2".into(),
                    listen: Some(2222),
                    prestart: false,
                    argv: vec!["/usr/sbin/sshd".into(), "-i".into(), "-e".into()],
                },
                Service {
                    name: "ssh3".into(),
                    listen: Some(22),
                    prestart: true,
                    argv: vec!["/usr/sbin/sshd".into(), "-i".into()],
                },
            ]
        );
    }
}
