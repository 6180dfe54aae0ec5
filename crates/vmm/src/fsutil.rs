//! Making a file a VMM wrote durable under its final name.

use std::fs::File;
use std::path::Path;

use crate::error::VmmError;

/// fsync `temp`, rename it to `path`, fsync the directory: a crash leaves either no file
/// or the whole one under `path`. `temp` is removed when any step fails.
pub(crate) fn commit(temp: &Path, path: &Path) -> Result<(), VmmError> {
    let done = File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| VmmError::io("sync snapshot file", temp, e))
        .and_then(|()| {
            std::fs::rename(temp, path)
                .map_err(|e| VmmError::io("rename snapshot file into", path, e))
        });
    if done.is_err() {
        let _ = std::fs::remove_file(temp);
        return done;
    }
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VmmError::io("sync directory", dir, e))?;
    }
    Ok(())
}
