//! Settings taken from the environment rather than `config.toml`: knobs for slow hosts, CI
//! and tests. Each is parsed here, once, and a bad value is an error naming the variable
//! and what it accepts (never silently replaced by the default).

use std::ffi::OsStr;
use std::ops::RangeInclusive;
use std::time::Duration;

/// How long a boot may take to reach a ready guest agent, in seconds.
pub const BOOT_TIMEOUT_VAR: &str = "BANGER_BOOT_TIMEOUT";
/// The boot timeout when [`BOOT_TIMEOUT_VAR`] is unset or empty: emulated (TCG) boots take
/// seconds, and a loaded CI machine can stretch that a lot.
pub const BUILTIN_BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The accepted values of [`BOOT_TIMEOUT_VAR`], in seconds.
pub const BOOT_TIMEOUT_RANGE: RangeInclusive<u64> = 10..=3600;

/// An environment variable holding a value banger does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not accepted: {expected}")]
pub struct EnvError {
    pub var: &'static str,
    /// The value as set (lossily decoded when it is not UTF-8).
    pub value: String,
    /// What the variable accepts, and how to get the default.
    pub expected: String,
}

/// [`BOOT_TIMEOUT_VAR`] from this process's environment.
pub fn boot_timeout() -> Result<Duration, EnvError> {
    parse_boot_timeout(std::env::var_os(BOOT_TIMEOUT_VAR).as_deref())
}

/// A boot timeout from the value of [`BOOT_TIMEOUT_VAR`] (`None`: unset).
pub fn parse_boot_timeout(value: Option<&OsStr>) -> Result<Duration, EnvError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(BUILTIN_BOOT_TIMEOUT);
    };
    let text = value.to_string_lossy();
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|secs| BOOT_TIMEOUT_RANGE.contains(secs))
        .map(Duration::from_secs)
        .ok_or_else(|| EnvError {
            var: BOOT_TIMEOUT_VAR,
            value: text.chars().take(64).collect(),
            expected: format!(
                "give a whole number of seconds from {} to {}, or unset it for the default {}",
                BOOT_TIMEOUT_RANGE.start(),
                BOOT_TIMEOUT_RANGE.end(),
                BUILTIN_BOOT_TIMEOUT.as_secs()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<Duration, EnvError> {
        parse_boot_timeout(Some(OsStr::new(v)))
    }

    #[test]
    fn unset_or_empty_is_the_default() {
        assert_eq!(parse_boot_timeout(None), Ok(BUILTIN_BOOT_TIMEOUT));
        assert_eq!(parse(""), Ok(BUILTIN_BOOT_TIMEOUT));
    }

    #[test]
    fn whole_seconds_in_range_are_taken() {
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse(" 600 "), Ok(Duration::from_secs(600)));
        assert_eq!(parse("3600"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for bad in [
            "abc",
            "9",
            "3601",
            "-5",
            "1.5",
            "60s",
            "99999999999999999999999",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.var, BOOT_TIMEOUT_VAR);
            let said = e.to_string();
            assert!(
                said.starts_with(&format!("BANGER_BOOT_TIMEOUT={bad:?}"))
                    && said.contains("from 10 to 3600")
                    && said.contains("default 180"),
                "{said}"
            );
        }
        // A long value is not echoed whole.
        let e = parse(&"7".repeat(5000)).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }
}
