//! Capturing a VM's serial console: the VMM offers it as a [`ConsoleSource`]
//! ([`VmRuntime::console`]); [`capture`] reads it and copies it into a size-capped log
//! (`console.log` and `console.log.1`, see `banger_system::rotate`) until the VMM closes it.
//!
//! Why not a file the VMM appends to: a guest can write its console as fast as the emulated
//! UART goes (over 1 MB/s), forever. A file would grow without bound — even while no daemon
//! runs to rotate it. So the VMM writes into something with a fixed buffer that the daemon
//! drains through the cap:
//! * QEMU: a socket chardev. While nobody is connected QEMU discards the output; a daemon
//!   reading slowly makes the guest's UART wait.
//! * Firecracker: a named pipe (`console.fifo`) whose read end Firecracker itself also holds
//!   (see `firecracker::launch`), so its writes never fail for want of a reader. Firecracker
//!   writes the serial without blocking (its stdout is set `O_NONBLOCK`, `serial_out_path` is
//!   opened `O_NONBLOCK`): once the pipe's 64 KiB are full, the bytes are dropped and the guest
//!   goes on. A restarted daemon reopens the pipe and drains from there.
//!
//! Either way the host's disk holds at most the cap, whoever runs.

use std::io;
use std::path::Path;
use std::time::Duration;

use banger_system::rotate::RotatingFile;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixStream;

use crate::runtime::{ConsoleSource, VmRuntime};

/// The cap of a VMM's own log drained by [`capture_vmm_log`] (with its `.1`): Firecracker
/// logs a few lines per lifecycle event; a flood of lines means a guest flooding the console
/// with nobody draining it, and only the latest lines matter.
pub const VMM_LOG_MAX_BYTES: u64 = 1 << 20;

/// How long [`capture`] keeps trying to connect while the VMM creates its socket.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// Copy the console of `rt` into the capped log at `log_path` (`max_bytes` for it and its
/// predecessor together) until the VMM closes it; returns the bytes captured. A VM without a
/// console source (launched by an older banger) returns at once.
pub async fn capture(rt: &VmRuntime, log_path: &Path, max_bytes: u64) -> io::Result<u64> {
    match &rt.console {
        None => Ok(0),
        Some(source) => capture_source(source, log_path, max_bytes).await,
    }
}

/// Copy the VMM's own log (`rt.vmm_log`) into its capped file beside the VM until the VMM
/// exits. A VMM that keeps its own log returns at once.
pub async fn capture_vmm_log(rt: &VmRuntime) -> io::Result<u64> {
    match &rt.vmm_log {
        None => Ok(0),
        Some(source) => {
            let log = crate::firecracker::FcPaths::in_dir(&rt.vm_dir).log;
            capture_source(source, &log, VMM_LOG_MAX_BYTES).await
        }
    }
}

/// Copy `source` into the capped log at `log_path` until its writer closes it.
pub async fn capture_source(
    source: &ConsoleSource,
    log_path: &Path,
    max_bytes: u64,
) -> io::Result<u64> {
    match source {
        ConsoleSource::Socket(socket) => {
            let stream = connect(socket).await?;
            copy_capped(stream, log_path, max_bytes).await
        }
        ConsoleSource::Fifo(fifo) => {
            // Read-only and non-blocking: the open never waits for a writer, and the reader
            // sees end-of-file once the VMM (the last writer) exits. Refuses anything that is
            // not a FIFO.
            let pipe = tokio::net::unix::pipe::OpenOptions::new().open_receiver(fifo)?;
            copy_capped(pipe, log_path, max_bytes).await
        }
    }
}

async fn copy_capped(
    mut reader: impl AsyncRead + Unpin,
    log_path: &Path,
    max_bytes: u64,
) -> io::Result<u64> {
    let path = log_path.to_path_buf();
    let mut log = tokio::task::spawn_blocking(move || RotatingFile::open(&path, max_bytes))
        .await
        .map_err(io::Error::other)??;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf).await {
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
