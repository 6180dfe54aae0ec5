//! `/etc/os-release`: which distribution this host runs.
//!
//! Only the identifying fields are kept. The format is shell-like `KEY=value` lines
//! (see os-release(5)); values may be quoted with `"` or `'`, and `\` escapes the next
//! character inside double quotes. Lines that do not fit are skipped, so a drifting
//! file degrades to "distribution unknown" rather than a wrong answer.

use std::path::Path;

/// Where os-release(5) says to look, in order.
pub const OS_RELEASE_PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// The identifying fields of an os-release file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, lower case (`debian`, `ubuntu`, `arch`, `nixos`).
    pub id: Option<String>,
    /// `ID_LIKE`, split on whitespace (`ubuntu` has `debian`).
    pub id_like: Vec<String>,
    /// `VERSION_CODENAME` (`bookworm`).
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for messages.
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parse the contents of an os-release file.
    pub fn parse(content: &str) -> OsRelease {
        let mut release = OsRelease::default();
        for line in content.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let Some(value) = unquote(raw.trim()) else {
                continue;
            };
            let non_empty = (!value.is_empty()).then(|| value.clone());
            match key.trim() {
                "ID" => release.id = non_empty.map(|v| v.to_ascii_lowercase()),
                "ID_LIKE" => {
                    release.id_like = value
                        .split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect();
                }
                "VERSION_CODENAME" => release.version_codename = non_empty,
                "PRETTY_NAME" => release.pretty_name = non_empty,
                _ => {}
            }
        }
        release
    }

    /// Read and parse the file at `path`.
    pub fn read(path: &Path) -> std::io::Result<OsRelease> {
        std::fs::read_to_string(path).map(|content| OsRelease::parse(&content))
    }

    /// Read this host's os-release from the first standard location that exists.
    pub fn read_host() -> std::io::Result<OsRelease> {
        let mut last_err = None;
        for path in OS_RELEASE_PATHS {
            match OsRelease::read(Path::new(path)) {
                Ok(release) => return Ok(release),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    /// `ID` followed by every `ID_LIKE` entry: the distribution and what it derives
    /// from, most specific first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.id
            .iter()
            .chain(self.id_like.iter())
            .map(String::as_str)
    }

    /// Whether this is `id` or a derivative of it.
    pub fn is_like(&self, id: &str) -> bool {
        self.ids().any(|candidate| candidate == id)
    }
}

/// Strip one level of shell quoting. `None` for an unterminated quote.
fn unquote(raw: &str) -> Option<String> {
    let mut chars = raw.chars();
    match chars.next() {
        Some('"') => {
            let mut out = String::new();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (true, c) => {
                        out.push(c);
                        escaped = false;
                    }
                    (false, '\\') => escaped = true,
                    (false, '"') => return Some(out),
                    (false, c) => out.push(c),
                }
            }
            None
        }
        Some('\'') => {
            let rest = chars.as_str();
            rest.find('\'').map(|end| rest[..end].to_string())
        }
        _ => Some(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian() {
        let r = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_CODENAME=bookworm\nID=debian\n",
        );
        assert_eq!(r.id.as_deref(), Some("debian"));
        assert!(r.id_like.is_empty());
        assert_eq!(r.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(
            r.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert!(r.is_like("debian"));
    }

    #[test]
    fn id_like_lists_parents_in_order() {
        let r = OsRelease::parse("ID=pop\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(r.ids().collect::<Vec<_>>(), ["pop", "ubuntu", "debian"]);
        assert!(r.is_like("debian"));
        assert!(!r.is_like("arch"));
    }

    #[test]
    fn handles_quotes_escapes_comments_and_junk() {
        let r = OsRelease::parse(
            "# comment\nnot a pair\nID='Arch'\nPRETTY_NAME=\"say \\\"hi\\\"\"\nID_LIKE=\"broken\n",
        );
        assert_eq!(r.id.as_deref(), Some("arch"));
        assert_eq!(r.pretty_name.as_deref(), Some("say \"hi\""));
        // The unterminated quote is skipped, not half-parsed.
        assert!(r.id_like.is_empty());
    }

    #[test]
    fn empty_file_knows_nothing() {
        assert_eq!(OsRelease::parse(""), OsRelease::default());
        assert_eq!(OsRelease::parse("ID=\n").id, None);
    }

    #[test]
    fn reads_files_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(&path, "ID=nixos\n").unwrap();
        assert_eq!(OsRelease::read(&path).unwrap().id.as_deref(), Some("nixos"));
        assert!(OsRelease::read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn reads_this_host() {
        // Every supported build host is a Linux distribution with an os-release.
        assert!(OsRelease::read_host().unwrap().id.is_some());
    }
}
