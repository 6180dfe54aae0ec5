//! Human size strings for `[vm_defaults] disk` and for printing sizes back.
//!
//! Every unit is binary (powers of 1024), as in `qemu-img` and `truncate`: `8G`, `8GB`
//! and `8GiB` all mean 8 × 1024³ bytes. Fractions (`1.5G`) are refused rather than
//! rounded, so a size always means exactly one byte count: write `1536M` instead.

const KIB: u64 = 1024;
/// Bytes in a MiB.
pub const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;
const PIB: u64 = TIB * 1024;

/// Parse a size such as `8G`, `512M`, `10GiB`, `1T`, `64 MiB`, `4096` (bytes).
///
/// Units are case-insensitive and binary; an optional space may separate number and
/// unit (so `parse_size(&format_size(n)) == Ok(n)`). `0` parses to 0: callers that need
/// a minimum check it themselves. Errors say what is wrong with the text without quoting it
/// (`has a fraction; …`), to follow it as the caller quotes it (`"1.5G" has a fraction; …`):
/// a caller facing hostile input may shorten it.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size_with_unit(s, 1)
}

/// [`parse_size`] where a number without a unit counts `plain_unit` bytes (the CLI's
/// size flags take a plain number as MiB; config files and the API as bytes).
pub fn parse_size_with_unit(s: &str, plain_unit: u64) -> Result<u64, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("is empty; expected a size such as \"8G\" or \"512M\"".to_string());
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, rest) = trimmed.split_at(digits_end);
    let unit = rest.trim_start();
    if unit.starts_with(['.', ',']) {
        return Err(
            "has a fraction; sizes must be whole numbers of a unit: use a smaller unit \
                    (e.g. \"1536M\" instead of \"1.5G\")"
                .to_string(),
        );
    }
    if number.is_empty() {
        return Err(
            "does not start with a number; expected a size such as \"8G\", \"512M\" \
                    or \"10GiB\""
                .to_string(),
        );
    }
    let multiplier = if unit.is_empty() {
        Some(plain_unit)
    } else {
        unit_multiplier(unit)
    };
    let multiplier = multiplier.ok_or_else(|| {
        // A unit is a few letters: a long one is junk not worth repeating.
        let named = match unit.chars().count() {
            ..=8 => format!(" {unit:?}"),
            _ => String::new(),
        };
        format!(
            "has an unknown unit{named}; use B, K, M, G, T or P (binary: KiB, MiB, GiB, … are \
             accepted too)"
        )
    })?;
    let too_large = || "is too large to represent in bytes".to_string();
    let value: u64 = number.parse().map_err(|_| too_large())?;
    value.checked_mul(multiplier).ok_or_else(too_large)
}

fn unit_multiplier(unit: &str) -> Option<u64> {
    let lower = unit.to_ascii_lowercase();
    // Accept the bare letter, the letter + "b" and the letter + "ib": all binary.
    let base = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    match (base, lower.as_str()) {
        (_, "" | "b") => Some(1),
        ("k", _) => Some(KIB),
        ("m", _) => Some(MIB),
        ("g", _) => Some(GIB),
        ("t", _) => Some(TIB),
        ("p", _) => Some(PIB),
        _ => None,
    }
}

/// Format a byte count with the largest binary unit that divides it exactly:
/// `8 GiB`, `512 MiB`, `1536 MiB`, `4097 B`. Exact, so it round-trips through [`parse_size`].
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [
        (PIB, "PiB"),
        (TIB, "TiB"),
        (GIB, "GiB"),
        (MIB, "MiB"),
        (KIB, "KiB"),
    ] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_binary_and_case_insensitive() {
        assert_eq!(parse_size("8G"), Ok(8 * GIB));
        assert_eq!(parse_size("8g"), Ok(8 * GIB));
        assert_eq!(parse_size("8GB"), Ok(8 * GIB));
        assert_eq!(parse_size("8gib"), Ok(8 * GIB));
        assert_eq!(parse_size("10GiB"), Ok(10 * GIB));
        assert_eq!(parse_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_size("512 MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("1T"), Ok(TIB));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("2P"), Ok(2 * PIB));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096b"), Ok(4096));
        assert_eq!(parse_size("  64M  "), Ok(64 * MIB));
    }

    #[test]
    fn zero_parses_and_is_left_to_callers() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("0G"), Ok(0));
    }

    #[test]
    fn fractions_are_refused_with_a_hint() {
        let err = parse_size("1.5G").unwrap_err();
        assert!(err.contains("1536M"), "{err}");
        assert!(parse_size("1,5G").is_err());
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "", "   ", "G", "-1G", "+1G", "8X", "8 G B", "8GiBs", "0x10", "8Gi", "eight",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_size("8X").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert!(parse_size("16384P").unwrap_err().contains("too large"));
        assert!(
            parse_size("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
    }

    #[test]
    fn format_uses_largest_exact_unit_and_round_trips() {
        assert_eq!(format_size(8 * GIB), "8 GiB");
        assert_eq!(format_size(512 * MIB), "512 MiB");
        assert_eq!(format_size(1536 * MIB), "1536 MiB");
        assert_eq!(format_size(TIB), "1 TiB");
        assert_eq!(format_size(4097), "4097 B");
        assert_eq!(format_size(0), "0 B");
        for n in [0, 1, 4097, 64 * MIB, 1536 * MIB, 3 * TIB, u64::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "round trip of {n}");
        }
    }
}
