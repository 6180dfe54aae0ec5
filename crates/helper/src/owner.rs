//! Who the helper serves.

use std::path::{Path, PathBuf};

use banger_system::fsperm::{FileFacts, FileKind};

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
) -> Result<(u32, OwnerSource), String> {
    match FileFacts::lstat(install_toml) {
        Ok(facts) => {
            let path = install_toml.display();
            if facts.kind != FileKind::Regular {
                return Err(format!(
                    "{path} is {}, not a regular file; replace it as docs/privileges.md, \"System install\" describes",
                    facts.kind
                ));
            }
            if facts.uid != 0 || facts.mode & 0o022 != 0 {
                return Err(format!(
                    "{path} (owner uid {}, mode {:#o}) must be owned by root and writable by nobody else, since it names who the helper serves; run `sudo chown root:root {path} && sudo chmod 0644 {path}`",
                    facts.uid, facts.mode
                ));
            }
            let meta = banger_config::load_install_meta(install_toml)
                .map_err(|e| banger_system::error_chain(&e))?
                .ok_or_else(|| format!("{path} disappeared while the helper started"))?;
            if let Some(uid) = flag.filter(|uid| *uid != meta.owner_uid) {
                return Err(format!(
                    "--owner-uid {uid} contradicts {path}, which names uid {} ({}); drop the flag",
                    meta.owner_uid, meta.owner_user
                ));
            }
            Ok((
                meta.owner_uid,
                OwnerSource::InstallToml(install_toml.to_path_buf()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(uid) = flag {
                return Ok((uid, OwnerSource::Flag));
            }
            if let Some(text) = sudo_uid.filter(|s| !s.is_empty()) {
                let uid = text
                    .parse()
                    .map_err(|_| format!("SUDO_UID={text:?} is not a uid; pass --owner-uid"))?;
                return Ok((uid, OwnerSource::Sudo));
            }
            Ok((caller_uid, OwnerSource::Caller))
        }
        Err(e) => Err(format!("cannot inspect {}: {e}", install_toml.display())),
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
        let err = resolve_owner(&path, None, None, 0).unwrap_err();
        assert!(err.contains("writable by nobody else"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // SAFETY: getuid has no preconditions and cannot fail.
        if unsafe { libc::getuid() } == 0 {
            let (uid, source) = resolve_owner(&path, None, None, 0).unwrap();
            assert_eq!(uid, 1000);
            assert!(matches!(source, OwnerSource::InstallToml(_)));
            let err = resolve_owner(&path, Some(5), None, 0).unwrap_err();
            assert!(err.contains("contradicts"), "{err}");
            std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
            let err = resolve_owner(&path, None, None, 0).unwrap_err();
            assert!(err.contains("owned by root"), "{err}");
        }
    }
}
