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

mod follow;
use follow::{Followed, Follower};

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
        let mut follower = match send_existing(&path, window, &tx).await {
            Ok(follower) => follower,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if !follow {
            return;
        }
        loop {
            match follower.send_new(&tx).await {
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
                while let Ok(true) = follower.send_new(&tx).await {}
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

/// What of the log exists now is sent: the files open when the call was made (so a
/// rotation meanwhile cannot swap one for another) and the range of each to send.
struct Window {
    older: Option<(Opened, u64)>,
    current: Option<Opened>,
    current_start: u64,
}

/// An open file with its identity and its length when opened.
struct Opened {
    file: std::fs::File,
    id: (u64, u64),
    len: u64,
}

fn open_if_present(path: &Path) -> std::io::Result<Option<Opened>> {
    match std::fs::File::open(path) {
        Ok(file) => {
            let meta = file.metadata()?;
            Ok(Some(Opened {
                file,
                id: (meta.dev(), meta.ino()),
                len: meta.len(),
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The part of `PATH.1` + `PATH` to send: at most the last `max` bytes, and with `tail`
/// only from the start of the last `tail` lines.
fn window(path: &Path, max: u64, tail: Option<u64>) -> std::io::Result<Window> {
    // `PATH` first: a rotation between the two opens then shows as both being one file
    // (dropped as the older), never as a file skipped between them.
    let mut current = open_if_present(path)?;
    let mut older = open_if_present(&banger_system::rotate::rotated_path(path))?
        .filter(|older| current.as_ref().is_none_or(|c| c.id != older.id));
    let current_len = current.as_ref().map_or(0, |c| c.len);
    let older_len = older.as_ref().map_or(0, |o| o.len);
    let from_current = current_len.min(max);
    let from_older = older_len.min(max - from_current);
    let mut current_start = current_len - from_current;
    let mut older_start = (from_older > 0).then_some(older_len - from_older);
    if let Some(lines) = tail {
        let (start, found) = match current.as_mut() {
            Some(c) => tail_start(&mut c.file, c.len, lines)?,
            None => (0, 0),
        };
        current_start = current_start.max(start);
        older_start = match (older_start, older.as_mut()) {
            // The current file holds them all: nothing of the older one.
            (Some(_), _) if found >= lines => None,
            (Some(cap), Some(o)) => Some(cap.max(tail_start(&mut o.file, o.len, lines - found)?.0)),
            _ => None,
        };
    }
    Ok(Window {
        older: older.zip(older_start),
        current,
        current_start,
    })
}

/// Send `window`; returns the follower that goes on from where it ended.
async fn send_existing(path: &Path, window: Window, tx: &Chunks) -> std::io::Result<Follower> {
    let mut older = match window.older {
        Some((o, from)) => {
            let mut older = Followed::new(o.file, o.id, from);
            older.send(Some(o.len), tx).await?;
            Some(older)
        }
        None => None,
    };
    let current = match window.current {
        Some(c) => {
            let mut current = Followed::new(c.file, c.id, window.current_start);
            current.send(Some(c.len), tx).await?;
            Some(current)
        }
        // Caught between a rotation's rename and its new file: the older file is the one to
        // follow on from (its successor is proven as usual). Without either, whatever appears
        // is followed from its start.
        None => older.take(),
    };
    Ok(Follower::new(path, current))
}

/// How much is read at a time when looking for the last lines from the end.
const TAIL_BLOCK: u64 = 64 * 1024;

/// The offset where the last `lines` lines of `path` begin (0 when it has fewer; the
/// size when `lines` is 0), and how many lines that is (fewer than `lines` when the file
/// has fewer). A final line without a newline counts. Reads backwards in blocks, so a log
/// of any size costs one block of memory.
fn tail_start(file: &mut std::fs::File, len: u64, lines: u64) -> std::io::Result<(u64, u64)> {
    if lines == 0 {
        return Ok((len, 0));
    }
    let mut seen = 0u64;
    let mut end = len;
    let mut block = vec![0u8; TAIL_BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(TAIL_BLOCK);
        let buf = &mut block[..(end - start) as usize];
        std::io::Seek::seek(file, SeekFrom::Start(start))?;
        std::io::Read::read_exact(file, buf)?;
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
        tail_of(&path, lines).0 as usize
    }

    fn tail_of(path: &Path, lines: u64) -> (u64, u64) {
        let mut file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        tail_start(&mut file, len, lines).unwrap()
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
        let path = dir.path().join("three");
        std::fs::write(&path, b"a\nb\nc").unwrap();
        assert_eq!(tail_of(&path, 9), (0, 3));
        assert_eq!(tail_of(&path, 2), (2, 2));
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
