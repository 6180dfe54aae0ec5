//! The last lines of a log file, for error messages.

use std::path::Path;

/// The last `n` lines of `path` (invalid UTF-8 replaced); empty when it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
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
}
