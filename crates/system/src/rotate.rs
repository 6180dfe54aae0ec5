//! Size-capped logs: a file and its one predecessor (`PATH` and `PATH.1`) that together never
//! exceed a limit. When `PATH` would grow past half the limit it becomes `PATH.1` (replacing
//! the older one) and a new `PATH` starts, so the newest half-limit of output or more is
//! always kept and the disk use is bounded whatever is written, and however fast.
//!
//! A write that fails (a full disk) is not an error for the caller — logging must never stop
//! the work it logs — but is not silent either: the loss is counted, and the next write that
//! succeeds is preceded by a line saying how much was lost and why.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `PATH.1`: where the previous half of a capped log lives.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// An append-only log file capped together with its predecessor.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    /// Each of the two files stays at or under this: half the limit.
    half: u64,
    file: File,
    size: u64,
    rotations: u64,
    lost_bytes: u64,
    lost_error: Option<io::ErrorKind>,
}

impl RotatingFile {
    /// Open (creating, mode 0600) `path` for appending, kept with `PATH.1` under `max_bytes`.
    /// A file already over its half is rotated at once.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        let mut log = RotatingFile {
            path: path.to_path_buf(),
            half: (max_bytes / 2).max(1),
            file,
            size,
            rotations: 0,
            lost_bytes: 0,
            lost_error: None,
        };
        if log.size > log.half {
            log.rotate()?;
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file currently written to (it changes on rotation: see [`Self::rotations`]).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// How many times the file was rotated since it was opened.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Append `data`, rotating first if it would not fit. Output larger than half the limit
    /// is written in halves (rotating between them), so one large write keeps as much of its
    /// end as the limit holds, as the same bytes written a line at a time would. Never fails:
    /// a failed write is counted and reported in the log once writing works again.
    pub fn append(&mut self, data: &[u8]) {
        let half = usize::try_from(self.half).unwrap_or(usize::MAX);
        let data = &data[data.len().saturating_sub(half.saturating_mul(2))..];
        // The first piece is the remainder, so the last one is a whole half.
        let first = match data.len() % half {
            0 => half.min(data.len()),
            partial => partial,
        };
        let (head, rest) = data.split_at(first);
        self.append_piece(head);
        for piece in rest.chunks(half) {
            self.append_piece(piece);
        }
    }

    fn append_piece(&mut self, data: &[u8]) {
        if self.lost_bytes > 0 {
            let note = format!(
                "[banger: {} bytes of this log were lost: {}]\n",
                self.lost_bytes,
                self.lost_error
                    .map_or_else(|| "write failed".to_owned(), describe)
            );
            if self.write_raw(note.as_bytes()).is_err() {
                self.lost_bytes += data.len() as u64;
                return;
            }
            self.lost_bytes = 0;
            self.lost_error = None;
        }
        if let Err(e) = self.write_raw(data) {
            self.lost_bytes += data.len() as u64;
            self.lost_error = Some(e.kind());
        }
    }

    fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        if self.size + data.len() as u64 > self.half && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// `PATH` → `PATH.1`, and a fresh `PATH`.
    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, rotated_path(&self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }
}

/// Open for appending, private to its owner (an older, more open file is narrowed: a log
/// holds guest output and daemon internals).
fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    // Never through a link: a console log lives in a VM directory its sandboxed VMM owns
    // while it runs, and a link planted there must not turn a root daemon's append into a
    // write to a host file (docs/security.md).
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

fn describe(kind: io::ErrorKind) -> String {
    match kind {
        io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        io::ErrorKind::QuotaExceeded => "the disk quota is exceeded".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn two_files_never_exceed_the_limit_and_keep_the_newest_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut log = RotatingFile::open(&path, 1000).unwrap();
        for i in 0..500u32 {
            log.append(format!("line {i:04}\n").as_bytes());
            assert!(size(&path) + size(&rotated_path(&path)) <= 1000);
        }
        assert!(log.rotations() > 0);
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.ends_with("line 0499\n"), "{newest}");
        let older = std::fs::read_to_string(rotated_path(&path)).unwrap();
        assert!(
            older.len() > 400,
            "the predecessor keeps about half: {}",
            older.len()
        );
        // A single write bigger than the limit keeps its end, as much as the limit holds.
        let mut big: Vec<u8> = (0..5000u32).flat_map(|i| (i as u8).to_le_bytes()).collect();
        big.extend_from_slice(b"end");
        log.append(&big);
        assert_eq!(size(&path), 500);
        assert_eq!(size(&rotated_path(&path)), 500);
        let kept = [
            std::fs::read(rotated_path(&path)).unwrap(),
            std::fs::read(&path).unwrap(),
        ]
        .concat();
        assert_eq!(
            kept,
            big[big.len() - 1000..],
            "the last 1000 bytes, in order"
        );
        // A write of one and a half halves: rotated once before and once between.
        log.append(&[b'y'; 750]);
        assert_eq!(std::fs::read(&path).unwrap(), [b'y'; 500]);
        let older = std::fs::read(rotated_path(&path)).unwrap();
        assert_eq!(older, [b'y'; 250], "a new file for the first piece");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_oversized_file_is_rotated_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        std::fs::write(&path, vec![b'a'; 4000]).unwrap();
        let log = RotatingFile::open(&path, 1000).unwrap();
        assert_eq!(size(&path), 0);
        assert_eq!(log.rotations(), 1);
        assert_eq!(size(&rotated_path(&path)), 4000, "kept once, then replaced");
    }

    /// A full disk: writes are counted and reported once writing works again (here: /dev/full
    /// stands in for the full disk, then the file is pointed back at a real one).
    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "host file").unwrap();
        let path = dir.path().join("console.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = RotatingFile::open(&path, 1000).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file");
    }

    #[test]
    fn a_full_disk_is_reported_not_silent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let mut log = RotatingFile::open(&path, 1 << 20).unwrap();
        log.file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        log.append(b"lost one\n");
        log.append(b"lost two\n");
        log.file = open_append(&path).unwrap();
        log.append(b"back\n");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "[banger: 18 bytes of this log were lost: no space left on the device]\nback\n"
        );
    }
}
