//! `install.toml`: what `banger system install` recorded about the install.

use std::path::Path;

use serde::Deserialize;

/// The fields the security checks need. The installer may record more; unknown
/// keys are ignored here so an older doctor still reads a newer file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallMeta {
    pub owner_user: String,
    pub owner_uid: u32,
}

/// `Ok(None)` when there is no system install; `Err` (a sentence) when the file
/// exists but cannot be used.
pub fn load_install_meta(path: &Path) -> Result<Option<InstallMeta>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
    };
    toml::from_str(&text).map(Some).map_err(|err| {
        format!(
            "{} is not a valid install record: {}",
            path.display(),
            err.message()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_missing_valid_and_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        assert_eq!(load_install_meta(&path), Ok(None));

        std::fs::write(
            &path,
            "owner_user = \"al\"\nowner_uid = 1000\ninstalled_at = \"x\"\n",
        )
        .unwrap();
        let meta = load_install_meta(&path).unwrap().unwrap();
        assert_eq!(
            meta,
            InstallMeta {
                owner_user: "al".into(),
                owner_uid: 1000
            }
        );

        std::fs::write(&path, "owner_user = \"al\"\n").unwrap();
        let err = load_install_meta(&path).unwrap_err();
        assert!(err.contains("owner_uid"), "{err}");
    }
}
