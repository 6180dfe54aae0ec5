//! A private directory beside a destination, where a stream is unpacked before anything
//! of it takes a real name: removed with whatever is left in it however the copy ends.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::CopyError;

pub(crate) struct Staging {
    /// `<dest>/<prefix>.<pid>.<nanos>`, with `dest` canonical.
    pub path: PathBuf,
}

impl Staging {
    /// Make the staging directory (0700) in the existing directory `dest`.
    pub fn new(dest: &Path, prefix: &str) -> Result<Staging, CopyError> {
        let write = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CopyError::Write { path, source }
        };
        let dest = dest.canonicalize().map_err(write(dest))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = dest.join(format!("{prefix}.{}.{nanos}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(write(&path))?;
        Ok(Staging { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // `remove_dir_all` does not follow symlinks.
        let _ = fs::remove_dir_all(&self.path);
    }
}
