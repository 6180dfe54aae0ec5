//! Names of the devices and the nftables table the helper manages.
//!
//! Every name carries the owner: the bridge and the table embed the owner's uid, and a
//! TAP's kernel owner is the owner's uid. So no verb can name another owner's objects or
//! an interface banger did not create.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bridge names are `bgbr<uid>` (at most 14 bytes, under Linux's 15).
pub const BRIDGE_PREFIX: &str = "bgbr";
/// TAP names are `bgt` followed by 1 to 12 lowercase hex digits (a VM id).
pub const TAP_PREFIX: &str = "bgt";
const TAP_MAX_DIGITS: usize = 12;

/// The owner's bridge.
pub fn bridge_name(owner_uid: u32) -> String {
    format!("{BRIDGE_PREFIX}{owner_uid}")
}

/// The owner's nftables table (family `ip`).
pub fn nft_table_name(owner_uid: u32) -> String {
    format!("banger_{}", bridge_name(owner_uid))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "{0:?} is not a banger TAP name: it must be \"{TAP_PREFIX}\" followed by 1 to {TAP_MAX_DIGITS} lowercase hex digits"
    )]
    Tap(String),
}

/// A validated TAP device name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TapName(String);

impl TapName {
    pub fn new(name: &str) -> Result<TapName, NameError> {
        let digits = name
            .strip_prefix(TAP_PREFIX)
            .ok_or_else(|| NameError::Tap(name.to_string()))?;
        if digits.is_empty()
            || digits.len() > TAP_MAX_DIGITS
            || !digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(NameError::Tap(name.to_string()));
        }
        Ok(TapName(name.to_string()))
    }

    /// The TAP of the VM with this id (banger's VM ids are 12 lowercase hex digits).
    pub fn for_vm(vm_id: &str) -> Result<TapName, NameError> {
        TapName::new(&format!("{TAP_PREFIX}{vm_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TapName {
    type Error = NameError;
    fn try_from(s: String) -> Result<TapName, NameError> {
        TapName::new(&s)
    }
}

impl From<TapName> for String {
    fn from(t: TapName) -> String {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits() {
        assert_eq!(bridge_name(1000), "bgbr1000");
        assert!(bridge_name(u32::MAX).len() <= 15);
        assert_eq!(nft_table_name(0), "banger_bgbr0");
        let tap = TapName::for_vm("0123456789ab").unwrap();
        assert_eq!(tap.as_str(), "bgt0123456789ab");
        assert_eq!(tap.as_str().len(), 15);
    }

    #[test]
    fn tap_names_are_closed() {
        for bad in [
            "",
            "bgt",
            "eth0",
            "bgbr1000",
            "bgt0123456789abc",
            "bgtABC",
            "bgt-1",
            "bgt1 x",
            "bgt../x",
            "xbgt1",
        ] {
            assert!(TapName::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<TapName>("\"eth0\"").is_err());
        assert!(serde_json::from_str::<TapName>("\"bgt1f\"").is_ok());
    }
}
