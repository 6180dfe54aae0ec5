//! The last lines of a log file, for error messages — read from the file's end only, so a
//! log of any size costs at most [`TAIL_WINDOW`] bytes of memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How much of a file's end is read to find its last lines.
pub const TAIL_WINDOW: u64 = 64 * 1024;

/// The last `n` lines of `path` (invalid UTF-8 replaced); empty when it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(end) = read_end(path, TAIL_WINDOW) else {
        return Vec::new();
    };
    last_lines(&end.bytes, end.from_start, n)
}

/// The last `n` lines of a capped log (see [`crate::rotate`]): `PATH.1` then `PATH`.
pub fn tail_lines_rotated(path: &Path, n: usize) -> Vec<String> {
    let mut lines = tail_lines(path, n);
    if lines.len() < n {
        let mut older = tail_lines(&crate::rotate::rotated_path(path), n - lines.len());
        older.append(&mut lines);
        lines = older;
    }
    lines
}

struct End {
    bytes: Vec<u8>,
    /// The bytes start at the beginning of the file (so the first line is whole).
    from_start: bool,
}

fn read_end(path: &Path, window: u64) -> std::io::Result<End> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(window);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(window).read_to_end(&mut bytes)?;
    Ok(End {
        bytes,
        from_start: start == 0,
    })
}

fn last_lines(bytes: &[u8], from_start: bool, n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if !from_start && !all.is_empty() {
        // The window began mid-line.
        all.remove(0);
    }
    all[all.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, b"a\nb\n\xffc\nd\n").unwrap();
        assert_eq!(tail_lines(&p, 2), vec!["\u{fffd}c", "d"]);
        assert_eq!(tail_lines(&p, 10).len(), 4);
        assert!(tail_lines(&dir.path().join("missing"), 3).is_empty());
    }

    #[test]
    fn reads_only_the_end_of_a_large_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.log");
        let mut text = "x".repeat(3 * TAIL_WINDOW as usize);
        text.push_str("\nsecond to last\nlast\n");
        std::fs::write(&p, text).unwrap();
        assert_eq!(tail_lines(&p, 5), vec!["second to last", "last"]);
    }

    #[test]
    fn a_rotated_log_continues_in_its_predecessor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        std::fs::write(crate::rotate::rotated_path(&p), b"one\ntwo\n").unwrap();
        std::fs::write(&p, b"three\n").unwrap();
        assert_eq!(tail_lines_rotated(&p, 2), vec!["two", "three"]);
        assert_eq!(tail_lines_rotated(&p, 1), vec!["three"]);
    }
}
