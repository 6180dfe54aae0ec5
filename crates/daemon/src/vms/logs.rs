//! A VM's serial console log as a stream of chunks, optionally followed until the VM stops or
//! the reader goes away (`GET /v1/vms/{name}/logs`, see `http/logs.rs`).
//!
//! The log is `console.log.1` then `console.log` (see `vms/console.rs`), of which at most the
//! last `[logs] console_max` bytes are sent — even a log grown without a cap by an older
//! banger is read from its end only. Everything is streamed in 64 KiB chunks through a
//! channel of a few chunks: memory does not depend on the log's size or the client's speed.
//! With `tail`, the stream starts at the last N lines of `console.log` (found by reading
//! backwards from its end), within the same cap.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::{CONSOLE_LOG, lookup};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// How often a followed log is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Bytes per chunk sent.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the reader and the connection.
const IN_FLIGHT: usize = 4;

type Chunks = mpsc::Sender<std::io::Result<Bytes>>;

/// The console log of VM `name` as a stream of chunks, from its last `tail` lines when
/// given (see the module's documentation). Without `follow` the stream ends at the log's
/// size when the call was made; with `follow`, once the VM is no longer active (after a
/// last read). Dropping the receiver stops the reader.
pub fn stream(
    daemon: &Daemon,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>> {
    let vm = lookup(daemon, name)?;
    let path = vm.dir.join(CONSOLE_LOG);
    let max = daemon.config.logs_resolved().console_max_bytes.value;
    let tail_start = match tail {
        Some(lines) => Some(start_of_last_lines(&path, lines).map_err(|e| {
            DaemonError::internal(format!(
                "cannot read the console log of VM {}: {e}",
                vm.name
            ))
        })?),
        None => None,
    };
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let daemon: Option<Arc<Daemon>> = daemon.self_arc();
    let id = vm.id.clone();
    tokio::spawn(async move {
        let mut position = match send_existing(&path, max, tail_start, &tx).await {
            Ok(position) => position,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if !follow {
            return;
        }
        loop {
            match position.send_new(&path, &tx).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            // Caught up: stop once the VM is no longer running (after a final read).
            let running = daemon
                .as_ref()
                .and_then(|d| d.store().get_vm(&id).ok().flatten())
                .is_some_and(|vm| vm.state.is_active());
            if !running {
                while let Ok(true) = position.send_new(&path, &tx).await {}
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}

/// Where a follower is in `console.log`: which file (device, inode) and how far.
struct Position {
    file: Option<(u64, u64)>,
    offset: u64,
}

/// Send the last `max` bytes of `PATH.1` + `PATH` — or, with `tail_start`, of `PATH` from
/// that offset on; returns where `PATH` ends.
async fn send_existing(
    path: &Path,
    max: u64,
    tail_start: Option<u64>,
    tx: &Chunks,
) -> std::io::Result<Position> {
    let older = banger_system::rotate::rotated_path(path);
    let current = identity(path).await;
    let current_len = current.map_or(0, |(_, len)| len);
    let older_len = identity(&older).await.map_or(0, |(_, len)| len);
    let from_current = match tail_start {
        Some(start) => current_len.saturating_sub(start).min(max),
        None => current_len.min(max),
    };
    let from_older = match tail_start {
        // The last lines come from the current file (a rotation keeps whole files only).
        Some(_) => 0,
        None => older_len.min(max - from_current),
    };
    if from_older > 0 {
        send_range(&older, older_len - from_older, older_len, tx).await?;
    }
    if from_current > 0 {
        send_range(path, current_len - from_current, current_len, tx).await?;
    }
    Ok(Position {
        file: current.map(|(id, _)| id),
        offset: current_len,
    })
}

impl Position {
    /// Send what was appended since the last call. `Ok(true)` when something was sent.
    async fn send_new(&mut self, path: &Path, tx: &Chunks) -> std::io::Result<bool> {
        let Some((id, len)) = identity(path).await else {
            return Ok(false);
        };
        if self.file.is_some_and(|old| old != id) && self.offset > 0 {
            // Rotated: the rest of the file we followed is now PATH.1.
            let older = banger_system::rotate::rotated_path(path);
            if let Some((older_id, older_len)) = identity(&older).await
                && self.file == Some(older_id)
                && older_len > self.offset
            {
                send_range(&older, self.offset, older_len, tx).await?;
            }
            self.file = Some(id);
            self.offset = 0;
        }
        self.file = Some(id);
        if len <= self.offset {
            // Truncated by hand, or nothing new.
            self.offset = self.offset.min(len);
            return Ok(false);
        }
        send_range(path, self.offset, len, tx).await?;
        self.offset = len;
        Ok(true)
    }
}

/// Device and inode of `path`, and its length.
async fn identity(path: &Path) -> Option<((u64, u64), u64)> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(((meta.dev(), meta.ino()), meta.len()))
}

/// Send bytes `from..to` of `path` in chunks (fewer if the file shrank meanwhile).
async fn send_range(path: &Path, from: u64, to: u64, tx: &Chunks) -> std::io::Result<()> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(from)).await?;
    let mut left = to - from;
    while left > 0 {
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        left -= n as u64;
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            // The client went away.
            return Ok(());
        }
    }
    Ok(())
}

/// How much is read at a time when looking for the last lines from the end.
const TAIL_BLOCK: u64 = 64 * 1024;

/// The offset where the last `lines` lines of `path` begin (0 when it has fewer; the
/// size when `lines` is 0). A final line without a newline counts. Reads backwards in
/// blocks, so a log of any size costs one block of memory.
fn start_of_last_lines(path: &Path, lines: u64) -> std::io::Result<u64> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if lines == 0 {
        return Ok(len);
    }
    let mut seen = 0u64;
    let mut end = len;
    let mut block = vec![0u8; TAIL_BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(TAIL_BLOCK);
        let buf = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        for (i, byte) in buf.iter().enumerate().rev() {
            let at = start + i as u64;
            // The newline that ends the file ends the last line; it starts none.
            if *byte == b'\n' && at + 1 != len {
                seen += 1;
                if seen == lines {
                    return Ok(at + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(content: &[u8], lines: u64) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, content).unwrap();
        start_of_last_lines(&path, lines).unwrap() as usize
    }

    #[test]
    fn tail_finds_where_the_last_lines_begin() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(&log[start(log, 1)..], b"three\n");
        assert_eq!(&log[start(log, 2)..], b"two\nthree\n");
        assert_eq!(start(log, 3), 0);
        assert_eq!(start(log, 99), 0);
        assert_eq!(start(log, 0), log.len());
        let open = b"one\ntwo\npartial";
        assert_eq!(&open[start(open, 1)..], b"partial");
        assert_eq!(&open[start(open, 2)..], b"two\npartial");
        assert_eq!(start(b"", 5), 0);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(start_of_last_lines(&dir.path().join("none"), 3).unwrap(), 0);
    }

    #[test]
    fn tail_crosses_block_boundaries() {
        let mut log = Vec::new();
        for i in 0..40_000 {
            log.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        assert!(log.len() as u64 > 3 * TAIL_BLOCK);
        assert_eq!(&log[start(&log, 2)..], b"line 39998\nline 39999\n");
        let at = start(&log, 30_000);
        assert!(log[at..].starts_with(b"line 10000\n"));
    }
}
