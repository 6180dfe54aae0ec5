//! `install.toml`: what `banger system install` recorded about the install (the owner).
//!
//! Doctor reads it to check the install; the root helper reads it to know the one uid it
//! admits (and first checks who may write it — see `banger_helper`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a system install recorded. `banger system install` writes every field; only the
/// owner is required, so a hand-written or older file still reads. Unknown keys are
/// ignored so an older banger still reads a newer file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallMeta {
    pub owner_user: String,
    pub owner_uid: u32,
    /// The banger version and build that wrote the install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The installed `banger` binary the units run, and its guest agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banger_bin: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_bin: Option<PathBuf>,
    /// Where the two unit files were written (`/etc/systemd/system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_dir: Option<PathBuf>,
    /// The daemon's state and runtime roots: the layout of a system install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_dir: Option<PathBuf>,
    /// The jailer and Firecracker the helper was installed to run (`--jailer`,
    /// `--firecracker` in its unit); absent when it does not jail Firecracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jailer: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firecracker: Option<PathBuf>,
    /// The cgroup layout the host had when the units were rendered (`v1`: memory and pids
    /// on v1 hierarchies; `v2`: on the unified one, and a jailing helper's unit leaves the
    /// cgroup tree writable); absent when neither was mounted, or from an older install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<banger_system::cgroup::CgroupLayout>,
}

impl InstallMeta {
    /// The install's layout: the roots it recorded replace the ones resolved from the
    /// environment, so every command finds the daemon, its socket and its state where the
    /// installer put them.
    pub fn apply_to(&self, layout: &mut banger_paths::Layout) {
        if let Some(dir) = &self.state_dir {
            layout.state_dir = dir.clone();
        }
        if let Some(dir) = &self.runtime_dir {
            layout.runtime_dir = dir.clone();
        }
    }

    /// The file's text, as the installer writes it.
    /// Fails only for a path that is not UTF-8.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(self)?;
        Ok(format!(
            "# Written by `banger system install`; read by the root helper (who it serves), the\n\
             # daemon, the CLI and `banger doctor`. Change it only by installing again.\n{body}"
        ))
    }
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
                owner_uid: 1000,
                ..InstallMeta::default()
            }
        );

        std::fs::write(&path, "owner_user = \"al\"\n").unwrap();
        let err = load_install_meta(&path).unwrap_err().to_string();
        assert!(err.contains("owner_uid"), "{err}");

        std::fs::write(&path, "owner_user = \"al\"\nowner_uid = -1\n").unwrap();
        assert!(load_install_meta(&path).is_err());
    }

    #[test]
    fn written_text_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        let meta = InstallMeta {
            owner_user: "al".into(),
            owner_uid: 1000,
            version: Some("1.2.3".into()),
            state_dir: Some("/var/lib/banger".into()),
            runtime_dir: Some("/run/banger".into()),
            cgroup: Some(banger_system::cgroup::CgroupLayout::V2),
            ..InstallMeta::default()
        };
        let text = meta.to_toml().unwrap();
        assert!(text.lines().any(|l| l == "cgroup = \"v2\""), "{text}");
        std::fs::write(&path, text).unwrap();
        assert_eq!(load_install_meta(&path).unwrap(), Some(meta));
    }
}
