//! Replacing a file without ever leaving it half-written.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::SshError;

/// Write `content` to `path` through a temp file in the same directory (fsynced, given
/// `mode`, renamed over), then fsync the directory.
pub(crate) fn atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), SshError> {
    let err = |source| SshError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".banger-tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(content).map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

/// Create `dir` (and parents) with mode 0700 if missing.
pub(crate) fn private_dir(dir: &Path) -> Result<(), SshError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SshError::Write {
            path: dir.to_path_buf(),
            source,
        })
}
