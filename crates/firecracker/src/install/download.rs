//! HTTP(S) GETs for the release files, bounded in size and time, hashed as they stream.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::InstallError;

/// The longest checksum file accepted (one line: a hash and a file name).
const MAX_CHECKSUM_FILE: u64 = 4096;

pub(super) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(super) fn new() -> Http {
        Http {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(15))
                .timeout_read(Duration::from_secs(60))
                .redirects(8)
                .user_agent(concat!("banger/", env!("CARGO_PKG_VERSION")))
                .build(),
        }
    }

    /// Start a GET: the body and its announced length.
    fn get(&self, url: &str) -> Result<(Box<dyn Read + Send + Sync>, Option<u64>), InstallError> {
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| InstallError::Download {
                url: url.to_owned(),
                source: Box::new(e),
            })?;
        let length = response
            .header("Content-Length")
            .and_then(|v| v.trim().parse().ok());
        Ok((response.into_reader(), length))
    }
}

/// The SHA-256 published for `file` in the checksum file at `url` (`<hex>  <file>`, the
/// format of `sha256sum`; a bare hash is accepted too).
pub(super) fn checksum(http: &Http, url: &str, file: &str) -> Result<String, InstallError> {
    let (body, _) = http.get(url)?;
    let mut text = String::new();
    body.take(MAX_CHECKSUM_FILE)
        .read_to_string(&mut text)
        .map_err(|e| InstallError::Download {
            url: url.to_owned(),
            source: Box::new(e),
        })?;
    parse_checksum(&text, file).ok_or_else(|| InstallError::BadChecksumFile {
        url: url.to_owned(),
        file: file.to_owned(),
        found: text.chars().take(200).collect(),
    })
}

fn parse_checksum(text: &str, file: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let hash = words.next()?;
        let named = words.next().map(|n| n.trim_start_matches('*'));
        let is_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (is_hash && named.is_none_or(|n| n == file)).then(|| hash.to_ascii_lowercase())
    })
}

/// Stream `url` into `dest`; returns its SHA-256. A body shorter than its Content-Length,
/// or longer than `limit`, is an error.
pub(super) fn to_file(
    http: &Http,
    url: &str,
    dest: &Path,
    limit: u64,
) -> Result<String, InstallError> {
    let (body, length) = http.get(url)?;
    if length.is_some_and(|n| n > limit) {
        return Err(InstallError::TooLarge {
            url: url.to_owned(),
            limit,
        });
    }
    let mut file = std::fs::File::create(dest).map_err(|e| InstallError::io("create", dest, e))?;
    let mut hasher = Sha256::new();
    let mut reader = body.take(limit + 1);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(truncated(url, total, length));
            }
            Err(e) => {
                return Err(InstallError::Download {
                    url: url.to_owned(),
                    source: Box::new(e),
                });
            }
        };
        total += n as u64;
        if total > limit {
            return Err(InstallError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| InstallError::io("write", dest, e))?;
    }
    if let Some(expected) = length
        && total != expected
    {
        return Err(truncated(url, total, Some(expected)));
    }
    Ok(hex::encode(hasher.finalize()))
}

fn truncated(url: &str, got: u64, expected: Option<u64>) -> InstallError {
    InstallError::Truncated {
        url: url.to_owned(),
        got,
        expected: expected.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_files() {
        let h = "a".repeat(64);
        let file = "firecracker-v1.14.1-x86_64.tgz";
        assert_eq!(
            parse_checksum(&format!("{h}  {file}\n"), file),
            Some(h.clone())
        );
        assert_eq!(
            parse_checksum(&format!("{h} *{file}\n"), file),
            Some(h.clone())
        );
        assert_eq!(parse_checksum(&format!("{h}\n"), file), Some(h.clone()));
        assert_eq!(parse_checksum(&format!("{h}  other.tgz\n"), file), None);
        assert_eq!(parse_checksum("not a hash  x\n", file), None);
        assert_eq!(parse_checksum("", file), None);
        let upper = "A".repeat(64);
        assert_eq!(parse_checksum(&upper, file), Some(h));
    }
}
