//! A VM's serial console log, read in chunks and optionally followed until the VM
//! stops or the reader goes away.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{CONSOLE_LOG, lookup};
use crate::error::Result;
use crate::state::Daemon;

/// How often a followed log is checked for growth.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Largest chunk read at once: the log is never held in memory whole.
const CHUNK: u64 = 1 << 20;

/// The console log of VM `name` as a stream of chunks. Without `follow` the stream
/// ends at the file's size when the call was made (a chatty guest cannot keep it
/// going); with `follow`, it ends once the VM is no longer
/// active (after a last read). Dropping the receiver stops the reader.
pub fn stream(
    daemon: &Daemon,
    name: &str,
    follow: bool,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>> {
    let vm = lookup(daemon, name)?;
    let path = vm.dir.join(CONSOLE_LOG);
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let daemon: Option<Arc<Daemon>> = daemon.self_arc();
    let id = vm.id.clone();
    let end = (!follow).then(|| std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
    tokio::spawn(async move {
        let mut offset = 0u64;
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
