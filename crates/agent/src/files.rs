//! PutFile / GetFile: copying files between host and guest.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use banger_agent_proto::{FileEnd, Kind, MAX_DATA_CHUNK, Message};

use crate::exec::Route;

/// A file being received. It is written to a temporary name beside its target and renamed
/// over it only when complete, so a half-sent file never replaces a good one.
pub struct Upload {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    mode: u32,
}

impl Upload {
    pub fn begin(path: &str, mode: u32) -> Result<Upload, String> {
        let target = PathBuf::from(path);
        if !target.is_absolute() {
            return Err(format!("put {path}: the path must be absolute"));
        }
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(format!("put {path}: the path names no file"));
        };
        if target.is_dir() {
            return Err(format!("put {path}: is a directory"));
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.banger-put-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound => format!(
                    "put {path}: directory {} does not exist; create it first",
                    dir.display()
                ),
                _ => format!(
                    "put {path}: cannot create a file in {}: {err}",
                    dir.display()
                ),
            })?;
        Ok(Upload {
            target,
            tmp,
            file: Some(file),
            mode,
        })
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        let target = &self.target;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| format!("put {}: already closed", target.display()))?;
        file.write_all(data)
            .map_err(|err| format!("put {}: write failed: {err}", target.display()))
    }

    /// Applies the mode, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<(), String> {
        let file = self
            .file
            .take()
            .ok_or_else(|| self.describe("already closed"))?;
        let target = self.target.display().to_string();
        // fchmod, not the open mode: the umask must not change what the host asked for.
        file.set_permissions(fs::Permissions::from_mode(self.mode & 0o7777))
            .map_err(|err| format!("put {target}: cannot set mode {:o}: {err}", self.mode))?;
        file.sync_all()
            .map_err(|err| format!("put {target}: sync failed: {err}"))?;
        drop(file);
        fs::rename(&self.tmp, &self.target)
            .map_err(|err| format!("put {target}: cannot move the file into place: {err}"))
    }

    fn describe(&self, what: &str) -> String {
        format!("put {}: {what}", self.target.display())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Committed uploads were renamed away; anything else is an abandoned temp file.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Sends the file at `path` on `route` from a thread: chunks, then `FileEnd` (or `Error`).
pub fn start_download(route: Route, path: String) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("get-{}", route.stream))
        .stack_size(128 * 1024)
        .spawn(move || {
            if let Err(message) = send_file(&route, Path::new(&path)) {
                let _ = route
                    .writer
                    .send(route.generation, route.stream, &Message::error(message));
            }
        })
        .map(drop)
}

fn send_file(route: &Route, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let mut file = File::open(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => format!("get {shown}: no such file"),
        _ => format!("get {shown}: cannot open: {err}"),
    })?;
    let meta = file
        .metadata()
        .map_err(|err| format!("get {shown}: cannot stat: {err}"))?;
    if meta.is_dir() {
        return Err(format!("get {shown}: is a directory"));
    }
    let mut buf = vec![0u8; MAX_DATA_CHUNK];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("get {shown}: read failed: {err}")),
        };
        route
            .writer
            .send_data(route.generation, Kind::FileChunk, route.stream, &buf[..n])
            .map_err(|err| format!("get {shown}: sending failed: {err}"))?;
        size += n as u64;
    }
    let end = Message::FileEnd(FileEnd {
        size,
        mode: meta.permissions().mode() & 0o7777,
    });
    route
        .writer
        .send(route.generation, route.stream, &end)
        .map_err(|err| format!("get {shown}: sending failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn upload_lands_complete_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "old").unwrap();
        let mut upload = Upload::begin(path.to_str().unwrap(), 0o751).unwrap();
        upload.write(b"new ").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"old",
            "target untouched until commit"
        );
        upload.write(b"content").unwrap();
        upload.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o751);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn abandoned_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut upload = Upload::begin(path.to_str().unwrap(), 0o644).unwrap();
        upload.write(b"partial").unwrap();
        drop(upload);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/f");
        let err = Upload::begin(missing.to_str().unwrap(), 0o644)
            .err()
            .unwrap();
        assert!(err.contains("does not exist"), "{err}");
        let err = Upload::begin("relative", 0o644).err().unwrap();
        assert!(err.contains("absolute"), "{err}");
        let err = Upload::begin(dir.path().to_str().unwrap(), 0o644)
            .err()
            .unwrap();
        assert!(err.contains("is a directory"), "{err}");
    }
}
