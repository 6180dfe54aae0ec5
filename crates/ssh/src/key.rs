//! The default SSH key.

use std::path::Path;

use banger_system::CommandRunner;
use banger_system::fsperm::{FileFacts, FileKind};

use crate::SshError;
use crate::write::private_dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Existing,
    Created,
}

/// Make sure the private key at `path` exists and is private. A missing key is created
/// (ed25519, no passphrase, mode 0600, with `path.pub` beside it) by `ssh-keygen` in a
/// temp directory and moved into place, private key last: its presence means "done".
pub fn ensure_key(path: &Path, runner: &dyn CommandRunner) -> Result<KeyStatus, SshError> {
    match FileFacts::stat(path) {
        Ok(facts) if facts.kind != FileKind::Regular => {
            return Err(SshError::BadKey {
                path: path.to_path_buf(),
                problem: format!("{}, not a key file", facts.kind),
                fix: "point ssh_key_path at a private key, or remove it from config.toml".into(),
            });
        }
        Ok(facts) if facts.mode & 0o077 != 0 => {
            return Err(SshError::BadKey {
                path: path.to_path_buf(),
                problem: format!(
                    "readable by others (mode {:#o}), which ssh refuses",
                    facts.mode
                ),
                fix: format!("chmod 600 {}", path.display()),
            });
        }
        Ok(_) => return Ok(KeyStatus::Existing),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SshError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    let write = |source| SshError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".banger-keygen")
        .tempdir_in(dir)
        .map_err(write)?;
    let tmp_key = tmp.path().join("key");
    let keygen =
        banger_system::runner::lookup_executable("ssh-keygen").ok_or(SshError::NoKeygen)?;
    let tmp_str = tmp_key.to_string_lossy();
    let out = runner
        .run(
            &keygen,
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "banger",
                "-f",
                tmp_str.as_ref(),
            ]
            .map(std::ffi::OsStr::new),
        )
        .map_err(|_| SshError::NoKeygen)?;
    if !out.success() {
        return Err(SshError::Keygen {
            path: path.to_path_buf(),
            stderr: out.stderr_str().trim().to_string(),
        });
    }
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    std::fs::rename(tmp.path().join("key.pub"), &public).map_err(write)?;
    std::fs::rename(&tmp_key, path).map_err(write)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write)?;
    Ok(KeyStatus::Created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_system::RealRunner;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_with_private_modes_and_refuses_loose_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ssh").join("id_ed25519");
        assert_eq!(ensure_key(&key, &RealRunner).unwrap(), KeyStatus::Created);
        let facts = FileFacts::lstat(&key).unwrap();
        assert_eq!(facts.mode, 0o600);
        assert_eq!(FileFacts::lstat(key.parent().unwrap()).unwrap().mode, 0o700);
        let public = std::fs::read_to_string(dir.path().join("ssh/id_ed25519.pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        let private = std::fs::read(&key).unwrap();
        assert_eq!(ensure_key(&key, &RealRunner).unwrap(), KeyStatus::Existing);
        assert_eq!(
            std::fs::read(&key).unwrap(),
            private,
            "an existing key is never replaced"
        );
        let leftovers: Vec<_> = std::fs::read_dir(key.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ensure_key(&key, &RealRunner).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(ensure_key(dir.path(), &RealRunner).is_err());
    }
}
