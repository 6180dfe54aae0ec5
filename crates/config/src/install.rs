//! `install.toml`: what `banger system install` recorded about the install (the owner).
//!
//! Doctor reads it to check the install; the root helper reads it to know the one uid it
//! admits (and first checks who may write it — see `banger_helper`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The fields banger needs. The installer may record more; unknown keys are ignored so an
/// older banger still reads a newer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallMeta {
    pub owner_user: String,
    pub owner_uid: u32,
}

/// Why `install.toml` exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InstallMetaError {
    #[error("cannot read the install record {}; check its permissions", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid install record: {message}; repair or remove it (docs/privileges.md, \"System install\")", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// `Ok(None)` when there is no system install.
pub fn load_install_meta(path: &Path) -> Result<Option<InstallMeta>, InstallMetaError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(InstallMetaError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|err| InstallMetaError::Invalid {
            path: path.to_path_buf(),
            message: err.message().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_missing_valid_and_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        assert!(load_install_meta(&path).unwrap().is_none());

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
        let err = load_install_meta(&path).unwrap_err().to_string();
        assert!(err.contains("owner_uid"), "{err}");

        std::fs::write(&path, "owner_user = \"al\"\nowner_uid = -1\n").unwrap();
        assert!(load_install_meta(&path).is_err());
    }
}
