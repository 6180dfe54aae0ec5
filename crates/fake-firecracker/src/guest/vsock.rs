//! The host side of hybrid vsock, as the notes describe it ("Hybrid vsock"):
//!
//! * "Host → guest port P: connect to `uds_path`, write `CONNECT P\n` in ONE write;
//!   Firecracker answers `OK <host-side port>\n` (a port it allocates, e.g. `OK
//!   1073741824`), then the raw stream. If nothing in the guest listens on P, the connection
//!   is closed."
//! * "a host `CONNECT <port>\n` before the guest's vsock driver listens gets no answer and no
//!   EOF for at least 5 s".
//! * "Up to 1023 connections."
//!
//! Guest → host connections (`<uds_path>_P`) are not simulated: banger's agent never makes
//! them.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Shared;

/// "Up to 1023 connections."
const MAX_CONNECTIONS: usize = 1023;

/// The first host-side port Firecracker allocates ("e.g. `OK 1073741824`").
const FIRST_HOST_PORT: u32 = 1 << 30;

/// Accept host connections on the vsock socket for the life of the process.
pub(super) fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let next_port = Arc::new(AtomicU32::new(FIRST_HOST_PORT));
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            open.fetch_add(1, Ordering::SeqCst);
            let (shared, next_port, open) = (shared.clone(), next_port.clone(), open.clone());
            std::thread::spawn(move || {
                handle(stream, &shared, &next_port);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
}

fn handle(mut host: UnixStream, shared: &Arc<Shared>, next_port: &AtomicU32) {
    // "write `CONNECT P\n` in ONE write": the command is taken from the first read alone.
    let mut buf = [0u8; 64];
    let n = match host.read(&mut buf) {
        Ok(n) if n > 0 => n,
        _ => return,
    };
    let Some(port) = parse_connect(&buf[..n]) else {
        let _ = host.shutdown(Shutdown::Both);
        return;
    };
    loop {
        shared.wait_running();
        if Instant::now() < shared.vsock_up_at {
            // The guest's vsock driver is not up yet: no answer, no EOF.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if port != shared.agent_port {
            // Nothing listens on that port in the guest: the connection is closed.
            let _ = host.shutdown(Shutdown::Both);
            return;
        }
        match UnixStream::connect(&shared.agent_socket) {
            Ok(guest) => {
                let host_port = next_port.fetch_add(1, Ordering::SeqCst);
                if host
                    .write_all(format!("OK {host_port}\n").as_bytes())
                    .is_err()
                {
                    return;
                }
                bridge(host, guest, shared);
                return;
            }
            Err(_) => {
                // The agent is not listening (yet, or any more): the guest resets the stream.
                let _ = host.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// `CONNECT <u32>\n`, exactly.
fn parse_connect(data: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(data).ok()?;
    let port = text.strip_prefix("CONNECT ")?.strip_suffix('\n')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Copy both ways until both sides are done; nothing moves while the VM is paused.
fn bridge(host: UnixStream, guest: UnixStream, shared: &Arc<Shared>) {
    let pairs = [
        (host.try_clone(), guest.try_clone()),
        (guest.try_clone(), host.try_clone()),
    ];
    let mut threads = Vec::new();
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            return;
        };
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                shared.wait_running();
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_lines() {
        assert_eq!(parse_connect(b"CONNECT 1024\n"), Some(1024));
        assert_eq!(parse_connect(b"CONNECT 1024"), None, "must end the line");
        assert_eq!(parse_connect(b"CONNECT 10\n24\n"), None);
        assert_eq!(parse_connect(b"connect 1024\n"), None);
        assert_eq!(parse_connect(b"CONNECT -1\n"), None);
    }
}
