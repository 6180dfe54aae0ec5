//! Size flags (`--memory 1g`, `--disk 8G`): one parser for all of them. Units are
//! binary and case-insensitive (`512m`, `1G`, `2GiB`); a plain number is MiB, since
//! nobody means bytes when sizing a VM.

use banger_config::{MIB, parse_size_with_unit};

/// A size flag in bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse_size_with_unit(text, MIB).map_err(|e| format!("{text:?} {e}"))
}

/// A size flag in whole MiB (`--memory`).
pub fn parse_mib(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if !bytes.is_multiple_of(MIB) {
        return Err(format!(
            "{text:?} is not a whole number of MiB; write it in MiB or larger units, e.g. 512m"
        ));
    }
    Ok(bytes / MIB)
}

/// A size flag in whole MiB, with the text the user typed (`1T`), so an error about it can
/// say it back in the user's units rather than the API's MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedMib {
    pub mib: u64,
    pub typed: String,
}

/// [`parse_mib`], keeping what was typed.
pub fn parse_typed_mib(text: &str) -> Result<TypedMib, String> {
    Ok(TypedMib {
        mib: parse_mib(text)?,
        typed: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_plain_mib() {
        assert_eq!(parse_mib("1g"), Ok(1024));
        assert_eq!(parse_mib("1G"), Ok(1024));
        assert_eq!(parse_mib("512m"), Ok(512));
        assert_eq!(parse_mib("512M"), Ok(512));
        assert_eq!(parse_mib("512MiB"), Ok(512));
        assert_eq!(parse_mib("2048"), Ok(2048));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("8192"), Ok(8 << 30));
        assert_eq!(parse_size("100k"), Ok(100 << 10));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(
            parse_mib("1536k")
                .unwrap_err()
                .contains("whole number of MiB")
        );
        assert!(parse_mib("1.5g").unwrap_err().contains("1536M"));
        assert!(parse_mib("lots").is_err());
        assert!(parse_mib("1x").unwrap_err().contains("unknown unit"));
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }
}
