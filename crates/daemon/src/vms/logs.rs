//! A VM's serial console log as a stream of chunks, optionally followed until the VM stops or
//! the reader goes away (`GET /v1/vms/{name}/logs`, see `http/logs.rs`).
//!
//! The log is `console.log.1` then `console.log` (see `vms/console.rs`), of which at most the
//! last `[logs] console_max` bytes are sent — even a log grown without a cap by an older
//! banger is read from its end only — and, with `tail`, only the last lines (found by
//! reading backwards from the end, one block at a time). Without `follow` the stream ends
//! where the log ended when the call was made (a chatty guest cannot keep it going). Everything is streamed in 64 KiB chunks through a
//! channel of a few chunks: memory does not depend on the log's size or the client's speed.

use std::io::SeekFrom;
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
/// given (see the module's documentation). Dropping the receiver stops the reader.
pub fn stream(
    daemon: &Daemon,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>> {
    let vm = lookup(daemon, name)?;
    let path = vm.dir.join(CONSOLE_LOG);
    let max = daemon.config.logs_resolved().console_max_bytes.value;
    let window = window(&path, max, tail).map_err(|e| {
        DaemonError::caused(
            crate::error::ErrorKind::Internal,
            format_args!("cannot read the console log of VM {}", vm.name),
            &e,
        )
    })?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let daemon: Option<Arc<Daemon>> = daemon.self_arc();
    let id = vm.id.clone();
    tokio::spawn(async move {
        let mut position = match send_existing(&path, window, &tx).await {
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

/// What of the log exists now is sent: where it starts in `PATH.1` and in `PATH` (`None`:
/// nothing of that file), and the files' identities and lengths at the time.
#[derive(Clone, Copy)]
struct Window {
    older: Option<(u64, u64)>,
    current: Option<(u64, u64)>,
    current_id: Option<(u64, u64)>,
    current_len: u64,
}

/// The part of `PATH.1` + `PATH` to send: at most the last `max` bytes, and with `tail`
/// only from the start of the last `tail` lines.
fn window(path: &Path, max: u64, tail: Option<u64>) -> std::io::Result<Window> {
    let older = banger_system::rotate::rotated_path(path);
    let len_of = |p: &Path| match std::fs::metadata(p) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let current = len_of(path)?;
    let current_len = current.as_ref().map_or(0, |m| m.len());
    let older_len = len_of(&older)?.map_or(0, |m| m.len());
    let from_current = current_len.min(max);
    let from_older = older_len.min(max - from_current);
    let mut current_start = current_len - from_current;
    let mut older_start = (from_older > 0).then_some(older_len - from_older);
    if let Some(lines) = tail {
        let (start, found) = tail_start(path, lines)?;
        current_start = current_start.max(start);
        older_start = match older_start {
            // The current file holds them all: nothing of the older one.
            Some(_) if found >= lines => None,
            Some(cap) => Some(cap.max(tail_start(&older, lines - found)?.0)),
            None => None,
        };
    }
    Ok(Window {
        older: older_start.map(|start| (start, older_len)),
        current: (current_start < current_len).then_some((current_start, current_len)),
        current_id: current.map(|m| (m.dev(), m.ino())),
        current_len,
    })
}

/// Send `window`; returns where `PATH` ended.
async fn send_existing(path: &Path, window: Window, tx: &Chunks) -> std::io::Result<Position> {
    if let Some((from, to)) = window.older {
        send_range(&banger_system::rotate::rotated_path(path), from, to, tx).await?;
    }
    if let Some((from, to)) = window.current {
        send_range(path, from, to, tx).await?;
    }
    Ok(Position {
        file: window.current_id,
        offset: window.current_len,
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
/// size when `lines` is 0), and how many lines that is (fewer than `lines` when the file
/// has fewer). A final line without a newline counts. Reads backwards in blocks, so a log
/// of any size costs one block of memory.
fn tail_start(path: &Path, lines: u64) -> std::io::Result<(u64, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if lines == 0 {
        return Ok((len, 0));
    }
    let mut seen = 0u64;
    let mut end = len;
    let mut block = vec![0u8; TAIL_BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(TAIL_BLOCK);
        let buf = &mut block[..(end - start) as usize];
        std::io::Seek::seek(&mut file, SeekFrom::Start(start))?;
        std::io::Read::read_exact(&mut file, buf)?;
        for (i, byte) in buf.iter().enumerate().rev() {
            let at = start + i as u64;
            // The newline that ends the file ends the last line; it starts none.
            if *byte == b'\n' && at + 1 != len {
                seen += 1;
                if seen == lines {
                    return Ok((at + 1, seen));
                }
            }
        }
        end = start;
    }
    // The whole file: its first line too, when it has any byte.
    Ok((0, seen + u64::from(len > 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(content: &[u8], lines: u64) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, content).unwrap();
        tail_start(&path, lines).unwrap().0 as usize
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
        assert_eq!(tail_start(&dir.path().join("none"), 3).unwrap(), (0, 0));
        let path = dir.path().join("three");
        std::fs::write(&path, b"a\nb\nc").unwrap();
        assert_eq!(tail_start(&path, 9).unwrap(), (0, 3));
        assert_eq!(tail_start(&path, 2).unwrap(), (2, 2));
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
