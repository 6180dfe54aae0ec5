//! Which Firecracker release the fake impersonates, and every behaviour that differs by
//! release. Each switch names the line of `shared/notes/firecracker-api.md` it comes from.
//!
//! The notes record two observed releases, 1.5.0 and 1.14.1, plus the release where a
//! feature appeared (1.6, 1.12, 1.13, 1.14). Where the notes name only the two observed
//! releases (error-message prefixes, vCPU validation), a release in between behaves like
//! the nearer observed one that has the feature boundary's behaviour: from 1.13 on like
//! 1.14.1, before it like 1.5.0.

use std::fmt;

/// Environment variable that picks the personality (`1.5.0`, `1.13.0`, `1.14.1`, …).
pub const VERSION_ENV: &str = "FAKE_FIRECRACKER_VERSION";

/// The release impersonated when [`VERSION_ENV`] is unset: the one banger is tested with.
pub const DEFAULT_VERSION: Version = Version::new(1, 14, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.trim().trim_start_matches('v').split('.');
        let mut next = || parts.next()?.parse().ok();
        let version = Version::new(next()?, next()?, next()?);
        parts.next().is_none().then_some(version)
    }

    /// From [`VERSION_ENV`], else [`DEFAULT_VERSION`].
    pub fn from_env() -> Result<Version, String> {
        match std::env::var(VERSION_ENV) {
            Err(_) => Ok(DEFAULT_VERSION),
            Ok(text) => Version::parse(&text)
                .ok_or_else(|| format!("{VERSION_ENV}={text:?} is not MAJOR.MINOR.PATCH")),
        }
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        self >= Version::new(major, minor, 0)
    }

    /// "Errors … (v1.14.1; v1.5.0 lacks the `Boot source error: ` / `Network config error: ` /
    /// `Vsock config error: ` prefixes)"; likewise `Start microvm error: `, `Create snapshot
    /// error: ` and `Drive config error: `.
    pub fn error_prefixes(self) -> bool {
        self.at_least(1, 13)
    }

    /// "`PUT /serial` exists in 1.14.1 (204); 1.5.0 answers 400" — "(1.13+)".
    pub fn has_serial(self) -> bool {
        self.at_least(1, 13)
    }

    /// "before 1.14.0 the files must already exist": 1.14.1 creates a missing logger/metrics
    /// file, 1.5.0 answers 400.
    pub fn creates_log_files(self) -> bool {
        self.at_least(1, 14)
    }

    /// "logger only once" before 1.14; "1.14.1 accepted a second `PUT /logger`".
    pub fn logger_once(self) -> bool {
        !self.at_least(1, 14)
    }

    /// "`huge_pages None|2M (after 1.5)`".
    pub fn has_huge_pages(self) -> bool {
        self.at_least(1, 6)
    }

    /// "Never send `version` (removed in 1.6)"; "v1.5.0 accepts it with a deprecation log".
    pub fn accepts_snapshot_version(self) -> bool {
        !self.at_least(1, 6)
    }

    /// "`track_dirty_pages (1.13+; older: enable_diff_snapshots)`".
    pub fn load_uses_track_dirty_pages(self) -> bool {
        self.at_least(1, 13)
    }

    /// "`network_overrides [{iface_id, host_dev_name}] (1.12+)`".
    pub fn has_network_overrides(self) -> bool {
        self.at_least(1, 12)
    }

    /// "drive without path_on_host: v1.14.1 `Drive config error: … Invalid block config.`;
    /// v1.5.0 `… missing field `path_on_host` …`" — and "always send path_on_host and
    /// is_read_only (required in 1.5)".
    pub fn drive_path_required(self) -> bool {
        !self.at_least(1, 13)
    }

    /// "`/machine-config` vcpu_count 0 or 33: 1.14.1 400 `Machine config error: …`; 1.5.0
    /// rejects at deserialization".
    pub fn vcpus_checked_at_deserialization(self) -> bool {
        !self.at_least(1, 13)
    }

    /// "`GET /machine-config` defaults … (1.14.1 also reports `"huge_pages":"None"`)".
    pub fn reports_huge_pages(self) -> bool {
        self.has_huge_pages()
    }

    /// `--version` output, byte for byte as the notes observed it ("Observed" section).
    pub fn version_output(self, timestamp: &str) -> String {
        if self.at_least(1, 13) {
            format!(
                "Firecracker {self}\n\n{timestamp} [anonymous-instance:main] Firecracker exiting \
                 successfully. exit_code=0\n"
            )
        } else {
            // 1.5.0 lists the snapshot data formats it can read, its own last.
            let mut out =
                format!("Firecracker {self}\n\nSupported snapshot data format versions:\n");
            let mut formats = vec!["0.23.0".to_owned(), "0.24.0".into(), "0.25.0".into()];
            formats.extend((0..=self.minor).map(|m| format!("{}.{m}.0", self.major)));
            for format in formats {
                out.push_str(&format);
                out.push('\n');
            }
            out
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_outputs_match_the_observed_bytes() {
        // notes: "v1.14.1 stdout, exactly: `Firecracker v1.14.1\n\n2026-11-28T13:49:55.559793615
        // [anonymous-instance:main] Firecracker exiting successfully. exit_code=0\n`"
        assert_eq!(
            Version::new(1, 14, 1).version_output("2026-11-28T13:49:55.559793615"),
            "Firecracker v1.14.1\n\n2026-11-28T13:49:55.559793615 [anonymous-instance:main] \
             Firecracker exiting successfully. exit_code=0\n"
        );
        // notes: "v1.5.0 stdout: `Firecracker v1.5.0\n\nSupported snapshot data format
        // versions:\n0.23.0\n0.24.0\n0.25.0\n1.0.0\n1.1.0\n1.2.0\n1.3.0\n1.4.0\n1.5.0\n`"
        assert_eq!(
            Version::new(1, 5, 0).version_output("unused"),
            "Firecracker v1.5.0\n\nSupported snapshot data format versions:\n0.23.0\n0.24.0\n\
             0.25.0\n1.0.0\n1.1.0\n1.2.0\n1.3.0\n1.4.0\n1.5.0\n"
        );
    }

    #[test]
    fn parses_versions() {
        assert_eq!(Version::parse("1.5.0"), Some(Version::new(1, 5, 0)));
        assert_eq!(Version::parse("v1.14.1"), Some(Version::new(1, 14, 1)));
        assert_eq!(Version::parse("1.5"), None);
        assert_eq!(Version::parse("1.5.0.1"), None);
    }
}
