//! Checking the new binary and putting it in place atomically, root-owned, 0755.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use banger_system::CommandRunner;

use super::InstallError;
use crate::version::{SemVer, VersionError, parse_version_output};

/// The new `firecracker` must run and report the version asked for.
pub(super) fn check_version(
    runner: &dyn CommandRunner,
    binary: &Path,
    wanted: &SemVer,
) -> Result<(), InstallError> {
    std::fs::set_permissions(binary, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| InstallError::io("make executable", binary, e))?;
    let output = run_retrying_busy(runner, binary).map_err(|source| {
        InstallError::BrokenBinary(VersionError::Spawn {
            bin: binary.to_path_buf(),
            source,
        })
    })?;
    if !output.success() {
        return Err(InstallError::BrokenBinary(VersionError::Exited {
            bin: binary.to_path_buf(),
            status: format!("exited with {:?}", output.code),
            stderr: output.stderr_str().trim().chars().take(500).collect(),
        }));
    }
    let found = parse_version_output(&output.stdout_str()).map_err(|e| {
        InstallError::BrokenBinary(VersionError::Unrecognised {
            bin: binary.to_path_buf(),
            source: Box::new(e),
        })
    })?;
    if &found != wanted {
        return Err(InstallError::VersionMismatch {
            wanted: wanted.clone(),
            found,
        });
    }
    Ok(())
}

/// Run `<binary> --version`, retrying while exec answers ETXTBSY: the file was just written,
/// and a process forked by another thread meanwhile may still hold the (close-on-exec)
/// write descriptor until it execs.
fn run_retrying_busy(
    runner: &dyn CommandRunner,
    binary: &Path,
) -> std::io::Result<banger_system::CommandOutput> {
    banger_system::retry_while_busy(|| runner.run(binary, &[OsStr::new("--version")]))
}

/// Copy `source` to `<bin_dir>/<name>`: written under a temporary name, owned by root, mode
/// 0755, synced, then renamed over the old file (whose running copies keep their inode).
pub(super) fn install_binary(
    source: &Path,
    bin_dir: &Path,
    name: &str,
) -> Result<PathBuf, InstallError> {
    std::fs::create_dir_all(bin_dir).map_err(|e| InstallError::io("create", bin_dir, e))?;
    let target = bin_dir.join(name);
    if target.is_dir() {
        return Err(InstallError::io(
            "replace",
            &target,
            std::io::Error::other("it is a directory"),
        ));
    }
    let tmp = bin_dir.join(format!(".{name}.banger-install-{}", std::process::id()));
    let result = write_root_owned(source, &tmp).and_then(|()| {
        std::fs::rename(&tmp, &target).map_err(|e| InstallError::io("rename into", &target, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // The rename is durable once the directory is synced.
    File::open(bin_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| InstallError::io("sync", bin_dir, e))?;
    Ok(target)
}

fn write_root_owned(source: &Path, tmp: &Path) -> Result<(), InstallError> {
    let data = std::fs::read(source).map_err(|e| InstallError::io("read", source, e))?;
    let _ = std::fs::remove_file(tmp);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(tmp)
        .map_err(|e| InstallError::io("create", tmp, e))?;
    out.write_all(&data)
        .map_err(|e| InstallError::io("write", tmp, e))?;
    std::os::unix::fs::fchown(&out, Some(0), Some(0))
        .map_err(|e| InstallError::io("give root ownership of", tmp, e))?;
    out.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(|e| InstallError::io("set the mode of", tmp, e))?;
    out.sync_all().map_err(|e| InstallError::io("sync", tmp, e))
}
