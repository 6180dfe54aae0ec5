//! Capturing a VM's serial console: the VMM offers it as a listening socket
//! ([`VmRuntime::console_socket`]); [`capture`] connects and copies it into a size-capped log
//! (`console.log` and `console.log.1`, see `banger_system::rotate`) until the VMM closes it.
//!
//! Why a socket and not a file the VMM appends to: a guest can write its console as fast as
//! the emulated UART goes (over 1 MB/s), forever. A file would grow without bound — even while
//! no daemon runs to rotate it. With a socket, the VMM discards the output while nobody is
//! connected (the guest never blocks, the disk is untouched), and the daemon that is
//! connected writes it through the cap. A daemon reading slowly makes the guest's UART wait.

use std::io;
use std::path::Path;
use std::time::Duration;

use banger_system::rotate::RotatingFile;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use crate::runtime::VmRuntime;

/// How long [`capture`] keeps trying to connect while the VMM creates its socket.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// Copy the console of `rt` into the capped log at `log_path` (`max_bytes` for it and its
/// predecessor together) until the VMM closes it; returns the bytes captured. A VM without a
/// console socket (launched by an older banger) returns at once.
pub async fn capture(rt: &VmRuntime, log_path: &Path, max_bytes: u64) -> io::Result<u64> {
    let Some(socket) = &rt.console_socket else {
        return Ok(0);
    };
    let mut stream = connect(socket).await?;
    let path = log_path.to_path_buf();
    let mut log = tokio::task::spawn_blocking(move || RotatingFile::open(&path, max_bytes))
        .await
        .map_err(io::Error::other)??;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // Appends to a local file are short and bounded (64 KiB): done in place rather than
        // on the blocking pool, whose queue would otherwise grow with a flooding guest.
        log.append(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

async fn connect(socket: &Path) -> io::Result<UnixStream> {
    let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
