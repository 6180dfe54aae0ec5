//! `InRelease`: the signed root of the archive's chain of trust.
//!
//! We let `gpgv` check the signature and write out exactly the text it verified
//! (`--output`), then parse only that text, so nothing outside the signed part
//! of a clearsigned file can ever be believed.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use banger_system::CommandRunner;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::deb822;
use super::{DebianError, FileDigest};

/// The parsed, verified release file of one suite.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub date: Option<String>,
    pub valid_until: Option<OffsetDateTime>,
    /// The mirror serves index files under `by-hash/SHA256/<hex>` too.
    pub acquire_by_hash: bool,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    files: HashMap<String, FileDigest>,
}

impl Release {
    /// Parse the signed text of an `InRelease` (or a `Release`) file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut paragraphs = Vec::new();
        deb822::parse(text.as_bytes(), |_| true, |p| paragraphs.push(p))
            .map_err(|e| e.to_string())?;
        let [p] = paragraphs.as_slice() else {
            return Err(format!(
                "expected one paragraph, found {}",
                paragraphs.len()
            ));
        };
        let list = |key: &str| -> Vec<String> {
            p.get(key)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let sha256 = p.get("SHA256").ok_or("it has no SHA256 field")?;
        let mut files = HashMap::new();
        for line in sha256.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [hash, size, name] = parts.as_slice() else {
                return Err(format!("malformed SHA256 line {line:?}"));
            };
            let size = size
                .parse()
                .map_err(|_| format!("bad size in SHA256 line {line:?}"))?;
            if !is_sha256_hex(hash) {
                return Err(format!("bad digest in SHA256 line {line:?}"));
            }
            files.insert(
                (*name).to_string(),
                FileDigest {
                    sha256: hash.to_ascii_lowercase(),
                    size,
                },
            );
        }
        let valid_until = match p.get("Valid-Until") {
            Some(v) => {
                Some(parse_release_date(v).ok_or_else(|| format!("unreadable Valid-Until {v:?}"))?)
            }
            None => None,
        };
        Ok(Self {
            suite: p.get("Suite").map(str::to_string),
            codename: p.get("Codename").map(str::to_string),
            date: p.get("Date").map(str::to_string),
            valid_until,
            acquire_by_hash: p
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            components: list("Components"),
            architectures: list("Architectures"),
            files,
        })
    }

    /// The digest of an index file, by its path relative to `dists/SUITE/`.
    pub fn file(&self, path: &str) -> Option<&FileDigest> {
        self.files.get(path)
    }

    /// Check that this release is the one asked for and still valid: the suite or
    /// codename matches, it carries the component and architecture, and its
    /// Valid-Until (if any) has not passed — which stops a mirror from replaying
    /// an old, vulnerable archive state.
    pub fn check(
        &self,
        suite: &str,
        component: &str,
        arch: &str,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        let names_suite =
            self.suite.as_deref() == Some(suite) || self.codename.as_deref() == Some(suite);
        if !names_suite {
            return Err(format!(
                "it describes suite {:?} / codename {:?}, not {suite:?}",
                self.suite.as_deref().unwrap_or("-"),
                self.codename.as_deref().unwrap_or("-")
            ));
        }
        // Components are sometimes listed with a prefix ("updates/main").
        if !self.components.is_empty()
            && !self
                .components
                .iter()
                .any(|c| c == component || c.ends_with(&format!("/{component}")))
        {
            return Err(format!(
                "it has no component {component:?} (it has: {})",
                self.components.join(" ")
            ));
        }
        if !self.architectures.is_empty() && !self.architectures.iter().any(|a| a == arch) {
            return Err(format!(
                "it has no architecture {arch:?} (it has: {})",
                self.architectures.join(" ")
            ));
        }
        if let Some(until) = self.valid_until.filter(|until| *until < now) {
            return Err(format!(
                "it expired at {until} (Valid-Until); the mirror serves stale data"
            ));
        }
        Ok(())
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parse `Sat, 11 Jul 2026 10:16:37 UTC` (the RFC 2822 style Debian uses).
fn parse_release_date(text: &str) -> Option<OffsetDateTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    // Tolerate a missing weekday.
    let parts = if parts.first().is_some_and(|p| p.ends_with(',')) {
        &parts[1..]
    } else {
        &parts[..]
    };
    let [day, month, year, clock, zone] = parts else {
        return None;
    };
    if !matches!(*zone, "UTC" | "GMT" | "+0000" | "Z") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let month = Month::try_from(u8::try_from(month_index + 1).ok()?).ok()?;
    let date = Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let hms: Vec<u8> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let time = Time::from_hms(*h, *m, *s).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Run `gpgv` on a clearsigned file and return the text it verified.
///
/// Like apt, a signature by a key missing from the keyring is ignored, a bad
/// signature is fatal, and at least one good signature with a strong digest is
/// required.
pub(crate) fn verify_clearsigned(
    runner: &dyn CommandRunner,
    gpgv: &Path,
    keyring: &Path,
    signed_file: &Path,
    work_dir: &Path,
    url: &str,
) -> Result<String, DebianError> {
    if !keyring.is_file() {
        return Err(DebianError::KeyringMissing {
            path: keyring.to_path_buf(),
        });
    }
    // gpgv reads keyring names without a slash relative to its home directory.
    let keyring =
        std::path::absolute(keyring).map_err(|e| DebianError::io("resolve keyring", keyring, e))?;
    let home = work_dir.join("gnupg");
    std::fs::create_dir_all(&home).map_err(|e| DebianError::io("create", &home, e))?;
    let output = work_dir.join("verified");
    let args: Vec<&OsStr> = vec![
        OsStr::new("--homedir"),
        home.as_os_str(),
        OsStr::new("--status-fd"),
        OsStr::new("1"),
        OsStr::new("--keyring"),
        keyring.as_os_str(),
        OsStr::new("--output"),
        output.as_os_str(),
        signed_file.as_os_str(),
    ];
    let out = runner.run(gpgv, &args).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DebianError::GpgvMissing {
                program: gpgv.to_path_buf(),
            }
        } else {
            DebianError::io("run", gpgv, e)
        }
    })?;
    let status = out.stdout_str();
    let bad = |reason: String| DebianError::BadSignature {
        url: url.to_string(),
        reason,
        gpgv_stderr: out.stderr_str().trim().to_string(),
    };
    let good = good_signatures(&status).map_err(bad)?;
    if good == 0 {
        return Err(bad(if status.contains("NO_PUBKEY") {
            format!("no signature is by a key in {}", keyring.display())
        } else {
            "gpgv found no good signature".to_string()
        }));
    }
    std::fs::read_to_string(&output)
        .map_err(|e| DebianError::io("read the verified text from gpgv", &output, e))
}

/// Count good, strong signatures in gpgv's status output; any bad one is an error.
fn good_signatures(status: &str) -> Result<usize, String> {
    let mut good = 0;
    for line in status.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("[GNUPG:]") {
            continue;
        }
        match words.next() {
            Some("BADSIG") => {
                return Err(
                    "a signature is BAD: the file was altered or not signed by that key".into(),
                );
            }
            Some("VALIDSIG") => {
                // Field 8 after the keyword is the hash algorithm: 1 MD5, 2 SHA1, 3 RIPEMD160.
                let hash_algo = words.nth(7).unwrap_or("0");
                if !matches!(hash_algo, "1" | "2" | "3") {
                    good += 1;
                }
            }
            _ => {}
        }
    }
    Ok(good)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates_parse() {
        let d = parse_release_date("Sat, 11 Jul 2026 10:16:37 UTC").unwrap();
        assert_eq!(
            (d.year(), d.month(), d.day(), d.hour()),
            (2026, Month::July, 11, 10)
        );
        assert!(parse_release_date("11 Jul 2026 10:16:37 CEST").is_none());
    }

    #[test]
    fn status_lines_decide_signature_validity() {
        let ok = "[GNUPG:] GOODSIG X n\n[GNUPG:] VALIDSIG FPR 2026-07-11 1 0 4 0 1 8 01 FPR\n[GNUPG:] ERRSIG Y\n[GNUPG:] NO_PUBKEY Y\n";
        assert_eq!(good_signatures(ok).unwrap(), 1);
        let weak = "[GNUPG:] VALIDSIG FPR 2026-07-11 1 0 4 0 1 2 01 FPR\n";
        assert_eq!(good_signatures(weak).unwrap(), 0);
        assert!(good_signatures("[GNUPG:] BADSIG X n\n").is_err());
    }

    #[test]
    fn release_check_rejects_wrong_suite_and_expired() {
        let text = "Suite: stable\nCodename: bookworm\nComponents: main\nArchitectures: amd64\nValid-Until: Sat, 11 Jul 2026 10:16:37 UTC\nSHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 1 main/x\n";
        let r = Release::parse(text).unwrap();
        let before = parse_release_date("Fri, 10 Jul 2026 00:00:00 UTC").unwrap();
        let after = parse_release_date("Sun, 12 Jul 2026 00:00:00 UTC").unwrap();
        r.check("bookworm", "main", "amd64", before).unwrap();
        r.check("stable", "main", "amd64", before).unwrap();
        assert!(r.check("trixie", "main", "amd64", before).is_err());
        assert!(r.check("bookworm", "contrib", "amd64", before).is_err());
        assert!(
            r.check("bookworm", "main", "amd64", after)
                .unwrap_err()
                .contains("expired")
        );
        assert_eq!(r.file("main/x").unwrap().size, 1);
    }
}
