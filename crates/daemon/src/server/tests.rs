//! The accept loop against real clients on a real socket: floods, half-sent requests, a
//! deleted socket, another uid.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::time::{Duration, Instant};

use super::{Limits, bind, serve};
use crate::testing::{Harness, Incarnation, WAIT, wait_for};

struct Served {
    inc: Incarnation,
    socket: std::path::PathBuf,
}

fn served(harness: &Harness, limits: Limits) -> Served {
    let inc = harness.start();
    let layout = &harness.layout;
    let socket = layout.daemon_socket();
    let _guard = inc.rt.enter();
    let mut bound = bind(&layout.runtime_dir, &socket, &layout.daemon_pid_file()).expect("bind");
    let daemon = inc.daemon.clone();
    inc.rt
        .spawn(async move { serve(daemon, &mut bound, limits).await });
    drop(_guard);
    Served { inc, socket }
}

/// `GET /v1/health` on a fresh connection, as the CLI does; the status line.
fn health(socket: &std::path::Path) -> std::io::Result<String> {
    let mut stream = StdStream::connect(socket)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.write_all(b"GET /v1/health HTTP/1.1\r\nhost: banger\r\nconnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

fn raise_own_fd_limit() {
    super::raise_fd_limit();
}

#[test]
fn a_flood_of_idle_connections_does_not_lock_out_a_client() {
    raise_own_fd_limit();
    let harness = Harness::new();
    let limits = Limits {
        max_connections: 64,
        ..Limits::default()
    };
    let served = served(&harness, limits);
    // Ten times the limit, held open and silent.
    let flood: Vec<StdStream> = (0..640)
        .map(|_| StdStream::connect(&served.socket).expect("connect"))
        .collect();
    assert_eq!(health(&served.socket).expect("health"), "HTTP/1.1 200 OK");
    // The oldest idle ones were closed to make room: reading them gives end-of-file.
    let mut closed = 0;
    for mut stream in flood.iter().take(64) {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        if matches!(stream.read(&mut [0u8; 1]), Ok(0)) {
            closed += 1;
        }
    }
    assert!(closed > 0, "no idle connection was evicted");
    drop(flood);
    drop(served.inc);
}

#[test]
fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let harness = Harness::new();
    let limits = Limits {
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let served = served(&harness, limits);
    let mut slow = StdStream::connect(&served.socket).expect("connect");
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nhost: ban")
        .expect("write");
    slow.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    // The daemon gives up on the request (hyper answers 408 or just closes).
    let _ = slow.read_to_end(&mut rest);
    // 20 times the configured timeout; hyper's own default (30 s) would fail this.
    let bound = Duration::from_secs(10);
    assert!(
        started.elapsed() < bound,
        "a half-sent request was kept open"
    );

    // A connection that never says anything goes the same way…
    let mut mute = StdStream::connect(&served.socket).expect("connect");
    mute.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    assert!(mute.read(&mut [0u8; 64]).is_ok());
    assert!(
        started.elapsed() < bound,
        "a silent connection was kept open"
    );

    // …and so does a keep-alive connection idle after its request.
    let mut idle = StdStream::connect(&served.socket).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nhost: banger\r\n\r\n")
        .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = idle.read_to_end(&mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200 OK"));
    assert!(
        started.elapsed() < bound,
        "an idle keep-alive connection was kept open"
    );
    assert_eq!(health(&served.socket).expect("health"), "HTTP/1.1 200 OK");
}

#[test]
fn a_deleted_socket_is_bound_again() {
    let harness = Harness::new();
    let served = served(&harness, Limits::default());
    assert_eq!(health(&served.socket).expect("health"), "HTTP/1.1 200 OK");
    std::fs::remove_file(&served.socket).expect("delete the socket");
    wait_for("the socket to come back", || served.socket.exists());
    assert_eq!(health(&served.socket).expect("health"), "HTTP/1.1 200 OK");
}

/// SO_PEERCRED: with the socket opened up to everyone, another uid still gets nothing but
/// a 403. Needs root to become that other uid.
#[test]
fn another_uid_is_refused_whatever_the_file_modes() {
    assert_eq!(
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() },
        0,
        "this test becomes another uid, which needs root: run the tests as root (CI does)"
    );
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::new();
    let served = served(&harness, Limits::default());
    let mut dir = served.socket.parent().map(std::path::Path::to_path_buf);
    while let Some(d) = dir {
        if d == std::path::Path::new("/tmp") {
            break;
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir = d.parent().map(std::path::Path::to_path_buf);
    }
    std::fs::set_permissions(&served.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod");
    let status = request_as(65534, &served.socket);
    assert!(status.starts_with("HTTP/1.1 403"), "{status:?}");
    assert_eq!(health(&served.socket).expect("health"), "HTTP/1.1 200 OK");
}

/// Send a health request as `uid` from a forked child (raw system calls only: the parent is
/// multi-threaded), and return the first line of the answer.
fn request_as(uid: u32, socket: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(socket.as_os_str().as_bytes()).expect("path");
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array we pass.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes async-signal-safe system calls on memory prepared
    // before the fork, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: (child) plain system calls on stack memory and the prepared path.
        unsafe {
            libc::close(fds[0]);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(uid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(2);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_bytes_with_nul();
            for (i, b) in bytes.iter().enumerate() {
                addr.sun_path[i] = *b as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::connect(fd, (&raw const addr).cast(), len) != 0 {
                libc::_exit(3);
            }
            let req = b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n";
            libc::write(fd, req.as_ptr().cast(), req.len());
            let mut buf = [0u8; 512];
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n > 0 {
                libc::write(fds[1], buf.as_ptr().cast(), n as usize);
            }
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut answer = Vec::new();
    // SAFETY: fds[0] is the read end we own from here on.
    let mut reader = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
    let _ = reader.read_to_end(&mut answer);
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(libc::WEXITSTATUS(status), 0, "child failed ({status:#x})");
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}
