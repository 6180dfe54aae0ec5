//! What every image build shares: its error type, and how a finished image directory
//! is written (temp names, fsync) and moved into place atomically.

use std::fs;
use std::path::{Path, PathBuf};

use crate::deb::DebError;
use crate::debian::DebianError;
use crate::fsutil;
use crate::initramfs::InitramfsError;
use crate::kernel::KernelError;
use crate::modules::ModuleError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Modules(#[from] ModuleError),
    #[error(transparent)]
    DebianImage(#[from] crate::debian_image::DebianImageError),
    /// The bzImage could not be turned into a vmlinux.
    #[error("cannot extract vmlinux from the kernel in {package}")]
    Kernel {
        package: String,
        #[source]
        source: KernelError,
    },
    /// A kernel file given to `import-kernel` is not usable.
    #[error("kernel {path:?} cannot be imported: {reason}")]
    KernelFile { path: PathBuf, reason: String },
    /// The kernel package does not hold exactly one kernel.
    #[error(
        "package {package} should hold exactly one boot/vmlinuz-*, found {found:?}; name a kernel image package"
    )]
    NoKernel { package: String, found: Vec<String> },
    /// The kernel and its modules disagree on the release.
    #[error("package {package} mixes kernel releases {releases:?}")]
    KernelReleaseMismatch {
        package: String,
        releases: Vec<String>,
    },
    /// busybox-static did not contain the binary.
    #[error("package {package} contains no bin/busybox")]
    NoBusybox { package: String },
    /// The destination has no parent directory to build beside.
    #[error("image directory {path:?} must be an absolute path with a parent directory")]
    BadOutDir { path: PathBuf },
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    /// Whether reaching the Debian archive failed (a network or mirror problem), as opposed
    /// to a local one (a full disk, a broken package) that a network hint would misdirect.
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            BuildError::Debian(DebianError::Http { .. } | DebianError::HttpStatus { .. })
        )
    }
}

pub(crate) fn io_err<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> BuildError + 'p {
    move |source| BuildError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))
}

/// Move the finished `stage` to `out_dir`, replacing a previous image. The old
/// directory is first renamed aside, so `out_dir` is never half old, half new.
pub(crate) fn install(
    stage: tempfile::TempDir,
    out_dir: &Path,
    parent: &Path,
    name: &str,
) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(stage.path(), fs::Permissions::from_mode(0o755))
        .map_err(io_err("set permissions on", stage.path()))?;
    fsutil::fsync_dir(stage.path()).map_err(io_err("sync", stage.path()))?;
    let old = if out_dir.exists() {
        // rename(2) may replace an empty directory: reserve a unique one.
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(parent)
            .map_err(io_err("create a directory in", parent))?;
        fs::rename(out_dir, old.path())
            .map_err(io_err("move aside the previous image", out_dir))?;
        Some(old)
    } else {
        None
    };
    let staged = stage.keep();
    if let Err(e) = fs::rename(&staged, out_dir) {
        // Put the previous image back; the staged copy is cleaned up below.
        if let Some(old) = &old {
            let _ = fs::rename(old.path(), out_dir);
        }
        let _ = fs::remove_dir_all(&staged);
        return Err(io_err("move the new image into", out_dir)(e));
    }
    fsutil::fsync_dir(parent).map_err(io_err("sync", parent))?;
    // Dropping `old` deletes the previous image.
    drop(old);
    Ok(())
}
