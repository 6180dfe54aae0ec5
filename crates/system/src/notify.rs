//! systemd's readiness protocol (`Type=notify`): one datagram, `READY=1`, to the socket
//! named by `NOTIFY_SOCKET`. Written here rather than taken from a crate: it is a dozen
//! lines, and the daemon and the helper each send it once, after their sockets listen.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tell the service manager this process is ready, when one is listening. Without
/// `NOTIFY_SOCKET` (dev mode, a terminal) this does nothing. A failure to send is
/// returned for the caller to log: the service manager would then time the start out.
pub fn notify_ready() -> std::io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(target) if !target.is_empty() => {
            notify_to(&target.to_string_lossy(), "READY=1\n").map(|()| true)
        }
        _ => Ok(false),
    }
}

/// Send `state` to the notification socket `target`: a path, or `@name` for an
/// abstract socket.
pub fn notify_to(target: &str, state: &str) -> std::io::Result<()> {
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(target)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        let name = format!("banger-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "READY=1\n").unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn a_missing_listener_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-listens");
        assert!(notify_to(path.to_str().unwrap(), "READY=1\n").is_err());
    }
}
