//! Who the helper serves.

use std::path::{Path, PathBuf};

use banger_system::fsperm::{FileFacts, FileKind};

use crate::error::StartError;

/// Where the admitted uid came from (logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerSource {
    /// A system install's `install.toml`.
    InstallToml(PathBuf),
    /// `--owner-uid`.
    Flag,
    /// `SUDO_UID`: dev mode, started with sudo by the owner.
    Sudo,
    /// Dev mode: the uid that started the helper.
    Caller,
}

/// The one uid the helper admits. With a system install, `install.toml` decides, and it
/// must be a regular file owned by root and writable by nobody else (it is the helper's
/// only source of who the owner is); `--owner-uid` may not contradict it. Without one,
/// `--owner-uid`, else `SUDO_UID`, else the caller.
pub fn resolve_owner(
    install_toml: &Path,
    flag: Option<u32>,
    sudo_uid: Option<&str>,
    caller_uid: u32,
) -> Result<(u32, OwnerSource), StartError> {
    let path = install_toml.to_path_buf();
    match FileFacts::lstat(install_toml) {
        Ok(facts) => {
            if facts.kind != FileKind::Regular {
                return Err(StartError::InstallTomlKind {
                    path,
                    kind: facts.kind.to_string(),
                });
            }
            if facts.uid != 0 || facts.mode & 0o022 != 0 {
                return Err(StartError::InstallTomlPerms {
                    path,
                    uid: facts.uid,
                    mode: facts.mode,
                });
            }
            let meta = banger_config::load_install_meta(install_toml)
                .map_err(|source| StartError::InstallToml {
                    path: path.clone(),
                    source,
                })?
                .ok_or_else(|| StartError::InstallTomlGone { path: path.clone() })?;
            if let Some(flag) = flag.filter(|uid| *uid != meta.owner_uid) {
                return Err(StartError::OwnerContradicted {
                    flag,
                    path,
                    uid: meta.owner_uid,
                    user: meta.owner_user,
                });
            }
            Ok((meta.owner_uid, OwnerSource::InstallToml(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(uid) = flag {
                return Ok((uid, OwnerSource::Flag));
            }
            if let Some(text) = sudo_uid.filter(|s| !s.is_empty()) {
                let uid = text
                    .parse()
                    .map_err(|_| StartError::SudoUid(text.to_string()))?;
                return Ok((uid, OwnerSource::Sudo));
            }
            Ok((caller_uid, OwnerSource::Caller))
        }
        Err(source) => Err(StartError::Io {
            action: "inspect",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn dev_mode_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("install.toml");
        assert_eq!(
            resolve_owner(&none, Some(7), Some("1000"), 0).unwrap(),
            (7, OwnerSource::Flag)
        );
        assert_eq!(
            resolve_owner(&none, None, Some("1000"), 0).unwrap(),
            (1000, OwnerSource::Sudo)
        );
        assert_eq!(
            resolve_owner(&none, None, None, 42).unwrap(),
            (42, OwnerSource::Caller)
        );
        assert!(resolve_owner(&none, None, Some("al"), 0).is_err());
    }

    #[test]
    fn install_toml_must_be_trustworthy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        std::fs::write(&path, "owner_user = \"al\"\nowner_uid = 1000\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = resolve_owner(&path, None, None, 0).unwrap_err().to_string();
        assert!(err.contains("writable by nobody else"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // SAFETY: getuid has no preconditions and cannot fail.
        if unsafe { libc::getuid() } == 0 {
            let (uid, source) = resolve_owner(&path, None, None, 0).unwrap();
            assert_eq!(uid, 1000);
            assert!(matches!(source, OwnerSource::InstallToml(_)));
            let err = resolve_owner(&path, Some(5), None, 0)
                .unwrap_err()
                .to_string();
            assert!(err.contains("contradicts"), "{err}");
            std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
            let err = resolve_owner(&path, None, None, 0).unwrap_err().to_string();
            assert!(err.contains("owned by root"), "{err}");
        }
    }
}
