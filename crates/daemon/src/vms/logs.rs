//! A VM's serial console log, read in chunks and optionally followed until the VM
//! stops or the reader goes away.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{CONSOLE_LOG, lookup};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// How often a followed log is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Largest chunk read at once: the log is never held in memory whole.
const CHUNK: u64 = 1 << 20;

/// The console log of VM `name` as a stream of chunks, from its last `tail` lines when
/// given. Without `follow` the stream ends at the file's size when the call was made (a
/// chatty guest cannot keep it going); with `follow`, it ends once the VM is no longer
/// active (after a last read). Dropping the receiver stops the reader.
pub fn stream(
    daemon: &Daemon,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>> {
    let vm = lookup(daemon, name)?;
    let path = vm.dir.join(CONSOLE_LOG);
    let start = match tail {
        Some(lines) => start_of_last_lines(&path, lines).map_err(|e| {
            DaemonError::internal(format!(
                "cannot read the console log of VM {}: {e}",
                vm.name
            ))
        })?,
        None => 0,
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let daemon: Option<Arc<Daemon>> = daemon.self_arc();
    let id = vm.id.clone();
    let end = (!follow).then(|| std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
    tokio::spawn(async move {
        let mut offset = start;
        loop {
            if end.is_some_and(|end| offset >= end) {
                return;
            }
            let chunk = tokio::task::spawn_blocking({
                let path = path.clone();
                move || read_from(&path, offset, end)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match chunk {
                Ok(bytes) if !bytes.is_empty() => {
                    offset += bytes.len() as u64;
                    if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            if !follow {
                // The file shrank under us (truncated): what was there is sent.
                return;
            }
            // Caught up: stop once the VM is no longer running (after a final read).
            let running = daemon
                .as_ref()
                .and_then(|d| d.store().get_vm(&id).ok().flatten())
                .is_some_and(|vm| vm.state.is_active());
            if !running {
                if let Ok(bytes) = read_from(&path, offset, None)
                    && !bytes.is_empty()
                {
                    let _ = tx.send(Ok(Bytes::from(bytes))).await;
                }
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

/// How much is read at a time when looking for the last lines from the end.
const TAIL_BLOCK: u64 = 64 * 1024;

/// The offset where the last `lines` lines of `path` begin (0 when it has fewer; the
/// size when `lines` is 0). A final line without a newline counts. Reads backwards in
/// blocks, so a log of any size costs one block of memory.
fn start_of_last_lines(path: &std::path::Path, lines: u64) -> std::io::Result<u64> {
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

/// Up to [`CHUNK`] bytes of `path` from `offset` on, never past `end`; empty at the
/// end or when the file does not exist yet.
fn read_from(path: &std::path::Path, offset: u64, end: Option<u64>) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    let want = end.map_or(CHUNK, |end| end.saturating_sub(offset).min(CHUNK));
    file.take(want).read_to_end(&mut buf)?;
    Ok(buf)
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
