//! VM names: validated as DNS labels (they become host names and path components),
//! generated when the user gives none.

use crate::error::{DaemonError, Result, quoted};

/// Longest DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// What a validated name names, for its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Vm,
    Snapshot,
}

/// Check `name` is a DNS label: 1–63 characters of `a-z`, `0-9`, `-`, not starting or
/// ending with `-`. Upper case is refused rather than folded so `ssh NAME.vm` and
/// `banger vm exec NAME` always agree.
pub fn validate(name: &str) -> Result<()> {
    validate_as(Named::Vm, name)
}

/// [`validate`] for a name of `what` (a snapshot's follows the VMs' rule).
pub fn validate_as(what: Named, name: &str) -> Result<()> {
    let (noun, why_so) = match what {
        Named::Vm => ("VM", "it becomes the VM's host name"),
        Named::Snapshot => ("snapshot", "the rule of VM names"),
    };
    let invalid = |why: &str| {
        DaemonError::invalid(format!("invalid {noun} name {}: {why}", quoted(name)))
            .with_field("name")
            .with_hint(format!("use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit ({why_so})"))
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(&format!(
            "it is {} characters long, the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(invalid(&format!("{bad:?} is not allowed")));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(invalid("it starts or ends with '-'"));
    }
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "brisk", "calm", "eager", "fuzzy", "gentle", "happy", "jolly", "keen", "lucky", "merry",
    "nimble", "proud", "quick", "rapid", "shiny", "sunny", "swift", "tidy", "vivid", "witty",
];
const NOUNS: &[&str] = &[
    "badger", "comet", "falcon", "gecko", "heron", "ibis", "koala", "lynx", "marten", "newt",
    "otter", "panda", "quail", "raven", "stoat", "tapir", "vole", "walrus", "yak", "zebra",
];

/// A friendly random name like `swift-otter-3f2a`; `taken` says whether a candidate exists.
pub fn generate(mut taken: impl FnMut(&str) -> bool) -> String {
    loop {
        let r = random_u64();
        let adj = ADJECTIVES[(r % ADJECTIVES.len() as u64) as usize];
        let noun = NOUNS[((r >> 16) % NOUNS.len() as u64) as usize];
        let name = format!("{adj}-{noun}-{:04x}", (r >> 32) & 0xffff);
        if !taken(&name) {
            return name;
        }
    }
}

fn random_u64() -> u64 {
    banger_system::random::u64().unwrap_or_else(|_| {
        // Practically unreachable (getrandom fails only on a kernel without it); fall
        // back to time and pid so names still differ.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ ((std::process::id() as u64) << 32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "dev", "web-1", "0abc", &"a".repeat(63)] {
            validate(ok).unwrap();
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "-a",
            "a-",
            "Dev",
            "a_b",
            "a.b",
            "a b",
            "ü",
            "a/b",
            "..",
            &"a".repeat(64),
        ] {
            let err = validate(bad).unwrap_err();
            assert!(
                err.message.contains("invalid VM name"),
                "{bad}: {}",
                err.message
            );
            assert!(err.hint.is_some());
        }
    }

    #[test]
    fn a_snapshot_name_is_called_one() {
        let err = validate_as(Named::Snapshot, "../x").unwrap_err();
        assert!(
            err.message.starts_with("invalid snapshot name \"../x\""),
            "{}",
            err.message
        );
        assert!(!err.hint.unwrap_or_default().contains("host name"));
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generate(|_| false);
        validate(&first).unwrap();
        let mut seen = 0;
        let second = generate(|n| {
            seen += 1;
            seen < 3 && !n.is_empty()
        });
        validate(&second).unwrap();
        assert_eq!(seen, 3);
    }
}
