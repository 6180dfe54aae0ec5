//! Following a capped console log across its rotations without losing or repeating a byte.
//!
//! The writer (`banger_system::rotate::RotatingFile`) rotates by renaming `PATH` to `PATH.1`
//! and only then creating a new `PATH`. A follower that looked the file up by name for every
//! read could look at one file and read another — a rotation between its `stat` and its
//! `open` made it skip the rest of the old file. So the follower holds its file open and reads
//! through that descriptor; a name is only used to find the *next* file, and which file comes
//! next is proven, not guessed (see [`Follower::send_new`]).

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{CHUNK, Chunks};

/// An open file of the log and how much of it was sent.
pub(super) struct Followed {
    file: tokio::fs::File,
    id: (u64, u64),
    offset: u64,
}

impl Followed {
    /// `file` (whose device and inode are `id`), of which the first `offset` bytes were sent.
    pub(super) fn new(file: std::fs::File, id: (u64, u64), offset: u64) -> Followed {
        Followed {
            file: tokio::fs::File::from_std(file),
            id,
            offset,
        }
    }

    /// Open `path` from its start; `None` when it does not exist.
    async fn open(path: &Path) -> std::io::Result<Option<Followed>> {
        match tokio::fs::File::open(path).await {
            Ok(file) => {
                let meta = file.metadata().await?;
                Ok(Some(Followed {
                    file,
                    id: (meta.dev(), meta.ino()),
                    offset: 0,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Send the bytes from `offset` up to `to` (or the end of the file when `None`).
    /// `Ok(true)` when something was sent. A file truncated under us (by hand) is followed
    /// from its new end.
    pub(super) async fn send(&mut self, to: Option<u64>, tx: &Chunks) -> std::io::Result<bool> {
        let len = self.file.metadata().await?.len();
        if len < self.offset {
            self.offset = len;
        }
        self.file.seek(SeekFrom::Start(self.offset)).await?;
        let mut sent = false;
        loop {
            let want = match to {
                Some(to) if to <= self.offset => break,
                Some(to) => CHUNK.min(usize::try_from(to - self.offset).unwrap_or(CHUNK)),
                None => CHUNK,
            };
            let mut buf = vec![0u8; want];
            let n = self.file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            self.offset += n as u64;
            if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the reader of the log went away",
                ));
            }
            sent = true;
        }
        Ok(sent)
    }
}

/// Where a follower of `PATH` is: the file it reads (`None` until `PATH` exists).
pub(super) struct Follower {
    path: PathBuf,
    older: PathBuf,
    current: Option<Followed>,
}

impl Follower {
    pub(super) fn new(path: &Path, current: Option<Followed>) -> Follower {
        Follower {
            path: path.to_path_buf(),
            older: banger_system::rotate::rotated_path(path),
            current,
        }
    }

    /// Send what was written since the last call, across any rotations since. `Ok(true)`
    /// when something was sent.
    ///
    /// Rotations only move forward (`PATH` → `PATH.1` → gone), and the writer leaves a file
    /// for good before the new `PATH` exists. So once `PATH` is another file, ours is
    /// complete; and if `PATH.1`, looked up *after* that `PATH`, is ours, that `PATH` is our
    /// file's direct successor. Otherwise the log rotated more than once since: if `PATH`
    /// has not moved meanwhile, `PATH.1` is the one file in between. A follower more than
    /// two rotations behind (the cap's worth of output) loses what the cap discarded.
    pub(super) async fn send_new(&mut self, tx: &Chunks) -> std::io::Result<bool> {
        let mut sent = false;
        loop {
            if let Some(current) = self.current.as_mut() {
                sent |= current.send(None, tx).await?;
            }
            let Some(next) = Followed::open(&self.path).await? else {
                // None yet, or between the rename and the new file: the next call sees it.
                return Ok(sent);
            };
            let current = self.current.as_mut().map(|current| current.id);
            if current == Some(next.id) {
                return Ok(sent);
            }
            if let Some(current) = self.current.as_mut() {
                // Rotated: what the writer appended before it renamed the file.
                sent |= current.send(None, tx).await?;
            }
            if let Some(mut between) = Followed::open(&self.older).await?
                && current != Some(between.id)
                && between.id != next.id
                && Followed::open(&self.path)
                    .await?
                    .is_some_and(|now| now.id == next.id)
            {
                sent |= between.send(None, tx).await?;
            }
            self.current = Some(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use banger_system::rotate::RotatingFile;
    use tokio::sync::mpsc;

    use super::*;

    /// Numbered lines `0..lines` written through the real rotating writer (capped at `cap`
    /// bytes) while a follower reads them, the writer never more than `ahead` lines ahead of
    /// what was received; returns the line numbers received, in order.
    async fn follow_while_writing(cap: u64, lines: u64, ahead: u64, chunk_lines: u64) -> Vec<u64> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        let received = Arc::new(AtomicU64::new(0));
        let writer = {
            let (path, received) = (path.clone(), received.clone());
            std::thread::spawn(move || {
                let mut log = RotatingFile::open(&path, cap).expect("open the log");
                let mut i = 0;
                while i < lines {
                    while i > received.load(Ordering::Acquire) + ahead {
                        std::thread::yield_now();
                    }
                    let batch: String = (i..(i + chunk_lines).min(lines))
                        .map(|n| format!("line {n:08}\n"))
                        .collect();
                    log.append(batch.as_bytes());
                    i += chunk_lines;
                }
                log.rotations()
            })
        };
        let (tx, mut rx) = mpsc::channel(4);
        let follower = tokio::spawn({
            let path = path.clone();
            async move {
                let mut follower = Follower::new(&path, None);
                // As fast as it can: every interleaving with the writer's rotations.
                while !tx.is_closed() && follower.send_new(&tx).await.is_ok() {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut numbers = Vec::new();
        let mut text = Vec::new();
        while (numbers.len() as u64) < lines {
            let chunk = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no output after line {:?}", numbers.last()))
                .expect("the follower ended")
                .expect("a chunk");
            text.extend_from_slice(&chunk);
            while let Some(end) = text.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = text.drain(..=end).collect();
                let n = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.strip_prefix("line ")?.trim_end().parse().ok())
                    .unwrap_or_else(|| panic!("a torn line: {:?}", String::from_utf8_lossy(&line)));
                numbers.push(n);
                received.store(numbers.len() as u64, Ordering::Release);
            }
        }
        drop(rx);
        follower.await.expect("follower");
        let rotations = writer.join().expect("writer");
        assert!(
            rotations > 100,
            "only {rotations} rotations: the test tested little"
        );
        numbers
    }

    /// A rotation between the follower's look at `PATH` and its read must not make it read
    /// another file (the writer stays less than one rotation ahead: nothing is lost to the cap).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_loses_nothing_across_rotations() {
        // 14-byte lines, 512 bytes per file: a rotation every 36 lines.
        let numbers = follow_while_writing(1024, 20_000, 8, 1).await;
        let expected: Vec<u64> = (0..20_000).collect();
        assert!(
            numbers == expected,
            "lines lost or repeated: {}",
            first_gap(&numbers)
        );
    }

    /// Two rotations between reads (a burst of more than half the cap at once): the file in
    /// between is sent too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_reads_the_file_between_two_rotations() {
        // 50 lines (700 bytes) per append into 512-byte files, each once the follower has read
        // everything before it: rotations come in pairs.
        let numbers = follow_while_writing(1024, 10_000, 0, 50).await;
        let expected: Vec<u64> = (0..10_000).collect();
        assert!(
            numbers == expected,
            "lines lost or repeated: {}",
            first_gap(&numbers)
        );
    }

    fn first_gap(numbers: &[u64]) -> String {
        match numbers.iter().enumerate().find(|(i, n)| **n != *i as u64) {
            Some((i, n)) => format!("line {i} is {n}"),
            None => format!("{} lines", numbers.len()),
        }
    }
}
