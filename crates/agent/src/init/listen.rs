//! Socket-activated services (`NAME listen=tcp:PORT PROGRAM…` in the services file): PID 1
//! holds the listening socket and starts PROGRAM per connection, the connection as its
//! stdin and stdout — inetd's contract, which `sshd -i` implements.
//!
//! Bounded: at most [`MAX_LIVE`] connections' programs at once per service (more are
//! closed at once, as sshd's MaxStartups would refuse them), and a failing `accept` (out
//! of descriptors) backs off instead of spinning. Refusals are logged once per interval.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use super::services::{Dirs, Service, alive, command, prepare};
use crate::log;

/// Programs one service may run at once; a connection beyond it is closed unserved.
const MAX_LIVE: usize = 32;
/// Pause after a failed accept (EMFILE and friends), so PID 1 never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);
/// At most one log line per interval about refused connections.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Listen on `port` on every address: IPv6 with IPv4 mapped when the kernel has IPv6,
/// else IPv4 only.
pub fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
        .or_else(|_| TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))))
}

/// Accept forever, one program per connection.
pub fn serve(service: &Service, listener: TcpListener, dirs: &Dirs) {
    let mut live: Vec<i32> = Vec::new();
    let mut refused = 0u64;
    let mut reported = Instant::now();
    loop {
        let (stream, _) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) => {
                log!("service {}: accept failed: {e}", service.name);
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        live.retain(|&pid| alive(pid));
        if live.len() >= MAX_LIVE {
            refused += 1;
            if reported.elapsed() >= REPORT_EVERY {
                log!(
                    "service {}: {refused} connection(s) closed unserved: {MAX_LIVE} already being served",
                    service.name
                );
                refused = 0;
                reported = Instant::now();
            }
            continue;
        }
        match start(service, stream.into(), dirs) {
            Ok(pid) => live.push(pid),
            Err(e) => log!(
                "service {}: cannot start for a connection: {e}",
                service.name
            ),
        }
    }
}

/// Start the program with the connection as stdin and stdout, the log as stderr.
fn start(service: &Service, conn: OwnedFd, dirs: &Dirs) -> io::Result<i32> {
    let log = prepare(service, dirs)?;
    let out = conn.try_clone()?;
    let mut command = command(service);
    command
        .stdin(Stdio::from(conn))
        .stdout(Stdio::from(out))
        .stderr(log);
    crate::exec::table()
        .spawn_guarded(|| command.spawn())
        .map(|child| child.id() as i32)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn service(argv: &[&str]) -> Service {
        Service {
            name: "listen-test".into(),
            listen: Some(1),
            prestart: false,
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A service on an ephemeral port, its run and log directories in `dir`.
    fn serving(argv: &[&str], dir: &std::path::Path) -> u16 {
        let listener = bind(0).expect("bind an ephemeral port");
        let port = listener.local_addr().unwrap().port();
        let service = service(argv);
        let dirs = Dirs {
            run: dir.join("run"),
            log: dir.to_path_buf(),
        };
        thread::spawn(move || serve(&service, listener, &dirs));
        port
    }

    #[test]
    fn each_connection_gets_the_program_on_its_stdin_and_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let port = serving(&["/bin/cat"], dir.path());
        for word in ["first", "second"] {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
            conn.write_all(word.as_bytes()).unwrap();
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            let mut echoed = String::new();
            conn.read_to_string(&mut echoed).unwrap();
            assert_eq!(echoed, word);
        }
        // IPv4 and (when the host has it) IPv6 on one socket.
        if TcpListener::bind("[::1]:0").is_ok() {
            let mut conn = TcpStream::connect(("::1", port)).unwrap();
            conn.write_all(b"six").unwrap();
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            let mut echoed = String::new();
            conn.read_to_string(&mut echoed).unwrap();
            assert_eq!(echoed, "six");
        }
    }

    #[test]
    fn connections_beyond_the_cap_are_closed_unserved() {
        let dir = tempfile::tempdir().unwrap();
        // cat: each program lives as long as its connection, and ends with it.
        let port = serving(&["/bin/cat"], dir.path());
        let held: Vec<TcpStream> = (0..MAX_LIVE)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 1];
        // Closed by the server: end of file (or a reset), not a timeout.
        match extra.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("the connection beyond the cap was served: {other:?}"),
        }
        // The ones within it are served: still open, their programs echo.
        let mut first = &held[0];
        first.write_all(b"x").unwrap();
        first.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x");
        assert!(dir.path().join("run/listen-test").is_dir());
        assert!(
            std::fs::read_to_string(dir.path().join("listen-test.log"))
                .unwrap()
                .is_empty()
        );
        drop(held);
    }
}
