//! Opening the host end of the guest agent's channel.
//!
//! * virtio-serial (QEMU): the port is a listening Unix socket; a connection is the stream.
//!   QEMU serves one connection at a time: a second client waits until the first closes.
//! * hybrid vsock (Firecracker): connect to the vsock Unix socket, send `CONNECT <port>\n` in
//!   one write, read `OK <host port>\n`, then the socket is the stream. Firecracker neither
//!   answers nor closes while nothing in the guest listens yet, so the `OK` is awaited with a
//!   timeout and callers retry until the agent is up.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::VmmError;
use crate::runtime::{AgentEndpoint, VmRuntime};

/// How long to wait for Firecracker's `OK` after `CONNECT`.
pub const VSOCK_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest acceptable `OK <n>\n` line; anything longer is not Firecracker.
const MAX_OK_LINE: usize = 32;

/// Connect to the agent of the VM described by `runtime`.
pub async fn connect_agent(runtime: &VmRuntime) -> Result<UnixStream, VmmError> {
    match &runtime.agent {
        AgentEndpoint::VirtioSerial { socket } => {
            UnixStream::connect(socket)
                .await
                .map_err(|source| VmmError::AgentConnect {
                    vm_id: runtime.vm_id.clone(),
                    path: socket.clone(),
                    source,
                })
        }
        AgentEndpoint::HybridVsock { uds_path, port } => {
            hybrid_vsock_connect(&runtime.vm_id, uds_path, *port, VSOCK_HANDSHAKE_TIMEOUT).await
        }
    }
}

/// Open a stream to guest port `port` through Firecracker's hybrid vsock socket `uds_path`.
pub async fn hybrid_vsock_connect(
    vm_id: &str,
    uds_path: &Path,
    port: u32,
    timeout: Duration,
) -> Result<UnixStream, VmmError> {
    let handshake_error = |problem: String| VmmError::VsockHandshake {
        vm_id: vm_id.to_owned(),
        path: uds_path.to_path_buf(),
        port,
        problem,
    };
    let mut stream =
        UnixStream::connect(uds_path)
            .await
            .map_err(|source| VmmError::AgentConnect {
                vm_id: vm_id.to_owned(),
                path: uds_path.to_path_buf(),
                source,
            })?;
    // One write: Firecracker parses the command from the first read it gets.
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(|e| handshake_error(format!("cannot send CONNECT: {e}")))?;
    let line = tokio::time::timeout(timeout, read_line_bytewise(&mut stream))
        .await
        .map_err(|_| handshake_error(format!("no answer within {timeout:?}")))?
        .map_err(|e| handshake_error(e.to_string()))?;
    parse_ok_line(&line).map_err(handshake_error)?;
    Ok(stream)
}

/// Read up to and including `\n` one byte at a time, so nothing of the stream that follows is
/// consumed.
async fn read_line_bytewise(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::with_capacity(MAX_OK_LINE);
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed: nothing in the guest listens on that port yet",
            ));
        }
        if byte[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte[0]);
        if line.len() > MAX_OK_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("answer too long: {:?}", String::from_utf8_lossy(&line)),
            ));
        }
    }
}

/// Accept `OK <u32>`; return the host-side port.
fn parse_ok_line(line: &str) -> Result<u32, String> {
    line.strip_prefix("OK ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("expected `OK <port>`, got {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    #[test]
    fn parses_ok_lines() {
        assert_eq!(parse_ok_line("OK 1073741824"), Ok(1_073_741_824));
        assert!(parse_ok_line("ERR").is_err());
        assert!(parse_ok_line("OK x").is_err());
    }

    /// A stand-in for Firecracker's vsock muxer: checks the CONNECT line, answers OK, then
    /// sends payload bytes immediately after (which must not be swallowed by the handshake).
    #[tokio::test]
    async fn hybrid_vsock_handshake_keeps_following_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"CONNECT 52\n");
            s.write_all(b"OK 1073741824\nhello").await.unwrap();
        });
        let mut stream = hybrid_vsock_connect("vm1", &path, 52, Duration::from_secs(10))
            .await
            .unwrap();
        let mut rest = String::new();
        stream.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "hello");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn hybrid_vsock_times_out_when_nobody_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // Hold the connection open without answering, like Firecracker before the guest
            // listens.
            let (_s, _) = listener.accept().await.unwrap();
            let _ = rx.await;
        });
        let err = hybrid_vsock_connect("vm1", &path, 52, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no answer within"), "{err}");
        drop(tx);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn hybrid_vsock_reports_a_closed_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await.unwrap();
        });
        let err = hybrid_vsock_connect("vm1", &path, 52, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("nothing in the guest listens"),
            "{err}"
        );
        server.await.unwrap();
    }
}
